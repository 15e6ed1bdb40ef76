//! Schedule: runs a plan's steps, as many at once as allowed, in dependency order.
//!
//! The dispatcher here owns all run state: which steps are ready, running,
//! done; their outputs and metrics; the run record. Backends only run
//! attempts and report outcomes. For each ready step it decides, in order:
//! already done in the run being resumed; skipped (`when:` false, or an input
//! comes from a skipped step); cached (same key, outputs still stored); or
//! run. A failure stops the run: the other running steps are stopped
//! cleanly, nothing new starts (fail-fast). Ctrl-C does the same and marks
//! the run cancelled. Every change is recorded as it happens.

pub mod automl;
pub mod clock;
pub mod cron;
pub mod daemon;
pub mod firing;
pub mod guard;
pub mod inputs;
pub mod train_metrics;
pub mod tune;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::dag::cache::{ChannelIdentity, KeyParts};
use crate::dag::{EdgeKind, Plan, ReadyQueue};
use crate::error::{Error, Result};
use crate::exec::contract::{self, Channel, Layout};
use crate::exec::{Backend, FailureKind, Outcome, StepJob};
use crate::runs::{
    CacheEntry, OutputRecord, RunStatus, RunsDb, StepRecord, StepStatus, now_rfc3339, now_unix,
};
use crate::spec::expr::Value;
use crate::spec::model::{
    CachePolicy, Distribution, Executor, InputMode, RefTarget, Step, StepKind,
};
use crate::spec::source::Diagnostic;
use crate::spec::template;
use crate::store::{self, Workspace};

/// What the scheduler tells the outside world (the terminal, `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        steps: usize,
    },
    StepStarted {
        step: String,
        attempt: u32,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        reason: String,
        backoff_s: f64,
    },
    /// A line a step printed (`node` on multi-node steps).
    StepLog {
        step: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        line: String,
        /// A progress segment (ended by a lone `\r`): it replaces the step's
        /// previous one and is not kept in the log.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        progress: bool,
    },
    StepFinished {
        step: String,
        status: StepStatus,
        cached: bool,
        duration_s: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The line that starts each attempt's part of a step's log.
pub fn attempt_header(attempt: u32, step: &str) -> String {
    format!("--- attempt {attempt} of step {step} ---")
}

/// The attempt a log line starts, when it is an [`attempt_header`].
pub fn attempt_of_header(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("--- attempt ")?.strip_suffix(" ---")?;
    let (n, _step) = rest.split_once(" of step ")?;
    n.parse().ok()
}

/// Whether a step's results go to and come from the shared cache: not a
/// register step's, whose effect is on this workspace's registry.
pub fn shares_cache(step: &Step) -> bool {
    !matches!(step.kind, StepKind::Register(_))
}

/// The run summary: the last line of `--json`, and what `runs show --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub status: RunStatus,
    pub steps: BTreeMap<String, StepSummary>,
    /// The engine found a step's input invalid before it could run (exit 2).
    #[serde(skip)]
    pub invalid_input: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    pub status: StepStatus,
    pub cached: bool,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub outputs: BTreeMap<String, OutputRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl RunSummary {
    pub fn from_records(run_id: &str, status: RunStatus, records: &[StepRecord]) -> Self {
        let steps = records
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    StepSummary {
                        status: r.status,
                        cached: r.cached,
                        duration_s: r.duration_s.unwrap_or(0.0),
                        metrics: r.metrics.clone(),
                        outputs: r.outputs.clone(),
                        failure: r.failure.clone(),
                        exit_code: r.exit_code,
                    },
                )
            })
            .collect();
        RunSummary {
            run_id: run_id.to_string(),
            status,
            steps,
            invalid_input: false,
        }
    }
}

/// Everything one run needs.
pub struct Run {
    pub ws: Workspace,
    pub db: RunsDb,
    pub run_id: String,
    pub plan: Arc<Plan>,
    pub jobs: usize,
    pub no_cache: bool,
    pub backend: Arc<dyn Backend>,
    /// Records of the run being resumed: steps done there are not run again.
    pub previous: BTreeMap<String, StepRecord>,
    /// The model registry database `registry://` references and register steps use.
    /// The registry `registry://` inputs resolve in and register steps write to.
    pub registry: crate::registry::Location,
    /// Steps' output lines, as they come (set while the run executes).
    pub log_tx: Option<crate::exec::LogSink>,
    /// The Docker Engine's image ID for each user image a docker step names
    /// (looked up when the run starts; `None`: not on the engine).
    pub image_ids: BTreeMap<String, Option<String>>,
    /// `registry://` references (by their text) held to one version: a
    /// reproduction resolves them as the run it reproduces did.
    pub registry_pins: BTreeMap<String, u32>,
    /// Each pipeline input's digest as the run's lock recorded it when the
    /// run started: a step that would read other data fails instead, so a
    /// run reads what its lock says.
    pub locked_inputs: BTreeMap<String, String>,
}

/// Where a step's root is in a container.
pub const CONTAINER_ROOT: &str = "/opt/ml";

/// Each node's view of the channels: `sharded_by_key` channels get a
/// contiguous share of their files a node; the others are seen whole.
fn shard_channels(channels: &[Channel], nodes: usize) -> Result<Vec<Vec<Channel>>> {
    let mut out = vec![Vec::with_capacity(channels.len()); nodes];
    for c in channels {
        // A stream's parts are shared out by the layout ([`contract::shard_of`]).
        if nodes == 1 || c.distribution == Distribution::FullyReplicated || c.stream.is_some() {
            for node in &mut out {
                node.push(c.clone());
            }
            continue;
        }
        let files = contract::channel_files(&c.source)?;
        if files.len() < nodes {
            return Err(Error::invalid(Diagnostic::new(format!(
                "channel `{}` is `sharded_by_key` over {nodes} nodes but has {} file{} ({}): every node needs at least one",
                c.name,
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                c.source.display()
            )).help("give the channel a directory of at least as many part files as nodes, or use `distribution: fully_replicated`")));
        }
        for (i, node) in out.iter_mut().enumerate() {
            let mut mine = c.clone();
            mine.shard = Some(contract::shard_of(&files, i, nodes));
            node.push(mine);
        }
    }
    Ok(out)
}

/// The outcome of one attempt, back at the dispatcher.
struct Finished {
    step: usize,
    attempt: u32,
    outcome: Outcome,
    /// The attempt changed one of its inputs: why (the step fails, whatever its outcome).
    input_changed: Option<String>,
    /// A successful attempt's outputs, stored (locally, and in a shared
    /// store when there is one) on a blocking thread, not the scheduler's.
    stored: Option<Result<StoredOutputs>>,
}

