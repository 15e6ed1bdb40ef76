//! PCA hyperparameters, checked without touching data.

use crate::error::BuiltinError;
use crate::hyperparams::Hyperparams;

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
}

/// Accepted for SageMaker compatibility with no effect here: the feature count
/// comes from the data and all rows are processed in one pass.
const IGNORED: &[&str] = &["feature_dim", "mini_batch_size"];

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
        hp.opt::<usize>("mini_batch_size")?;
        hp.finish(IGNORED)?;
        Ok(Params {
            num_components,
            mode,
            subtract_mean,
            extra_components,
            seed,
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
