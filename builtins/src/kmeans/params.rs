//! k-means hyperparameters, checked without touching data.

use crate::error::BuiltinError;
use crate::hyperparams::{Hyperparams, Irrelevant, Unsupported};

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
    /// The number of features the data must have (`feature_dim`), when given.
    pub feature_dim: Option<usize>,
}

/// Every hyperparameter name that takes effect (see docs/models/kmeans.md).
pub const IMPLEMENTED: &[&str] = &[
    "k",
    "init_method",
    "max_iterations",
    "tol",
    "seed",
    "feature_dim",
];

/// No SageMaker k-means name is accepted without an effect here.
pub const IRRELEVANT: &[Irrelevant] = &[];

/// SageMaker k-means names with no implementation here: its trainer is a
/// streaming mini-batch one, this one is full-batch Lloyd over every row.
pub const UNSUPPORTED: &[Unsupported] = &[
    (
        "mini_batch_size",
        "training is full-batch Lloyd over every row, not mini-batch",
        "remove it; `max_iterations` and `tol` bound the iterations",
    ),
    (
        "epochs",
        "training is full-batch Lloyd, iterated until `tol` or `max_iterations`",
        "use `max_iterations`",
    ),
    (
        "extra_center_factor",
        "exactly `k` centres are kept, with no extra centres to reduce",
        "remove it",
    ),
    (
        "half_life_time_size",
        "every row weighs the same (no decay of older mini-batches)",
        "remove it",
    ),
    (
        "eval_metrics",
        "the train step reports no cluster metrics",
        "remove it; score clusters with an evaluate step (`metrics: [msd, ssd]`)",
    ),
    (
        "local_lloyd_max_iter",
        "there is no reduction of extra centres",
        "use `max_iterations`",
    ),
    (
        "local_lloyd_tol",
        "there is no reduction of extra centres",
        "use `tol`",
    ),
    (
        "local_lloyd_init_method",
        "there is no reduction of extra centres",
        "use `init_method`",
    ),
    (
        "local_lloyd_num_trials",
        "there is no reduction of extra centres",
        "remove it",
    ),
];

impl Params {
    pub fn from_hyperparameters(hp: &Hyperparams) -> Result<Params, BuiltinError> {
        hp.reject_unsupported(UNSUPPORTED)?;
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
        let feature_dim = hp.opt("feature_dim")?;
        hp.finish(IRRELEVANT)?;
        Ok(Params {
            k,
            init_method,
            max_iterations,
            tol,
            seed,
            feature_dim,
        })
    }
}
