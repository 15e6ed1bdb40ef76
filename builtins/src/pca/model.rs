//! The trained PCA model: components, mean, explained variance, and its file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::dense::{
    BLOCK_ROWS, FeatureStats, dot_f32, load_model_json, map_blocks, save_model_json,
};
use crate::error::BuiltinError;
use crate::model::{Model, Predictions, Task};

use super::fit::Fit;

/// Version of the `model` payload in `model.json` (see docs/models/pca.md).
const FORMAT_VERSION: u32 = 1;

/// Principal components of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaModel {
    /// Feature names and training means (subtracted when `subtract_mean`, and
    /// always used to impute missing values).
    features: FeatureStats,
    subtract_mean: bool,
    num_components: usize,
    /// `num_components x n_features`, row-major.
    components: Vec<f32>,
    explained_variance: Vec<f64>,
    explained_variance_ratio: Vec<f64>,
    singular_values: Vec<f64>,
    #[serde(default)]
    validation_explained: Option<f64>,
}

impl PcaModel {
    pub(super) fn new(features: FeatureStats, subtract_mean: bool, fit: Fit) -> Self {
        PcaModel {
            features,
            subtract_mean,
            num_components: fit.explained_variance.len(),
            components: fit.components,
            explained_variance: fit.explained_variance,
            explained_variance_ratio: fit.explained_variance_ratio,
            singular_values: fit.singular_values,
            validation_explained: None,
        }
    }
    pub(super) fn set_validation_explained(&mut self, v: f64) {
        self.validation_explained = Some(v);
    }
    /// The components, `num_components x n_features` row-major.
    pub fn components(&self) -> &[f32] {
        &self.components
    }
    pub fn explained_variance(&self) -> &[f64] {
        &self.explained_variance
    }
    pub fn explained_variance_ratio(&self) -> &[f64] {
        &self.explained_variance_ratio
    }
    pub fn singular_values(&self) -> &[f64] {
        &self.singular_values
    }
    /// The training means of the features.
    pub fn mean(&self) -> &[f64] {
        &self.features.mean
    }

    /// Share of the (training-mean-centred) variance of `data` that the
    /// components capture.
    pub fn explained_share(&self, data: &Dataset) -> Result<f64, BuiltinError> {
        let p = self.predict(data)?;
        let d = self.features.n_features();
        let x = self.features.matrix(data, false);
        let m = self.shift();
        let total: f64 = x
            .chunks_exact(d)
            .map(|r| {
                r.iter()
                    .zip(&m)
                    .map(|(v, m)| ((v - m) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum();
        let kept: f64 = p.values.iter().map(|v| (*v as f64).powi(2)).sum();
        Ok(if total > 0.0 { kept / total } else { 0.0 })
    }

    /// Feature names and training means.
    pub(crate) fn features(&self) -> &FeatureStats {
        &self.features
    }
    pub(crate) fn num_components(&self) -> usize {
        self.num_components
    }

    /// What is subtracted from a row before projecting it (the means, or zeros).
    pub(crate) fn shift(&self) -> Vec<f32> {
        if self.subtract_mean {
            self.features.mean.iter().map(|&m| m as f32).collect()
        } else {
            vec![0.0; self.features.n_features()]
        }
    }

    /// Reads a model written by [`Model::save`].
    pub fn load(dir: &Path) -> Result<Self, BuiltinError> {
        let m: PcaModel = load_model_json(dir, "pca", FORMAT_VERSION)?;
        let d = m.features.n_features();
        let k = m.num_components;
        if k == 0
            || !m.features.is_consistent()
            || m.components.len() != k * d
            || m.explained_variance.len() != k
            || m.explained_variance_ratio.len() != k
        {
            return Err(BuiltinError::failed(format!(
                "read {}: pca model is inconsistent ({k} components of {d} features, {} values)",
                dir.join("model.json").display(),
                m.components.len()
            )));
        }
        Ok(m)
    }
}

impl Model for PcaModel {
    fn algorithm(&self) -> &'static str {
        "pca"
    }

    /// `num_components` values a row: the projection of the row on each component.
    fn predict(&self, data: &Dataset) -> Result<Predictions, BuiltinError> {
        self.features.check(data, "pca")?;
        let d = self.features.n_features();
        let k = self.num_components;
        let x = self.features.matrix(data, false);
        let m = self.shift();
        let n = data.n_rows();
        let parts = map_blocks(n, BLOCK_ROWS, |r| {
            let mut out = Vec::with_capacity(r.len() * k);
            let mut c = vec![0f32; d];
            for row in x[r.start * d..r.end * d].chunks_exact(d) {
                c.iter_mut()
                    .zip(row.iter().zip(&m))
                    .for_each(|(c, (v, m))| *c = v - m);
                for comp in self.components.chunks_exact(d) {
                    out.push(dot_f32(comp, &c));
                }
            }
            out
        });
        Ok(Predictions {
            task: Task::Projection,
            n_rows: n,
            width: k,
            values: parts.concat(),
            column_names: (0..k).map(|i| format!("projection_{i}")).collect(),
        })
    }

    fn save(&self, dir: &Path) -> Result<(), BuiltinError> {
        save_model_json(dir, "pca", FORMAT_VERSION, self)
    }

    fn training_metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::from([(
            "explained_variance_ratio".to_string(),
            self.explained_variance_ratio.iter().sum(),
        )]);
        if let Some(v) = self.validation_explained {
            m.insert("validation_explained_variance_ratio".to_string(), v);
        }
        m
    }
}
