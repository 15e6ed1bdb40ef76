//! `runs list`, `runs show` and `logs`.

use super::run::find_run;
use crate::error::{Error, Result};
use crate::runs::{RunRecord, RunStatus, RunsDb, live_status};
use crate::schedule::RunSummary;
use crate::spec::source::Diagnostic;
use crate::store::Workspace;

pub(super) fn open() -> Result<(Workspace, RunsDb)> {
    let ws = Workspace::locate();
    if !ws.db_path().exists() {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "no runs here yet ({} does not exist)",
                ws.root.display()
            ))
            .help("`pipeline run FILE` starts one"),
        ));
    }
    let db = RunsDb::open(&ws.db_path())?;
    Ok((ws, db))
}

/// The run as it is now: one recorded as running whose engine is gone is interrupted.
fn live(ws: &Workspace, mut r: RunRecord) -> RunRecord {
    r.status = live_status(&r, &ws.run_dir(&r.id));
    r
}

pub fn list(limit: usize, json: bool) -> Result<i32> {
    let ws = Workspace::locate();
    if !ws.db_path().exists() {
        // Nothing has run here: an answer, not an error.
        if json {
            outln!("[]");
        } else {
            outln!(
                "no runs yet ({} does not exist; `pipeline run FILE` starts one)",
                ws.root.display()
            );
        }
        return Ok(0);
    }
    let db = RunsDb::open(&ws.db_path())?;
    let runs: Vec<RunRecord> = db
        .list_runs(limit)?
        .into_iter()
        .map(|r| live(&ws, r))
        .collect();
    if json {
        outln!("{}", serde_json::to_string_pretty(&runs).expect("json"));
        return Ok(0);
    }
    if runs.is_empty() {
        outln!("no runs yet");
        return Ok(0);
    }
    outln!(
        "{:<22}  {:<24}  {:<10}  {:<24}  STEPS",
        "RUN",
        "PIPELINE",
        "STATUS",
        "STARTED"
    );
    for r in runs {
        let steps = db.steps_of(&r.id)?;
        let ok = steps.iter().filter(|s| s.status.is_done()).count();
        outln!(
            "{:<22}  {:<24}  {:<10}  {:<24}  {ok}/{}",
            r.id,
            r.pipeline,
            r.status.as_str(),
            r.started_at,
            steps.len()
        );
    }
    Ok(0)
}

