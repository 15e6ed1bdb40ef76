//! `run` and `resume`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::ParamArgs;
use super::plan::load_and_plan;
use super::shell::Shell;
use crate::dag::Plan;
use crate::error::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, Error, Result};
use crate::exec::Backend;
use crate::exec::Dispatch;
use crate::exec::docker::DockerBackend;
use crate::exec::local::LocalBackend;
use crate::registry::Location;
use crate::repro::lock::{self, Lock, LockFile};
use crate::runs::{
    LockState, RunLock, RunOptionsRecord, RunRecord, RunStatus, RunsDb, new_run_id, now_rfc3339,
};
use crate::schedule::{Run, RunSummary};
use crate::spec::model::Executor;
use crate::spec::source::{Diagnostic, Source};
use crate::spec::{LoadOptions, Loaded, load_source};
use crate::store::Workspace;

pub(super) fn backend_for(plan: &Plan) -> Result<Arc<dyn Backend>> {
    let on = |e: Executor| {
        plan.pipeline
            .steps
            .iter()
            .filter(move |s| crate::schedule::step_executor(s) == e)
    };
    let batch = if on(Executor::Batch).next().is_some() {
        Some(batch_backend(plan)?)
    } else {
        None
    };
    let docker = on(Executor::Docker)
        .next()
        .is_some()
        .then(|| Arc::new(DockerBackend::new()) as Arc<dyn Backend>);
    Ok(Arc::new(Dispatch {
        local: Arc::new(LocalBackend),
        docker,
        batch,
    }))
}

