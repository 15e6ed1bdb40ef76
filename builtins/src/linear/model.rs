//! The trained linear model, its predictions and its file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{ColumnKind, Dataset};
use crate::dense::{BLOCK_ROWS, FeatureStats, load_model_json, map_blocks, save_model_json};
use crate::error::{BuiltinError, DataError};
use crate::model::{Model, Predictions, Task};

use super::objective::sigmoid;
use super::params::PredictorType;

/// Version of the `model` payload in `model.json` (see docs/models/linear-learner.md).
const FORMAT_VERSION: u32 = 1;

/// A linear model: scores `x' W + b` where `x'` is the imputed (and, with
/// `normalize_data`, standardised) feature row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// `binary_classifier`, `multiclass_classifier` or `regressor`.
    predictor_type: String,
    /// Class names, in the order of the outputs (empty for a regressor).
    classes: Vec<String>,
    /// Feature names, means (imputation and centring) and scales.
    features: FeatureStats,
    normalize_data: bool,
    /// `n_features x outputs`, row-major.
    weights: Vec<f64>,
    /// One a output.
    bias: Vec<f64>,
    /// A regressor predicts `score * label_scale + label_mean`.
    label_mean: f64,
    label_scale: f64,
    /// Final value of the training objective and the solver's iterations.
    objective: f64,
    iterations: usize,
    #[serde(default)]
    validation: BTreeMap<String, f64>,
}

fn type_name(p: PredictorType) -> &'static str {
    match p {
        PredictorType::Binary => "binary_classifier",
        PredictorType::Multiclass => "multiclass_classifier",
        PredictorType::Regressor => "regressor",
    }
}

/// Everything training found, for [`LinearModel::new`].
pub(super) struct Fitted {
    pub predictor_type: PredictorType,
    pub classes: Vec<String>,
    pub features: FeatureStats,
    pub normalize_data: bool,
    pub theta: Vec<f64>,
    pub label_mean: f64,
    pub label_scale: f64,
    pub objective: f64,
    pub iterations: usize,
}

impl LinearModel {
    pub(super) fn new(f: Fitted) -> Self {
        let outputs = f.classes.len().max(1);
        let outputs = if f.predictor_type == PredictorType::Binary {
            1
        } else {
            outputs
        };
        let nw = f.features.n_features() * outputs;
        LinearModel {
            predictor_type: type_name(f.predictor_type).to_string(),
            classes: f.classes,
            features: f.features,
            normalize_data: f.normalize_data,
            weights: f.theta[..nw].to_vec(),
            bias: f.theta[nw..].to_vec(),
            label_mean: f.label_mean,
            label_scale: f.label_scale,
            objective: f.objective,
            iterations: f.iterations,
            validation: BTreeMap::new(),
        }
    }

