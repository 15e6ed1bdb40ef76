//! Every metric against scikit-learn on the vectors `fixtures/metrics/gen.py`
//! produced with it: values agree to 1e-9 (relative, for values above 1).

use builtins::metrics::{self, EvalInput, Features, ranking, regression};
use builtins::model::{Predictions, Task};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics/sklearn_cases.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture present");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::INFINITY))
        .collect()
}

/// The inputs were float32 in scikit-learn too, so the cast is exact.
fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

fn close(name: &str, ours: f64, theirs: f64) {
    let tol = 1e-9 * theirs.abs().max(1.0);
    assert!(
        (ours - theirs).abs() <= tol || (ours.is_infinite() && ours == theirs),
        "{name}: ours {ours} vs scikit-learn {theirs}"
    );
}

fn close_all(name: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{name}: lengths differ");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        close(&format!("{name}[{i}]"), *a, *b);
    }
}

fn input_of(case: &Value) -> EvalInput {
    let kind = case["kind"].as_str().unwrap();
    let values = f32s(&case["predictions"]);
    let (task, width) = match kind {
        "binary" => (
            Task::Binary {
                classes: vec!["0".into(), "1".into()],
            },
            1,
        ),
        "multiclass" => {
            let k = case["n_classes"].as_u64().unwrap() as usize;
            (
                Task::Multiclass {
                    classes: (0..k).map(|c| c.to_string()).collect(),
                },
                k,
            )
        }
        "regression" => (Task::Regression, 1),
        "clustering" => (Task::Clustering, 1),
        "projection" => (Task::Projection, case["width"].as_u64().unwrap() as usize),
        other => panic!("unknown case kind {other}"),
    };
    let n_rows = values.len() / width;
    let features = case.get("features").map(|f| {
        let n_cols = case["n_cols"].as_u64().unwrap() as usize;
        Features {
            n_rows,
            n_cols,
            values: f64s(f),
        }
    });
    EvalInput {
        y_true: case.get("y_true").map(f64s),
        predictions: Predictions {
            task,
            n_rows,
            width,
            values,
            column_names: (0..width).map(|j| format!("p{j}")).collect(),
        },
        features,
    }
}

#[test]
fn every_metric_matches_scikit_learn() {
    let mut checked = 0;
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let input = input_of(&case);
        let expected = case["expected"].as_object().unwrap();
        // Every metric that applies to the task has a scikit-learn value.
        let applicable = metrics::names_for(&input.predictions.task);
        for metric in &applicable {
            let theirs = expected
                .get(*metric)
                .unwrap_or_else(|| panic!("{name}: fixture lacks {metric}"))
                .as_f64()
                .unwrap();
            let ours = metrics::compute(metric, &input)
                .unwrap_or_else(|e| panic!("{name}: {metric}: {e}"));
            close(&format!("{name}: {metric}"), ours, theirs);
            checked += 1;
        }
        assert_eq!(
            applicable.len(),
            expected.len(),
            "{name}: metrics not compared"
        );
    }
    assert!(checked >= 98, "only {checked} values compared");
}

#[test]
fn confusion_matrices_match() {
    for case in cases()
        .iter()
        .filter(|c| c.get("confusion_matrix").is_some())
    {
        let ours = metrics::confusion_matrix(&input_of(case)).unwrap();
        let theirs: Vec<Vec<u64>> =
            serde_json::from_value(case["confusion_matrix"].clone()).unwrap();
        assert_eq!(ours, theirs, "{}", case["name"]);
    }
}

#[test]
fn curves_match() {
    for case in cases().iter().filter(|c| c.get("curves").is_some()) {
        let name = case["name"].as_str().unwrap();
        let y: Vec<bool> = f64s(&case["y_true"]).iter().map(|&v| v == 1.0).collect();
        let s: Vec<f64> = f32s(&case["predictions"])
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let c = &case["curves"];
        for (key, drop) in [("roc_drop", true), ("roc_all", false)] {
            let roc = ranking::roc_curve(&y, &s, drop);
            close_all(
                &format!("{name} {key} fpr"),
                &roc.fpr,
                &f64s(&c[key]["fpr"]),
            );
            close_all(
                &format!("{name} {key} tpr"),
                &roc.tpr,
                &f64s(&c[key]["tpr"]),
            );
            close_all(
                &format!("{name} {key} thresholds"),
                &roc.thresholds,
                &f64s(&c[key]["thresholds"]),
            );
        }
        let pr = ranking::pr_curve(&y, &s);
        close_all(
            &format!("{name} precision"),
            &pr.precision,
            &f64s(&c["pr"]["precision"]),
        );
        close_all(
            &format!("{name} recall"),
            &pr.recall,
            &f64s(&c["pr"]["recall"]),
        );
        close_all(
            &format!("{name} pr thresholds"),
            &pr.thresholds,
            &f64s(&c["pr"]["thresholds"]),
        );
        // The binary report draws the same curves.
        let from_input = metrics::curves(&input_of(case)).unwrap();
        assert_eq!(from_input.len(), 1);
        assert_eq!(from_input[0].1, ranking::roc_curve(&y, &s, true));
    }
}

#[test]
fn residual_summaries_match_numpy() {
    for case in cases().iter().filter(|c| c["kind"] == "regression") {
        let name = case["name"].as_str().unwrap();
        let y = f64s(&case["y_true"]);
        let p = f64s(&case["predictions"]);
        let ours = serde_json::to_value(regression::residual_summary(&y, &p).unwrap()).unwrap();
        for (k, v) in case["residuals"].as_object().unwrap() {
            close(
                &format!("{name} residual {k}"),
                ours[k].as_f64().unwrap(),
                v.as_f64().unwrap(),
            );
        }
    }
}
