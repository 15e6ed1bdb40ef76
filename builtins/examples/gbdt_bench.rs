//! Times `algorithm: gbdt` on the benchmark data with the peers' settings.
//!
//! Usage: `gbdt_bench DATA_DIR [clf|reg] [THREADS]` (data from `../shared/bench/gen_data.py`).
//! clf: train on clf.csv, score AUC on clf_test.csv; reg: train on reg.csv but its
//! last 200,000 rows, score RMSE on those. Prints one JSON line.

use std::path::Path;
use std::time::Instant;

use builtins::data::{ReadOptions, read};
use builtins::gbdt::{self, Params};
use builtins::{Hyperparams, Model, TrainContext};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: gbdt_bench DATA_DIR [clf|reg] [THREADS]");
        std::process::exit(2);
    };
    let task = args.get(2).map_or("clf", String::as_str);
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let dir = Path::new(dir);
    let opts = ReadOptions::sagemaker_csv(1);
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("error: {e}");
        std::process::exit(1)
    };

    let t0 = Instant::now();
    let (train, test) = if task == "reg" {
        let all = read(&dir.join("reg.csv"), &opts).unwrap_or_else(|e| fail(&e));
        let n = all.n_rows();
        let cut = n.saturating_sub(200_000);
        let train_rows: Vec<usize> = (0..cut).collect();
        let test_rows: Vec<usize> = (cut..n).collect();
        (all.take_rows(&train_rows), all.take_rows(&test_rows))
    } else {
        let train = read(&dir.join("clf.csv"), &opts).unwrap_or_else(|e| fail(&e));
        let test = read(&dir.join("clf_test.csv"), &opts).unwrap_or_else(|e| fail(&e));
        (train, test)
    };
    let read_s = t0.elapsed().as_secs_f64();

    let objective = if task == "reg" {
        "reg:squarederror"
    } else {
        "binary:logistic"
    };
    let hp = Hyperparams::from_pairs(&[
        ("objective", objective),
        ("num_round", "100"),
        ("max_depth", "6"),
        ("eta", "0.1"),
        ("max_bin", "256"),
        ("lambda", "1"),
    ]);
    let params = Params::from_hyperparameters(&hp).unwrap_or_else(|e| fail(&e));
    let t1 = Instant::now();
    let model = gbdt::train(&params, &train, None, &TrainContext::quiet(threads))
        .unwrap_or_else(|e| fail(&e));
    let train_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let pred = model.predict(&test).unwrap_or_else(|e| fail(&e));
    let predict_s = t2.elapsed().as_secs_f64();
    let y = &test.target().expect("the bench data has a label").values;
    let score = if task == "reg" {
        let se: f64 = y
            .iter()
            .zip(&pred.values)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        format!("\"rmse\": {:.4}", (se / y.len() as f64).sqrt())
    } else {
        format!("\"auc\": {:.5}", gbdt::metric::auc(y, &pred.values))
    };
    println!(
        "{{\"task\": \"{task}\", \"peer\": \"ours\", \"threads\": {threads}, \"read_s\": {read_s:.3}, \"train_s\": {train_s:.3}, \"predict_s\": {predict_s:.3}, {score}}}"
    );
}
