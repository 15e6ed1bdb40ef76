//! Built-in steps: what runs inside their process (`pipeline builtin`), and
//! the checks the validator makes on their settings.
//!
//! A built-in step is started like any user step, as `pipeline builtin` under
//! the container contract; it reads `input/config/step.json`, its channels
//! and hyperparameters from the layout, calls into the `builtins` crate (or
//! the registry), and writes its outputs where the contract says. A failure
//! is written to `output/failure`; the exit code is 2 when the input was at
//! fault, 1 otherwise.

mod data;
pub use data::read_def;
mod evaluate;
mod nodes;
mod register;
mod split;
mod train;
mod transform;

pub use data::{format_of, read_options_of};
pub use transform::write_predictions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::model::{InputDef, Step, StepKind};

/// The built-in training algorithms.
pub const ALGORITHMS: &[&str] = builtins::algorithm::NAMES;

/// Checks a built-in's hyperparameters without data, for validation; returns
/// a warning for each given name that cannot change the model.
pub fn check_hyperparameters(
    algorithm: &str,
    hps: &BTreeMap<String, String>,
) -> Result<Vec<String>, builtins::BuiltinError> {
    builtins::algorithm::check(algorithm, &builtins::Hyperparams::new(hps.clone()))
}

/// `input/config/step.json`.
#[derive(Debug, Deserialize)]
pub struct StepConfig {
    pub step: Step,
    /// How to read each channel, when known.
    #[serde(default)]
    pub channels: BTreeMap<String, Option<InputDef>>,
    /// Facts from the engine (run id, registry, lineage...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Why a built-in step failed.
#[derive(Debug)]
pub struct StepError {
    pub message: String,
    /// The user's input is at fault (exit code 2).
    pub invalid_input: bool,
}

impl StepError {
    pub fn invalid(m: impl Into<String>) -> Self {
        StepError {
            message: m.into(),
            invalid_input: true,
        }
    }
    pub fn failed(m: impl Into<String>) -> Self {
        StepError {
            message: m.into(),
            invalid_input: false,
        }
    }
}

impl From<builtins::BuiltinError> for StepError {
    fn from(e: builtins::BuiltinError) -> Self {
        StepError {
            invalid_input: e.is_invalid_input(),
            message: e.to_string(),
        }
    }
}

impl From<builtins::DataError> for StepError {
    fn from(e: builtins::DataError) -> Self {
        StepError::invalid(e.to_string())
    }
}

/// Paths of the layout, as the step sees them.
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    /// Worker threads for this step (`SM_NUM_CPUS`, else every core).
    pub fn threads(&self) -> usize {
        std::env::var("SM_NUM_CPUS")
            .ok()
            .and_then(|n| n.parse().ok())
            .filter(|n: &usize| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
    pub fn channel(&self, name: &str) -> PathBuf {
        self.root.join("input/data").join(name)
    }
    /// The named pipe of a pipe-mode channel's epoch `epoch`.
    pub fn pipe(&self, name: &str, epoch: u64) -> PathBuf {
        self.root
            .join("input/data")
            .join(crate::exec::pipe::pipe_name(name, epoch))
    }
    pub fn output(&self, name: &str) -> PathBuf {
        crate::exec::contract::output_dir(&self.root, name)
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
}

/// Entry point of `pipeline builtin`: runs the step laid out at
/// `$SAGEMAKER_BASE_DIR` (or `/opt/ml`). Returns the process exit code.
pub fn main() -> i32 {
    let root = std::env::var_os("SAGEMAKER_BASE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/ml".into());
    match run(&root) {
        Ok(()) => 0,
        Err(e) => {
            let _ = std::fs::create_dir_all(root.join("output"));
            let _ = std::fs::write(root.join("output/failure"), &e.message);
            eprintln!("error: {}", e.message);
            if e.invalid_input { 2 } else { 1 }
        }
    }
}

fn run(root: &Path) -> Result<(), StepError> {
    let path = root.join("input/config/step.json");
    let text = std::fs::read(&path)
        .map_err(|e| StepError::failed(format!("read {}: {e}", path.display())))?;
    let cfg: StepConfig = serde_json::from_slice(&text)
        .map_err(|e| StepError::failed(format!("read {}: {e}", path.display())))?;
    let layout = Layout {
        root: root.to_path_buf(),
    };
    // Only training is data-parallel; the other built-ins run on the main node
    // while the other nodes of such a step have nothing to do.
    if !matches!(cfg.step.kind, StepKind::Train(_))
        && let Some(n) = nodes::from_env(&layout)?
        && !n.is_main()
    {
        println!(
            "node {}: this built-in step runs on the main node only",
            n.name()
        );
        return Ok(());
    }
    let result = match &cfg.step.kind {
        StepKind::Register(r) => register::run(&layout, r, &cfg),
        StepKind::Split(s) => split::run(&layout, s, &cfg),
        StepKind::Train(t) => train::run(&layout, t, &cfg),
        StepKind::Evaluate(e) => evaluate::run(&layout, e, &cfg),
        StepKind::Transform(t) => transform::run(&layout, t, &cfg),
        StepKind::Command(_) => Err(StepError::failed("a command step is not a built-in step")),
        StepKind::Tune(_) | StepKind::Automl(_) => Err(StepError::failed(
            "a tune or automl step is not run as a process: the engine reads its trials",
        )),
    };
    result.map_err(|mut e| {
        e.message = user_paths(&e.message, &layout, &cfg);
        e
    })
}

/// Rewrites paths inside the step's work directory as the user knows them:
/// a pipeline input by the path written in the file, a step's output by its
/// reference (`split.train/train.csv`).
fn user_paths(message: &str, layout: &Layout, cfg: &StepConfig) -> String {
    let mut out = message.to_string();
    let refs = cfg.extra.get("channel_refs").and_then(|r| r.as_object());
    for name in cfg
        .channels
        .keys()
        .map(String::as_str)
        .chain(refs.into_iter().flat_map(|r| r.keys().map(String::as_str)))
    {
        let prefix = format!("{}/", layout.channel(name).display());
        if !out.contains(&prefix) {
            continue;
        }
        let reference = refs
            .and_then(|r| r.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or(name);
        match cfg.channels.get(name).and_then(|c| c.as_ref()) {
            Some(def) if reference.starts_with("inputs.") => {
                let written = std::path::Path::new(def.path.trim_end_matches('/'));
                let file = def
                    .resolved
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // An S3 input is a directory when it is a prefix (staged as one).
                let is_dir = match def.remote() {
                    Some(_) => !layout.channel(name).join(&file).is_file(),
                    None => def.resolved.is_dir(),
                };
                if !is_dir {
                    out = out.replace(&format!("{prefix}{file}"), &def.path);
                }
                let dir = if is_dir {
                    written.to_path_buf()
                } else {
                    written.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                let dir = if dir.as_os_str().is_empty() {
                    String::new()
                } else {
                    format!("{}/", dir.display())
                };
                out = out.replace(&prefix, &dir);
            }
            _ => out = out.replace(&prefix, &format!("{reference}/")),
        }
    }
    out
}

/// Reads a metrics file (`{"metrics": {...}}` or a flat object) into numbers.
pub fn read_metrics_file(path: &Path) -> Result<BTreeMap<String, f64>, StepError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StepError::failed(format!("read the metrics {}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| StepError::failed(format!("read the metrics {}: {e}", path.display())))?;
    let obj = v.get("metrics").unwrap_or(&v);
    Ok(obj
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
                .collect()
        })
        .unwrap_or_default())
}
