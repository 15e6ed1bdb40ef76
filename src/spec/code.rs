//! A user step's own code, with SageMaker's names: `source_dir` (a
//! directory beside the pipeline, copied to `/opt/ml/code`) and
//! `entry_point` (the script in it that runs; `SAGEMAKER_PROGRAM`).
//!
//! Three ways to use them, as on SageMaker:
//! - with `image:`, the image's own `train` (a framework image's training
//!   toolkit) finds the script through `SAGEMAKER_PROGRAM` and
//!   `SAGEMAKER_SUBMIT_DIRECTORY`;
//! - with `run:`, the command runs (the toolkit's `train` installed
//!   locally, say) and the same variables say where the script is;
//! - with neither, the engine starts the script itself as the toolkit does:
//!   in the code directory, `python3 SCRIPT --name value ...` for a `.py`
//!   file, `/bin/sh SCRIPT ...` for a `.sh` file, else the file itself.
//!
//! The directory's content is part of the step's cache key (`dag/cache.rs`).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::decode::{Ctx, DResult, Fields};
use super::model::MetricDefinition;
use super::source::{Diagnostic, Spanned};

/// `source_dir` and `entry_point`, as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Code {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dir: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Spanned<String>>,
}

/// The keys of a step that may carry code.
pub const KEYS: &[&str] = &["source_dir", "entry_point"];

impl Code {
    pub fn is_empty(&self) -> bool {
        self.source_dir.is_none() && self.entry_point.is_none()
    }

    /// What is copied to the code directory, resolved against the
    /// pipeline's directory: the source directory, or the entry point's
    /// file alone when there is no directory and no image (an entry point
    /// given alone with `image:` is the image's own script).
    pub fn source(&self, base_dir: &Path, with_image: bool) -> Option<PathBuf> {
        match (&self.source_dir, &self.entry_point) {
            (Some(d), _) => Some(base_dir.join(&d.value)),
            (None, Some(e)) if !with_image => Some(base_dir.join(&e.value)),
            _ => None,
        }
    }

    /// The entry point's name inside the code directory.
    pub fn program(&self) -> Option<&str> {
        let e = self.entry_point.as_ref()?;
        Some(match &self.source_dir {
            Some(_) => e.value.as_str(),
            // A file given alone is copied into the code directory by its name.
            None => Path::new(&e.value)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(&e.value),
        })
    }

    /// The command that starts the entry point as the training toolkit
    /// starts it, run from inside the code directory.
    pub fn command(&self, args: Vec<String>) -> Option<Vec<String>> {
        let program = self.program()?;
        let mut argv = if program.ends_with(".py") {
            vec!["python3".to_string(), program.to_string()]
        } else if program.ends_with(".sh") {
            vec!["/bin/sh".to_string(), program.to_string()]
        } else {
            vec![format!("./{program}")]
        };
        argv.extend(args);
        Some(argv)
    }
}

/// Reads `source_dir` and `entry_point` (`program` is the older name of
/// `entry_point` on train steps and still read).
pub fn decode(ctx: &Ctx, f: &Fields) -> DResult<Code> {
    let source_dir = f
        .get("source_dir")
        .map(|n| ctx.string(n, "source_dir"))
        .transpose()?;
    let entry_point = f
        .get("entry_point")
        .map(|n| ctx.string(n, "entry_point"))
        .transpose()?;
    let program = f
        .get("program")
        .map(|n| ctx.string(n, "program"))
        .transpose()?;
    let entry_point = match (entry_point, program) {
        (Some(_), Some(p)) => {
            return Err(Diagnostic::at(
                &ctx.source,
                p.span,
                "`program` and `entry_point` name the same thing; give one",
            )
            .help("keep `entry_point` (SageMaker's name)"));
        }
        (e, p) => e.or(p),
    };
    if let (Some(d), None) = (&source_dir, &entry_point) {
        return Err(Diagnostic::at(
            &ctx.source,
            d.span,
            "`source_dir` needs `entry_point`: the script in it that runs",
        )
        .help("add e.g. `entry_point: train.py`"));
    }
    for s in [&source_dir, &entry_point].into_iter().flatten() {
        if s.value.is_empty() {
            return Err(Diagnostic::at(&ctx.source, s.span, "the path is empty")
                .help("give a path relative to the pipeline's directory"));
        }
    }
    if let (Some(_), Some(e)) = (&source_dir, &entry_point) {
        let p = Path::new(&e.value);
        if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return Err(Diagnostic::at(
                &ctx.source,
                e.span,
                format!("`{}` is not inside `source_dir`", e.value),
            )
            .help("give the entry point's path relative to `source_dir`, e.g. `train.py` or `bin/train.sh`"));
        }
    }
    Ok(Code {
        source_dir,
        entry_point,
    })
}

