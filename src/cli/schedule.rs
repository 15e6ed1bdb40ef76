//! `pipeline schedule`: the scheduler (`schedule::daemon`), `--preview` and `status`.

use std::path::PathBuf;

use super::{ParamArgs, ScheduleArgs};
use crate::error::{Error, Result};
use crate::runs::schedules::ScheduleRow;
use crate::runs::{LockState, RunLock, RunsDb, live_status};
use crate::schedule::clock::Clock;
use crate::schedule::cron::{Timing, rfc3339};
use crate::schedule::daemon;
use crate::spec::source::Diagnostic;
use crate::store::Workspace;

fn time_arg(flag: &str, t: &str) -> Result<jiff::Timestamp> {
    t.parse::<jiff::Timestamp>().map_err(|e| {
        Error::invalid(
            Diagnostic::new(format!("{flag} `{t}` is not an RFC 3339 time: {e}"))
                .help("write e.g. 2026-03-28T12:00:00Z or 2026-03-28T13:00:00+01:00"),
        )
    })
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
        Some(t) => time_arg("--from", t)?,
    };
    let s = daemon::load(file, &params.params)?;
    let tz = s.schedule.timezone.as_deref().unwrap_or("UTC");
    if let Some(timing) = &s.timing {
        for z in timing.preview(from, count) {
            outln!("{}  {tz}", rfc3339(&z));
        }
    }
    if !s.schedule.on_change.is_empty() {
        eprintln!(
            "also runs when {} change (looked at every {})",
            s.schedule
                .on_change
                .iter()
                .map(|n| format!("inputs.{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::spec::model::duration::format(s.schedule.poll_interval)
        );
    }
    Ok(0)
}

pub fn schedule(a: &ScheduleArgs, store: Option<String>) -> Result<i32> {
    let now = a.now.as_deref().map(|t| time_arg("--now", t)).transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|t| time_arg("--until", t))
        .transpose()?;
    if let Some(r) = a.clock_rate
        && !(r.is_finite() && r > 0.0 && r <= 1.0e6)
    {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "--clock-rate {r} is not a rate the clock can run at"
            ))
            .help("give a number above 0 and at most 1000000 (1 is real time)"),
        ));
    }
    daemon::run(
        &a.files,
        daemon::Options {
            params: a.params.params.clone(),
            max_runs: a.max_runs,
            until,
            cancel_on_exit: a.cancel_on_exit,
            clock: Clock::new(now, a.clock_rate),
            store,
        },
    )
}

/// One schedule as `schedule status` shows it.
#[derive(serde::Serialize)]
pub struct StatusLine {
    pub pipeline: String,
    pub file: String,
    /// `running (pid N)` while a scheduler holds it, else `stopped`.
    pub scheduler: String,
    pub suspended: bool,
    pub last_firing: Option<crate::runs::schedules::Firing>,
    /// The last firing's run's status as it is now.
    pub run_status: Option<String>,
    pub next_firing: Option<String>,
    pub on_change: Vec<String>,
    pub recent: Vec<crate::runs::schedules::Firing>,
}

fn status_line(
    db: &RunsDb,
    ws: &Workspace,
    row: ScheduleRow,
    now: jiff::Timestamp,
) -> Result<StatusLine> {
    let scheduler = match RunLock::state(&ws.root.join("schedule").join(&row.pipeline)) {
        LockState::Held { pid: Some(p) } => format!("running (pid {p})"),
        LockState::Held { pid: None } => "running".to_string(),
        _ => "stopped".to_string(),
    };
    let recent = db.firings(&row.pipeline, 10)?;
    let last = recent.first().cloned();
    let run_status = match last.as_ref().and_then(|f| f.run_id.as_deref()) {
        Some(id) => db
            .get_run(id)?
            .map(|r| live_status(&r, &ws.run_dir(id)).as_str().to_string()),
        None => None,
    };
    let next_firing = if row.timing.suspend || row.timing.cron.is_empty() {
        None
    } else {
        Timing::new(&row.timing.cron, row.timing.timezone.as_deref())
            .ok()
            .and_then(|t| t.next_after(&now))
            .map(|z| rfc3339(&z))
    };
    Ok(StatusLine {
        pipeline: row.pipeline,
        file: row.file,
        scheduler,
        suspended: row.timing.suspend,
        last_firing: last,
        run_status,
        next_firing,
        on_change: row.timing.on_change,
        recent,
    })
}

/// Every pipeline ever scheduled in `ws`, as it stands at `now`.
pub fn status_lines(ws: &Workspace, now: jiff::Timestamp) -> Result<Vec<StatusLine>> {
    if !ws.db_path().exists() {
        return Ok(vec![]);
    }
    let db = RunsDb::open(&ws.db_path())?;
    db.schedules()?
        .into_iter()
        .map(|row| status_line(&db, ws, row, now))
        .collect()
}

/// `schedule status`: every pipeline ever scheduled in this workspace.
pub fn status(json: bool, now: Option<&str>) -> Result<i32> {
    let now = match now {
        Some(t) => time_arg("--now", t)?,
        None => jiff::Timestamp::now(),
    };
    let lines = status_lines(&Workspace::locate(), now)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string(&lines).expect("status serializes")
        );
        return Ok(0);
    }
    if lines.is_empty() {
        eprintln!(
            "no pipeline has been scheduled in this workspace; start one with `pipeline schedule FILE`"
        );
        return Ok(0);
    }
    for l in &lines {
        outln!("{}  ({}; scheduler {})", l.pipeline, l.file, l.scheduler);
        match &l.last_firing {
            Some(f) => {
                let mut s = format!(
                    "  last  {}  {}  {}",
                    f.at,
                    f.trigger.as_str(),
                    f.status.as_str()
                );
                if let Some(id) = &f.run_id {
                    s.push_str(&format!("  run {id}"));
                    if let Some(st) = &l.run_status {
                        s.push_str(&format!(" ({st})"));
                    }
                }
                outln!("{s}");
                if let Some(r) = &f.reason {
                    outln!("        {r}");
                }
            }
            None => outln!("  last  (none yet)"),
        }
        if l.suspended {
            outln!("  next  suspended (`suspend: true`)");
        } else {
            if let Some(n) = &l.next_firing {
                outln!("  next  {n}");
            }
            if !l.on_change.is_empty() {
                outln!(
                    "  on change of {}",
                    l.on_change
                        .iter()
                        .map(|n| format!("inputs.{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    Ok(0)
}