/// The batch backend, once what the run's batch steps need is checked.
#[cfg(feature = "aws")]
fn batch_backend(plan: &Plan) -> Result<Arc<dyn Backend>> {
    let steps: Vec<(&str, &crate::spec::model::BatchSettings)> = plan
        .pipeline
        .steps
        .iter()
        .filter(|s| crate::schedule::step_executor(s) == Executor::Batch)
        .map(|s| (s.name(), &s.batch))
        .collect();
    let backend = crate::exec::batch::BatchBackend::new();
    backend.preflight(&steps).map_err(Error::invalid)?;
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "aws"))]
fn batch_backend(plan: &Plan) -> Result<Arc<dyn Backend>> {
    let s = plan
        .pipeline
        .steps
        .iter()
        .find(|s| crate::schedule::step_executor(s) == Executor::Batch)
        .expect("a batch step");
    Err(Error::invalid(
        Diagnostic::new(format!(
            "step `{}` asks for the `batch` executor (AWS Batch), which this build cannot run (it was built without the `aws` feature)",
            s.name()
        ))
        .help("build with the default features (`cargo build --release`), or write `executor: local` or `executor: docker` where it says `batch`"),
    ))
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What `run` is asked for on the command line.
pub struct RunArgs {
    pub executor: Option<Executor>,
    pub jobs: Option<usize>,
    pub no_cache: bool,
    pub display: super::shell::Display,
    /// `--locked`: refuse to run what differs from `pipeline.lock`, and never write it.
    pub locked: bool,
}

pub fn run(file: &Path, params: &ParamArgs, args: RunArgs) -> Result<i32> {
    let RunArgs {
        executor,
        jobs,
        no_cache,
        display,
        locked,
    } = args;
    let (loaded, plan) = load_and_plan(file, params, executor)?;
    for (step, warning) in super::plan::hyperparameter_warnings(&loaded.pipeline) {
        eprintln!("warning: step `{step}`: {warning}");
    }
    let backend = backend_for(&plan)?;
    let ws = Workspace::locate();
    let mut overrides =
        crate::spec::params::parse_overrides(&params.params).map_err(Error::invalid)?;
    let registry = super::registry::registry_location(None)?;
    let (lock_path, lock_name) = lock::beside(file);
    let recorded = if locked {
        Some(locked_entry(file, &lock_path, &lock_name, &loaded.source)?)
    } else {
        None
    };
    // Checked against the lock, a locked run changes nothing in `.pipeline/`
    // before it is known to be the run the lock describes.
    let remote_inputs = loaded
        .pipeline
        .inputs
        .values()
        .any(|d| d.remote().is_some());
    let db = if locked && !ws.db_path().exists() && !remote_inputs {
        None
    } else {
        ws.create_dirs()?;
        Some(RunsDb::open(&ws.db_path())?)
    };
    let lock = take_lock(&loaded, &ws, db.as_ref(), &registry, &BTreeMap::new())?;
    if let Some(recorded) = &recorded {
        let remedy = format!(
            "run without --locked to run with what changed and update {}",
            lock_path.display()
        );
        let check = lock::Check {
            lock_name: lock::FILE_NAME,
            remedy: &remedy,
        };
        let ds = lock::differences(recorded, &lock, &loaded.source, &overrides, &check);
        if !ds.is_empty() {
            return Err(Error::Invalid(ds));
        }
        for n in lock::notes(recorded, &lock) {
            eprintln!("note: {n}");
        }
    }
    let db = match db {
        Some(db) => db,
        None => {
            ws.create_dirs()?;
            RunsDb::open(&ws.db_path())?
        }
    };
    if !locked && let Err(e) = LockFile::update(&lock_path, &lock_name, &lock) {
        // The run does not depend on it; a read-only checkout may still run.
        eprintln!(
            "warning: {} not updated: {}",
            lock_path.display(),
            e.to_string().trim_start_matches("error: ").trim_end()
        );
    }
    // A scheduled run's id was chosen, and recorded with its firing, by the scheduler.
    let run_id = std::env::var(crate::schedule::daemon::RUN_ID_ENV)
        .ok()
        .filter(|id| crate::runs::is_run_id(id))
        .unwrap_or_else(new_run_id);
    // A secret given with --param is not recorded: resume reads it again
    // from the secret's environment variable or file (or a new --param).
    overrides.retain(|(k, _)| !loaded.pipeline.secrets.contains(k));
    // Held until this engine ends: the run is ours, and shows as running.
    let _lock = RunLock::acquire(&ws.run_dir(&run_id))?
        .map_err(|_| Error::failed(format!("run {run_id} was started twice at once")))?;
    LockFile::single(&lock_name, &lock).write(&lock::of_run(&ws, &run_id))?;
    // The step graph, for `pipeline ui`'s run page (a run's records hold no edges).
    let graph = ws.run_dir(&run_id).join("graph.json");
    let text = serde_json::to_vec(&crate::dag::render::json(&plan)).expect("json");
    crate::store::write_atomic(&graph, &text).map_err(|e| Error::io("write", &graph, e))?;
    db.insert_run(&RunRecord {
        id: run_id.clone(),
        pipeline: loaded.pipeline.name.clone(),
        file: file.display().to_string(),
        source: loaded.source.text.clone(),
        base_dir: loaded.pipeline.base_dir.display().to_string(),
        params: overrides,
        status: RunStatus::Running,
        started_at: now_rfc3339(),
        finished_at: None,
        engine_version: crate::dag::cache::ENGINE_VERSION.to_string(),
        pid: std::process::id(),
        options: RunOptionsRecord {
            executor: executor.map(|e| e.name().to_string()),
            jobs,
            no_cache,
            store: crate::store::remote::settings().url,
        },
    })?;
    execute(
        Execution {
            ws,
            db,
            run_id,
            plan,
            jobs,
            no_cache,
            backend,
            previous: BTreeMap::new(),
            registry,
            registry_pins: BTreeMap::new(),
            locked_inputs: locked_inputs(&lock),
        },
        display,
    )
}

/// The lock `run --locked` holds the run to: the entry of `file` in the lock
/// file beside it (exit 2 when there is none).
fn locked_entry(
    file: &Path,
    lock_path: &Path,
    lock_name: &str,
    source: &Arc<Source>,
) -> Result<Lock> {
    let missing = |what: String| {
        Error::invalid(
            Diagnostic::in_file(source, what).help(format!(
                "run `pipeline run {}` once without --locked: it writes {} (keep it with the pipeline file)",
                file.display(),
                lock_path.display()
            )),
        )
    };
    match LockFile::read(lock_path)? {
        None => Err(missing(format!(
            "there is no {} beside {} to run --locked against",
            lock::FILE_NAME,
            file.display()
        ))),
        Some(mut f) => f.pipelines.remove(lock_name).ok_or_else(|| {
            missing(format!(
                "{} has no lock for {lock_name} to run --locked against",
                lock_path.display()
            ))
        }),
    }
}

/// Takes the lock of a loaded pipeline: its inputs digested (remembered in
/// `db` when given), its `registry://` models resolved in `registry`
/// (held to `pins`), its images looked up on the Docker Engine.
pub(super) fn take_lock(
    loaded: &Loaded,
    ws: &Workspace,
    db: Option<&RunsDb>,
    registry: &Location,
    pins: &BTreeMap<String, u32>,
) -> Result<Lock> {
    let p = &loaded.pipeline;
    let images = if p.steps.iter().any(|s| s.executor == Executor::Docker) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::failed(format!("start: {e}")))?
            .block_on(lock::image_ids(p))
    } else {
        lock::Images::default()
    };
    let facts = lock::Facts {
        inputs: lock::input_digests(p, ws, db)?,
        models: lock::model_versions(p, registry, pins),
        images,
    };
    lock::take(p, &loaded.source.text, facts, db)
}

