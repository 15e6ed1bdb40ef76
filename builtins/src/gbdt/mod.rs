//! `algorithm: gbdt`: gradient-boosted decision trees, XGBoost-style.
//!
//! Histogram-based and level-wise like XGBoost's `hist` method: features are
//! cut into at most 255 quantile bins ([`binning`]), each round fits one tree
//! an output to second-order gradients ([`objective`]) by growing it level by
//! level from gradient histograms ([`grow`]), with a learned direction for
//! missing values. The loop around it ([`train`](mod@train)) handles validation, early
//! stopping, checkpoints and continuing from an earlier model. Models save to
//! our own JSON format and to XGBoost's ([`xgboost`]), so XGBoost can serve them.
//!
//! Entry points the engine calls: [`Params::from_hyperparameters`], [`train()`],
//! [`GbdtModel::load`], and the [`Model`](crate::model::Model) trait.

pub mod binning;
pub mod checkpoint;
pub mod grow;
pub mod histogram;
pub mod metric;
pub mod model;
pub mod objective;
pub mod params;
pub mod partition;
pub mod train;
pub mod tree;
pub mod xgboost;

pub use model::{GbdtModel, Importance, SERVABLE_FILE};
pub use params::{EvalMetric, GrowPolicy, Objective, Params};
pub use train::{train, train_from};
pub use tree::Tree;
