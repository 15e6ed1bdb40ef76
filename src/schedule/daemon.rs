//! `pipeline schedule FILE...`: the long-running scheduler.
//!
//! Every firing is keyed by (pipeline, scheduled time, trigger) in the run
//! database and claimed before its run starts, and a cursor per pipeline
//! says up to when every firing was dealt with; so a restart never runs a
//! firing twice and never forgets one (what was missed goes through the
//! `catch_up` policy). Each firing's run is `pipeline run FILE` as a child
//! process in its own process group, with its run id chosen beforehand and
//! recorded with the firing: a scheduler that is killed leaves its runs
//! running, and the next one adopts them (waits for a live run, resumes an
//! interrupted one). See docs/scheduling.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use jiff::{SignedDuration, Timestamp};

use super::clock::Clock;
use super::cron::{Timing, rfc3339};
use super::firing;
use crate::error::{Error, Result};
use crate::runs::schedules::{Firing, FiringStatus, TimingRecord, Trigger};
use crate::runs::{RunLock, RunStatus, RunsDb, live_status, new_run_id};
use crate::spec::model::{Concurrency, Pipeline, Schedule};
use crate::spec::source::Diagnostic;
use crate::spec::{LoadOptions, load_file};
use crate::store::Workspace;

/// The environment variable that hands a scheduled run its id.
pub const RUN_ID_ENV: &str = "PIPELINE_SCHEDULED_RUN_ID";

/// The longest the scheduler sleeps between looks (real time).
const MAX_NAP: Duration = Duration::from_millis(200);
/// How long a firing's run may take to appear after its process started.
const APPEAR_WITHIN: Duration = Duration::from_secs(15);
/// How long a cancelled run has to end before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(60);

pub struct Options {
    /// `--param K=V` for every pipeline.
    pub params: Vec<String>,
    pub max_runs: Option<usize>,
    /// Stop (as on SIGTERM) when the clock reaches this.
    pub until: Option<Timestamp>,
    pub cancel_on_exit: bool,
    pub clock: Clock,
    /// The shared store the runs use (`--store`), passed on to them.
    pub store: Option<String>,
}

/// A pipeline file loaded for scheduling.
pub struct Scheduled {
    pub pipeline: Pipeline,
    pub schedule: Schedule,
    pub timing: Option<Timing>,
}

/// Loads `file` and checks that it can be scheduled (invalid input otherwise).
pub fn load(file: &Path, params: &[String]) -> Result<Scheduled> {
    let overrides = crate::spec::params::parse_overrides(params).map_err(Error::invalid)?;
    let loaded = load_file(
        file,
        &LoadOptions {
            params: overrides,
            executor: None,
        },
    )?;
    let Some(schedule) = loaded.pipeline.schedule.clone() else {
        return Err(Error::invalid(
            Diagnostic::in_file(
                &loaded.source,
                format!("pipeline `{}` has no `schedule:`", loaded.pipeline.name),
            )
            .help("add `schedule: {cron: \"0 3 * * 1\", timezone: Europe/Berlin}`"),
        ));
    };
    let timing = if schedule.cron.is_empty() {
        None
    } else {
        Some(
            Timing::new(&schedule.cron, schedule.timezone.as_deref())
                .map_err(|e| Error::invalid(Diagnostic::in_file(&loaded.source, e)))?,
        )
    };
    Ok(Scheduled {
        pipeline: loaded.pipeline,
        schedule,
        timing,
    })
}

fn timing_record(s: &Schedule) -> TimingRecord {
    TimingRecord {
        cron: s.cron.clone(),
        timezone: s.timezone.clone(),
        on_change: s.on_change.clone(),
        suspend: s.suspend,
    }
}

/// The combined digest of `names` (every input when `None`).
fn inputs_digest(
    db: &RunsDb,
    ws: &Workspace,
    p: &Pipeline,
    names: Option<&[String]>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, def) in &p.inputs {
        if names.is_some_and(|n| !n.contains(name)) {
            continue;
        }
        out.insert(
            name.clone(),
            crate::schedule::inputs::input_digest(db, ws, def)?,
        );
    }
    Ok(out)
}

