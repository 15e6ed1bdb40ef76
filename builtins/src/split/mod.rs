//! (being written)

pub(crate) mod rng;
