//! k-means clustering (`algorithm: kmeans`).
//!
//! Greedy k-means++ seeding (as scikit-learn does it, so inertia is comparable)
//! or uniform random seeding, then Lloyd iterations. The assignment step is the
//! hot loop: distances come from one matrix product a block of rows
//! (`|x|^2 - 2 x.c + |c|^2`, see [`distance`]) rather than a scalar loop per
//! pair. Missing values are imputed with the training mean, stored in the model.
//!
//! On several nodes ([`TrainContext::cluster`]) each node holds a shard of the
//! rows: the feature means, the k-means++ draws (over global row indices) and
//! each iteration's per-centre sums and counts are combined over the nodes,
//! so the centres are those of one node on all the rows, up to rounding.

mod distance;
mod init;
mod lloyd;
mod model;
pub mod params;

pub use model::KMeansModel;
pub use params::{InitMethod, Params};

use crate::cluster::shard_offset;
use crate::dataset::Dataset;
use crate::dense::{FeatureStats, Rng, empty_data, reject_infinite, with_threads};
use crate::error::{BuiltinError, DataError};
use crate::model::TrainContext;

/// Clusters the rows of `train`; `validation`, if given, is scored with the
/// trained centres and its inertia reported among the training metrics.
pub fn train(
    params: &Params,
    train: &Dataset,
    validation: Option<&Dataset>,
    ctx: &TrainContext,
) -> Result<KMeansModel, BuiltinError> {
    let cluster = ctx.cluster;
    let d = train.n_features();
    let (offset, n) = shard_offset(cluster, train.n_rows())?;
    if n == 0 {
        return Err(empty_data("train data", "no rows"));
    }
    if d == 0 {
        return Err(empty_data("train data", "no feature columns"));
    }
    crate::hyperparams::check_feature_dim(params.feature_dim, d)?;
    reject_infinite(train, "train data")?;
    if params.k > n {
        return Err(BuiltinError::Data(
            DataError::new(
                "train data",
                format!("has {n} rows, fewer than k = {} clusters", params.k),
            )
            .hint("lower `k` or give more rows"),
        ));
    }
    with_threads(ctx.threads, || {
        let stats = FeatureStats::of_shards(train, cluster)?;
        let x = stats.matrix(train, false);
        (ctx.log)(&format!("kmeans: {n} rows of {d} features ready"));
        let mut rng = Rng::new(params.seed);
        let centres = match (params.init_method, cluster.size()) {
            (InitMethod::KMeansPlusPlus, 1) => init::kmeans_plus_plus(&x, d, params.k, &mut rng),
            (InitMethod::Random, 1) => init::random_rows(&x, d, params.k, &mut rng),
            (InitMethod::KMeansPlusPlus, _) => {
                init::kmeans_plus_plus_shards(&x, d, params.k, &mut rng, cluster, (offset, n))?
            }
            (InitMethod::Random, _) => {
                init::random_rows_shards(&x, d, params.k, &mut rng, cluster, (offset, n))?
            }
        };
        (ctx.log)("kmeans: initial centres chosen");
        let fit = lloyd::run(
            &x,
            d,
            centres,
            (params.max_iterations, params.tol),
            cluster,
            offset,
            ctx.log,
        )?;
        (ctx.log)(&format!(
            "kmeans: {} iterations, inertia {:.6e}",
            fit.iterations, fit.inertia
        ));
        let mut model = KMeansModel::new(stats, params.k, fit.centres, fit.inertia, fit.iterations);
        if let Some(v) = validation {
            model.stats().check(v, "kmeans")?;
            let xv = model.stats().matrix(v, false);
            let inertia = lloyd::inertia(&xv, d, model.centres());
            model.set_validation_inertia(inertia);
        }
        Ok(model)
    })
}

#[cfg(test)]
mod tests;
