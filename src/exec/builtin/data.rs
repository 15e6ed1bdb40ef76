//! Reading a built-in step's channels into data sets.

use builtins::data::{Format, Missing, ReadOptions, read};
use builtins::{Column, Dataset};

use super::{Layout, StepConfig, StepError};
use crate::spec::model::{DataFormat, FeatureSelection, InputDef};

/// How to read data described by an input definition.
pub fn read_options_of(def: &InputDef) -> ReadOptions {
    ReadOptions {
        format: format_of(def.format),
        header: def.header,
        target: def.target.clone(),
        label_size: def.label_size.unwrap_or(0) as usize,
        missing: match &def.missing_values {
            Some(v) => Missing::listed(v),
            None => Missing::Usual,
        },
        // ID columns are read as text, so they pass through exactly (a
        // number as f32 would lose digits beyond 2^24).
        categorical: def
            .categorical
            .iter()
            .chain(&def.id_columns)
            .cloned()
            .collect(),
        ..ReadOptions::csv_with_header(None)
    }
}

/// The reader's format for a pipeline file's data format.
pub fn format_of(f: DataFormat) -> Format {
    match f {
        DataFormat::Csv => Format::Csv,
        DataFormat::Parquet => Format::Parquet,
        DataFormat::Libsvm => Format::Libsvm,
        DataFormat::RecordioProtobuf => Format::RecordioProtobuf,
        DataFormat::Jsonlines => Format::Jsonlines,
    }
}

/// How channel `name` is to be read: as its pipeline input says (else CSV with
/// a header), with what the train step's channel declares on top.
pub fn channel_def(cfg: &StepConfig, name: &str) -> Option<InputDef> {
    let upstream = cfg.channels.get(name).and_then(|c| c.as_ref());
    crate::exec::contract::channel_reading(&cfg.step, name, upstream)
}

/// Reads channel `name` (all its files, as parts of one data set), keeping
/// as features only the columns its input chooses.
pub fn read_channel(layout: &Layout, cfg: &StepConfig, name: &str) -> Result<Dataset, StepError> {
    read_channel_with_ids(layout, cfg, name, &[]).map(|(ds, _)| ds)
}

/// Like [`read_channel`], and also returns the input's ID columns (which are
/// never features), in file order. Columns in `keep` stay even when a split
/// arranged rows by them (k-fold evaluation folds by them again).
pub fn read_channel_with_ids(
    layout: &Layout,
    cfg: &StepConfig,
    name: &str,
    keep: &[String],
) -> Result<(Dataset, Vec<Column>), StepError> {
    let dir = layout.channel(name);
    let def = channel_def(cfg, name);
    let opts = match &def {
        Some(d) => read_options_of(d),
        None => ReadOptions::csv_with_header(None),
    };
    let ds = if pipe_mode(layout, name) {
        read_pipe(layout, name, &opts)?
    } else {
        read(&dir, &opts).map_err(StepError::from)?
    };
    match def {
        Some(mut d) => {
            d.split_columns.retain(|c| !keep.contains(c));
            select_features(ds, &d, name)
        }
        None => Ok((ds, Vec::new())),
    }
}

/// Reads the data at `path` (a file or a directory of parts) as `def` says
/// (CSV with a header without one), keeping as features only the columns it
/// chooses: as a built-in step reads channel `name`, for the engine's own use.
pub fn read_def(
    path: &std::path::Path,
    def: Option<&InputDef>,
    name: &str,
) -> Result<Dataset, StepError> {
    let opts = def.map_or_else(|| ReadOptions::csv_with_header(None), read_options_of);
    let ds = read(path, &opts).map_err(StepError::from)?;
    match def {
        Some(d) => select_features(ds, d, name).map(|(ds, _)| ds),
        None => Ok(ds),
    }
}