/// Checks that the code a step names exists, before anything runs.
pub fn check_exists(ctx: &Ctx, code: &Code, base_dir: &Path, with_image: bool) -> DResult<()> {
    if let Some(d) = &code.source_dir {
        let dir = base_dir.join(&d.value);
        if !dir.is_dir() {
            let what = if dir.exists() {
                "it is a file"
            } else {
                "nothing is there"
            };
            return Err(Diagnostic::at(
                &ctx.source,
                d.span,
                format!("`source_dir` `{}` is not a directory ({what})", d.value),
            )
            .help("give a directory relative to the pipeline's directory"));
        }
        if let Some(e) = &code.entry_point
            && !dir.join(&e.value).is_file()
        {
            return Err(Diagnostic::at(
                &ctx.source,
                e.span,
                format!(
                    "the entry point `{}` is not a file in `{}`",
                    e.value, d.value
                ),
            )
            .help("give the script's path relative to `source_dir`"));
        }
    } else if let (Some(e), false) = (&code.entry_point, with_image)
        && !base_dir.join(&e.value).is_file()
    {
        return Err(Diagnostic::at(
            &ctx.source,
            e.span,
            format!("the entry point `{}` is not a file", e.value),
        )
        .help("give the script's path relative to the pipeline's directory, or `source_dir` with the directory it is in"));
    }
    Ok(())
}

/// `metric_definitions: [{name, regex}]`, SageMaker's way of reading
/// metrics from a training log: each regex must compile and capture the
/// value in its first group; names are unique.
pub fn decode_metric_definitions(ctx: &Ctx, f: &Fields) -> DResult<Vec<MetricDefinition>> {
    let Some(node) = f.get("metric_definitions") else {
        return Ok(vec![]);
    };
    let mut out: Vec<MetricDefinition> = Vec::new();
    for item in ctx.seq(node, "metric_definitions")? {
        let d = ctx.fields(item, "a metric definition", &["name", "regex"])?;
        let name = ctx.string(d.req(ctx, "name")?, "name")?;
        if out.iter().any(|m| m.name == name.value) {
            return Err(Diagnostic::at(
                &ctx.source,
                name.span,
                format!("the metric `{}` is defined twice", name.value),
            ));
        }
        // Without a regex the metric is read from the metrics file.
        let Some(regex_node) = d.get("regex") else {
            out.push(MetricDefinition {
                name: name.value,
                regex: None,
            });
            continue;
        };
        let regex = ctx.string(regex_node, "regex")?;
        match regex::Regex::new(&regex.value) {
            Err(e) => {
                return Err(Diagnostic::at(
                    &ctx.source,
                    regex.span,
                    format!("cannot read the regex of metric `{}`", name.value),
                )
                .label(e.to_string().lines().last().unwrap_or("").trim().to_string())
                .help("write a regular expression (Rust's `regex` syntax, as SageMaker's), e.g. 'validation-auc:([0-9.]+)'"));
            }
            Ok(r) if r.captures_len() < 2 => {
                return Err(Diagnostic::at(
                    &ctx.source,
                    regex.span,
                    format!("the regex of metric `{}` captures nothing", name.value),
                )
                .help("put the value in a group: 'loss=([0-9.eE+-]+)'"));
            }
            Ok(_) => {}
        }
        out.push(MetricDefinition {
            name: name.value,
            regex: Some(regex.value),
        });
    }
    Ok(out)
}
