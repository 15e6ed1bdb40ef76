//! `kind: train` with a built-in `algorithm`.

use builtins::{Hyperparams, TrainContext};

use super::data::{read_channel, read_labelled};
use super::{Layout, StepConfig, StepError};
use crate::spec::model::TrainStep;

/// Algorithms that learn from a target column.
fn supervised(algorithm: &str) -> bool {
    matches!(algorithm, "gbdt" | "linear-learner")
}

pub fn run(layout: &Layout, t: &TrainStep, cfg: &StepConfig) -> Result<(), StepError> {
    let algorithm = t
        .algorithm
        .as_deref()
        .ok_or_else(|| StepError::failed("a train step without `algorithm` is not a built-in"))?;
    let hp = Hyperparams::new(t.hyperparameters.clone());
    let read = |name: &str| {
        if supervised(algorithm) {
            read_labelled(layout, cfg, name, &format!("training {algorithm}"))
        } else {
            read_channel(layout, cfg, name)
        }
    };
    let started = std::time::Instant::now();
    let train = read("train")?;
    println!(
        "read channel train: {} rows, {} features in {:.2}s",
        train.n_rows(),
        train.n_features(),
        started.elapsed().as_secs_f64()
    );
    let validation = if layout.channel("validation").exists() {
        Some(read("validation")?)
    } else {
        None
    };
    let initial = layout.channel("model");
    let initial = initial.exists().then_some(initial.as_path());
    let log = |line: &str| println!("{line}");
    let ctx = TrainContext {
        threads: layout.threads(),
        checkpoint_dir: Some(layout.checkpoints()),
        log: &log,
    };
    let model =
        builtins::algorithm::train(algorithm, &hp, &train, validation.as_ref(), initial, &ctx)?;
    let out = layout.output("model");
    model.save(&out)?;
    package(&out)?;
    for (k, v) in model.training_metrics() {
        println!("{k}: {v}");
    }
    println!(
        "trained {algorithm} in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Packs the model's files into `model.tar.gz` beside them, as SageMaker
/// hands models over: deterministic (sorted names, no times or owners), so the
/// same model always packs to the same bytes.
fn package(dir: &std::path::Path) -> Result<(), StepError> {
    let fail = |e: std::io::Error| {
        StepError::failed(format!("package the model in {}: {e}", dir.display()))
    };
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(fail)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .filter(|n| n != "model.tar.gz")
        .collect();
    names.sort();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for n in &names {
        tar.append_path_with_name(dir.join(n), n).map_err(fail)?;
    }
    let bytes = tar.into_inner().map_err(fail)?.finish().map_err(fail)?;
    crate::store::write_atomic(&dir.join("model.tar.gz"), &bytes).map_err(fail)
}
