//! Timings of the metrics on large inputs (not run by default):
//!
//! `cargo test --release -p builtins --test metrics_bench -- --ignored --nocapture`
//!
//! Prints one JSON line per metric with the median of five runs.

use std::time::Instant;

use builtins::metrics::{self, EvalInput, Features};
use builtins::model::{Predictions, Task};

/// A small deterministic generator, so the inputs are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn median_secs(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

fn input(
    task: Task,
    width: usize,
    y: Vec<f64>,
    values: Vec<f32>,
    features: Option<Features>,
) -> EvalInput {
    EvalInput {
        y_true: Some(y),
        predictions: Predictions {
            task,
            n_rows: values.len() / width,
            width,
            values,
            column_names: (0..width).map(|j| format!("p{j}")).collect(),
        },
        features,
    }
}

#[test]
#[ignore = "a benchmark"]
fn metric_timings() {
    let n = 1_000_000;
    let mut r = Lcg(7);
    let y: Vec<f64> = (0..n).map(|_| f64::from(r.uniform() < 0.4)).collect();
    let p: Vec<f32> = y
        .iter()
        .map(|&c| ((0.35 * c + 0.65 * r.uniform()) * 1000.0).round() as f32 / 1000.0)
        .collect();
    let binary = input(
        Task::Binary {
            classes: vec!["0".into(), "1".into()],
        },
        1,
        y.clone(),
        p,
        None,
    );
    let y3: Vec<f64> = (0..n).map(|_| (r.uniform() * 3.0).floor()).collect();
    let mut p3 = Vec::with_capacity(3 * n);
    for &c in &y3 {
        let mut row = [r.uniform(), r.uniform(), r.uniform()];
        row[c as usize] += 0.5;
        let s: f64 = row.iter().sum();
        p3.extend(row.iter().map(|v| (v / s) as f32));
    }
    let multi = input(
        Task::Multiclass {
            classes: vec!["a".into(), "b".into(), "c".into()],
        },
        3,
        y3,
        p3,
        None,
    );
    let yr: Vec<f64> = (0..n).map(|_| r.uniform() * 100.0).collect();
    let pr: Vec<f32> = yr
        .iter()
        .map(|v| (v + r.uniform() * 10.0 - 5.0) as f32)
        .collect();
    let reg = input(Task::Regression, 1, yr, pr, None);
    let m = 10_000;
    let d = 32;
    let labels: Vec<f32> = (0..m).map(|i| (i % 16) as f32).collect();
    let feats: Vec<f64> = (0..m * d)
        .map(|i| ((i / d) % 16) as f64 * 0.5 + r.uniform() * 3.0)
        .collect();
    let clu = EvalInput {
        y_true: None,
        predictions: Predictions {
            task: Task::Clustering,
            n_rows: m,
            width: 1,
            values: labels,
            column_names: vec!["cluster".into()],
        },
        features: Some(Features {
            n_rows: m,
            n_cols: d,
            values: feats,
        }),
    };
    let cases: [(&str, &str, &EvalInput); 8] = [
        ("binary_1m", "auc", &binary),
        ("binary_1m", "logloss", &binary),
        ("binary_1m", "f1", &binary),
        ("multiclass3_1m", "auc", &multi),
        ("multiclass3_1m", "f1_macro", &multi),
        ("regression_1m", "r2", &reg),
        ("regression_1m", "mape", &reg),
        ("clustering_10k_x32", "silhouette", &clu),
    ];
    for (data, name, inp) in cases {
        let mut v = 0.0;
        let secs = median_secs(|| v = metrics::compute(name, inp).unwrap());
        println!(
            r#"{{"data": "{data}", "metric": "{name}", "value": {v:.6}, "median_s": {secs:.4}}}"#
        );
    }
    let secs = median_secs(|| {
        let opts = metrics::bootstrap::BootstrapOptions {
            resamples: 200,
            ..Default::default()
        };
        metrics::bootstrap::interval("auc", &binary, &opts).unwrap();
    });
    println!(r#"{{"data": "binary_1m", "metric": "auc bootstrap B=200", "median_s": {secs:.4}}}"#);
}