/// Each input's digest in `lock`.
pub(super) fn locked_inputs(lock: &Lock) -> BTreeMap<String, String> {
    lock.inputs
        .iter()
        .map(|(name, i)| (name.clone(), i.digest.clone()))
        .collect()
}

/// A run to execute: where, what, and how.
pub(super) struct Execution {
    pub ws: Workspace,
    pub db: RunsDb,
    pub run_id: String,
    pub plan: Plan,
    pub jobs: Option<usize>,
    pub no_cache: bool,
    pub backend: Arc<dyn Backend>,
    /// The records of the run being resumed.
    pub previous: BTreeMap<String, crate::runs::StepRecord>,
    pub registry: Location,
    pub registry_pins: BTreeMap<String, u32>,
    /// The input digests of the run's lock, which its steps must read.
    pub locked_inputs: BTreeMap<String, String>,
}

fn execute(x: Execution, display: super::shell::Display) -> Result<i32> {
    let started = Instant::now();
    let ws = x.ws.clone();
    let mut shell = Shell::new(display);
    let (summary, code) = run_steps(x, &mut shell)?;
    shell.summary(&summary, started.elapsed(), &ws);
    Ok(code)
}

/// Runs the steps, its events through `shell`; returns the summary and the exit code.
pub(super) fn run_steps(x: Execution, shell: &mut Shell) -> Result<(RunSummary, i32)> {
    let run = Run {
        ws: x.ws,
        db: x.db,
        run_id: x.run_id,
        plan: Arc::new(x.plan),
        jobs: x.jobs.unwrap_or_else(default_jobs).max(1),
        no_cache: x.no_cache,
        backend: x.backend,
        previous: x.previous,
        registry: x.registry,
        log_tx: None,
        image_ids: BTreeMap::new(),
        registry_pins: x.registry_pins,
        locked_inputs: x.locked_inputs,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("start the scheduler: {e}")))?;
    let plan = run.plan.clone();
    let summary = rt.block_on(run.execute(&mut |e| shell.event(&e)))?;
    // A built-in step that found its data invalid makes the run's input invalid.
    let invalid_data = plan.pipeline.steps.iter().any(|s| {
        crate::schedule::is_builtin(s)
            && summary.steps.get(s.name()).is_some_and(|r| {
                r.status == crate::runs::StepStatus::Failed && r.exit_code == Some(EXIT_INVALID)
            })
    });
    let code = match summary.status {
        RunStatus::Succeeded => EXIT_OK,
        RunStatus::Cancelled => EXIT_INTERRUPTED,
        _ if invalid_data || summary.invalid_input => EXIT_INVALID,
        _ => EXIT_FAILED,
    };
    Ok((summary, code))
}