/// What storing a step's outputs gave: each output's record, and its metrics.
type StoredOutputs = (
    BTreeMap<String, OutputRecord>,
    BTreeMap<String, serde_json::Value>,
);

/// Moves a finished step's outputs from its work directory into the store.
fn store_outputs(
    store: &store::Store,
    root: &std::path::Path,
    names: &[String],
    train: Option<&train_metrics::Sources>,
) -> Result<StoredOutputs> {
    let mut outputs = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    if let Some(t) = train {
        if t.builtin_model {
            metrics.extend(train_metrics::of_builtin(root));
        }
        metrics.extend(train_metrics::of_log(&t.log, &t.definitions)?);
        metrics.extend(train_metrics::of_file(root, &t.definitions)?);
    }
    for o in names {
        let dir = contract::output_dir(root, o);
        if !dir.is_dir() {
            return Err(Error::failed(format!(
                "the step finished but its output `{o}` is missing ({})",
                dir.display()
            )));
        }
        if o == "metrics" {
            metrics = read_metrics(&dir.join("metrics.json"))?;
        }
        let (digest, path) = store.ingest_dir(&dir).map_err(|e| match e {
            Error::Failed(m) => Error::failed(format!("store its output `{o}`: {m}")),
            e => e,
        })?;
        outputs.insert(
            o.clone(),
            OutputRecord {
                path: path.display().to_string(),
                digest,
            },
        );
    }
    Ok((outputs, metrics))
}

/// What to do with a ready step.
enum Decision {
    /// Finished without running (done before, cached or skipped).
    Settled,
    Launch(Box<JobSpec>),
}

/// Steps being laid out, in the order they were decided.
type LayingOut = VecDeque<(usize, JoinHandle<Result<StepJob>>)>;

/// The job a layout task built.
fn built_job(
    joined: std::result::Result<Result<StepJob>, tokio::task::JoinError>,
) -> Result<StepJob> {
    joined.map_err(|e| Error::failed(format!("laying out a step failed: {e}")))?
}

/// Waits for the first job in `q` to be laid out (pending while there is none).
async fn front_laid_out(q: &mut LayingOut) -> Result<StepJob> {
    match q.front_mut() {
        Some((_, h)) => built_job(h.await),
        None => std::future::pending().await,
    }
}

struct StepState {
    record: StepRecord,
    job: Option<StepJob>,
    started: Option<Instant>,
    parts: Option<KeyParts>,
    /// The channels and facts the job was made of: each attempt is laid out
    /// afresh from them, in a directory of its own.
    prepared: Option<(Vec<Channel>, serde_json::Value)>,
    /// The step's inputs, re-checked when each attempt ends.
    guards: Vec<guard::InputGuard>,
}

impl Run {
    /// Runs the plan to the end; `events` hears about every change.
    pub async fn execute(mut self, events: &mut dyn FnMut(Event)) -> Result<RunSummary> {
        let plan = self.plan.clone();
        let p = &plan.pipeline;
        let mut states: Vec<StepState> = p
            .steps
            .iter()
            .map(|s| StepState {
                record: StepRecord::new(&self.run_id, s.name()),
                job: None,
                started: None,
                parts: None,
                prepared: None,
                guards: Vec::new(),
            })
            .collect();
        // Carry over what the resumed run finished.
        for st in states.iter_mut() {
            if let Some(prev) = self.previous.get(&st.record.name)
                && prev.status.is_done()
            {
                st.record = prev.clone();
            }
        }
        self.db
            .upsert_steps(&states.iter().map(|s| s.record.clone()).collect::<Vec<_>>())?;
        events(Event::RunStarted {
            run_id: self.run_id.clone(),
            pipeline: p.name.clone(),
            steps: p.steps.len(),
        });

        self.image_ids = inputs::image_ids(p).await;
        // Once, not a step: on a busy disk every directory costs.
        let logs = self.ws.run_dir(&self.run_id).join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io("create", &logs, e))?;
        let mut queue = ReadyQueue::new(&plan);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut running: JoinSet<Finished> = JoinSet::new();
        let mut in_flight = 0usize;
        let mut stopping: Option<RunStatus> = None;
        let mut interrupt = Box::pin(interrupted());
        let mut invalid_input = false;
        let (log_tx, mut log_rx) = crate::exec::LogSink::channel();
        self.log_tx = Some(log_tx);

        // Jobs being laid out on the blocking pool, in the order they were
        // decided: a step's directories and files are made while the steps
        // before it run, so a slot that frees starts the next step at once.
        let mut laying_out = LayingOut::new();
        // The first of them, once it is laid out and waits for a slot.
        let mut laid_out: Option<(usize, Result<StepJob>)> = None;

