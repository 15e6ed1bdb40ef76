//! The pipeline engine.

pub mod registry;
