//! PCA hyperparameters, checked without touching data.

use crate::error::BuiltinError;
use crate::hyperparams::{Hyperparams, Irrelevant, Unsupported};

/// How the components are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Covariance matrix and its full eigendecomposition.
    Regular,
    /// Randomized range finder (seeded).
    Randomized,
}

/// Checked PCA hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Number of components to keep (`num_components`, required).
    pub num_components: usize,
    /// `algorithm_mode`: `regular` (default) or `randomized`.
    pub mode: Mode,
    /// Centre the data before decomposing it (`subtract_mean`, default true).
    pub subtract_mean: bool,
    /// Extra random directions in randomized mode (`extra_components`; -1, the
    /// default, means `max(10, num_components)` as in SageMaker).
    pub extra_components: i64,
    /// Seed of the random directions in randomized mode (`seed`, default 0).
    pub seed: u64,
    /// The number of features the data must have (`feature_dim`), when given.
    pub feature_dim: Option<usize>,
}

/// Every hyperparameter name that takes effect (see docs/models/pca.md).
pub const IMPLEMENTED: &[&str] = &[
    "num_components",
    "algorithm_mode",
    "subtract_mean",
    "extra_components",
    "seed",
    "feature_dim",
];

/// SageMaker PCA names accepted with a warning: they cannot change the result here.
pub const IRRELEVANT: &[Irrelevant] = &[(
    "mini_batch_size",
    "the covariance is computed over every row at once, so the batch size cannot change the components",
)];

/// No SageMaker PCA name is rejected as unsupported.
pub const UNSUPPORTED: &[Unsupported] = &[];

impl Params {
    pub fn from_hyperparameters(hp: &Hyperparams) -> Result<Params, BuiltinError> {
        let num_components: usize = hp.opt("num_components")?.ok_or_else(|| {
            BuiltinError::hyperparameter("num_components", None, "is required")
                .with_hint("set `num_components` to how many components to keep, e.g. \"16\"")
        })?;
        if num_components == 0 {
            return Err(BuiltinError::hyperparameter(
                "num_components",
                hp.get_str("num_components"),
                "must be at least 1",
            ));
        }
        let mode = match hp
            .choice("algorithm_mode", "regular", &["regular", "randomized"])?
            .as_str()
        {
            "randomized" => Mode::Randomized,
            _ => Mode::Regular,
        };
        let subtract_mean = hp.get("subtract_mean", true)?;
        let extra_components: i64 = hp.get("extra_components", -1)?;
        if extra_components < -1 {
            return Err(BuiltinError::hyperparameter(
                "extra_components",
                hp.get_str("extra_components"),
                "must be -1 (automatic) or at least 0",
            ));
        }
        let seed = hp.get("seed", 0u64)?;
        let feature_dim = hp.opt("feature_dim")?;
        if let Some(b) = hp.raw().get("mini_batch_size") {
            // Still a whole number, as SageMaker requires, though it changes nothing.
            if !b.trim().parse::<usize>().is_ok_and(|v| v > 0) {
                return Err(BuiltinError::hyperparameter(
                    "mini_batch_size",
                    Some(b.trim()),
                    "must be a whole number of at least 1",
                ));
            }
        }
        hp.only_with(
            "extra_components",
            mode == Mode::Randomized,
            "it sizes the randomized range finder, and algorithm_mode is regular",
        )?;
        hp.warn_unless(
            "seed",
            mode == Mode::Randomized,
            "regular mode is deterministic; the seed drives algorithm_mode randomized",
        );
        hp.finish(IRRELEVANT)?;
        Ok(Params {
            num_components,
            mode,
            subtract_mean,
            extra_components,
            seed,
            feature_dim,
        })
    }

    /// Extra directions the randomized range finder samples.
    pub fn oversampling(&self) -> usize {
        if self.extra_components < 0 {
            self.num_components.max(10)
        } else {
            self.extra_components as usize
        }
    }
}