        let mut succeeded: Vec<(usize, u32, Option<Result<StoredOutputs>>)> = Vec::new();
        // Tune steps: each trial's point, and which trials hold one of their
        // tune step's `max_parallel_jobs` slots (from launch until they end).
        let mut points = tune::Points::default();
        let mut launched = vec![false; p.steps.len()];
        let slots: Vec<Option<(usize, u32)>> = p
            .steps
            .iter()
            .map(|s| {
                let t = s.trial.as_ref()?;
                let ti = p.step_index(&t.tune)?;
                p.steps[ti]
                    .kind
                    .search()
                    .map(|tu| (ti, tu.max_parallel_jobs))
            })
            .collect();
        loop {
            let mut started = false;
            while stopping.is_none() && in_flight < self.jobs {
                let (i, built) = match laid_out.take() {
                    Some(b) => b,
                    None if laying_out.front().is_some_and(|(_, h)| h.is_finished()) => {
                        let (i, h) = laying_out.pop_front().expect("a job is laid out");
                        (i, built_job(h.await))
                    }
                    None => break,
                };
                match built {
                    Ok(job) => {
                        states[i].job = Some(job);
                        self.start_attempt(
                            i,
                            1,
                            Duration::ZERO,
                            &mut states,
                            &mut running,
                            &cancel_rx,
                            events,
                        )?;
                        in_flight += 1;
                        started = true;
                    }
                    Err(e) => {
                        // An input the layout found invalid (exit 2), as at decide.
                        invalid_input |= matches!(e, Error::Invalid(_));
                        self.failed_with(i, 0, e, &mut states, events)?;
                        stopping = Some(RunStatus::Failed);
                        let _ = cancel_tx.send(true);
                    }
                }
            }
            // What ended well is recorded once the slots it freed run again:
            // the next step does not wait for the bookkeeping of the last.
            // The steps just started get to start their processes first (on
            // this single-threaded runtime a task runs only when the loop
            // waits).
            if started {
                tokio::task::yield_now().await;
            }
            for (i, attempt, stored) in std::mem::take(&mut succeeded) {
                let recorded = stored
                    .unwrap_or_else(|| Err(Error::failed("the outputs were not stored")))
                    .and_then(|stored| self.succeed(i, attempt, stored, &mut states, events));
                match recorded {
                    Ok(()) => queue.finish(i),
                    Err(e) => {
                        self.failed_with(i, attempt, e, &mut states, events)?;
                        if p.steps[i].trial.is_some() {
                            queue.finish(i);
                        } else {
                            stopping.get_or_insert(RunStatus::Failed);
                            let _ = cancel_tx.send(true);
                        }
                    }
                }
            }
            while stopping.is_none() && in_flight + laying_out.len() < 2 * self.jobs {
                // A trial waits while its tune step has `max_parallel_jobs`
                // trials going (counted once, not for every ready step).
                let mut going = vec![0u32; slots.len()];
                for (j, slot) in slots.iter().enumerate() {
                    if let Some((ti, _)) = slot
                        && launched[j]
                        && matches!(
                            states[j].record.status,
                            StepStatus::Pending | StepStatus::Running
                        )
                    {
                        going[*ti] += 1;
                    }
                }
                let full = |i: usize| slots[i].is_some_and(|(ti, limit)| going[ti] >= limit);
                let Some(i) = queue.dequeue_where(|i| !full(i)) else {
                    break;
                };
                match self.decide(i, &mut states, &mut points, events) {
                    Ok(Decision::Settled) => queue.finish(i),
                    Ok(Decision::Launch(spec)) => {
                        launched[i] = true;
                        laying_out.push_back((i, tokio::task::spawn_blocking(move || spec.build())))
                    }
                    Err(e) if p.steps[i].trial.is_some() && !matches!(e, Error::Invalid(_)) => {
                        // A trial that cannot start is recorded; the search goes on.
                        self.failed_with(i, 0, e, &mut states, events)?;
                        queue.finish(i);
                    }
                    Err(e) => {
                        invalid_input |= matches!(e, Error::Invalid(_));
                        self.failed_with(i, 0, e, &mut states, events)?;
                        stopping = Some(RunStatus::Failed);
                        let _ = cancel_tx.send(true);
                    }
                }
            }
            if in_flight == 0 && stopping.is_some() {
                // What was laid out never starts; its file work is let finish.
                for (_, h) in laying_out.drain(..) {
                    let _ = h.await;
                }
                break;
            }
            if in_flight == 0 && laying_out.is_empty() && laid_out.is_none() {
                break;
            }
            tokio::select! {
                built = front_laid_out(&mut laying_out), if laid_out.is_none() && !laying_out.is_empty() => {
                    let (i, _) = laying_out.pop_front().expect("the first job was laid out");
                    laid_out = Some((i, built));
                }
                Some(l) = log_rx.recv() => {
                    events(Event::StepLog { step: l.step, node: l.node, line: l.line, progress: l.progress });
                }
                joined = running.join_next(), if !running.is_empty() => {
                    // A step's lines come before its end (there are at most LIVE_LINES waiting).
                    while let Ok(l) = log_rx.try_recv() {
                        events(Event::StepLog { step: l.step, node: l.node, line: l.line, progress: l.progress });
                    }
                    let Some(joined) = joined else { break };
                    let f = joined.map_err(|e| Error::failed(format!("a step task failed: {e}")))?;
                    let i = f.step;
                    if let Some(reason) = f.input_changed {
                        in_flight -= 1;
                        self.end_unsuccessful(i, StepStatus::Failed, f.attempt, reason, None, &mut states, events)?;
                        stopping.get_or_insert(RunStatus::Failed);
                        let _ = cancel_tx.send(true);
                        continue;
                    }
                    match f.outcome {
                        Outcome::Succeeded => {
                            in_flight -= 1;
                            succeeded.push((i, f.attempt, f.stored));
                        }
                        Outcome::Failed(fail) => {
                            let fail = crate::exec::Failure {
                                reason: crate::exec::mask_secrets(&fail.reason, p.secrets.values()),
                                ..fail
                            };
                            let step = &p.steps[i];
                            // A built-in that rejected its input (exit code 2) fails the same way again.
                            let bad_input = is_builtin(step) && fail.exit_code == Some(crate::error::EXIT_INVALID);
                            let can_retry = stopping.is_none()
                                && !bad_input
                                && f.attempt < step.retry.attempts
                                && fail.kind.retried_by(&step.retry.on);
                            if can_retry {
                                let backoff = step.retry.backoff.saturating_mul(1u32 << (f.attempt - 1).min(16));
                                events(Event::StepRetrying { step: step.name().to_string(), attempt: f.attempt + 1, reason: fail.reason.clone(), backoff_s: backoff.as_secs_f64() });
                                // A retry never sees what the failed attempt left: a fresh directory.
                                match self.relayout(i, &mut states) {
                                    Ok(()) => self.start_attempt(i, f.attempt + 1, backoff, &mut states, &mut running, &cancel_rx, events)?,
                                    Err(e) => {
                                        in_flight -= 1;
                                        self.failed_with(i, f.attempt, e, &mut states, events)?;
                                        stopping.get_or_insert(RunStatus::Failed);
                                        let _ = cancel_tx.send(true);
                                    }
                                }
                            } else {
                                in_flight -= 1;
                                if fail.kind == FailureKind::Cancelled {
                                    self.end_unsuccessful(i, StepStatus::Cancelled, f.attempt, "stopped: the run was cancelled or another step failed".into(), None, &mut states, events)?;
                                } else {
                                    self.end_unsuccessful(i, StepStatus::Failed, f.attempt, fail.reason, fail.exit_code, &mut states, events)?;
                                    if step.trial.is_some() {
                                        // A failed trial is a result of the search, not the end of the run.
                                        queue.finish(i);
                                    } else {
                                        stopping.get_or_insert(RunStatus::Failed);
                                        let _ = cancel_tx.send(true);
                                    }
                                }
                            }
                        }
                    }
                }
                _ = &mut interrupt, if stopping != Some(RunStatus::Cancelled) => {
                    stopping = Some(RunStatus::Cancelled);
                    let _ = cancel_tx.send(true);
                }
            }
        }

