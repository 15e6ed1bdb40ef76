//! The trained booster: prediction, feature importance, and its file format.
//!
//! `model.json` holds everything needed to predict (see docs/models/gbdt.md
//! for the versioned layout); `xgboost-model.json` beside it is the same model
//! in XGBoost's own JSON format, for people who serve models with XGBoost.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::objective;
use super::params::Objective;
use super::tree::Tree;
use crate::dataset::{Column, Dataset};
use crate::error::{BuiltinError, io_failed};
use crate::model::{Model, Predictions, Task};

/// Version of the `gbdt` part of `model.json`; bump on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// A gradient-boosted tree ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct GbdtModel {
    pub objective: Objective,
    /// Outputs a row: the number of classes for multiclass objectives, else 1.
    pub n_outputs: usize,
    /// Starting margin of each output.
    pub base_margin: Vec<f64>,
    pub feature_names: Vec<String>,
    /// For categorical features, the levels their codes meant in training (to remap other files' codes).
    pub feature_levels: Vec<Option<Vec<String>>>,
    /// Class names for classification objectives.
    pub classes: Option<Vec<String>>,
    /// Trees in boosting order: round `r`, output `c` is `trees[r * n_outputs + c]`.
    pub trees: Vec<Tree>,
    /// Rounds kept after early stopping (the best one is the last), if it stopped early.
    pub best_iteration: Option<usize>,
    /// Figures recorded during training (validation score, rounds, ...).
    pub metrics: BTreeMap<String, f64>,
    /// The objective's own setting: `reg:tweedie`'s variance power or
    /// `reg:pseudohubererror`'s slope (predictions do not depend on it;
    /// XGBoost's format records it).
    pub objective_param: Option<f64>,
}

/// What a feature-importance figure measures, as in XGBoost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// Number of splits on the feature.
    Weight,
    /// Average loss reduction of its splits.
    Gain,
    /// Average hessian sum of the rows its splits saw.
    Cover,
    TotalGain,
    TotalCover,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    format_version: u32,
    algorithm: String,
    gbdt_version: u32,
    objective: String,
    n_outputs: usize,
    base_margin: Vec<f64>,
    feature_names: Vec<String>,
    feature_levels: Vec<Option<Vec<String>>>,
    classes: Option<Vec<String>>,
    best_iteration: Option<usize>,
    metrics: BTreeMap<String, f64>,
    feature_importance: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    objective_param: Option<f64>,
    trees: Vec<Tree>,
}

impl GbdtModel {
    /// Boosting rounds in the model.
    pub fn n_rounds(&self) -> usize {
        self.trees.len() / self.n_outputs.max(1)
    }

    /// Importance of each feature that is used in some split.
    pub fn feature_importance(&self, kind: Importance) -> BTreeMap<String, f64> {
        let nf = self.feature_names.len();
        let (mut count, mut gain, mut cover) = (vec![0f64; nf], vec![0f64; nf], vec![0f64; nf]);
        for t in &self.trees {
            for n in 0..t.n_nodes() {
                if !t.is_leaf(n) {
                    let f = t.feature[n] as usize;
                    count[f] += 1.0;
                    gain[f] += t.gain[n] as f64;
                    cover[f] += t.cover[n] as f64;
                }
            }
        }
        (0..nf)
            .filter(|&f| count[f] > 0.0)
            .map(|f| {
                let v = match kind {
                    Importance::Weight => count[f],
                    Importance::Gain => gain[f] / count[f],
                    Importance::Cover => cover[f] / count[f],
                    Importance::TotalGain => gain[f],
                    Importance::TotalCover => cover[f],
                };
                (self.feature_names[f].clone(), v)
            })
            .collect()
    }

