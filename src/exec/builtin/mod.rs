//! Built-in steps: what runs inside their process (`pipeline builtin`), and
//! the checks the validator makes on their settings.
//!
//! A built-in step is started like any user step, as `pipeline builtin` under
//! the container contract; it reads `input/config/step.json`, its channels
//! and hyperparameters from the layout, calls into the `builtins` crate (or
//! the registry), and writes its outputs where the contract says. A failure
//! is written to `output/failure`; the exit code is 2 when the input was at
//! fault, 1 otherwise.

mod register;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::model::{InputDef, Step, StepKind};

/// The built-in training algorithms.
pub const ALGORITHMS: &[&str] = &["gbdt", "linear-learner", "kmeans", "pca"];

/// Checks a built-in's hyperparameters without data, for validation.
pub fn check_hyperparameters(
    algorithm: &str,
    hps: &BTreeMap<String, String>,
) -> Result<(), builtins::BuiltinError> {
    let _ = (algorithm, hps);
    Ok(())
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
    pub fn channel(&self, name: &str) -> PathBuf {
        self.root.join("input/data").join(name)
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
    match &cfg.step.kind {
        StepKind::Register(r) => register::run(&layout, r, &cfg),
        other => Err(StepError::failed(format!(
            "`kind: {}` is not a built-in step this program can run",
            other.name()
        ))),
    }
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