        // Whatever never started is recorded as such.
        for st in states.iter_mut() {
            if matches!(st.record.status, StepStatus::Pending | StepStatus::Running) {
                st.record.status = StepStatus::NotRun;
                self.db.upsert_step(&st.record)?;
            }
        }
        let status = stopping.unwrap_or(RunStatus::Succeeded);
        self.db.set_run_status(&self.run_id, status)?;
        let records: Vec<StepRecord> = states.into_iter().map(|s| s.record).collect();
        let mut summary = RunSummary::from_records(&self.run_id, status, &records);
        summary.invalid_input = invalid_input;
        Ok(summary)
    }

    /// Decides what to do with ready step `i`: settle it now, or prepare a job.
    fn decide(
        &mut self,
        i: usize,
        states: &mut [StepState],
        points: &mut tune::Points,
        events: &mut dyn FnMut(Event),
    ) -> Result<Decision> {
        if let Some(resolved) = tune::resolved_trial(
            points,
            &self.plan.pipeline,
            states,
            &self.plan.pipeline.steps[i],
        )? {
            // The trial's hyperparameters, proposed now, are part of its
            // step from here on (its key, its job, its record).
            let mut plan = (*self.plan).clone();
            let mut pipeline = (*plan.pipeline).clone();
            pipeline.steps[i] = resolved;
            plan.pipeline = Arc::new(pipeline);
            self.plan = Arc::new(plan);
        }
        let plan = self.plan.clone();
        let step = &plan.pipeline.steps[i];
        let name = step.name().to_string();
        if states[i].record.status.is_done() {
            events(Event::StepFinished {
                step: name,
                status: states[i].record.status,
                cached: states[i].record.cached,
                duration_s: 0.0,
                reason: Some("finished before resume".into()),
            });
            return Ok(Decision::Settled);
        }
        // Skips: an input from a skipped step, or a false condition.
        let skipped_dep = plan
            .deps(i)
            .into_iter()
            .find(|(j, k)| *k == EdgeKind::Data && states[*j].record.status == StepStatus::Skipped);
        let skip_reason = if let Some(why) = tune::cut_short(points, &plan.pipeline, states, step) {
            Some(why)
        } else if let Some((j, _)) = skipped_dep {
            Some(format!(
                "its input comes from skipped step `{}`",
                plan.pipeline.steps[j].name()
            ))
        } else if let Some(expr) = &step.when_expr {
            let lookup = |path: &[String]| condition_value(&plan, states, path);
            match expr.eval_bool(&lookup) {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "condition `{}` is false",
                    step.when.as_ref().map(|w| w.value.as_str()).unwrap_or("")
                )),
                Err(e) => {
                    return Err(Error::failed(format!(
                        "evaluate the condition of `{name}`: {e}"
                    )));
                }
            }
        } else {
            None
        };
        if let Some(reason) = skip_reason {
            let st = &mut states[i];
            st.record.status = StepStatus::Skipped;
            st.record.failure = Some(reason.clone());
            st.record.finished_at = Some(now_rfc3339());
            self.db.upsert_step(&st.record)?;
            events(Event::StepFinished {
                step: name,
                status: StepStatus::Skipped,
                cached: false,
                duration_s: 0.0,
                reason: Some(reason),
            });
            return Ok(Decision::Settled);
        }

        if let Some(t) = step.kind.search() {
            return self.settle_tune(i, t, states, points, events);
        }
        let channels = self.channels(step, states)?;
        let digests: BTreeMap<String, String> = channels
            .iter()
            .map(|(c, d)| (c.name.clone(), d.clone()))
            .collect();
        let identities = channels
            .iter()
            .map(|(c, d)| {
                (
                    c.name.clone(),
                    ChannelIdentity {
                        digest: d,
                        reading: c.input.as_ref(),
                    },
                )
            })
            .collect();
        let code = inputs::program_digests(Some(&self.db), step, &plan.pipeline.base_dir)?;
        let image = inputs::image_of(step, &self.image_ids);
        let parts = KeyParts::new(step, &identities, code, image);
        let key = parts.key();
        states[i].record.cache_key = Some(key.clone());
        states[i].record.inputs = digests;
        states[i].parts = Some(parts);

        if step.cache != CachePolicy::Off
            && !self.no_cache
            && let Some((hit, _origin)) =
                store::remote::cached(&self.db, &self.ws.store(), &key, shares_cache(step))?
            && hit.is_fresh(step.cache)
        {
            return self.settle_cached(i, &hit, states, events);
        }
        let extra = self.step_facts(step, &states[i].record, states)?;
        states[i].guards = channels
            .iter()
            // A channel streamed from S3 has nothing on this machine to guard.
            .filter(|(c, _)| c.stream.is_none())
            .map(|(c, d)| {
                // An S3 input's key digest is S3's identity of it; what is
                // guarded is the staged copy here, by its own content digest.
                if let Some(def) = &c.input
                    && def.remote().is_some()
                    && c.source.starts_with(self.ws.staging_dir())
                {
                    let local = inputs::digest_input(&self.db, &c.source)?;
                    return Ok(
                        guard::InputGuard::new(c.name.clone(), c.source.clone(), local)
                            .staged(self.ws.staging_dir()),
                    );
                }
                Ok(guard::InputGuard::new(
                    c.name.clone(),
                    c.source.clone(),
                    d.clone(),
                ))
            })
            .collect::<Result<_>>()?;
        let channels: Vec<Channel> = channels.into_iter().map(|(c, _)| c).collect();
        let spec = self.job_spec(i, channels.clone(), extra.clone());
        states[i].prepared = Some((channels, extra));
        Ok(Decision::Launch(Box::new(spec)))
    }

    /// Step `i` is a cache hit: its outputs and metrics are `hit`'s.
    fn settle_cached(
        &mut self,
        i: usize,
        hit: &CacheEntry,
        states: &mut [StepState],
        events: &mut dyn FnMut(Event),
    ) -> Result<Decision> {
        // Outputs are read where they are stored here: a result from the
        // shared cache is brought to this machine now.
        let store = self.ws.store();
        let mut outputs = hit.outputs.clone();
        for o in outputs.values_mut() {
            o.path = store.local_path(&o.digest)?.display().to_string();
        }
        let st = &mut states[i];
        st.record.status = StepStatus::Succeeded;
        st.record.cached = true;
        st.record.outputs = outputs;
        st.record.metrics = hit.metrics.clone();
        st.record.duration_s = Some(0.0);
        st.record.finished_at = Some(now_rfc3339());
        self.db.upsert_step(&st.record)?;
        events(Event::StepFinished {
            step: st.record.name.clone(),
            status: StepStatus::Succeeded,
            cached: true,
            duration_s: 0.0,
            reason: None,
        });
        Ok(Decision::Settled)
    }

    /// Lays out step `i` again, in a new attempt directory, for a retry.
    fn relayout(&self, i: usize, states: &mut [StepState]) -> Result<()> {
        let (channels, extra) = states[i]
            .prepared
            .clone()
            .expect("launched steps were prepared");
        states[i].job = Some(self.job_spec(i, channels, extra).build()?);
        Ok(())
    }

    /// Resolves a step's channels to data on this machine, with their digests.
    fn channels(&mut self, step: &Step, states: &[StepState]) -> Result<Vec<(Channel, String)>> {
        let p = &self.plan.pipeline;
        let mut out = Vec::new();
        let mut streams = BTreeMap::new();
        for (name, r) in step.inputs() {
            let (source, digest, input) = match &r.target {
                RefTarget::Input(n) => {
                    let def = &p.inputs[n];
                    let piped = matches!(&step.kind, StepKind::Train(t) if t.input_mode_of(&name) == InputMode::Pipe);
                    // Staged first, so that data S3 does not vouch for is
                    // digested from the copy, not downloaded a second time.
                    let source = match def.remote() {
                        // Streamed from S3 as the step reads it: nothing is staged.
                        Some(uri) if piped => {
                            streams.insert(name.clone(), store::remote::stream_input(uri)?);
                            def.resolved.clone()
                        }
                        Some(uri) => store::remote::stage_input(&self.ws, uri)?,
                        None => def.resolved.clone(),
                    };
                    let digest = inputs::input_digest(&self.db, &self.ws, def)?;
                    if let Some(locked) = self.locked_inputs.get(n)
                        && *locked != digest
                    {
                        return Err(Error::failed(format!(
                            "input `{n}` ({}) changed since the run started: its lock has {locked}, the data now {digest}",
                            def.path
                        )));
                    }
                    (source, digest, Some(def.clone()))
                }
                RefTarget::Output { step: s, output } => {
                    let j = self.plan.step_index(s).expect("validated reference");
                    let rec = states[j].record.outputs.get(output).ok_or_else(|| {
                        Error::failed(format!("step `{s}` finished without its output `{output}`"))
                    })?;
                    // Pass on how to read data that came straight from an input.
                    let input = upstream_input(p, &p.steps[j]);
                    let path = self.ws.store().local_path(&rec.digest)?;
                    (path, rec.digest.clone(), input)
                }
                RefTarget::Registry(reg_ref) => {
                    let v = self.resolve_registry(reg_ref, &r.text)?;
                    let path = self
                        .ws
                        .store()
                        .local_path(&v.artifact_digest)
                        .map_err(|e| {
                            Error::failed(format!(
                                "`{}` is version {} (artifact {}), but: {}{}",
                                r.text,
                                v.version,
                                v.artifact_digest,
                                e.to_string().trim_start_matches("error: "),
                                crate::cli::data::missing_artifact_help()
                            ))
                        })?;
                    (path, v.artifact_digest.clone(), None)
                }
            };
            let mut channel = Channel::whole(name, source, input);
            channel.stream = streams.remove(&channel.name);
            if let StepKind::Train(t) = &step.kind
                && let Some(d) = t.distribution.get(&channel.name)
            {
                channel.distribution = *d;
            }
            out.push((channel, digest));
        }
        Ok(out)
    }

    /// Facts a built-in step needs beyond its spec: the run, the registry, and
    /// for a register step the lineage of the model it registers.
    fn step_facts(
        &mut self,
        step: &Step,
        record: &StepRecord,
        states: &[StepState],
    ) -> Result<serde_json::Value> {
        let p = self.plan.pipeline.clone();
        // A step runs in another directory: a file path must be absolute.
        let registry = self.registry.absolute().to_arg();
        let mut facts = serde_json::json!({
            "run_id": self.run_id,
            "pipeline": p.name,
            "base_dir": p.base_dir,
            "registry": registry,
            "cache_key": record.cache_key,
            "input_digests": record.inputs,
            "channel_refs": step.inputs().into_iter().map(|(c, r)| (c, r.text.clone())).collect::<BTreeMap<_, _>>(),
        });
        // Which version each `registry://` channel resolved to (the artifact is the channel's digest).
        let mut resolved = serde_json::Map::new();
        for (c, r) in step.inputs() {
            if let RefTarget::Registry(reg_ref) = &r.target {
                let v = self.resolve_registry(reg_ref, &r.text)?;
                let used = record.inputs.get(&c).unwrap_or(&v.artifact_digest).clone();
                resolved.insert(
                    c,
                    serde_json::json!({"ref": r.text, "group": v.group, "version": v.version, "artifact_digest": used}),
                );
            }
        }
        facts["registry_versions"] = serde_json::Value::Object(resolved);
        if let StepKind::Register(r) = &step.kind {
            // What trained the model, for the version's lineage.
            let (algorithm, hyperparameters) = match &r.model.target {
                RefTarget::Output { step: s, .. } => match p.step(s).map(|t| &t.kind) {
                    Some(StepKind::Train(t)) => (
                        t.algorithm
                            .clone()
                            .or_else(|| t.image.clone())
                            .unwrap_or_else(|| "custom".into()),
                        t.hyperparameters.clone(),
                    ),
                    // A tuned model: what its best trial trained with.
                    // An automl step that handed on an ensemble: its members.
                    Some(StepKind::Automl(_))
                        if p.step_index(s).is_some_and(|ti| {
                            states[ti].record.metrics.get("ensemble")
                                == Some(&serde_json::Value::Bool(true))
                        }) =>
                    {
                        let members = p
                            .step_index(s)
                            .and_then(|ti| states[ti].record.metrics.get("ensemble_members"))
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string();
                        (
                            "ensemble".to_string(),
                            [("members".to_string(), members)].into_iter().collect(),
                        )
                    }
                    Some(StepKind::Tune(t) | StepKind::Automl(t)) => {
                        let best = p.step_index(s).and_then(|ti| {
                            let n = states[ti].record.metrics.get("best_trial")?.as_u64()?;
                            p.step_index(&crate::spec::tune::trial_name(s, n as u32))
                        });
                        // The best trial's step as it was resolved when it
                        // started (an automl trial's algorithm is chosen then).
                        let trained = match best.map(|b| &self.plan.pipeline.steps[b].kind) {
                            Some(StepKind::Train(tr)) => tr,
                            _ => &t.train,
                        };
                        (
                            trained
                                .algorithm
                                .clone()
                                .or_else(|| trained.image.clone())
                                .unwrap_or_else(|| "custom".into()),
                            trained.hyperparameters.clone(),
                        )
                    }
                    _ => ("unknown".to_string(), BTreeMap::new()),
                },
                _ => ("unknown".to_string(), BTreeMap::new()),
            };
            let mut data = BTreeMap::new();
            for (name, def) in &p.inputs {
                data.insert(
                    format!("{name} ({})", def.path),
                    inputs::input_digest(&self.db, &self.ws, def)?,
                );
            }
            let spec = serde_json::to_vec(&*p).expect("pipelines serialize");
            facts["lineage"] = serde_json::json!({
                "algorithm": algorithm,
                "hyperparameters": hyperparameters,
                "data": data,
                "params": p.params,
                "spec_hash": blake3::hash(&spec).to_hex().to_string(),
                "on_approved": p.on_approved,
            });
        }
        Ok(facts)
    }

    fn resolve_registry(
        &self,
        reg_ref: &crate::registry::RegistryRef,
        text: &str,
    ) -> Result<crate::registry::ModelVersion> {
        let pinned;
        let reg_ref = match self.registry_pins.get(text) {
            Some(&version) => {
                pinned = crate::registry::RegistryRef {
                    group: reg_ref.group.clone(),
                    selector: crate::registry::Selector::Version(version),
                };
                &pinned
            }
            None => reg_ref,
        };
        if let Some(path) = self.registry.as_path()
            && !path.exists()
        {
            return Err(Error::failed(format!(
                "resolve `{text}`: there is no model registry at {} yet (a `kind: register` step creates it)",
                path.display()
            )));
        }
        let reg = crate::registry::Registry::open_existing(self.registry.clone())
            .map_err(|e| Error::failed(format!("resolve `{text}`: {e}")))?;
        reg.resolve(reg_ref)
            .map_err(|e| Error::failed(format!("resolve `{text}`: {e}")))
    }

    /// Where a train step of this run keeps its checkpoints, across attempts and resumes.
    fn checkpoint_dir(&self, step: &str) -> PathBuf {
        checkpoint_dir(&self.ws.run_dir(&self.run_id), step)
    }

    /// What step `i`'s job is made of, owned: laying it out (directories,
    /// configuration files, channel links) is file work that can happen on
    /// another thread while other steps run.
    fn job_spec(&self, i: usize, channels: Vec<Channel>, extra: serde_json::Value) -> JobSpec {
        JobSpec {
            plan: self.plan.clone(),
            step: i,
            run_id: self.run_id.clone(),
            run_dir: self.ws.run_dir(&self.run_id),
            log_path: self
                .ws
                .log_path(&self.run_id, self.plan.pipeline.steps[i].name()),
            log_tx: self.log_tx.clone(),
            channels,
            extra,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_attempt(
        &mut self,
        i: usize,
        attempt: u32,
        delay: Duration,
        states: &mut [StepState],
        running: &mut JoinSet<Finished>,
        cancel: &watch::Receiver<bool>,
        events: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let st = &mut states[i];
        let mut job = st.job.clone().expect("launched steps have a job");
        job.attempt = attempt;
        st.record.status = StepStatus::Running;
        st.record.attempts = attempt;
        if st.started.is_none() {
            st.started = Some(Instant::now());
            st.record.started_at = Some(now_rfc3339());
        }
        self.db.upsert_step(&st.record)?;
        let backend = self.backend.clone();
        let cancel = cancel.clone();
        let name = st.record.name.clone();
        let mut guards = st.guards.clone();
        let store = self.ws.store();
        let outputs = self.plan.pipeline.steps[i].outputs();
        let train = train_metrics::Sources::of(&self.plan.pipeline.steps[i], &job.log_path);
        if delay.is_zero() {
            events(Event::StepStarted {
                step: name.clone(),
                attempt,
            });
        }
        running.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = std::fs::remove_file(job.root.join("output/failure"));
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&job.log_path)
            {
                use std::io::Write;
                // One write: an unbuffered `writeln!` makes one a piece.
                let _ = f.write_all(format!("{}\n", attempt_header(attempt, &name)).as_bytes());
            }
            // A step with no inputs to guard (most small ones) needs no trip
            // through the blocking pool, which wakes threads every time.
            let guarded = !guards.is_empty();
            if guarded {
                guards = tokio::task::spawn_blocking(move || {
                    guard::snapshot(&mut guards);
                    guards
                })
                .await
                .unwrap_or_default();
            }
            let root = job.root.clone();
            let outcome = backend.run(job, cancel).await;
            let input_changed = if guarded {
                let store = store.clone();
                tokio::task::spawn_blocking(move || guard::verify(&guards, &store))
                    .await
                    .unwrap_or_else(|e| Some(format!("re-checking the step's inputs failed: {e}")))
            } else {
                None
            };
            let stored = if matches!(outcome, Outcome::Succeeded) && input_changed.is_none() {
                // Nothing to store (a command step without outputs): no trip
                // through the blocking pool.
                Some(if outputs.is_empty() {
                    Ok(Default::default())
                } else {
                    tokio::task::spawn_blocking(move || {
                        store_outputs(&store, &root, &outputs, train.as_ref())
                    })
                    .await
                    .unwrap_or_else(|e| Err(Error::failed(format!("store the outputs: {e}"))))
                })
            } else {
                None
            };
            Finished {
                step: i,
                attempt,
                outcome,
                input_changed,
                stored,
            }
        });
        Ok(())
    }

    fn succeed(
        &mut self,
        i: usize,
        attempt: u32,
        stored: StoredOutputs,
        states: &mut [StepState],
        events: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let step = &self.plan.pipeline.steps[i];
        let (outputs, metrics) = stored;
        let st = &mut states[i];
        let duration = st.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        st.record.status = StepStatus::Succeeded;
        st.record.attempts = attempt;
        st.record.outputs = outputs.clone();
        st.record.metrics = metrics.clone();
        st.record.exit_code = Some(0);
        st.record.failure = None;
        st.record.duration_s = Some(duration);
        st.record.finished_at = Some(now_rfc3339());
        let entry = match (&st.record.cache_key, &st.parts) {
            (Some(key), Some(parts)) if step.cache != CachePolicy::Off => Some(CacheEntry {
                key: key.clone(),
                pipeline: self.plan.pipeline.name.clone(),
                step: step.name().to_string(),
                created_at: now_rfc3339(),
                created_unix: now_unix(),
                parts: parts.clone(),
                outputs,
                metrics,
                run_id: self.run_id.clone(),
            }),
            _ => None,
        };
        // Shared first: a step recorded as done here is in the shared cache too.
        if let Some(e) = &entry
            && shares_cache(step)
            && let Some(shared) = store::remote::shared()?
        {
            shared.cache_put(e)?;
        }
        self.db.record_success(&st.record, entry.as_ref())?;
        // A finished step's job and key parts are not needed again; keeping
        // them makes the engine grow with the plan, and every later fork of a
        // step's process copies what the engine holds.
        st.job = None;
        st.parts = None;
        // The outputs now live in the store. The work directory stays (a few
        // small files, useful to look at); removing it costs more than the step
        // itself on a busy disk. Checkpoints are no longer needed.
        if matches!(step.kind, StepKind::Train(_)) {
            let _ = std::fs::remove_dir_all(self.checkpoint_dir(step.name()));
        }
        events(Event::StepFinished {
            step: step.name().to_string(),
            status: StepStatus::Succeeded,
            cached: false,
            duration_s: duration,
            reason: None,
        });
        Ok(())
    }

    /// Step `i` failed with the engine's error `e`, in `attempt` (0: before
    /// it could start, e.g. its input or its layout).
    fn failed_with(
        &mut self,
        i: usize,
        attempt: u32,
        e: Error,
        states: &mut [StepState],
        events: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let reason = e.to_string().trim_start_matches("error: ").to_string();
        self.end_unsuccessful(i, StepStatus::Failed, attempt, reason, None, states, events)
    }

    /// Records a step that ended without success: failed, or stopped because the run is stopping.
    #[allow(clippy::too_many_arguments)]
    fn end_unsuccessful(
        &mut self,
        i: usize,
        status: StepStatus,
        attempt: u32,
        reason: String,
        exit_code: Option<i32>,
        states: &mut [StepState],
        events: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let st = &mut states[i];
        let duration = st.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        st.record.status = status;
        st.record.attempts = attempt;
        st.record.failure = Some(reason.clone());
        st.record.exit_code = exit_code;
        st.record.duration_s = Some(duration);
        st.record.finished_at = Some(now_rfc3339());
        self.db.upsert_step(&st.record)?;
        st.job = None;
        st.parts = None;
        events(Event::StepFinished {
            step: st.record.name.clone(),
            status,
            cached: false,
            duration_s: duration,
            reason: Some(reason),
        });
        Ok(())
    }
}

