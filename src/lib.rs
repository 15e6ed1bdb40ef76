//! The pipeline engine: a YAML pipeline file in, models and run records out.
//!
//! The data path is one line, one module a stage:
//!
//! - [`spec`] (parse, validate): the file's text to a validated
//!   [`spec::model::Pipeline`]; every error points at FILE:LINE:COL.
//! - [`dag`] (plan): the steps as an immutable graph in a stable order,
//!   cache keys, and `pipeline graph` rendering.
//! - [`schedule`]: runs ready steps concurrently, with retries, timeouts,
//!   fail-fast and cancellation; owns all run state.
//! - [`exec`] (execute): one `Backend` trait; each step attempt runs as a
//!   separate process under the SageMaker-style container contract.
//! - [`store`], [`runs`] (record): the content-addressed artifact store in
//!   `.pipeline/` and the SQLite run records.
//! - [`registry`] (register): model versions, approvals and `registry://`
//!   references, in SQLite.
//! - [`repro`]: the lock every run records before it starts, and
//!   reproductions of recorded runs compared output by output.
//! - [`report`]: the HTML evaluation report.
//! - [`cli`]: the command line and all terminal output.
//! - [`ui`]: `pipeline ui`, the same records in the browser.
//!
//! The built-in algorithms, data readers, splits and metrics are pure compute
//! in the separate `builtins` crate.

pub mod cli;
pub mod dag;
pub mod error;
pub mod exec;
pub mod registry;
pub mod report;
pub mod repro;
pub mod runs;
pub mod schedule;
pub mod spec;
pub mod store;
pub mod ui;
