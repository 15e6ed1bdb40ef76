//! Times linear-learner, kmeans and pca on the benchmark data sets with the
//! settings the reference peers use (see ../shared/bench/peers.py), and prints
//! one JSON line: read, train and predict seconds and the quality figure.
//!
//! Usage: dense_bench DATA_DIR linear|kmeans|pca|pca-randomized [--threads N] [--verbose]

use std::path::Path;
use std::time::Instant;

use builtins::data::{ReadOptions, read};
use builtins::{Dataset, Hyperparams, Model, TrainContext};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: dense_bench DATA_DIR linear|kmeans|pca|pca-randomized [--threads N] [--verbose]";
    let (dir, task) = match (args.first(), args.get(1)) {
        (Some(d), Some(t)) => (Path::new(d), t.as_str()),
        _ => return Err(usage.into()),
    };
    let threads = match args.iter().position(|a| a == "--threads") {
        Some(i) => args.get(i + 1).ok_or(usage)?.parse()?,
        None => 2,
    };
    // `--verbose` prints the algorithms' progress lines with elapsed seconds.
    let start = Instant::now();
    let verbose = args.iter().any(|a| a == "--verbose");
    let log = move |line: &str| {
        if verbose {
            eprintln!("{:8.3}s {line}", start.elapsed().as_secs_f64());
        }
    };
    let ctx = TrainContext {
        threads,
        checkpoint_dir: None,
        log: &log,
        cluster: &builtins::cluster::Solo,
    };
    let timed_read =
        |file: &str, label: usize| -> Result<(Dataset, f64), Box<dyn std::error::Error>> {
            let t = Instant::now();
            let ds = read(&dir.join(file), &ReadOptions::sagemaker_csv(label))?;
            Ok((ds, t.elapsed().as_secs_f64()))
        };
    let mut out = serde_json::Map::new();
    out.insert("task".into(), task.into());
    out.insert("threads".into(), threads.into());
    match task {
        "linear" => {
            let (train, r1) = timed_read("clf.csv", 1)?;
            let (test, r2) = timed_read("clf_test.csv", 1)?;
            // scikit-learn's C = 1 on n rows is wd = 1 / n here.
            let wd = format!("{}", 1.0 / train.n_rows() as f64);
            let hp =
                Hyperparams::from_pairs(&[("predictor_type", "binary_classifier"), ("wd", &wd)]);
            let params = builtins::linear::Params::from_hyperparameters(&hp)?;
            let t = Instant::now();
            let m = builtins::linear::train(&params, &train, None, &ctx)?;
            let train_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let p = m.predict(&test)?;
            let predict_s = t.elapsed().as_secs_f64();
            out.insert("read_s".into(), (r1 + r2).into());
            out.insert("train_s".into(), train_s.into());
            out.insert("predict_s".into(), predict_s.into());
            out.insert("iterations".into(), m.iterations().into());
            let y = &test.target().ok_or("clf_test.csv has no label")?.values;
            out.insert("auc".into(), auc(y, &p.values).into());
        }
        "kmeans" => {
            let (train, r) = timed_read("blobs.csv", 0)?;
            let hp = Hyperparams::from_pairs(&[
                ("k", "16"),
                ("init_method", "kmeans++"),
                ("max_iterations", "100"),
                ("tol", "1e-4"),
                ("seed", "0"),
            ]);
            let params = builtins::kmeans::Params::from_hyperparameters(&hp)?;
            let t = Instant::now();
            let m = builtins::kmeans::train(&params, &train, None, &ctx)?;
            let train_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            m.predict(&train)?;
            out.insert("read_s".into(), r.into());
            out.insert("train_s".into(), train_s.into());
            out.insert("predict_s".into(), t.elapsed().as_secs_f64().into());
            out.insert("inertia".into(), m.inertia().into());
            out.insert("iterations".into(), m.iterations().into());
        }
        "pca" | "pca-randomized" => {
            let (train, r) = timed_read("wide.csv", 0)?;
            let mode = if task == "pca" {
                "regular"
            } else {
                "randomized"
            };
            let hp = Hyperparams::from_pairs(&[("num_components", "16"), ("algorithm_mode", mode)]);
            let params = builtins::pca::Params::from_hyperparameters(&hp)?;
            let t = Instant::now();
            let m = builtins::pca::train(&params, &train, None, &ctx)?;
            let train_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            m.predict(&train)?;
            out.insert("read_s".into(), r.into());
            out.insert("train_s".into(), train_s.into());
            out.insert("predict_s".into(), t.elapsed().as_secs_f64().into());
            let ratio: f64 = m.explained_variance_ratio().iter().sum();
            out.insert("explained_variance_ratio".into(), ratio.into());
        }
        _ => return Err(usage.into()),
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// Area under the ROC curve by ranks (ties share their mean rank).
fn auc(y: &[f32], p: &[f32]) -> f64 {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if y[k] > 0.5 {
                rank_sum += mean_rank;
            }
        }
        i = j + 1;
    }
    let pos = y.iter().filter(|&&v| v > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}