/// A step's job before its root is laid out (see [`Run::job_spec`]).
struct JobSpec {
    plan: Arc<Plan>,
    step: usize,
    run_id: String,
    run_dir: PathBuf,
    log_path: PathBuf,
    log_tx: Option<crate::exec::LogSink>,
    channels: Vec<Channel>,
    extra: serde_json::Value,
}

impl JobSpec {
    /// Lays out the step's root and builds its job.
    fn build(self) -> Result<StepJob> {
        let JobSpec {
            plan,
            step,
            run_id,
            run_dir,
            log_path,
            log_tx,
            channels,
            extra,
        } = self;
        let p = &plan.pipeline;
        let step = &p.steps[step];
        // Every attempt (a retry, or a step run again by `resume`) gets a
        // directory never used before: whatever an earlier attempt left there
        // cannot end up in this one's outputs.
        let step_dir = run_dir.join("steps").join(step.name());
        let root = new_attempt_dir(&step_dir)?;
        let outputs = step.outputs();
        let (hps, argv, image) = match &step.kind {
            StepKind::Command(c) => (c.hyperparameters.clone(), c.run.clone(), c.image.clone()),
            StepKind::Train(t) if t.algorithm.is_none() => {
                (t.hyperparameters.clone(), t.run.clone(), t.image.clone())
            }
            StepKind::Train(t) => (t.hyperparameters.clone(), builtin_argv()?, None),
            StepKind::Evaluate(e) => (e.hyperparameters.clone(), builtin_argv()?, None),
            _ => (BTreeMap::new(), builtin_argv()?, None),
        };
        // Secrets enter the step here, in its environment, and nowhere else.
        let extra_env = step
            .env
            .iter()
            .map(|(k, v)| {
                template::fill_secrets(v, &|n| p.secrets.get(n).map(str::to_string))
                    .map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::failed)?;
        // The user's code, copied into each node's `code/`; with no command
        // and no image, the engine starts its entry point as the toolkit does.
        let code = step.code();
        let code_source = code.and_then(|c| c.source(&p.base_dir, image.is_some()));
        let (argv, in_code_dir) = match code {
            Some(c) if argv.is_empty() && image.is_none() => (
                c.command(crate::exec::training_env::user_args(&hps))
                    .unwrap_or_default(),
                true,
            ),
            _ => (argv, false),
        };
        let num_cpus = step_threads(step);
        let executor = step_executor(step);
        let in_container = executor != Executor::Local;
        let container_root = in_container.then_some(CONTAINER_ROOT);
        let argv = if is_builtin(step) && in_container {
            vec![
                crate::exec::docker::RUNTIME_PROGRAM.to_string(),
                "builtin".into(),
            ]
        } else {
            argv
        };
        let nodes = step.resources.nodes.max(1) as usize;
        let hosts: Vec<String> = (1..=nodes).map(|i| format!("algo-{i}")).collect();
        let node_channels = shard_channels(&channels, nodes)?;
        let mut node_jobs = Vec::with_capacity(nodes);
        for (i, host) in hosts.iter().enumerate() {
            let node_root = if i == 0 {
                root.clone()
            } else {
                root.with_extension("nodes").join(host)
            };
            if i > 0 && node_root.exists() {
                std::fs::remove_dir_all(&node_root)
                    .map_err(|e| Error::io("clear", &node_root, e))?;
            }
            let layout = Layout {
                root: &node_root,
                step,
                channels: &node_channels[i],
                hyperparameters: &hps,
                outputs: &outputs,
                current_host: host.clone(),
                hosts: hosts.clone(),
                num_cpus,
                job_name: job_name(&p.name, step.name(), &run_id),
                code: code_source.clone(),
                extra: extra.clone(),
            };
            // Checkpoints outlive attempts, kills and resumes of this run (the
            // main node's, for train steps); they belong to the run, so runs
            // going on at once never share them.
            if let (0, StepKind::Train(_)) = (i, &step.kind) {
                let ckpt = checkpoint_dir(&run_dir, step.name());
                std::fs::create_dir_all(&ckpt).map_err(|e| Error::io("create", &ckpt, e))?;
                std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;
                std::os::unix::fs::symlink(&ckpt, root.join("checkpoints"))
                    .map_err(|e| Error::io("link the checkpoints of", &root, e))?;
            }
            let mut env = layout.prepare(container_root)?;
            env.push(("PIPELINE_RUN_ID".into(), run_id.clone()));
            env.push(("PIPELINE_STEP".into(), step.name().to_string()));
            if nodes > 1 {
                env.push(("AWS_BATCH_JOB_NODE_INDEX".into(), i.to_string()));
                env.push(("AWS_BATCH_JOB_NUM_NODES".into(), nodes.to_string()));
                env.push(("AWS_BATCH_JOB_MAIN_NODE_INDEX".into(), "0".into()));
            }
            env.extend(extra_env.iter().cloned());
            node_jobs.push(crate::exec::NodeJob {
                host: host.clone(),
                root: node_root,
                env,
            });
        }
        // Fill `{{ outputs.X }}` / `{{ inputs.X }}` now that the directories
        // exist, with the paths the step sees.
        let seen_root = container_root.map_or_else(|| root.clone(), PathBuf::from);
        let out_path = |n: &str| {
            outputs
                .iter()
                .any(|o| o == n)
                .then(|| contract::output_dir(&seen_root, n).display().to_string())
        };
        let in_path = |n: &str| {
            channels
                .iter()
                .any(|c| c.name == n)
                .then(|| seen_root.join("input/data").join(n).display().to_string())
        };
        let argv = argv
            .iter()
            .map(|a| template::fill_run_placeholders(a, &out_path, &in_path))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::failed)?;
        // Its directory was made when the run started; the file is made here,
        // so that starting the step creates nothing more.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io("create", &log_path, e))?;
        let main = node_jobs.remove(0);
        Ok(StepJob {
            run_id,
            step: step.name().to_string(),
            attempt: 1,
            root,
            cwd: p.base_dir.clone(),
            in_code_dir,
            argv,
            env: main.env,
            log_path,
            timeout: step.timeout,
            stop_grace: step.stop_grace(),
            resources: step.resources.clone(),
            image,
            executor,
            network: step.network,
            workers: node_jobs,
            live_log: log_tx,
            secrets: p.secrets.values().map(str::to_string).collect(),
            batch: step.batch.clone(),
        })
    }
}

