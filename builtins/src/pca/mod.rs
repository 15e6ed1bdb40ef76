//! Principal component analysis (`algorithm: pca`).
//!
//! Two modes, as in SageMaker's PCA:
//! - `regular`: the covariance matrix `X^T X / (n - 1)` of the centred data
//!   (blocked products accumulated in `f64`), then its full symmetric
//!   eigendecomposition; exact, and fast while the feature count is modest.
//! - `randomized`: a seeded randomized range finder with power iterations
//!   (Halko, Martinsson and Tropp), then an exact decomposition of the small
//!   projected problem; for many features and few components.
//!
//! The model stores the components, the mean (subtracted when `subtract_mean`,
//! and used to impute missing values), and the explained variance and its ratio.
//!
//! On several nodes: the means and, in `regular` mode, the Gram matrices of
//! the shards are added over the nodes, so the components are one node's up
//! to rounding. `randomized` mode gathers the rows on the main node, which
//! fits them and sends the result to the others (the same fit as one node's).

mod fit;
mod model;
pub mod params;

pub use model::PcaModel;
pub use params::{Mode, Params};

use crate::cluster::{bytes_f32, f32_bytes, shard_offset};
use crate::dataset::Dataset;
use crate::dense::{FeatureStats, empty_data, gram, reject_infinite, with_threads};
use crate::error::{BuiltinError, DataError};
use crate::model::TrainContext;

/// Fits the principal components of `train`. `validation` is not used for
/// fitting; when given, the share of its variance the components explain is
/// reported among the training metrics.
pub fn train(
    params: &Params,
    train: &Dataset,
    validation: Option<&Dataset>,
    ctx: &TrainContext,
) -> Result<PcaModel, BuiltinError> {
    let cluster = ctx.cluster;
    let d = train.n_features();
    let (_, n) = shard_offset(cluster, train.n_rows())?;
    if n < 2 {
        return Err(empty_data("train data", "fewer than 2 rows"));
    }
    if d == 0 {
        return Err(empty_data("train data", "no feature columns"));
    }
    crate::hyperparams::check_feature_dim(params.feature_dim, d)?;
    reject_infinite(train, "train data")?;
    if params.num_components > d {
        return Err(BuiltinError::Data(
            DataError::new(
                "train data",
                format!(
                    "has {d} feature columns, fewer than num_components = {}",
                    params.num_components
                ),
            )
            .hint(format!("set `num_components` to at most {d}")),
        ));
    }
    with_threads(ctx.threads, || {
        let stats = FeatureStats::of_shards(train, cluster)?;
        let x = stats.matrix(train, false);
        (ctx.log)(&format!("pca: {n} rows of {d} features ready"));
        let shift: Option<Vec<f32>> = params
            .subtract_mean
            .then(|| stats.mean.iter().map(|&m| m as f32).collect());
        let f = match (params.mode, cluster.size()) {
            (Mode::Regular, 1) => fit::regular(&x, d, shift.as_deref(), params.num_components),
            (Mode::Regular, _) => {
                let mut g = gram(&x, d, shift.as_deref());
                cluster.allreduce_sum_f64(&mut g)?;
                fit::from_gram(g, d, params.num_components, n)
            }
            (Mode::Randomized, size) if size > 1 => {
                // The main node fits on every node's rows and sends the fit back.
                let parts = cluster.gather_bytes(&f32_bytes(&x))?;
                let mut answer = Vec::new();
                if cluster.is_main() {
                    let all: Vec<f32> = parts.iter().flat_map(|p| bytes_f32(p)).collect();
                    answer = fit::randomized(
                        &all,
                        d,
                        shift.as_deref(),
                        params.num_components,
                        params.oversampling(),
                        params.seed,
                    )
                    .to_bytes();
                }
                fit::Fit::from_bytes(&cluster.broadcast_bytes(&answer)?)?
            }
            (Mode::Randomized, _) => fit::randomized(
                &x,
                d,
                shift.as_deref(),
                params.num_components,
                params.oversampling(),
                params.seed,
            ),
        };
        (ctx.log)(&format!(
            "pca: {} components explain {:.6} of the variance",
            params.num_components,
            f.explained_variance_ratio.iter().sum::<f64>()
        ));
        let mut model = PcaModel::new(stats, params.subtract_mean, f);
        if let Some(v) = validation {
            let ratio = model.explained_share(v)?;
            model.set_validation_explained(ratio);
        }
        Ok(model)
    })
}

#[cfg(test)]
mod tests;