    /// The columns of `data` in the model's feature order, categorical codes
    /// remapped to training's; fails naming a missing feature.
    pub(crate) fn feature_columns<'a>(
        &self,
        data: &'a Dataset,
    ) -> Result<Vec<std::borrow::Cow<'a, [f32]>>, BuiltinError> {
        self.feature_names
            .iter()
            .zip(&self.feature_levels)
            .map(|(name, levels)| {
                let col = data.column(name).ok_or_else(|| {
                    BuiltinError::failed(format!(
                        "predict with the gbdt model: the data has no column `{name}`"
                    ))
                    .with_hint(format!(
                        "the model was trained on the columns {}",
                        self.feature_names.join(", ")
                    ))
                })?;
                Ok(remap_codes(col, levels.as_deref()))
            })
            .collect()
    }

    /// Raw margins, `n_outputs` a row, summed in tree order (the order training adds them in).
    pub fn predict_margins(&self, data: &Dataset) -> Result<Vec<f64>, BuiltinError> {
        let cols = self.feature_columns(data)?;
        let cols: Vec<&[f32]> = cols.iter().map(|c| c.as_ref()).collect();
        Ok(self.margins_of_columns(&cols, data.n_rows(), &self.trees))
    }

    pub(crate) fn margins_of_columns(
        &self,
        cols: &[&[f32]],
        n_rows: usize,
        trees: &[Tree],
    ) -> Vec<f64> {
        let k = self.n_outputs;
        let nf = cols.len();
        let mut out = vec![0f64; n_rows * k];
        // Blocks of rows, tree by tree: a tree stays in cache while the block
        // passes through it. Each row still adds its trees in order.
        const BLOCK: usize = 256;
        out.par_chunks_mut(BLOCK * k)
            .enumerate()
            .for_each(|(c, chunk)| {
                let start = c * BLOCK;
                let len = chunk.len() / k;
                // A width of at least 1 keeps one (empty) row a row when there are no features.
                let width = nf.max(1);
                let mut block = vec![0f32; len * width];
                for (f, col) in cols.iter().enumerate() {
                    for (j, &v) in col[start..start + len].iter().enumerate() {
                        block[j * width + f] = v;
                    }
                }
                for m in chunk.chunks_mut(k) {
                    m.copy_from_slice(&self.base_margin);
                }
                for (t, tree) in trees.iter().enumerate() {
                    for (m, row) in chunk.chunks_mut(k).zip(block.chunks(width)) {
                        m[t % k] += tree.predict_row(row) as f64;
                    }
                }
            });
        out
    }

    fn task(&self) -> Task {
        let classes = self.classes.clone().unwrap_or_default();
        match self.objective {
            Objective::BinaryLogistic => Task::Binary { classes },
            Objective::MultiSoftprob | Objective::MultiSoftmax => Task::Multiclass { classes },
            _ => Task::Regression,
        }
    }

    /// Reads a model saved by [`Model::save`].
    pub fn load(dir: &Path) -> Result<GbdtModel, BuiltinError> {
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| io_failed("read", &path, e))?;
        Self::from_json_str(&text)
            .map_err(|m| BuiltinError::failed(format!("read {}: {m}", path.display())))
    }

    /// The model to continue training from in `dir`: ours (`model.json`),
    /// or one XGBoost saved in JSON (`xgboost-model`, as SageMaker's XGBoost
    /// container names it, or `xgboost-model.json`).
    pub fn load_initial(dir: &Path) -> Result<GbdtModel, BuiltinError> {
        if dir.join("model.json").is_file() {
            return Self::load(dir);
        }
        let Some(path) = [SERVABLE_FILE, "xgboost-model.json"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
        else {
            return Err(BuiltinError::failed(format!(
                "the model channel ({}) holds no model: neither our model.json nor XGBoost's xgboost-model",
                dir.display()
            )));
        };
        let bytes = std::fs::read(&path).map_err(|e| io_failed("read", &path, e))?;
        // JSON opens with `{` then a quoted key; UBJSON's `{` is followed by a type marker.
        let mut start = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace());
        if start.next() != Some(b'{') || !matches!(start.next(), Some(b'"') | Some(b'}')) {
            return Err(BuiltinError::failed(format!(
                "{} is not in XGBoost's JSON format (UBJSON or the old binary format are not read); save it with `booster.save_model(\"xgboost-model.json\")`",
                path.display()
            )));
        }
        Self::from_xgboost_json(&String::from_utf8_lossy(&bytes))
            .map_err(|m| BuiltinError::failed(format!("read {}: {m}", path.display())))
    }

    pub(crate) fn from_json_str(text: &str) -> Result<GbdtModel, String> {
        let f: ModelFile =
            serde_json::from_str(text).map_err(|e| format!("not a gbdt model file: {e}"))?;
        if f.format != "pipeline-model" || f.algorithm != "gbdt" {
            return Err(format!("holds a `{}` model, not gbdt", f.algorithm));
        }
        if f.gbdt_version > FORMAT_VERSION {
            return Err(format!(
                "gbdt model version {} is newer than this program reads ({FORMAT_VERSION}); upgrade to load it",
                f.gbdt_version
            ));
        }
        let objective = Objective::from_name(&f.objective)
            .ok_or_else(|| format!("unknown objective `{}`", f.objective))?;
        let nf = f.feature_names.len();
        if f.n_outputs == 0
            || f.base_margin.len() != f.n_outputs
            || f.feature_levels.len() != nf
            || !f.trees.len().is_multiple_of(f.n_outputs)
        {
            return Err("inconsistent sizes (outputs, base margins, features or trees)".into());
        }
        for (i, t) in f.trees.iter().enumerate() {
            t.validate(nf).map_err(|m| format!("tree {i}: {m}"))?;
        }
        Ok(GbdtModel {
            objective,
            n_outputs: f.n_outputs,
            base_margin: f.base_margin,
            feature_names: f.feature_names,
            feature_levels: f.feature_levels,
            classes: f.classes,
            trees: f.trees,
            best_iteration: f.best_iteration,
            metrics: f.metrics,
            objective_param: f.objective_param,
        })
    }

    /// The model as the JSON text of `model.json`.
    pub(crate) fn to_json_string(&self) -> String {
        let importance = [
            ("weight", Importance::Weight),
            ("gain", Importance::Gain),
            ("cover", Importance::Cover),
            ("total_gain", Importance::TotalGain),
            ("total_cover", Importance::TotalCover),
        ]
        .into_iter()
        .map(|(n, k)| (n.to_string(), self.feature_importance(k)))
        .collect();
        let f = ModelFile {
            format: "pipeline-model".into(),
            format_version: 1,
            algorithm: "gbdt".into(),
            gbdt_version: FORMAT_VERSION,
            objective: self.objective.name().into(),
            n_outputs: self.n_outputs,
            base_margin: self.base_margin.clone(),
            feature_names: self.feature_names.clone(),
            feature_levels: self.feature_levels.clone(),
            classes: self.classes.clone(),
            best_iteration: self.best_iteration,
            metrics: self.metrics.clone(),
            feature_importance: importance,
            objective_param: self.objective_param,
            trees: self.trees.clone(),
        };
        serde_json::to_string(&f).expect("a model always serialises")
    }
}