    pub(crate) fn kind(&self) -> PredictorType {
        match self.predictor_type.as_str() {
            "binary_classifier" => PredictorType::Binary,
            "multiclass_classifier" => PredictorType::Multiclass,
            _ => PredictorType::Regressor,
        }
    }
    fn outputs(&self) -> usize {
        self.bias.len()
    }
    /// Feature names, means (imputation and centring) and scales.
    pub(crate) fn features(&self) -> &FeatureStats {
        &self.features
    }
    pub(crate) fn normalize_data(&self) -> bool {
        self.normalize_data
    }
    /// A regressor predicts `score * label_scale + label_mean`: `(label_scale, label_mean)`.
    pub(crate) fn label_transform(&self) -> (f64, f64) {
        (self.label_scale, self.label_mean)
    }
    /// Weights (`n_features x outputs`, row-major) on the imputed and, with
    /// `normalize_data`, standardised features.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    pub fn bias(&self) -> &[f64] {
        &self.bias
    }
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
    /// Final value of the training objective.
    pub fn objective(&self) -> f64 {
        self.objective
    }
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    pub(super) fn set_validation(&mut self, m: BTreeMap<String, f64>) {
        self.validation = m;
    }

    /// Raw scores, `n x outputs`, row-major.
    fn scores(&self, data: &Dataset) -> Vec<f64> {
        let d = self.features.n_features();
        let c = self.outputs();
        let x = self.features.matrix(data, self.normalize_data);
        map_blocks(data.n_rows(), BLOCK_ROWS, |r| {
            let mut out = Vec::with_capacity(r.len() * c);
            for row in x[r.start * d..r.end * d].chunks_exact(d) {
                for k in 0..c {
                    let s: f64 = row
                        .iter()
                        .enumerate()
                        .map(|(j, &v)| v as f64 * self.weights[j * c + k])
                        .sum();
                    out.push(s + self.bias[k]);
                }
            }
            out
        })
        .concat()
    }

    /// The class index of every row of `data`'s target, matching text labels
    /// by name (codes differ between files) and numbers as indices.
    pub(super) fn class_indices(
        &self,
        data: &Dataset,
        channel: &str,
    ) -> Result<Vec<usize>, BuiltinError> {
        let t = data
            .target()
            .ok_or_else(|| BuiltinError::Data(DataError::new(channel, "has no target column")))?;
        let mut out = Vec::with_capacity(t.values.len());
        for (i, &v) in t.values.iter().enumerate() {
            let idx = match &t.kind {
                ColumnKind::Categorical { levels } if v.is_finite() => {
                    let name = &levels[v as usize];
                    self.classes.iter().position(|c| c == name)
                }
                ColumnKind::Numeric
                    if v.is_finite()
                        && v >= 0.0
                        && v.fract() == 0.0
                        && (v as usize) < self.classes.len() =>
                {
                    Some(v as usize)
                }
                _ => None,
            };
            out.push(idx.ok_or_else(|| {
                BuiltinError::Data(
                    DataError::new(
                        channel,
                        format!(
                            "data row {}: label is not one of the training classes",
                            i + 1
                        ),
                    )
                    .hint(format!("the classes are: {}", self.classes.join(", "))),
                )
            })?);
        }
        Ok(out)
    }

    /// Reads a model written by [`Model::save`].
    pub fn load(dir: &Path) -> Result<Self, BuiltinError> {
        let m: LinearModel = load_model_json(dir, "linear-learner", FORMAT_VERSION)?;
        let d = m.features.n_features();
        let c = m.bias.len();
        let ok_kind = match m.predictor_type.as_str() {
            "binary_classifier" => c == 1 && m.classes.len() == 2,
            "multiclass_classifier" => c == m.classes.len() && c >= 3,
            "regressor" => c == 1,
            _ => false,
        };
        if !ok_kind || !m.features.is_consistent() || m.weights.len() != d * c {
            return Err(BuiltinError::failed(format!(
                "read {}: linear-learner model is inconsistent ({} `{}` with {c} outputs, {} weights for {d} features)",
                dir.join("model.json").display(),
                m.predictor_type,
                m.classes.len(),
                m.weights.len()
            )));
        }
        Ok(m)
    }
}

impl Model for LinearModel {
    fn algorithm(&self) -> &'static str {
        "linear-learner"
    }

    /// Binary: the probability of the second class; multiclass: one
    /// probability a class; regressor: the predicted value.
    fn predict(&self, data: &Dataset) -> Result<Predictions, BuiltinError> {
        self.features.check(data, "linear-learner")?;
        let n = data.n_rows();
        let s = self.scores(data);
        Ok(match self.kind() {
            PredictorType::Binary => Predictions {
                task: Task::Binary {
                    classes: self.classes.clone(),
                },
                n_rows: n,
                width: 1,
                values: s.iter().map(|&z| sigmoid(z) as f32).collect(),
                column_names: vec!["probability".into()],
            },
            PredictorType::Multiclass => {
                let c = self.outputs();
                let mut values = Vec::with_capacity(n * c);
                for row in s.chunks_exact(c) {
                    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let tot: f64 = row.iter().map(|v| (v - m).exp()).sum();
                    values.extend(row.iter().map(|v| ((v - m).exp() / tot) as f32));
                }
                Predictions {
                    task: Task::Multiclass {
                        classes: self.classes.clone(),
                    },
                    n_rows: n,
                    width: c,
                    values,
                    column_names: self
                        .classes
                        .iter()
                        .map(|c| format!("probability_{c}"))
                        .collect(),
                }
            }
            PredictorType::Regressor => Predictions {
                task: Task::Regression,
                n_rows: n,
                width: 1,
                values: s
                    .iter()
                    .map(|&z| (z * self.label_scale + self.label_mean) as f32)
                    .collect(),
                column_names: vec!["prediction".into()],
            },
        })
    }

    fn save(&self, dir: &Path) -> Result<(), BuiltinError> {
        save_model_json(dir, "linear-learner", FORMAT_VERSION, self)
    }

    fn training_metrics(&self) -> BTreeMap<String, f64> {
        let mut m = self.validation.clone();
        m.insert("objective".to_string(), self.objective);
        m.insert("iterations".to_string(), self.iterations as f64);
        m
    }
}