pub fn show(id: &str, json: bool) -> Result<i32> {
    let (ws, db) = open()?;
    let r = live(&ws, find_run(&db, id)?);
    let mut steps = db.steps_of(&r.id)?;
    if json {
        let summary = RunSummary::from_records(&r.id, r.status, &steps);
        let v = serde_json::json!({"run": r, "summary": summary});
        outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(0);
    }
    // In the order of the pipeline file.
    let order = file_order(&r);
    steps.sort_by_key(|s| {
        order
            .iter()
            .position(|o| o == &s.name)
            .unwrap_or(usize::MAX)
    });
    outln!(
        "run {}  pipeline {}  {}",
        r.id,
        r.pipeline,
        r.status.as_str()
    );
    if r.status == RunStatus::Interrupted {
        outln!(
            "  its engine (process {}) ended without finishing it; `pipeline resume {}` continues it",
            r.pid,
            r.id
        );
    }
    outln!(
        "  file {}  started {}{}",
        r.file,
        r.started_at,
        r.finished_at
            .as_ref()
            .map(|f| format!("  finished {f}"))
            .unwrap_or_default()
    );
    if !r.params.is_empty() {
        outln!(
            "  params {}",
            r.params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    for s in &steps {
        let dur = s.duration_s.map(|d| format!("{d:.2}s")).unwrap_or_default();
        let cached = if s.cached { " (cached)" } else { "" };
        let attempts = if s.attempts > 1 {
            format!(", {} attempts", s.attempts)
        } else {
            String::new()
        };
        outln!(
            "\n  {}  {}{cached}  {dur}{attempts}",
            s.name,
            s.status.as_str()
        );
        if let Some(f) = &s.failure {
            outln!("    reason: {f}");
        }
        for (name, o) in &s.outputs {
            outln!(
                "    output {name}: {}  (digest {})",
                o.path,
                &o.digest[..o.digest.len().min(16)]
            );
            let report = std::path::Path::new(&o.path).join("report.html");
            if report.is_file() {
                outln!("    report: {}", report.display());
            }
        }
        if !s.metrics.is_empty() {
            let m: Vec<String> = s.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
            outln!("    metrics: {}", m.join("  "));
        }
        let log = ws.log_path(&r.id, &s.name);
        if log.is_file() {
            outln!("    log: {}", log.display());
        }
    }
    Ok(0)
}

/// The step names of a run's pipeline file, in the order written.
fn file_order(r: &crate::runs::RunRecord) -> Vec<String> {
    crate::spec::yaml::parse(&std::sync::Arc::new(crate::spec::source::Source {
        name: r.file.clone(),
        text: r.source.clone(),
    }))
    .ok()
    .and_then(|n| match n.kind {
        crate::spec::yaml::NodeKind::Map(m) => m
            .into_iter()
            .find(|(k, _)| k.as_scalar() == Some("steps"))
            .map(|(_, v)| v),
        _ => None,
    })
    .and_then(|s| match s.kind {
        crate::spec::yaml::NodeKind::Map(m) => Some(
            m.into_iter()
                .filter_map(|(k, _)| k.as_scalar().map(str::to_string))
                .collect(),
        ),
        _ => None,
    })
    .unwrap_or_default()
}

/// Steps in the order they ran: by the time each started (or, for a step
/// settled without starting, cached or skipped, the time it was settled),
/// ties in the order of the pipeline file; steps that never ran last.
fn run_order(r: &crate::runs::RunRecord, steps: &mut [crate::runs::StepRecord]) {
    let order = file_order(r);
    let when = |s: &crate::runs::StepRecord| {
        s.started_at
            .as_deref()
            .or(s.finished_at.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    steps.sort_by_cached_key(|s| {
        let t = when(s);
        (
            t.is_none(),
            t,
            order
                .iter()
                .position(|o| o == &s.name)
                .unwrap_or(usize::MAX),
        )
    });
}

pub fn logs(id: &str, step: Option<&str>) -> Result<i32> {
    let (ws, db) = open()?;
    let r = find_run(&db, id)?;
    let mut steps = db.steps_of(&r.id)?;
    run_order(&r, &mut steps);
    let names: Vec<&str> = match step {
        Some(s) => {
            if !steps.iter().any(|x| x.name == s) {
                return Err(Error::invalid(
                    Diagnostic::new(format!("run {} has no step `{s}`", r.id))
                        .suggest(s, steps.iter().map(|x| x.name.as_str())),
                ));
            }
            vec![s]
        }
        None => steps.iter().map(|s| s.name.as_str()).collect(),
    };
    for n in names {
        let path = ws.log_path(&r.id, n);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if step.is_none() {
                    outln!("==> {n} <==");
                }
                out!("{text}");
            }
            Err(_) if step.is_none() => {}
            Err(_) => outln!("(step `{n}` wrote no log: it did not run in this run)"),
        }
    }
    Ok(0)
}

/// How often `runs watch` reads the run's records and logs.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(300);

/// What `runs watch` has shown of one step.
#[derive(Default)]
struct Watched {
    status: Option<crate::runs::StepStatus>,
    log_offset: u64,
    started: bool,
}

/// `runs watch RUN`: the run's steps and logs as its engine records them,
/// through the same display as `pipeline run`, until the run ends; exits 0
/// when it succeeded, 1 otherwise.
pub fn watch(id: &str, display: super::shell::Display) -> Result<i32> {
    use crate::runs::StepStatus;
    use crate::schedule::Event;
    use std::collections::BTreeMap;
    use std::io::{Read, Seek, SeekFrom};

    let (ws, db) = open()?;
    let r = find_run(&db, id)?;
    let mut shell = super::shell::Shell::new(display);
    let started = std::time::Instant::now();
    let steps = db.steps_of(&r.id)?;
    shell.event(&Event::RunStarted {
        run_id: r.id.clone(),
        pipeline: r.pipeline.clone(),
        steps: steps.len(),
    });
    let mut seen: BTreeMap<String, Watched> = BTreeMap::new();
    loop {
        // Read the run's state before the logs: a step that ended has all of its log by then.
        let status = live(&ws, find_run(&db, &r.id)?).status;
        let mut steps = db.steps_of(&r.id)?;
        run_order(&r, &mut steps);
        for s in &steps {
            let w = seen.entry(s.name.clone()).or_default();
            let ended = !matches!(s.status, StepStatus::Pending | StepStatus::Running);
            if w.status == Some(s.status) && (ended || s.status == StepStatus::Pending) {
                continue;
            }
            // New log lines, whole lines only while the step writes.
            let path = ws.log_path(&r.id, &s.name);
            if let Ok(mut f) = std::fs::File::open(&path)
                && f.seek(SeekFrom::Start(w.log_offset)).is_ok()
            {
                let mut buf = Vec::new();
                let _ = f.read_to_end(&mut buf);
                let keep = if ended {
                    buf.len()
                } else {
                    buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
                };
                w.log_offset += keep as u64;
                for line in String::from_utf8_lossy(&buf[..keep]).lines() {
                    if let Some(attempt) = crate::schedule::attempt_of_header(line) {
                        w.started = true;
                        shell.event(&Event::StepStarted {
                            step: s.name.clone(),
                            attempt,
                        });
                        continue;
                    }
                    shell.event(&Event::StepLog {
                        step: s.name.clone(),
                        node: None,
                        line: line.to_string(),
                        progress: false,
                    });
                }
            }
            if s.status == StepStatus::Running && !w.started {
                w.started = true;
                shell.event(&Event::StepStarted {
                    step: s.name.clone(),
                    attempt: s.attempts.max(1),
                });
            }
            if ended && w.status != Some(s.status) && s.status != StepStatus::NotRun {
                shell.event(&Event::StepFinished {
                    step: s.name.clone(),
                    status: s.status,
                    cached: s.cached,
                    duration_s: s.duration_s.unwrap_or(0.0),
                    reason: s.failure.clone(),
                });
            }
            w.status = Some(s.status);
        }
        if status != RunStatus::Running {
            let summary = RunSummary::from_records(&r.id, status, &steps);
            shell.summary(&summary, started.elapsed(), &ws);
            if status == RunStatus::Interrupted && display != super::shell::Display::Json {
                eprintln!(
                    "  = help: its engine (process {}) ended without finishing it; `pipeline resume {}` continues it",
                    r.pid, r.id
                );
            }
            return Ok(if status == RunStatus::Succeeded { 0 } else { 1 });
        }
        std::thread::sleep(WATCH_EVERY);
    }
}
