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
use crate::runs::{
    LockState, RunLock, RunOptionsRecord, RunRecord, RunStatus, RunsDb, new_run_id, now_rfc3339,
};
use crate::schedule::Run;
use crate::spec::model::Executor;
use crate::spec::source::{Diagnostic, Source};
use crate::spec::{LoadOptions, load_source};
use crate::store::Workspace;

fn backend_for(plan: &Plan) -> Result<Arc<dyn Backend>> {
    for s in &plan.pipeline.steps {
        if s.executor == Executor::Batch {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "step `{}` asks for the `batch` executor (AWS Batch), which this build cannot run",
                    s.name()
                ))
                .help("write `executor: local` or `executor: docker` where it says `batch` (`--executor` replaces only the default, not a step's own choice)"),
            ));
        }
    }
    let docker = plan
        .pipeline
        .steps
        .iter()
        .any(|s| s.executor == Executor::Docker)
        .then(|| Arc::new(DockerBackend::new()) as Arc<dyn Backend>);
    Ok(Arc::new(Dispatch {
        local: Arc::new(LocalBackend),
        docker,
    }))
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(
    file: &Path,
    params: &ParamArgs,
    executor: Option<Executor>,
    jobs: Option<usize>,
    no_cache: bool,
    json: bool,
) -> Result<i32> {
    let (loaded, plan) = load_and_plan(file, params, executor)?;
    for (step, warning) in super::plan::hyperparameter_warnings(&loaded.pipeline) {
        eprintln!("warning: step `{step}`: {warning}");
    }
    let backend = backend_for(&plan)?;
    let ws = Workspace::locate();
    ws.create_dirs()?;
    let db = RunsDb::open(&ws.db_path())?;
    // A scheduled run's id was chosen, and recorded with its firing, by the scheduler.
    let run_id = std::env::var(crate::schedule::daemon::RUN_ID_ENV)
        .ok()
        .filter(|id| crate::runs::is_run_id(id))
        .unwrap_or_else(new_run_id);
    let mut overrides =
        crate::spec::params::parse_overrides(&params.params).map_err(Error::invalid)?;
    // A secret given with --param is not recorded: resume reads it again
    // from the secret's environment variable or file (or a new --param).
    overrides.retain(|(k, _)| !loaded.pipeline.secrets.contains(k));
    // Held until this engine ends: the run is ours, and shows as running.
    let _lock = RunLock::acquire(&ws.run_dir(&run_id))?
        .map_err(|_| Error::failed(format!("run {run_id} was started twice at once")))?;
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
        ws,
        db,
        run_id,
        plan,
        jobs,
        no_cache,
        backend,
        BTreeMap::new(),
        json,
    )
}

#[allow(clippy::too_many_arguments)]
fn execute(
    ws: Workspace,
    db: RunsDb,
    run_id: String,
    plan: Plan,
    jobs: Option<usize>,
    no_cache: bool,
    backend: Arc<dyn Backend>,
    previous: BTreeMap<String, crate::runs::StepRecord>,
    json: bool,
) -> Result<i32> {
    let started = Instant::now();
    let mut shell = Shell::new(json);
    let run = Run {
        ws: ws.clone(),
        db,
        run_id,
        plan: Arc::new(plan),
        jobs: jobs.unwrap_or_else(default_jobs).max(1),
        no_cache,
        backend,
        previous,
        registry_path: super::registry::registry_path(None),
        log_tx: None,
        image_ids: BTreeMap::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("start the scheduler: {e}")))?;
    let plan = run.plan.clone();
    let summary = rt.block_on(run.execute(&mut |e| shell.event(&e)))?;
    shell.summary(&summary, started.elapsed(), &ws);
    // A built-in step that found its data invalid makes the run's input invalid.
    let invalid_data = plan.pipeline.steps.iter().any(|s| {
        crate::schedule::is_builtin(s)
            && summary.steps.get(s.name()).is_some_and(|r| {
                r.status == crate::runs::StepStatus::Failed && r.exit_code == Some(EXIT_INVALID)
            })
    });
    Ok(match summary.status {
        RunStatus::Succeeded => EXIT_OK,
        RunStatus::Cancelled => EXIT_INTERRUPTED,
        _ if invalid_data || summary.invalid_input => EXIT_INVALID,
        _ => EXIT_FAILED,
    })
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

pub fn resume(id: &str, jobs: Option<usize>, json: bool) -> Result<i32> {
    let ws = Workspace::locate();
    if !ws.db_path().exists() {
        return Err(Error::invalid(Diagnostic::new(format!(
            "no runs here to resume ({} does not exist)",
            ws.root.display()
        ))));
    }
    let db = RunsDb::open(&ws.db_path())?;
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
        ws,
        db,
        rec.id,
        plan,
        jobs.or(rec.options.jobs),
        rec.options.no_cache,
        backend,
        previous,
        json,
    )
}
