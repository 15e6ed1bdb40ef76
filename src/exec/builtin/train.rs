//! `kind: train` with a built-in `algorithm`.
//!
//! On several nodes (see [`nodes`](super::nodes)) every node runs this same
//! code: it joins the others over TCP first (so a node that fails while
//! reading its data stops the others at once, naming itself), reads its share
//! of the `train` channel (its row range of a `FullyReplicated` channel, all
//! of its files of a `ShardedByS3Key` one), and trains with the others. The
//! main node alone reads `validation` and saves the model.

use builtins::cluster::{Cluster, Solo, TcpCluster, align_dataset, row_range};
use builtins::{Hyperparams, TrainContext};

use super::data::{has_channel, read_channel, read_labelled};
use super::nodes::{self, Nodes};
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
    match nodes::from_env(layout)? {
        None => train(layout, algorithm, t, cfg, &Solo, None),
        Some(n) => {
            let log = |line: &str| println!("{line}");
            let tcp = nodes::tcp_config(&n)?;
            println!("node {} of {}: joining the other nodes", n.name(), n.size);
            let cluster = TcpCluster::connect(&tcp, &log)?;
            let result = train(layout, algorithm, t, cfg, &cluster, Some(&n));
            if let Err(e) = &result {
                cluster.abort(&e.message);
            }
            result
        }
    }
}

/// Reads this node's share of the data, trains, and (on the main node) saves the model.
fn train(
    layout: &Layout,
    algorithm: &str,
    t: &TrainStep,
    cfg: &StepConfig,
    cluster: &dyn Cluster,
    nodes: Option<&Nodes>,
) -> Result<(), StepError> {
    let hp = Hyperparams::new(t.hyperparameters.clone());
    for w in builtins::algorithm::check(algorithm, &hp)? {
        println!("warning: {w}");
    }
    let read = |name: &str| {
        if supervised(algorithm) {
            read_labelled(layout, cfg, name, &format!("training {algorithm}"), &[])
        } else {
            read_channel(layout, cfg, name)
        }
    };
    let started = std::time::Instant::now();
    let mut train = read("train")?;
    if let Some(n) = nodes {
        if !nodes::sharded(layout, "train") {
            // Every node sees every file: each takes its contiguous share of the rows.
            let range = row_range(train.n_rows(), n.rank, n.size);
            let rows: Vec<usize> = range.collect();
            train = train.take_rows(&rows);
        }
        align_dataset(cluster, &mut train)?;
    }
    println!(
        "read channel train: {} rows, {} features in {:.2}s",
        train.n_rows(),
        train.n_features(),
        started.elapsed().as_secs_f64()
    );
    let has_validation = has_channel(layout, "validation");
    if nodes.is_some() && has_validation && nodes::sharded(layout, "validation") {
        return Err(StepError::invalid(
            "the validation channel is sharded between the nodes, but only the main node scores validation data: make it fully_replicated",
        ));
    }
    // Validation is the main node's: it scores it and decides early stopping for all.
    let validation = if has_validation && cluster.is_main() {
        Some(read("validation")?)
    } else {
        None
    };
    let initial = layout.channel("model");
    let initial = if initial.exists() {
        Some(unpacked_model(layout, &initial)?)
    } else {
        None
    };
    let initial = initial.as_deref();
    let log = |line: &str| println!("{line}");
    let ctx = TrainContext {
        threads: layout.threads(),
        checkpoint_dir: Some(layout.checkpoints()),
        log: &log,
        cluster,
    };
    let model =
        builtins::algorithm::train(algorithm, &hp, &train, validation.as_ref(), initial, &ctx)?;
    // Every node is done with the others before any leaves.
    cluster.barrier()?;
    if !cluster.is_main() {
        println!(
            "trained {algorithm} in {:.2}s; the main node saves the model",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let out = layout.output("model");
    model.save(&out)?;
    package(&out, algorithm)?;
    if t.onnx {
        // The same bytes as `pipeline export RUN STEP.model FILE --format onnx`.
        let bytes = builtins::onnx::export_dir(&out)?;
        let path = layout.output("onnx").join("model.onnx");
        std::fs::create_dir_all(layout.output("onnx"))
            .and_then(|()| std::fs::write(&path, &bytes))
            .map_err(|e| StepError::failed(format!("write {}: {e}", path.display())))?;
        println!("wrote the model as ONNX ({} bytes)", bytes.len());
    }
    let metrics = model.training_metrics();
    // For the engine to record (`schedule/train_metrics.rs`), without reading the model back.
    let path = layout
        .root
        .join(crate::schedule::train_metrics::BUILTIN_FILE);
    crate::store::write_atomic(&path, &serde_json::to_vec(&metrics).expect("json"))
        .map_err(|e| StepError::failed(format!("write {}: {e}", path.display())))?;
    for (k, v) in metrics {
        println!("{k}: {v}");
    }
    println!(
        "trained {algorithm} in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where the files of the model to continue from are: the channel itself,
/// or — when it holds only a `model.tar.gz`, as a SageMaker model artifact
/// does — that archive unpacked into the step's scratch directory.
fn unpacked_model(
    layout: &Layout,
    channel: &std::path::Path,
) -> Result<std::path::PathBuf, StepError> {
    let archive = channel.join("model.tar.gz");
    let has_model = [
        "model.json",
        builtins::gbdt::SERVABLE_FILE,
        "xgboost-model.json",
    ]
    .iter()
    .any(|n| channel.join(n).is_file());
    if has_model || !archive.is_file() {
        return Ok(channel.to_path_buf());
    }
    let fail = |e: std::io::Error| {
        StepError::failed(format!("unpack the model {}: {e}", archive.display()))
    };
    let dest = layout.root.join("initial-model");
    std::fs::create_dir_all(&dest).map_err(fail)?;
    let file = std::fs::File::open(&archive).map_err(fail)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    // Plain files only, by their names, flat: nothing may land outside `dest`.
    for entry in tar.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(fail)?.into_owned();
        let Some(name) = path.file_name() else {
            continue;
        };
        let mut out = std::fs::File::create(dest.join(name)).map_err(fail)?;
        std::io::copy(&mut entry, &mut out).map_err(fail)?;
    }
    Ok(dest)
}

/// Packs the model's files into `model.tar.gz` beside them, as SageMaker
/// hands models over: deterministic (sorted names, no times or owners), so the
/// same model always packs to the same bytes. A gbdt archive holds
/// `xgboost-model` alone, which SageMaker's XGBoost container (and
/// `xgboost.Booster().load_model`) loads; it loads every file it finds, so
/// nothing else may be beside it.
fn package(dir: &std::path::Path, algorithm: &str) -> Result<(), StepError> {
    let fail = |e: std::io::Error| {
        StepError::failed(format!("package the model in {}: {e}", dir.display()))
    };
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(fail)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .filter(|n| n != "model.tar.gz")
        .filter(|n| algorithm != "gbdt" || n == builtins::gbdt::SERVABLE_FILE)
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
