//! Plan: the validated pipeline as an immutable graph, its order, cache keys,
//! and its rendering for `pipeline graph`.

pub mod cache;
pub mod plan;
pub mod render;

pub use plan::{EdgeKind, Plan, ReadyQueue};
