//! k-means hyperparameters, checked without touching data.

use crate::error::BuiltinError;
use crate::hyperparams::Hyperparams;

/// How the first centres are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMethod {
    /// Greedy k-means++: each new centre is the best of `2 + ln k` candidates
    /// drawn with probability proportional to the squared distance.
    KMeansPlusPlus,
    /// `k` distinct rows drawn uniformly.
    Random,
}

/// Checked k-means hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Number of clusters (`k`, required).
    pub k: usize,
    pub init_method: InitMethod,
    /// Upper bound on Lloyd iterations (`max_iterations`, default 100).
    pub max_iterations: usize,
    /// Relative tolerance on the centre shift (`tol`, default 1e-4): Lloyd stops
    /// when the summed squared shift of the centres falls to `tol` times the
    /// mean feature variance, as scikit-learn does.
    pub tol: f64,
    /// Seed of the initialisation (`seed`, default 0).
    pub seed: u64,
}

/// Names SageMaker's k-means takes that have no effect here: this
/// implementation always runs full-batch Lloyd iterations over all rows, and
/// reads the feature count from the data.
const IGNORED: &[&str] = &[
    "feature_dim",
    "mini_batch_size",
    "epochs",
    "extra_center_factor",
    "half_life_time_size",
    "eval_metrics",
];

impl Params {
    pub fn from_hyperparameters(hp: &Hyperparams) -> Result<Params, BuiltinError> {
        let k: usize = hp.opt("k")?.ok_or_else(|| {
            BuiltinError::hyperparameter("k", None, "is required")
                .with_hint("set `k` to the number of clusters, e.g. k: \"8\"")
        })?;
        if k == 0 {
            return Err(BuiltinError::hyperparameter(
                "k",
                hp.get_str("k"),
                "must be at least 1",
            ));
        }
        let init_method = match hp
            .choice("init_method", "kmeans++", &["kmeans++", "random"])?
            .as_str()
        {
            "random" => InitMethod::Random,
            _ => InitMethod::KMeansPlusPlus,
        };
        let max_iterations = hp.get_in("max_iterations", 100usize, 1, 1_000_000)?;
        let tol = hp.get("tol", 1e-4f64)?;
        if !(tol >= 0.0 && tol.is_finite()) {
            return Err(BuiltinError::hyperparameter(
                "tol",
                hp.get_str("tol"),
                "must be a number of at least 0",
            ));
        }
        let seed = hp.get("seed", 0u64)?;
        // Accepted for compatibility with SageMaker pipelines; validated as numbers.
        hp.opt::<usize>("mini_batch_size")?;
        hp.opt::<usize>("epochs")?;
        hp.finish(IGNORED)?;
        Ok(Params {
            k,
            init_method,
            max_iterations,
            tol,
            seed,
        })
    }
}