/// `TRAINING_JOB_NAME`: the pipeline, step and run, within SageMaker's
/// rule for job names (letters, digits and `-`, at most 63).
fn job_name(pipeline: &str, step: &str, run_id: &str) -> String {
    let text = format!("{pipeline}-{step}-{run_id}");
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    // Keep the end, which tells runs apart.
    let skip = out.len().saturating_sub(63);
    out[skip..].trim_matches('-').to_string()
}

/// Where a train step's checkpoints live in a run (`runs/RUN/checkpoints/STEP`).
fn checkpoint_dir(run_dir: &std::path::Path, step: &str) -> PathBuf {
    run_dir.join("checkpoints").join(step)
}

/// A new attempt directory under `step_dir`: `1`, `2`... the first number
/// never used (a worker node's root is `N.nodes/HOST` beside it).
fn new_attempt_dir(step_dir: &std::path::Path) -> Result<PathBuf> {
    // A step directory made just now has no attempt in it to list.
    let fresh = match std::fs::create_dir(step_dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(_) => {
            std::fs::create_dir_all(step_dir).map_err(|e| Error::io("create", step_dir, e))?;
            false
        }
    };
    let used = if fresh { 0 } else { attempts_used(step_dir)? };
    for n in used.saturating_add(1)..=u32::MAX {
        let dir = step_dir.join(n.to_string());
        // `create_dir` fails if it exists: the directory is this attempt's alone.
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
    }
    Err(Error::failed(format!(
        "{} has no attempt number left; remove it",
        step_dir.display()
    )))
}

