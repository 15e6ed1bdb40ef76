//! `predict` and `inspect`: the built-ins used directly on a file.

use std::path::{Path, PathBuf};

use builtins::data::{Format, ReadOptions, read};
use builtins::{ColumnKind, Dataset};

use super::registry::{reg_err, registry_location};
use crate::error::{Error, Result};
use crate::spec::model::DataFormat;
use crate::spec::source::Diagnostic;
use crate::store::Workspace;

/// How to read a data file given on the command line.
#[derive(Debug, clap::Args, Clone)]
pub struct ReadArgs {
    /// The first line names the columns (CSV).
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    pub header: bool,
    /// The target (label) column, which is not a feature.
    #[arg(long)]
    pub target: Option<String>,
    /// Headerless CSV: leading label columns (SageMaker style).
    #[arg(long, default_value_t = 0)]
    pub label_size: usize,
    /// csv, parquet, libsvm, recordio-protobuf or jsonlines (default: from
    /// the file's extension).
    #[arg(long)]
    pub format: Option<String>,
}

impl ReadArgs {
    fn options(&self, path: &Path) -> Result<ReadOptions> {
        let format = match &self.format {
            Some(f) => DataFormat::parse(f)
                .map(crate::exec::builtin::format_of)
                .ok_or_else(|| {
                    Error::invalid(
                        Diagnostic::new(format!("unknown data format `{f}` given with --format"))
                            .help(format!("use one of: {}", DataFormat::NAMES.join(", "))),
                    )
                })?,
            None => Format::from_extension(path).unwrap_or(Format::Csv),
        };
        Ok(ReadOptions {
            format,
            header: self.header,
            target: self.target.clone(),
            label_size: self.label_size,
            ..ReadOptions::csv_with_header(None)
        })
    }

    fn read(&self, path: &Path) -> Result<Dataset> {
        read(path, &self.options(path)?).map_err(|e| Error::invalid(Diagnostic::new(e.to_string())))
    }
}

/// How to get a registered artifact that is not here, when no shared store
/// is configured (with one, its own error says what failed).
pub(crate) fn missing_artifact_help() -> String {
    match crate::store::remote::shared() {
        Ok(None) => format!("\n  help: {}", crate::registry::MISSING_ARTIFACT_HELP),
        _ => String::new(),
    }
}

/// A model given as `registry://GROUP@SELECTOR` or a directory holding `model.json`.
fn model_dir(model: &str, registry: Option<&str>) -> Result<PathBuf> {
    if model.starts_with("registry://") {
        let location = registry_location(registry)?;
        let reg = crate::registry::Registry::open_existing(location).map_err(reg_err)?;
        let v = reg.resolve_str(model).map_err(reg_err)?;
        let dir = Workspace::locate()
            .store()
            .local_path(&v.artifact_digest)
            .map_err(|e| {
                Error::failed(format!(
                    "{model} is version {}, but: {}{}",
                    v.version,
                    e.to_string().trim_start_matches("error: "),
                    missing_artifact_help()
                ))
            })?;
        return Ok(dir);
    }
    let dir = PathBuf::from(model);
    if dir.join("model.json").is_file() {
        return Ok(dir);
    }
    Err(Error::invalid(
        Diagnostic::new(format!("`{model}` is neither a registry reference nor a model directory"))
            .help("give registry://GROUP@approved, or the `model` output path that `pipeline runs show` lists"),
    ))
}

pub fn predict(
    model: &str,
    data: &Path,
    out: &Path,
    read_args: &ReadArgs,
    registry: Option<&str>,
) -> Result<i32> {
    let dir = model_dir(model, registry)?;
    let m = builtins::algorithm::load(&dir).map_err(|e| Error::failed(e.to_string()))?;
    let ds = read_args.read(data)?;
    let preds = m.predict(&ds).map_err(|e| {
        if e.is_invalid_input() {
            Error::invalid(Diagnostic::new(e.to_string()))
        } else {
            Error::failed(e.to_string())
        }
    })?;
    crate::exec::builtin::write_predictions(out, &preds, &[])
        .map_err(|e| Error::failed(e.message))?;
    eprintln!(
        "wrote {} predictions ({}) to {}",
        preds.n_rows,
        preds.column_names.join(", "),
        out.display()
    );
    Ok(0)
}

pub fn inspect(file: &Path, read_args: &ReadArgs, json: bool) -> Result<i32> {
    let t = std::time::Instant::now();
    let ds = read_args.read(file)?;
    let read_s = t.elapsed().as_secs_f64();
    let target = ds.target().map(|c| c.name.clone());
    let cols: Vec<serde_json::Value> = ds
        .columns()
        .iter()
        .map(|c| {
            let missing = c.values.iter().filter(|v| v.is_nan()).count();
            let present = c.values.iter().filter(|v| !v.is_nan());
            let (mut lo, mut hi, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
            for v in present {
                let v = f64::from(*v);
                lo = lo.min(v);
                hi = hi.max(v);
                sum += v;
                n += 1;
            }
            let mut o = serde_json::json!({"name": c.name, "missing": missing, "target": Some(&c.name) == target.as_ref()});
            match &c.kind {
                ColumnKind::Numeric => {
                    o["kind"] = "numeric".into();
                    if n > 0 {
                        o["min"] = lo.into();
                        o["max"] = hi.into();
                        o["mean"] = (sum / n as f64).into();
                    }
                }
                ColumnKind::Categorical { levels } => {
                    o["kind"] = "categorical".into();
                    o["levels"] = levels.len().into();
                    o["examples"] = levels.iter().take(5).cloned().collect::<Vec<_>>().into();
                }
            }
            o
        })
        .collect();
    if json {
        let v = serde_json::json!({"file": file, "rows": ds.n_rows(), "columns": cols, "read_s": read_s});
        outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(0);
    }
    outln!(
        "{}: {} rows, {} columns (read in {read_s:.3}s)",
        file.display(),
        ds.n_rows(),
        ds.columns().len()
    );
    for c in &cols {
        let name = c["name"].as_str().unwrap_or_default();
        let tag = if c["target"].as_bool() == Some(true) {
            " (target)"
        } else {
            ""
        };
        let detail = if c["kind"] == "numeric" {
            let f = |k: &str| {
                c[k].as_f64()
                    .map_or("-".to_string(), |v| format!("{}", v as f32))
            };
            format!("min {} max {} mean {}", f("min"), f("max"), f("mean"))
        } else {
            format!("{} levels, e.g. {}", c["levels"], c["examples"])
        };
        outln!(
            "  {name}{tag}: {}  {detail}  missing {}",
            c["kind"].as_str().unwrap_or_default(),
            c["missing"]
        );
    }
    Ok(0)
}