/// Whether channel `name` is streamed through named pipes
/// (`TrainingInputMode: Pipe` in `inputdataconfig.json`).
pub fn pipe_mode(layout: &Layout, name: &str) -> bool {
    let path = layout.root.join("input/config/inputdataconfig.json");
    std::fs::read(&path)
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get(name)?
                .get("TrainingInputMode")?
                .as_str()
                .map(|s| s == "Pipe")
        })
        .unwrap_or(false)
}

/// Whether the step has channel `name` (its files, or its first pipe).
pub fn has_channel(layout: &Layout, name: &str) -> bool {
    layout.channel(name).exists() || layout.pipe(name, 0).exists()
}

/// Reads a pipe-mode channel: its first epoch (`<name>_0`) to the end, into
/// memory, then the data set from there; nothing lands on disk.
fn read_pipe(layout: &Layout, name: &str, opts: &ReadOptions) -> Result<Dataset, StepError> {
    use std::io::Read;
    let path = layout.pipe(name, 0);
    let pipe = crate::exec::pipe::pipe_name(name, 0);
    let mut f = std::fs::File::open(&path).map_err(|e| {
        StepError::failed(format!(
            "channel `{name}` is in pipe mode, but its named pipe {} cannot be opened: {e}",
            path.display()
        ))
    })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| {
        StepError::failed(format!(
            "channel `{name}`: reading its named pipe {} failed: {e}",
            path.display()
        ))
    })?;
    drop(f);
    builtins::data::read_bytes(std::path::Path::new(&pipe), bytes.into(), opts)
        .map_err(|e| StepError::invalid(format!("channel `{name}` in pipe mode: {e}")))
}

/// Drops the columns that are not features by `def` (`features`, `id_columns`,
/// a split's group or time column); returns the data and its ID columns.
fn select_features(
    ds: Dataset,
    def: &InputDef,
    channel: &str,
) -> Result<(Dataset, Vec<Column>), StepError> {
    let present: Vec<String> = ds.columns().iter().map(|c| c.name.clone()).collect();
    let (include, exclude): (Option<&[String]>, &[String]) = match &def.features {
        Some(FeatureSelection::Include(v)) => (Some(v), &[]),
        Some(FeatureSelection::Exclude(v)) => (None, v),
        None => (None, &[]),
    };
    let named = [
        ("features.include", include.unwrap_or(&[])),
        ("features.exclude", exclude),
        ("id_columns", &def.id_columns),
        ("categorical", &def.categorical),
    ];
    for (field, names) in named {
        if let Some(missing) = names.iter().find(|n| !present.contains(n)) {
            return Err(StepError::invalid(format!(
                "channel `{channel}`: column `{missing}` named in the input's `{field}` is not in the data\n  help: the columns are: {}",
                present.join(", ")
            )));
        }
    }
    let keep = |c: &Column| {
        let n = &c.name;
        if def.id_columns.contains(n) {
            return false;
        }
        match include {
            Some(inc) => inc.contains(n),
            None => !exclude.contains(n) && !def.split_columns.contains(n),
        }
    };
    let (ds, out) = ds.partition_columns(keep);
    let ids = out
        .into_iter()
        .filter(|c| def.id_columns.contains(&c.name))
        .collect();
    Ok((ds, ids))
}

/// Like [`read_channel`], and the data must have a target column.
pub fn read_labelled(
    layout: &Layout,
    cfg: &StepConfig,
    name: &str,
    why: &str,
    keep: &[String],
) -> Result<Dataset, StepError> {
    let (ds, _) = read_channel_with_ids(layout, cfg, name, keep)?;
    if ds.target().is_none() {
        return Err(StepError::invalid(format!(
            "channel `{name}` has no target column, which {why} needs: give its input `target: COLUMN` (with a header) or `label_size: 1` (SageMaker-style CSV or Parquet, label first), or declare it on a train channel (`{{data: REF, target: COLUMN}}`); RecordIO-protobuf records and JSON Lines `{{\"features\": [...]}}` lines need a `label`"
        )));
    }
    Ok(ds)
}