/// The highest attempt number used under `step_dir` (0 for none).
fn attempts_used(step_dir: &std::path::Path) -> Result<u32> {
    Ok(std::fs::read_dir(step_dir)
        .map_err(|e| Error::io("list", step_dir, e))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".nodes")
                .unwrap_or(name)
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0))
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// This machine's cores (as the process may use them), looked up once: the
/// standard library reads cgroup files each time, which a lock of thousands
/// of steps would do thousands of times.
pub fn machine_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The threads a step is given (`SM_NUM_CPUS`): its `resources.cpus`
/// rounded up, at most this machine's cores; all of them when it says none.
pub fn step_threads(step: &Step) -> usize {
    let cpus = machine_cores();
    step.resources
        .cpus
        .map_or(cpus, |c| (c.ceil() as usize).clamp(1, cpus))
}

/// Where a step runs. A register step writes to the registry database
/// beside the engine: it runs here whatever the executor (as SageMaker's
/// RegisterModel step is no training job either).
pub fn step_executor(step: &Step) -> Executor {
    match step.kind {
        StepKind::Register(_) => Executor::Local,
        _ => step.executor,
    }
}

/// Whether the step runs a built-in (whose exit code 2 means its input is invalid).
pub fn is_builtin(step: &Step) -> bool {
    match &step.kind {
        StepKind::Command(_) => false,
        StepKind::Train(t) => t.algorithm.is_some(),
        _ => true,
    }
}

