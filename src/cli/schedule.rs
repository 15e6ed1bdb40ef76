//! `pipeline schedule FILE...`: runs pipelines on their cron schedules.
//!
//! Each firing runs `pipeline run FILE` as a child process, so a run behaves
//! exactly as one started by hand (records, cache, exit codes). With
//! `only_if_inputs_changed: true` a firing is skipped when the content of
//! every input is the same as at the last successful scheduled run.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ParamArgs;
use super::plan::load_and_plan;
use crate::error::{Error, Result};
use crate::schedule::cron::Timing;
use crate::spec::model::Schedule;
use crate::spec::source::Diagnostic;
use crate::store::{Workspace, write_atomic};

struct Entry {
    file: PathBuf,
    name: String,
    timing: Timing,
    next: jiff::Zoned,
}

/// The combined digest of every input of the pipeline in `file`.
fn inputs_digest(file: &Path, params: &ParamArgs) -> Result<String> {
    let (loaded, _) = load_and_plan(file, params, None)?;
    let mut h = blake3::Hasher::new();
    let ws = crate::store::Workspace::locate();
    let db = if loaded
        .pipeline
        .inputs
        .values()
        .any(|d| d.remote().is_some())
    {
        ws.create_dirs()?;
        Some(crate::runs::RunsDb::open(&ws.db_path())?)
    } else {
        None
    };
    for (name, def) in &loaded.pipeline.inputs {
        let d = match &db {
            Some(db) => crate::schedule::inputs::input_digest(db, &ws, def)?,
            None => crate::store::digest_path(&def.resolved)
                .map_err(|e| Error::io("hash the input", &def.resolved, e))?,
        };
        h.update(format!("{name}={d}\n").as_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

/// A pipeline's name, schedule and timing; invalid input when it has no schedule.
fn scheduled(file: &Path, params: &ParamArgs) -> Result<(String, Schedule, Timing)> {
    let (loaded, _) = load_and_plan(file, params, None)?;
    let Some(s) = loaded.pipeline.schedule.clone() else {
        return Err(Error::invalid(
            Diagnostic::in_file(
                &loaded.source,
                format!("pipeline `{}` has no `schedule:`", loaded.pipeline.name),
            )
            .help("add `schedule: {cron: \"0 3 * * 1\", timezone: Europe/Berlin}`"),
        ));
    };
    let timing = Timing::new(&s.cron, s.timezone.as_deref())
        .map_err(|e| Error::invalid(Diagnostic::in_file(&loaded.source, e)))?;
    Ok((loaded.pipeline.name.clone(), s, timing))
}

/// `schedule --preview FILE`: the next firing times, one a line, RFC 3339
/// with the UTC offset first.
pub fn preview(
    files: &[PathBuf],
    params: &ParamArgs,
    count: usize,
    from: Option<&str>,
) -> Result<i32> {
    let [file] = files else {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "--preview shows one pipeline's schedule, and {} files were given",
                files.len()
            ))
            .help("give one pipeline file"),
        ));
    };
    let from = match from {
        None => jiff::Timestamp::now(),
        Some(t) => t.parse::<jiff::Timestamp>().map_err(|e| {
            Error::invalid(
                Diagnostic::new(format!("--from `{t}` is not an RFC 3339 time: {e}"))
                    .help("write e.g. 2026-03-28T12:00:00Z or 2026-03-28T13:00:00+01:00"),
            )
        })?,
    };
    let (_, s, timing) = scheduled(file, params)?;
    let tz = s.timezone.as_deref().unwrap_or("UTC");
    for z in timing.preview(from, count) {
        outln!("{}  {tz}", crate::schedule::cron::rfc3339(&z));
    }
    Ok(0)
}

pub fn schedule(files: &[PathBuf], params: &ParamArgs, max_runs: Option<usize>) -> Result<i32> {
    let mut entries = Vec::new();
    for f in files {
        let (name, s, timing) = scheduled(f, params)?;
        let next = timing
            .next_after(&jiff::Timestamp::now())
            .ok_or_else(|| Error::failed(format!("`{}` never fires", s.cron.join("`, `"))))?;
        eprintln!("schedule: {} ({}) next at {next}", name, f.display());
        entries.push(Entry {
            file: f.clone(),
            name: name.clone(),
            timing,
            next,
        });
    }
    let ws = Workspace::locate();
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed(format!("find the pipeline program: {e}")))?;
    let mut fired = 0usize;
    loop {
        let Some(i) = (0..entries.len()).min_by_key(|&i| entries[i].next.timestamp()) else {
            return Ok(0);
        };
        let wait = entries[i]
            .next
            .timestamp()
            .duration_since(jiff::Timestamp::now());
        if wait.is_positive() {
            std::thread::sleep(std::time::Duration::try_from(wait).unwrap_or_default());
        }
        let e = &entries[i];
        let state_path = ws.root.join("schedule").join(format!("{}.inputs", e.name));
        // Re-read the file at each firing: it may have changed since.
        let only_if_changed = load_and_plan(&e.file, params, None)
            .ok()
            .and_then(|(l, _)| l.pipeline.schedule.map(|s| s.only_if_inputs_changed))
            .unwrap_or(false);
        let digest = if only_if_changed {
            inputs_digest(&e.file, params).ok()
        } else {
            None
        };
        let unchanged = digest
            .as_ref()
            .is_some_and(|d| std::fs::read_to_string(&state_path).is_ok_and(|old| old.trim() == d));
        if unchanged {
            eprintln!(
                "schedule: {}: inputs unchanged since the last scheduled run; skipped",
                e.name
            );
        } else {
            eprintln!("schedule: {}: running {}", e.name, e.file.display());
            let mut cmd = Command::new(&exe);
            cmd.arg("run").arg(&e.file);
            for p in &params.params {
                cmd.arg("--param").arg(p);
            }
            match cmd.status() {
                Ok(s) if s.success() => {
                    if let Some(d) = &digest {
                        if let Some(dir) = state_path.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let _ = write_atomic(&state_path, d.as_bytes());
                    }
                }
                Ok(s) => eprintln!(
                    "schedule: {}: the run failed ({s}); the schedule goes on",
                    e.name
                ),
                Err(err) => eprintln!("schedule: {}: cannot start the run: {err}", e.name),
            }
        }
        fired += 1;
        if max_runs.is_some_and(|m| fired >= m) {
            return Ok(0);
        }
        let e = &mut entries[i];
        match e
            .timing
            .next_after(&jiff::Timestamp::now().max(e.next.timestamp()))
        {
            Some(n) => {
                eprintln!("schedule: {} next at {n}", e.name);
                e.next = n;
            }
            None => {
                entries.remove(i);
            }
        }
    }
}