/// A column's values with categorical codes mapped to the codes of `train_levels`;
/// levels training never saw become missing. Linear in the number of levels
/// and rows (one hash map of training's levels).
pub(crate) fn remap_codes<'a>(
    col: &'a Column,
    train_levels: Option<&[String]>,
) -> std::borrow::Cow<'a, [f32]> {
    match (col.levels(), train_levels) {
        (Some(levels), Some(train)) if levels != train => {
            let index: std::collections::HashMap<&str, usize> = train
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), i))
                .rev()
                .collect();
            let map: Vec<f32> = levels
                .iter()
                .map(|l| index.get(l.as_str()).map_or(f32::NAN, |&p| p as f32))
                .collect();
            std::borrow::Cow::Owned(
                col.values
                    .iter()
                    .map(|&v| map.get(v as usize).copied().unwrap_or(f32::NAN))
                    .collect(),
            )
        }
        _ => std::borrow::Cow::Borrowed(&col.values),
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), BuiltinError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| io_failed("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_failed("write", path, e))
}

impl Model for GbdtModel {
    fn algorithm(&self) -> &'static str {
        "gbdt"
    }

    fn predict(&self, data: &Dataset) -> Result<Predictions, BuiltinError> {
        let margins = self.predict_margins(data)?;
        let k = self.n_outputs;
        let values = objective::transform(self.objective, &margins, k);
        let column_names = match &self.task() {
            Task::Multiclass { classes } => classes.iter().map(|c| format!("prob_{c}")).collect(),
            Task::Binary { .. } => vec!["probability".to_string()],
            _ => vec!["prediction".to_string()],
        };
        Ok(Predictions {
            task: self.task(),
            n_rows: data.n_rows(),
            width: k,
            values,
            column_names,
        })
    }

    fn save(&self, dir: &Path) -> Result<(), BuiltinError> {
        write_atomic(&dir.join("model.json"), &self.to_json_string())?;
        let xgb = serde_json::to_string(&self.to_xgboost_json()).expect("json values serialise");
        write_atomic(&dir.join("xgboost-model.json"), &xgb)?;
        let servable =
            serde_json::to_string(&self.to_servable_xgboost_json()).expect("json values serialise");
        write_atomic(&dir.join(SERVABLE_FILE), &servable)
    }

    fn training_metrics(&self) -> BTreeMap<String, f64> {
        self.metrics.clone()
    }
}

/// The file SageMaker's XGBoost container loads from `model.tar.gz`.
pub const SERVABLE_FILE: &str = "xgboost-model";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remap_codes_is_linear_in_the_levels() {
        // 300,000 levels seen in the opposite order to training's: matching each
        // by a scan of training's levels would compare 4.5e10 pairs (minutes);
        // the hash map takes a fraction of a second even unoptimised.
        let n = 300_000;
        let train: Vec<String> = (0..n).map(|i| format!("user-{i}")).collect();
        let seen: Vec<String> = (0..n).rev().map(|i| format!("user-{i}")).collect();
        let codes: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut col = Column::categorical("user".to_string(), seen, codes);
        // One level training never saw, and one missing value.
        if let crate::dataset::ColumnKind::Categorical { levels } = &mut col.kind {
            levels[0] = "stranger".to_string();
        }
        col.values[1] = f32::NAN;
        let started = std::time::Instant::now();
        let out = remap_codes(&col, Some(&train));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "remap took {:?}",
            started.elapsed()
        );
        assert!(out[0].is_nan(), "an unseen level becomes missing");
        assert!(out[1].is_nan(), "a missing value stays missing");
        for i in 2..n {
            assert_eq!(out[i], (n - 1 - i) as f32);
        }
    }
}