fn combined(d: &BTreeMap<String, String>) -> String {
    let mut h = blake3::Hasher::new();
    for (k, v) in d {
        h.update(format!("{k}={v}\n").as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// One scheduled pipeline while the scheduler runs.
struct Entry {
    file: PathBuf,
    name: String,
    sched: Scheduled,
    modified: Option<SystemTime>,
    /// The last load of the file failed (said once).
    broken: bool,
    next_poll: Option<Timestamp>,
    /// Caught-up firings (claimed as queued) waiting to run one after another.
    queue: std::collections::VecDeque<Firing>,
    _lock: RunLock,
}

enum Proc {
    Child(Child),
    /// A run started by an earlier scheduler, by its engine's pid.
    Adopted(u32),
    /// A firing claimed by an earlier scheduler whose run has not appeared yet.
    Awaited(Instant),
}

struct Active {
    firing: Firing,
    proc: Proc,
    log: PathBuf,
    /// Cancelled to make way for a later firing.
    replaced: bool,
    cancelled_at: Option<Instant>,
}

struct Daemon {
    ws: Workspace,
    db: RunsDb,
    opts: Options,
    exe: PathBuf,
    entries: Vec<Entry>,
    active: Vec<Active>,
    /// Firings dealt with (a run started, or skipped by a policy).
    handled: usize,
    signals: Arc<AtomicUsize>,
}

fn say(name: &str, msg: impl std::fmt::Display) {
    eprintln!("schedule: {name}: {msg}");
}

pub fn run(files: &[PathBuf], opts: Options) -> Result<i32> {
    // The scheduler's time starts now: a firing that comes due while the
    // database opens (slow on a busy disk) is its own, not one before it.
    let now = opts.clock.now();
    let ws = Workspace::locate();
    ws.create_dirs()?;
    let db = RunsDb::open(&ws.db_path())?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed(format!("find the pipeline program: {e}")))?;
    let mut entries: Vec<Entry> = Vec::new();
    for f in files {
        let sched = load(f, &opts.params)?;
        let name = sched.pipeline.name.clone();
        if let Some(other) = entries.iter().find(|e| e.name == name) {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "{} and {} are both pipeline `{name}`; a pipeline is scheduled once",
                    other.file.display(),
                    f.display()
                ))
                .help("give each pipeline a `name:` of its own"),
            ));
        }
        let lock_dir = ws.root.join("schedule").join(&name);
        let lock = match RunLock::acquire(&lock_dir)? {
            Ok(l) => l,
            Err(state) => {
                let who = match state {
                    crate::runs::LockState::Held { pid: Some(p) } => format!("process {p}"),
                    _ => "another scheduler".to_string(),
                };
                return Err(Error::failed(format!(
                    "pipeline `{name}` is already scheduled by {who} in this workspace; stop it first (SIGTERM), or schedule other pipelines here"
                )));
            }
        };
        db.register_schedule(
            &name,
            &f.display().to_string(),
            &timing_record(&sched.schedule),
            now.as_second(),
        )?;
        match &sched.timing {
            Some(t) => match t.next_after(&now) {
                Some(n) => say(&name, format!("{} next at {}", f.display(), rfc3339(&n))),
                None => say(&name, "its cron expressions never fire again"),
            },
            None => say(&name, format!("{} runs on changes only", f.display())),
        }
        let next_poll = (!sched.schedule.on_change.is_empty()).then_some(now);
        entries.push(Entry {
            modified: std::fs::metadata(f).and_then(|m| m.modified()).ok(),
            file: f.clone(),
            name,
            sched,
            broken: false,
            next_poll,
            queue: Default::default(),
            _lock: lock,
        });
    }
    let signals = Arc::new(AtomicUsize::new(0));
    {
        let mut s = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
            .map_err(|e| Error::failed(format!("listen for signals: {e}")))?;
        let n = signals.clone();
        std::thread::spawn(move || {
            for _ in s.forever() {
                n.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let mut d = Daemon {
        ws,
        db,
        opts,
        exe,
        entries,
        active: Vec::new(),
        handled: 0,
        signals,
    };
    d.adopt()?;
    d.main_loop()?;
    d.shut_down()?;
    Ok(0)
}

impl Daemon {
    /// A signal came, or the clock reached `--until`.
    fn exit_requested(&self) -> bool {
        self.signals.load(Ordering::SeqCst) > 0
            || self.opts.until.is_some_and(|u| self.opts.clock.now() >= u)
    }

    /// No more firings: exit requested, or `--max-runs` reached.
    fn stopping(&self) -> bool {
        self.exit_requested() || self.opts.max_runs.is_some_and(|m| self.handled >= m)
    }

    /// Takes over the firings an earlier scheduler left open.
    fn adopt(&mut self) -> Result<()> {
        for i in 0..self.entries.len() {
            let name = self.entries[i].name.clone();
            for f in self.db.open_firings(&name)? {
                if f.status == FiringStatus::Queued {
                    say(&name, format!("{}: still queued to catch up", f.at));
                    self.entries[i].queue.push_back(f);
                    continue;
                }
                let Some(run_id) = f.run_id.clone() else {
                    continue;
                };
                let log = self.log_path(&name, &run_id);
                say(&name, format!("{}: taking over run {run_id}", f.at));
                self.active.push(Active {
                    firing: f,
                    proc: Proc::Awaited(Instant::now()),
                    log,
                    replaced: false,
                    cancelled_at: None,
                });
            }
        }
        Ok(())
    }

    fn log_path(&self, name: &str, run_id: &str) -> PathBuf {
        self.ws
            .root
            .join("schedule")
            .join(name)
            .join("logs")
            .join(format!("{run_id}.log"))
    }

    fn main_loop(&mut self) -> Result<()> {
        let mut last_look = self.opts.clock.now();
        let tick = self.opts.clock.span_of(MAX_NAP);
        loop {
            self.reap()?;
            if self.stopping() {
                return Ok(());
            }
            let now = self.opts.clock.now();
            for i in 0..self.entries.len() {
                self.reload(i);
                self.look(i, last_look, now, tick)?;
                if self.stopping() {
                    return Ok(());
                }
            }
            last_look = now;
            let mut nap = MAX_NAP;
            for e in &self.entries {
                if let Some(t) = &e.sched.timing
                    && let Some(n) = t.next_after(&now)
                {
                    nap = nap.min(self.opts.clock.real_until(n.timestamp()));
                }
                if let Some(p) = e.next_poll {
                    nap = nap.min(self.opts.clock.real_until(p));
                }
            }
            if let Some(u) = self.opts.until {
                nap = nap.min(self.opts.clock.real_until(u));
            }
            std::thread::sleep(nap.max(Duration::from_millis(5)));
        }
    }

    /// Re-reads a pipeline file that changed; a broken file keeps the last good schedule.
    fn reload(&mut self, i: usize) {
        let e = &mut self.entries[i];
        let modified = std::fs::metadata(&e.file).and_then(|m| m.modified()).ok();
        if modified == e.modified {
            return;
        }
        e.modified = modified;
        match load(&e.file, &self.opts.params) {
            Ok(s) if s.pipeline.name == e.name => {
                if e.broken {
                    say(&e.name, format!("{} is valid again", e.file.display()));
                }
                e.broken = false;
                if s.schedule.on_change.is_empty() {
                    e.next_poll = None;
                } else if e.next_poll.is_none() {
                    e.next_poll = Some(self.opts.clock.now());
                }
                let _ = self.db.register_schedule(
                    &e.name,
                    &e.file.display().to_string(),
                    &timing_record(&s.schedule),
                    self.opts.clock.now().as_second(),
                );
                e.sched = s;
            }
            Ok(s) => {
                e.broken = true;
                say(
                    &e.name,
                    format!(
                        "{} now names pipeline `{}`; restart the scheduler to schedule it; the last schedule goes on",
                        e.file.display(),
                        s.pipeline.name
                    ),
                );
            }
            Err(err) => {
                e.broken = true;
                say(
                    &e.name,
                    format!(
                        "{} no longer loads; the last valid schedule goes on:\n{}",
                        e.file.display(),
                        err
                    ),
                );
            }
        }
    }

    /// Deals with the firings of entry `i` that came due.
    fn look(
        &mut self,
        i: usize,
        last_look: Timestamp,
        now: Timestamp,
        tick: SignedDuration,
    ) -> Result<()> {
        let name = self.entries[i].name.clone();
        let sched = self.entries[i].sched.schedule.clone();
        if sched.suspend {
            // Firings while suspended are dropped, not caught up later.
            self.db.advance_cursor(&name, now.as_second())?;
            if let Some(p) = &mut self.entries[i].next_poll {
                *p = now;
            }
            return Ok(());
        }
        if let Some(timing) = self.entries[i].sched.timing.clone() {
            let row = self.db.schedule(&name)?;
            let cursor = row
                .map(|r| Timestamp::from_second(r.cursor_unix).unwrap_or(now))
                .unwrap_or(now);
            let due = firing::due(&timing, &sched, cursor, last_look, now, tick);
            if due.missed_unlisted > 0 {
                say(
                    &name,
                    format!(
                        "{} earlier firings were missed while the scheduler was not running",
                        due.missed_unlisted
                    ),
                );
            }
            for (z, reason) in &due.missed {
                let mut f = Firing::new(&name, z, Trigger::Cron, FiringStatus::Missed);
                f.reason = Some(reason.clone());
                if self.db.claim_firing(&f)? {
                    say(&name, format!("{}: {reason}", f.at));
                }
            }
            for z in &due.run {
                if self.stopping() {
                    // The cursor stays before what did not fire.
                    self.db
                        .advance_cursor(&name, z.timestamp().as_second() - 1)?;
                    return Ok(());
                }
                let late = due.caught_up_until.is_some_and(|c| z.timestamp() <= c);
                if late && sched.concurrency != Concurrency::Allow {
                    // Caught-up firings run one after another, not over each other.
                    let f = Firing::new(&name, z, Trigger::Cron, FiringStatus::Queued);
                    if self.db.claim_firing(&f)? {
                        say(&name, format!("{}: missed; queued to catch up", f.at));
                        self.entries[i].queue.push_back(f);
                    }
                } else {
                    let f = Firing::new(&name, z, Trigger::Cron, FiringStatus::Starting);
                    self.fire(i, f, false)?;
                }
                self.db.advance_cursor(&name, z.timestamp().as_second())?;
            }
            self.db.advance_cursor(&name, now.as_second())?;
        }
        self.drain(i, now)?;
        if let Some(p) = self.entries[i].next_poll
            && now >= p
        {
            let every = SignedDuration::try_from(sched.poll_interval)
                .unwrap_or(SignedDuration::from_secs(60));
            self.entries[i].next_poll = Some(now + every);
            self.poll(i, now)?;
        }
        Ok(())
    }

    /// `on_change`: fires when the watched inputs differ from those last acted on.
    fn poll(&mut self, i: usize, now: Timestamp) -> Result<()> {
        let name = self.entries[i].name.clone();
        let watched = self.entries[i].sched.schedule.on_change.clone();
        let seen = match inputs_digest(
            &self.db,
            &self.ws,
            &self.entries[i].sched.pipeline,
            Some(&watched),
        ) {
            Ok(d) => d,
            Err(e) => {
                say(&name, format!("cannot look at its inputs: {}", e));
                return Ok(());
            }
        };
        let Some(row) = self.db.schedule(&name)? else {
            return Ok(());
        };
        let Some(before) = row.watch else {
            // The data as it is when first watched is the baseline, not a change.
            self.db.set_watch(&name, &seen)?;
            return Ok(());
        };
        if before == seen {
            return Ok(());
        }
        let concurrency = self.entries[i].sched.schedule.concurrency;
        if concurrency == Concurrency::Forbid && !self.running(&name).is_empty() {
            // The change waits until the running run ends: it is not lost.
            return Ok(());
        }
        let changed: Vec<&str> = seen
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k.as_str())
            .collect();
        say(&name, format!("inputs changed: {}", changed.join(", ")));
        let tz = self.entries[i]
            .sched
            .schedule
            .timezone
            .as_deref()
            .and_then(|t| jiff::tz::TimeZone::get(t).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let at = Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_zoned(tz);
        self.db.set_watch(&name, &seen)?;
        let f = Firing::new(&name, &at, Trigger::Change, FiringStatus::Starting);
        self.fire(i, f, false)
    }

    /// Starts the next queued (caught-up) firing once nothing else of its pipeline runs.
    fn drain(&mut self, i: usize, now: Timestamp) -> Result<()> {
        let name = self.entries[i].name.clone();
        let deadline = self.entries[i].sched.schedule.starting_deadline;
        while !self.entries[i].queue.is_empty() && self.running(&name).is_empty() {
            if self.stopping() {
                return Ok(());
            }
            let Some(mut f) = self.entries[i].queue.pop_front() else {
                break;
            };
            let at = Timestamp::from_second(f.at_unix).unwrap_or(now);
            if let Some(d) = deadline
                && now.duration_since(at)
                    > SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
            {
                f.status = FiringStatus::Missed;
                f.reason = Some(format!(
                    "missed: not started within its starting_deadline ({})",
                    crate::spec::model::duration::format(d)
                ));
                f.finished_at = Some(crate::runs::now_rfc3339());
                self.db.update_firing(&f)?;
                say(
                    &name,
                    format!("{}: {}", f.at, f.reason.as_deref().unwrap_or("")),
                );
                continue;
            }
            self.fire(i, f, true)?;
        }
        Ok(())
    }

    /// The runs of pipeline `name` still going (not being replaced).
    fn running(&self, name: &str) -> Vec<String> {
        self.active
            .iter()
            .filter(|a| a.firing.pipeline == name && !a.replaced)
            .filter_map(|a| a.firing.run_id.clone())
            .collect()
    }

    /// One firing: the concurrency and inputs policies, then the run.
    /// `claimed`: the firing's row exists (a queued one), so it is updated.
    fn fire(&mut self, i: usize, mut f: Firing, claimed: bool) -> Result<()> {
        let name = self.entries[i].name.clone();
        let sched = self.entries[i].sched.schedule.clone();
        let trigger = f.trigger;
        let running = self.running(&name);
        if !running.is_empty() {
            match sched.concurrency {
                Concurrency::Allow => {}
                Concurrency::Forbid => {
                    let reason = format!(
                        "skipped: run {} is still running (concurrency: forbid)",
                        running.join(", ")
                    );
                    return self.skip(f, claimed, reason);
                }
                Concurrency::Replace => {
                    say(
                        &name,
                        format!(
                            "{}: cancelling run {} to start a new one (concurrency: replace)",
                            f.at,
                            running.join(", ")
                        ),
                    );
                    for a in self.active.iter_mut().filter(|a| a.firing.pipeline == name) {
                        a.replaced = true;
                        cancel(a);
                    }
                    self.wait_for(|a| a.firing.pipeline == name)?;
                }
            }
        }
        // Every firing of such a schedule records its inputs, so that a cron
        // firing after a change-triggered run compares with that run's data.
        if sched.only_if_inputs_changed {
            match inputs_digest(&self.db, &self.ws, &self.entries[i].sched.pipeline, None) {
                Ok(d) => {
                    let digest = combined(&d);
                    if trigger == Trigger::Cron
                        && let Some((run, last)) = self.db.last_succeeded_inputs(&name)?
                        && last == digest
                    {
                        f.inputs = Some(digest);
                        let reason = format!(
                            "skipped: the inputs are as they were for run {run} (only_if_inputs_changed)"
                        );
                        return self.skip(f, claimed, reason);
                    }
                    f.inputs = Some(digest);
                }
                // The run itself will say what is wrong with the inputs.
                Err(e) => say(&name, format!("cannot digest the inputs: {}", e)),
            }
        }
        let run_id = new_run_id();
        f.run_id = Some(run_id.clone());
        f.status = FiringStatus::Starting;
        if !self.record(&f, claimed)? {
            return Ok(());
        }
        self.handled += 1;
        let log = self.log_path(&name, &run_id);
        let file = self.entries[i].file.clone();
        match self.spawn(&["run".as_ref(), file.as_os_str()], &run_id, &log) {
            Ok(child) => {
                f.status = FiringStatus::Running;
                self.db.update_firing(&f)?;
                say(
                    &name,
                    format!(
                        "{}: started run {run_id} ({}; log {})",
                        f.at,
                        trigger.as_str(),
                        log.display()
                    ),
                );
                self.active.push(Active {
                    firing: f,
                    proc: Proc::Child(child),
                    log,
                    replaced: false,
                    cancelled_at: None,
                });
            }
            Err(e) => {
                f.status = FiringStatus::Failed;
                f.reason = Some(format!("cannot start the run: {e}"));
                f.finished_at = Some(crate::runs::now_rfc3339());
                self.db.update_firing(&f)?;
                say(
                    &name,
                    format!("{}: {}", f.at, f.reason.as_deref().unwrap_or("")),
                );
            }
        }
        Ok(())
    }

    /// Records a firing a policy skipped; it counts towards `--max-runs`.
    fn skip(&mut self, mut f: Firing, claimed: bool, reason: String) -> Result<()> {
        f.status = FiringStatus::Skipped;
        f.finished_at = Some(crate::runs::now_rfc3339());
        f.reason = Some(reason);
        if self.record(&f, claimed)? {
            self.handled += 1;
            say(
                &f.pipeline,
                format!("{}: {}", f.at, f.reason.as_deref().unwrap_or("")),
            );
        }
        Ok(())
    }

    /// Claims the firing's row, or updates it when it was claimed (queued)
    /// before; false when someone else claimed it.
    fn record(&self, f: &Firing, claimed: bool) -> Result<bool> {
        if claimed {
            self.db.update_firing(f)?;
            Ok(true)
        } else {
            self.db.claim_firing(f)
        }
    }

    fn spawn(&self, args: &[&std::ffi::OsStr], run_id: &str, log: &Path) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(args);
        if args.first().is_some_and(|a| *a == "run") {
            for p in &self.opts.params {
                cmd.arg("--param").arg(p);
            }
            cmd.env(RUN_ID_ENV, run_id);
        }
        if let Some(s) = &self.opts.store {
            cmd.arg("--store").arg(s);
        }
        // Its own process group: Ctrl-C at the scheduler's terminal is the
        // scheduler's to handle, and a killed scheduler leaves the run going.
        cmd.env("PIPELINE_HOME", &self.ws.root)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        cmd.spawn()
    }

    /// Notices runs that ended and records their outcome.
    fn reap(&mut self) -> Result<()> {
        let mut i = 0;
        while i < self.active.len() {
            let ended = self.check(i)?;
            if ended {
                let a = self.active.swap_remove(i);
                self.finish(a)?;
            } else {
                i += 1;
            }
        }
        if self.signals.load(Ordering::SeqCst) > 1
            || self.opts.cancel_on_exit && self.exit_requested()
        {
            for a in &mut self.active {
                cancel(a);
            }
        }
        for a in &mut self.active {
            if let Some(t) = a.cancelled_at
                && t.elapsed() > CANCEL_GRACE
            {
                let pid = match &a.proc {
                    Proc::Child(c) => Some(c.id()),
                    Proc::Adopted(p) => Some(*p),
                    Proc::Awaited(_) => None,
                };
                if let Some(pid) = pid {
                    // SAFETY: a signal to a process this scheduler started or adopted.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
        Ok(())
    }

    /// Whether active run `i` has ended; adopted runs move on as their state shows.
    fn check(&mut self, i: usize) -> Result<bool> {
        let run_id = self.active[i].firing.run_id.clone().unwrap_or_default();
        match &mut self.active[i].proc {
            Proc::Child(c) => Ok(c.try_wait().map(|s| s.is_some()).unwrap_or(true)),
            Proc::Adopted(_) => {
                let Some(run) = self.db.get_run(&run_id)? else {
                    return Ok(true);
                };
                Ok(live_status(&run, &self.ws.run_dir(&run_id)) != RunStatus::Running)
            }
            Proc::Awaited(since) => {
                let since = *since;
                let name = self.active[i].firing.pipeline.clone();
                match self.db.get_run(&run_id)? {
                    Some(run) => match live_status(&run, &self.ws.run_dir(&run_id)) {
                        RunStatus::Running => {
                            self.active[i].proc = Proc::Adopted(run.pid);
                            Ok(false)
                        }
                        RunStatus::Interrupted => {
                            say(&name, format!("run {run_id} was interrupted; resuming it"));
                            let log = self.active[i].log.clone();
                            match self.spawn(&["resume".as_ref(), run_id.as_ref()], &run_id, &log) {
                                Ok(c) => {
                                    self.active[i].proc = Proc::Child(c);
                                    Ok(false)
                                }
                                Err(e) => {
                                    self.active[i].firing.reason =
                                        Some(format!("cannot resume the interrupted run: {e}"));
                                    Ok(true)
                                }
                            }
                        }
                        _ => Ok(true),
                    },
                    None if since.elapsed() < APPEAR_WITHIN => Ok(false),
                    None => {
                        // Claimed but never started: start it now, under the
                        // id recorded with it (a late twin would collide on it).
                        let Some(e) = self.entries.iter().position(|e| e.name == name) else {
                            return Ok(true);
                        };
                        let file = self.entries[e].file.clone();
                        let log = self.active[i].log.clone();
                        say(&name, format!("run {run_id} never started; starting it"));
                        match self.spawn(&["run".as_ref(), file.as_os_str()], &run_id, &log) {
                            Ok(c) => {
                                self.active[i].proc = Proc::Child(c);
                                self.active[i].firing.status = FiringStatus::Running;
                                self.db.update_firing(&self.active[i].firing)?;
                                Ok(false)
                            }
                            Err(err) => {
                                self.active[i].firing.reason =
                                    Some(format!("cannot start the run: {err}"));
                                Ok(true)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Records how an ended firing's run came out.
    fn finish(&mut self, mut a: Active) -> Result<()> {
        let run_id = a.firing.run_id.clone().unwrap_or_default();
        let status = self
            .db
            .get_run(&run_id)?
            .map(|r| live_status(&r, &self.ws.run_dir(&run_id)));
        let (st, reason) = match status {
            Some(RunStatus::Succeeded) => (FiringStatus::Succeeded, None),
            Some(RunStatus::Cancelled) if a.replaced => (
                FiringStatus::Replaced,
                Some("cancelled for a later firing (concurrency: replace)".to_string()),
            ),
            Some(RunStatus::Cancelled) => (FiringStatus::Cancelled, None),
            Some(RunStatus::Failed) => (
                FiringStatus::Failed,
                Some(format!("the run failed; see `pipeline runs show {run_id}`")),
            ),
            Some(RunStatus::Interrupted) | Some(RunStatus::Running) => (
                FiringStatus::Failed,
                Some(format!(
                    "the run's engine ended without finishing it; `pipeline resume {run_id}` continues it"
                )),
            ),
            None => (
                FiringStatus::Failed,
                Some(a.firing.reason.clone().unwrap_or_else(|| {
                    format!(
                        "the run did not start (the pipeline file may be invalid); see {}",
                        a.log.display()
                    )
                })),
            ),
        };
        a.firing.status = st;
        a.firing.reason = reason;
        a.firing.finished_at = Some(crate::runs::now_rfc3339());
        self.db.update_firing(&a.firing)?;
        say(
            &a.firing.pipeline,
            format!(
                "{}: run {run_id} {}{}",
                a.firing.at,
                st.as_str(),
                a.firing
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        );
        Ok(())
    }

    /// Waits until no active run matches `which` (bounded by the cancel grace).
    fn wait_for(&mut self, which: impl Fn(&Active) -> bool) -> Result<()> {
        while self.active.iter().any(&which) {
            self.reap()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// On SIGTERM, `--until` or `--max-runs`: let running runs finish (or
    /// cancel them with `--cancel-on-exit`, or on a second signal).
    fn shut_down(&mut self) -> Result<()> {
        if !self.active.is_empty() {
            eprintln!(
                "schedule: stopping; {} {} {}",
                self.active.len(),
                if self.active.len() == 1 {
                    "run"
                } else {
                    "runs"
                },
                if self.opts.cancel_on_exit {
                    "cancelled"
                } else {
                    "allowed to finish (a second Ctrl-C or SIGTERM cancels)"
                }
            );
        }
        self.wait_for(|_| true)?;
        eprintln!("schedule: stopped");
        Ok(())
    }
}

/// Asks an active run to stop as Ctrl-C would (once).
fn cancel(a: &mut Active) {
    if a.cancelled_at.is_some() {
        return;
    }
    let pid = match &a.proc {
        Proc::Child(c) => c.id(),
        Proc::Adopted(p) => *p,
        Proc::Awaited(_) => return,
    };
    a.cancelled_at = Some(Instant::now());
    // SAFETY: a signal to a process this scheduler started or adopted.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
}
