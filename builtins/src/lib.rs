//! Pure compute for the pipeline engine.
//!
//! Everything the engine runs as a built-in step lives here: data readers
//! ([`data`]), the in-memory columnar [`dataset`], splits ([`split`]), metrics
//! ([`metrics`]) and the algorithms ([`gbdt`], [`linear`], [`kmeans`], [`pca`]).
//!
//! The crate knows nothing of the engine: no async runtime, no pipeline types.
//! It reads data sets, reads and writes model and checkpoint files in
//! directories it is handed, and, when training on several nodes, talks to
//! the other nodes of the job through [`cluster`]; everything else is
//! computation. Results are deterministic for a given seed whatever the
//! thread count, and the same on N nodes as on one.
//!
//! Every algorithm module has the same shape:
//! - `Params::from_hyperparameters(&Hyperparams)`: checks SageMaker-style string
//!   hyperparameters without touching data, so the engine can reject a bad value
//!   at validation time and point at its line;
//! - `train(&Params, &Dataset, Option<&Dataset>, &TrainContext) -> Model`;
//! - `Model` implements [`model::Model`] (predict, save) and has `load(dir)`.

pub mod algorithm;
pub mod cluster;
pub mod data;
pub mod dataset;
pub mod dense;
pub mod ensemble;
pub mod error;
pub mod gbdt;
pub mod hyperparams;
pub mod kmeans;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod pca;
pub mod split;
pub mod tune;

pub use dataset::{Column, ColumnKind, Dataset};
pub use error::{BuiltinError, DataError};
pub use hyperparams::Hyperparams;
pub use model::{Model, Predictions, Task, TrainContext};