/// Finds a run by id or unique prefix.
pub fn find_run(db: &RunsDb, id: &str) -> Result<RunRecord> {
    if let Some(r) = db.get_run(id)? {
        return Ok(r);
    }
    let matches = db.find_runs(id)?;
    match matches.as_slice() {
        [one] => Ok(db.get_run(one)?.expect("listed run exists")),
        [] => Err(Error::invalid(
            Diagnostic::new(format!("no run `{id}`")).help("`pipeline runs list` shows the runs"),
        )),
        many => Err(Error::invalid(
            Diagnostic::new(format!("`{id}` matches {} runs", many.len()))
                .note(many.join(", "))
                .help("give more of the id"),
        )),
    }
}

pub fn resume(id: &str, jobs: Option<usize>, display: super::shell::Display) -> Result<i32> {
    let (ws, db) = super::runs::open()?;
    let rec = find_run(&db, id)?;
    if rec.status == RunStatus::Succeeded {
        eprintln!("run {} already succeeded: nothing to resume", rec.id);
        return Ok(EXIT_OK);
    }
    // One engine a run: the lock is held until this engine ends.
    let still_running = |pid: Option<u32>| {
        Error::failed(format!(
            "run {} is still running (engine process {}); wait for it or stop it first",
            rec.id,
            pid.map_or_else(|| "unknown".to_string(), |p| p.to_string())
        ))
    };
    let had_lock = RunLock::path(&ws.run_dir(&rec.id)).exists();
    let _lock = match RunLock::acquire(&ws.run_dir(&rec.id))? {
        Ok(lock) => lock,
        Err(LockState::Held { pid }) => return Err(still_running(pid)),
        Err(_) => return Err(still_running(None)),
    };
    // A run recorded before runs were locked: its engine may still be there.
    if !had_lock
        && rec.status == RunStatus::Running
        && rec.pid != std::process::id()
        // SAFETY: signal 0 only checks that the process exists.
        && unsafe { libc::kill(rec.pid as i32, 0) } == 0
        && std::fs::read_to_string(format!("/proc/{}/cmdline", rec.pid))
            .is_ok_and(|c| c.contains("pipeline"))
    {
        return Err(still_running(Some(rec.pid)));
    }
    // What a killed engine left running would go on writing: stop it first.
    let stopped = crate::exec::supervise::stop_leftovers(&rec.id);
    if !stopped.is_empty() {
        eprintln!(
            "stopped processes the interrupted engine left running ({})",
            stopped.join(", ")
        );
    }
    // Its results belong in the store it started with.
    let store = crate::store::remote::settings().url;
    if store != rec.options.store {
        let d = Diagnostic::new(format!(
            "run {} was started with {}, and this resume would use {}",
            rec.id,
            rec.options
                .store
                .as_deref()
                .map_or("the local store only".into(), |s| format!(
                    "the shared store {s}"
                )),
            store
                .as_deref()
                .map_or("the local store only".into(), |s| format!(
                    "the shared store {s}"
                )),
        ));
        return Err(Error::invalid(match &rec.options.store {
            Some(s) => d.help(format!("resume it with `--store {s}`")),
            None => d.help("resume it without `--store` (and without PIPELINE_STORE)"),
        }));
    }
    // Resume what was started: the file's text and params as they were then.
    let source = Arc::new(Source {
        name: rec.file.clone(),
        text: rec.source.clone(),
    });
    let executor = rec.options.executor.as_deref().and_then(Executor::parse);
    let loaded = load_source(
        source,
        &PathBuf::from(&rec.base_dir),
        &LoadOptions {
            params: rec.params.clone(),
            executor,
        },
    )?;
    let plan = Plan::build(Arc::new(loaded.pipeline), &loaded.source).map_err(Error::invalid)?;
    let backend = backend_for(&plan)?;
    let previous = db
        .steps_of(&rec.id)?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    db.claim_run(&rec.id)?;
    execute(
        Execution {
            ws,
            db,
            run_id: rec.id,
            plan,
            jobs: jobs.or(rec.options.jobs),
            no_cache: rec.options.no_cache,
            backend,
            previous,
            registry: super::registry::registry_location(None)?,
            registry_pins: BTreeMap::new(),
            // What the first engine read may have changed since: the steps
            // still to run read the data as it is now (as before locks).
            locked_inputs: BTreeMap::new(),
        },
        display,
    )
}
