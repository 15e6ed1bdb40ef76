//! Reproducibility: the lock a run is made from.
//!
//! [`lock`] is what every run records before it starts (and what
//! `run --locked` holds a run to; see docs/reproducibility.md).

pub mod lock;
