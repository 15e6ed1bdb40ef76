//! Reading a built-in step's channels into data sets.

use builtins::Dataset;
use builtins::data::{Format, ReadOptions, read};

use super::{Layout, StepConfig, StepError};
use crate::spec::model::DataFormat;

/// How to read channel `name`: as its pipeline input says, else CSV with a header.
pub fn read_options(cfg: &StepConfig, name: &str) -> ReadOptions {
    match cfg.channels.get(name).and_then(|c| c.as_ref()) {
        Some(def) => ReadOptions {
            format: match def.format {
                DataFormat::Csv => Format::Csv,
                DataFormat::Parquet => Format::Parquet,
                DataFormat::Libsvm => Format::Libsvm,
            },
            header: def.header,
            target: def.target.clone(),
            label_size: def.label_size.unwrap_or(0) as usize,
            ..ReadOptions::csv_with_header(None)
        },
        None => ReadOptions::csv_with_header(None),
    }
}

/// Reads channel `name` (all its files, as parts of one data set).
pub fn read_channel(layout: &Layout, cfg: &StepConfig, name: &str) -> Result<Dataset, StepError> {
    let dir = layout.channel(name);
    let opts = read_options(cfg, name);
    read(&dir, &opts).map_err(StepError::from)
}

/// Like [`read_channel`], and the data must have a target column.
pub fn read_labelled(
    layout: &Layout,
    cfg: &StepConfig,
    name: &str,
    why: &str,
) -> Result<Dataset, StepError> {
    let ds = read_channel(layout, cfg, name)?;
    if ds.target().is_none() {
        return Err(StepError::invalid(format!(
            "channel `{name}` has no target column, which {why} needs: give its input `target: COLUMN` (with a header) or `label_size: 1` (SageMaker-style CSV, label first)"
        )));
    }
    Ok(ds)
}
