//! What every trained model offers: predictions and a file format.
//!
//! A model is saved into a directory (the step's `model/`). Its entry point is
//! `model.json`, a JSON object whose first fields are
//! `{"format": "pipeline-model", "format_version": N, "algorithm": NAME}`; the
//! rest is the algorithm's own (see docs/model-format.md). Loading dispatches
//! on `algorithm`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cluster::{Cluster, Solo};
use crate::dataset::Dataset;
use crate::error::BuiltinError;

/// Where and how a training run happens.
pub struct TrainContext<'a> {
    /// Worker threads to use (results must not depend on it).
    pub threads: usize,
    /// Where to write checkpoints and look for one to resume from, if anywhere.
    pub checkpoint_dir: Option<PathBuf>,
    /// Progress lines for the step's log (one line a call, no newline).
    pub log: &'a (dyn Fn(&str) + Sync),
    /// The nodes training together, each on its own shard of the rows
    /// ([`Solo`] for one node: no communication at all).
    pub cluster: &'a dyn Cluster,
}

impl TrainContext<'_> {
    /// A context for tests: `threads` threads, no checkpoints, no logging.
    pub fn quiet(threads: usize) -> TrainContext<'static> {
        TrainContext {
            threads,
            checkpoint_dir: None,
            log: &|_| {},
            cluster: &Solo,
        }
    }
}

/// What a model's predictions are.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// One value a row.
    Regression,
    /// One value a row: the probability of the positive class; `classes` names the two classes.
    Binary { classes: Vec<String> },
    /// `classes.len()` probabilities a row.
    Multiclass { classes: Vec<String> },
    /// One value a row: the cluster index; `width` 2 adds the distance to its centre.
    Clustering,
    /// `width` projected components a row.
    Projection,
}

/// Predictions: `n_rows * width` values, row-major, with a name a column.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub task: Task,
    pub n_rows: usize,
    pub width: usize,
    pub values: Vec<f32>,
    pub column_names: Vec<String>,
}

impl Predictions {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// A trained model.
pub trait Model: Send + Sync {
    /// The algorithm's name as written in a pipeline (`gbdt`, `linear-learner`, `kmeans`, `pca`).
    fn algorithm(&self) -> &'static str;
    /// Predictions for every row of `data` (its target column, if any, is ignored).
    fn predict(&self, data: &Dataset) -> Result<Predictions, BuiltinError>;
    /// Writes the model into `dir` (which exists), `model.json` first among its files.
    fn save(&self, dir: &Path) -> Result<(), BuiltinError>;
    /// Figures from training worth recording with the run (e.g. the best validation score).
    fn training_metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }
}

/// Reads the `algorithm` field of `dir/model.json`.
pub fn saved_algorithm(dir: &Path) -> Result<String, BuiltinError> {
    let path = dir.join("model.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| crate::error::io_failed("read", &path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        BuiltinError::failed(format!("read {}: not a model file: {e}", path.display()))
    })?;
    match (
        v.get("format").and_then(|f| f.as_str()),
        v.get("algorithm").and_then(|a| a.as_str()),
    ) {
        (Some("pipeline-model"), Some(a)) => Ok(a.to_string()),
        _ => Err(BuiltinError::failed(format!(
            "read {}: not a pipeline model (no `format: pipeline-model` and `algorithm`)",
            path.display()
        ))),
    }
}