/// The argv that runs a built-in step: this very program.
fn builtin_argv() -> Result<Vec<String>> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed(format!("find the pipeline program: {e}")))?;
    Ok(vec![exe.display().to_string(), "builtin".into()])
}

/// If `step` passes an input's rows through (a split), how to read its outputs.
pub fn upstream_input(
    p: &crate::spec::model::Pipeline,
    step: &Step,
) -> Option<crate::spec::model::InputDef> {
    match &step.kind {
        StepKind::Split(s) => {
            let r = s
                .input
                .as_ref()
                .or_else(|| s.sources.first().map(|x| &x.input))?;
            let mut def = match &r.target {
                RefTarget::Input(n) => p.inputs.get(n).cloned(),
                RefTarget::Output { step: up, .. } => p.step(up).and_then(|u| upstream_input(p, u)),
                RefTarget::Registry(_) => None,
            }?;
            def.split_columns.extend(s.strategy.split_column());
            Some(def)
        }
        _ => None,
    }
}

fn read_metrics(path: &std::path::Path) -> Result<BTreeMap<String, serde_json::Value>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(BTreeMap::new());
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::failed(format!("read the metrics {}: {e}", path.display())))?;
    let obj = v.get("metrics").unwrap_or(&v);
    Ok(obj
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default())
}

/// Resolves a `when:` path: `params.X` or `STEP.metrics.NAME`.
fn condition_value(
    plan: &Plan,
    states: &[StepState],
    path: &[String],
) -> std::result::Result<Value, String> {
    let to_value = |v: &serde_json::Value| match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => Ok(Value::Num(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Ok(Value::Str(s.clone())),
        other => Err(format!(
            "`{}` is {other}, not a value a condition can compare",
            path.join(".")
        )),
    };
    if path.first().map(String::as_str) == Some("params") {
        let v = plan
            .pipeline
            .params
            .get(&path[1])
            .ok_or_else(|| format!("no param `{}`", path[1]))?;
        return to_value(v);
    }
    let j = plan
        .step_index(&path[0])
        .ok_or_else(|| format!("no step `{}`", path[0]))?;
    let rec = &states[j].record;
    match rec.metrics.get(&path[2]) {
        Some(v) => to_value(v),
        None => {
            let have: Vec<&str> = rec.metrics.keys().map(String::as_str).collect();
            Err(format!(
                "step `{}` produced no metric `{}` (it produced: {})",
                path[0],
                path[2],
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ))
        }
    }
}
