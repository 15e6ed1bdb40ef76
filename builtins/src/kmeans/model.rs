//! The trained k-means model: centres plus the imputation values, and its file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::dense::{BLOCK_ROWS, FeatureStats, load_model_json, map_blocks, save_model_json};
use crate::error::BuiltinError;
use crate::model::{Model, Predictions, Task};

use super::distance::{CentresT, sq_dist};

/// Version of the `model` payload in `model.json` (see docs/models/kmeans.md).
const FORMAT_VERSION: u32 = 1;

/// k centres in the feature space of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    /// Feature names, training means (used to impute missing values) and scales.
    features: FeatureStats,
    k: usize,
    /// `k x n_features`, row-major.
    centres: Vec<f32>,
    /// Sum of squared distances of the training rows to their centre.
    inertia: f64,
    iterations: usize,
    #[serde(default)]
    validation_inertia: Option<f64>,
}

impl KMeansModel {
    pub(super) fn new(
        features: FeatureStats,
        k: usize,
        centres: Vec<f32>,
        inertia: f64,
        iterations: usize,
    ) -> Self {
        KMeansModel {
            features,
            k,
            centres,
            inertia,
            iterations,
            validation_inertia: None,
        }
    }
    pub(super) fn set_validation_inertia(&mut self, v: f64) {
        self.validation_inertia = Some(v);
    }
    pub(crate) fn stats(&self) -> &FeatureStats {
        &self.features
    }
    /// The centres, `k x n_features` row-major.
    pub fn centres(&self) -> &[f32] {
        &self.centres
    }
    pub fn k(&self) -> usize {
        self.k
    }
    /// Training inertia (sum of squared distances to the nearest centre).
    pub fn inertia(&self) -> f64 {
        self.inertia
    }
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Reads a model written by [`Model::save`].
    pub fn load(dir: &Path) -> Result<Self, BuiltinError> {
        let m: KMeansModel = load_model_json(dir, "kmeans", FORMAT_VERSION)?;
        let d = m.features.n_features();
        if m.k == 0 || !m.features.is_consistent() || m.centres.len() != m.k * d {
            return Err(BuiltinError::failed(format!(
                "read {}: kmeans model is inconsistent ({} centres of {d} features, {} values)",
                dir.join("model.json").display(),
                m.k,
                m.centres.len()
            )));
        }
        Ok(m)
    }
}

impl Model for KMeansModel {
    fn algorithm(&self) -> &'static str {
        "kmeans"
    }

    /// Two values a row: the index of the closest centre and the Euclidean distance to it.
    fn predict(&self, data: &Dataset) -> Result<Predictions, BuiltinError> {
        self.features.check(data, "kmeans")?;
        let d = self.features.n_features();
        let x = self.features.matrix(data, false);
        let n = data.n_rows();
        let ct = CentresT::new(&self.centres, d);
        let parts = map_blocks(n, BLOCK_ROWS, |r| {
            let xb = &x[r.start * d..r.end * d];
            let mut lab = vec![0u32; r.len()];
            let mut dis = vec![0f32; r.len()];
            ct.nearest(xb, &mut lab, &mut dis);
            let mut out = Vec::with_capacity(2 * r.len());
            for (row, &c) in xb.chunks_exact(d).zip(&lab) {
                let c = c as usize;
                out.push(c as f32);
                out.push(sq_dist(row, &self.centres[c * d..(c + 1) * d]).sqrt() as f32);
            }
            out
        });
        Ok(Predictions {
            task: Task::Clustering,
            n_rows: n,
            width: 2,
            values: parts.concat(),
            column_names: vec!["closest_cluster".into(), "distance_to_cluster".into()],
        })
    }

    fn save(&self, dir: &Path) -> Result<(), BuiltinError> {
        save_model_json(dir, "kmeans", FORMAT_VERSION, self)
    }

    fn training_metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::from([
            ("inertia".to_string(), self.inertia),
            ("iterations".to_string(), self.iterations as f64),
        ]);
        if let Some(v) = self.validation_inertia {
            m.insert("validation_inertia".to_string(), v);
        }
        m
    }
}
