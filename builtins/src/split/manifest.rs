//! The record a split leaves: what went where, and the hash of each file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// Groups of an output are listed by name up to this many, counted beyond.
pub const MAX_LISTED_GROUPS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// `shuffle`, `time` or `group`.
    pub strategy: String,
    /// The stratify, time or group column, if any.
    pub column: Option<String>,
    pub seed: u64,
    /// Rows read from all inputs.
    pub rows_in: usize,
    /// Rows written to all outputs.
    pub rows_out: usize,
    /// Rows left out by a time split's gap.
    pub rows_dropped_by_gap: usize,
    /// Per output set (`train`, `validation`, `test`).
    pub outputs: BTreeMap<String, Output>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub file: PathBuf,
    pub rows: usize,
    /// Share of all written rows.
    pub fraction: f64,
    /// The fraction asked for, when one input with fractions was split.
    pub requested_fraction: Option<f64>,
    /// BLAKE3 of the file's bytes, hex.
    pub blake3: String,
    /// Oldest and newest timestamp, as written in the data (time split).
    pub time_range: Option<TimeRange>,
    /// The groups in this set (group split).
    pub groups: Option<Groups>,
    /// Rows per class of the stratify column (stratified shuffle).
    pub classes: Option<BTreeMap<String, usize>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeRange {
    pub oldest: String,
    pub newest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Groups {
    pub count: usize,
    /// Sorted names, when there are at most [`MAX_LISTED_GROUPS`].
    pub names: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub path: PathBuf,
    pub rows: usize,
    pub requested: BTreeMap<String, f64>,
    /// Rows this input gave each output.
    pub rows_per_output: BTreeMap<String, usize>,
    /// Those rows as shares of this input's rows.
    pub achieved: BTreeMap<String, f64>,
    pub rows_dropped_by_gap: usize,
}
