//! `reproduce`: a recorded run done again from its lock, in a scratch
//! workspace, and compared with the record output by output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::run::{Execution, backend_for, find_run, locked_inputs, run_steps, take_lock};
use super::shell::{Mode, Shell};
use crate::dag::Plan;
use crate::error::{EXIT_FAILED, EXIT_OK, Error, Result};
use crate::registry::Registry;
use crate::repro::compare::{self, StepComparison, Stores, Verdict};
use crate::repro::lock::{self, Lock, LockFile};
use crate::repro::{Report, Scratch};
use crate::runs::{
    RunLock, RunOptionsRecord, RunRecord, RunStatus, RunsDb, StepRecord, live_status, now_rfc3339,
};
use crate::spec::model::Executor;
use crate::spec::source::{Diagnostic, Source};
use crate::spec::{LoadOptions, load_source};
use crate::store::Workspace;

pub fn reproduce(id: &str, verify: bool, jobs: Option<usize>, json: bool) -> Result<i32> {
    let (ws, db) = super::runs::open()?;
    let rec = find_run(&db, id)?;
    match live_status(&rec, &ws.run_dir(&rec.id)) {
        RunStatus::Succeeded => {}
        RunStatus::Running => {
            return Err(Error::invalid(
                Diagnostic::new(format!("run {} is still running", rec.id))
                    .help("reproduce it once it has finished"),
            ));
        }
        other => {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "run {} {}: only a run that succeeded has every output to compare with",
                    rec.id,
                    other.as_str()
                ))
                .help(format!("`pipeline resume {}` finishes it", rec.id)),
            ));
        }
    }
    let (lock_name, recorded) = recorded_lock(&ws, &rec)?;
    // Resume's way: the file's text and params as they were, not as they are.
    let source = Arc::new(Source {
        name: rec.file.clone(),
        text: rec.source.clone(),
    });
    if recorded
        .run
        .as_ref()
        .is_some_and(|r| blake3::hash(source.text.as_bytes()).to_hex().as_str() != r.source_digest)
    {
        return Err(Error::failed(format!(
            "the lock of run {} is not of the pipeline the run recorded (its source digest differs)",
            rec.id
        )));
    }
    let base_dir = PathBuf::from(&rec.base_dir);
    let gone = check_inputs(&recorded, &base_dir, &source, &rec.id);
    if !gone.is_empty() {
        return Err(Error::Invalid(gone));
    }
    let executor = rec.options.executor.as_deref().and_then(Executor::parse);
    let mut loaded = load_source(
        source.clone(),
        &base_dir,
        &LoadOptions {
            params: rec.params.clone(),
            executor,
        },
    )?;
    // A reproduction approves nothing for real: its approval hooks would deploy.
    loaded.pipeline.on_approved.clear();
    let plan =
        Plan::build(Arc::new(loaded.pipeline.clone()), &loaded.source).map_err(Error::invalid)?;
    let backend = backend_for(&plan)?;

    let scratch = Scratch::create(&ws, &rec.id)?;
    let pins: BTreeMap<String, u32> = recorded
        .models
        .iter()
        .map(|(text, m)| (text.clone(), m.version))
        .collect();
    let prepared = (|| -> Result<(RunsDb, Lock)> {
        prepare_registry(&ws, &scratch, &recorded)?;
        let sdb = RunsDb::open(&scratch.ws.db_path())?;
        let now = take_lock(
            &loaded,
            &scratch.ws,
            Some(&sdb),
            &crate::registry::Location::File(scratch.registry.clone()),
            &pins,
        )?;
        let remedy = format!(
            "run {} cannot be reproduced so; restore what it read, or run the pipeline anew",
            rec.id
        );
        let check = lock::Check {
            lock_name: "the run's lock",
            remedy: &remedy,
        };
        let ds = lock::differences(&recorded, &now, &source, &[], &check);
        if !ds.is_empty() {
            return Err(Error::Invalid(ds));
        }
        Ok((sdb, now))
    })();
    let (sdb, now) = match prepared {
        Ok(x) => x,
        Err(e) => {
            scratch.discard();
            return Err(e);
        }
    };

    // The reproduction is a run of the scratch workspace, under the run's own
    // id (so its steps see the same PIPELINE_RUN_ID).
    let run_lock = RunLock::acquire(&scratch.ws.run_dir(&rec.id))?
        .map_err(|_| Error::failed(format!("the reproduction of {} was started twice", rec.id)))?;
    LockFile::single(&lock_name, &now).write(&lock::of_run(&scratch.ws, &rec.id))?;
    let jobs = jobs.or(rec.options.jobs);
    sdb.insert_run(&RunRecord {
        status: RunStatus::Running,
        started_at: now_rfc3339(),
        finished_at: None,
        engine_version: crate::dag::cache::ENGINE_VERSION.to_string(),
        pid: std::process::id(),
        options: RunOptionsRecord {
            executor: rec.options.executor.clone(),
            jobs,
            no_cache: true,
            store: None,
        },
        ..rec.clone()
    })?;
    let mut shell = Shell::new(super::shell::Display::from_flags(json, false));
    shell.status(&format!(
        "reproducing run {} ({}) in {}",
        rec.id,
        rec.pipeline,
        scratch.ws.root.display()
    ));
    let pipeline = plan.pipeline.clone();
    let inexact = compare::inexact_steps(&plan);
    let (summary, code) = run_steps(
        Execution {
            ws: scratch.ws.clone(),
            db: sdb,
            run_id: rec.id.clone(),
            plan,
            jobs,
            no_cache: true,
            backend,
            previous: BTreeMap::new(),
            registry: crate::registry::Location::File(scratch.registry.clone()),
            registry_pins: pins,
            locked_inputs: locked_inputs(&recorded),
        },
        &mut shell,
    )?;
    shell.finish();
    drop(run_lock);

    let records: BTreeMap<String, StepRecord> = db
        .steps_of(&rec.id)?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let (user_store, scratch_store) = (ws.store(), scratch.ws.store());
    let stores = Stores {
        recorded: &user_store,
        reproduced: &scratch_store,
    };
    let mut steps = BTreeMap::new();
    for (i, step) in pipeline.steps.iter().enumerate() {
        let cmp = match records.get(step.name()) {
            Some(r) => compare::compare_step(
                &step.kind,
                r,
                summary.steps.get(step.name()),
                inexact[i].as_deref(),
                &stores,
            ),
            None => StepComparison {
                verdict: Verdict::Different,
                note: Some("not in the recorded run".into()),
                tolerance: None,
                outputs: BTreeMap::new(),
            },
        };
        steps.insert(step.name().to_string(), cmp);
    }
    let verdict = Report::verdict_of(&steps);
    let keep = verdict == Verdict::Different || code != EXIT_OK;
    let report = Report {
        run_id: rec.id.clone(),
        pipeline: rec.pipeline.clone(),
        verdict,
        steps,
        notes: lock::notes(&recorded, &now),
        kept: keep.then(|| scratch.ws.root.display().to_string()),
    };
    let text = serde_json::to_string_pretty(&report).expect("reports serialize") + "\n";
    crate::store::write_atomic(&scratch.report, text.as_bytes())
        .map_err(|e| Error::io("write", &scratch.report, e))?;
    if !keep {
        scratch.remove();
    }
    if shell.mode() == Mode::Json {
        outln!(
            "{}",
            serde_json::to_string(&report).expect("reports serialize")
        );
    } else {
        print_report(&report, &pipeline.steps, &scratch.report);
    }
    Ok(if code != EXIT_OK {
        code
    } else if verify && verdict == Verdict::Different {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// The lock run `rec` wrote into its directory, and its entry's name.
fn recorded_lock(ws: &Workspace, rec: &RunRecord) -> Result<(String, Lock)> {
    let path = lock::of_run(ws, &rec.id);
    let none = |why: String| {
        Error::invalid(
            Diagnostic::new(format!(
                "run {} cannot be reproduced: {why}, so what it was made of is not known",
                rec.id
            ))
            .help("run the pipeline again: every run records its lock"),
        )
    };
    let file = LockFile::read(&path)?.ok_or_else(|| {
        none(format!(
            "it has no lock ({} is missing; it was recorded by an engine that wrote none)",
            path.display()
        ))
    })?;
    file.pipelines
        .into_iter()
        .next()
        .ok_or_else(|| none(format!("its lock {} is empty", path.display())))
}

/// Every local input of the recorded lock that is gone or no longer what
/// the run read, one located diagnostic each (S3 inputs are checked when
/// the reproduction's own lock is taken).
fn check_inputs(
    recorded: &Lock,
    base_dir: &Path,
    source: &Arc<Source>,
    run_id: &str,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, input) in &recorded.inputs {
        if crate::store::remote::is_remote(&input.path) {
            continue;
        }
        let path = base_dir.join(&input.path);
        let span = lock::key_span(source, &["inputs", name]);
        let at = |message: String| {
            if span.is_known() {
                Diagnostic::at(source, span, message)
            } else {
                Diagnostic::in_file(source, message)
            }
        };
        let recorded_digest = format!("digest in the run's lock: {}", input.digest);
        match crate::store::digest_path(&path) {
            Ok(d) if d == input.digest => {}
            Ok(d) => out.push(
                at(format!("input `{name}` of run {run_id} has changed"))
                    .label(format!("{} is not what the run read", input.path))
                    .note(format!("at {}", path.display()))
                    .note(recorded_digest)
                    .note(format!("digest now: {d}"))
                    .help("put back the data the run read: a reproduction reads the same inputs"),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(
                at(format!("input `{name}` of run {run_id} is gone"))
                    .label(format!("nothing at {} any more", input.path))
                    .note(format!("it was at {}", path.display()))
                    .note(recorded_digest)
                    .help("put the data back where it was (with the same content)"),
            ),
            Err(e) => out.push(
                at(format!(
                    "input `{name}` of run {run_id} cannot be read: {e}"
                ))
                .note(format!("at {}", path.display()))
                .note(recorded_digest),
            ),
        }
    }
    out
}

/// The scratch registry: a copy of the workspace's as it is now, so that
/// `registry://` references resolve and register steps register (into the
/// copy); with the artifacts of the models the run read in the scratch store.
fn prepare_registry(ws: &Workspace, scratch: &Scratch, recorded: &Lock) -> Result<()> {
    let registry = super::registry::registry_location(None)?;
    let exists = registry.as_path().is_none_or(Path::exists);
    if exists {
        Registry::open_existing(registry)
            .and_then(|r| r.copy_to(&scratch.registry))
            .map_err(super::registry::reg_err)?;
    }
    let mut missing = Vec::new();
    for (text, m) in &recorded.models {
        if !ws.store().path_of(&m.artifact_digest).is_dir() {
            missing.push(
                Diagnostic::new(format!(
                    "`{text}` was version {} of `{}` (artifact {}), which is no longer in this workspace's store",
                    m.version, m.group, m.artifact_digest
                ))
                .help("a reproduction needs the model the run read"),
            );
            continue;
        }
        scratch
            .ws
            .store()
            .copy_in(&ws.store(), &m.artifact_digest)?;
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(missing))
    }
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

/// The report for a person: a line a step, with what differs under it.
fn print_report(report: &Report, order: &[crate::spec::model::Step], kept_report: &Path) {
    let width = order.iter().map(|s| s.name().len()).max().unwrap_or(0);
    outln!(
        "reproduction of run {} ({}):",
        report.run_id,
        report.pipeline
    );
    for step in order {
        let Some(c) = report.steps.get(step.name()) else {
            continue;
        };
        let mut line = format!("  {:<width$}  {}", step.name(), c.verdict.as_str());
        if let Some(n) = &c.note {
            line.push_str(&format!(": {n}"));
        }
        outln!("{line}");
        let pad = " ".repeat(width + 4);
        if let Some(t) = &c.tolerance {
            outln!("{pad}not promised byte-identical: {t}");
        }
        for (name, o) in &c.outputs {
            if o.verdict == Verdict::Identical {
                if let Some(n) = &o.note {
                    outln!("{pad}{}.{name}: {n}", step.name());
                }
                continue;
            }
            let mut head = format!("{pad}{}.{name} {}", step.name(), o.verdict.as_str());
            if let Some(r) = &o.reproduced {
                head.push_str(&format!(" ({} -> {})", short(&o.recorded), short(r)));
            }
            if let Some(n) = &o.note {
                head.push_str(&format!(": {n}"));
            }
            outln!("{head}");
            for f in &o.files {
                let within = match f.within_tolerance {
                    Some(true) => ", within tolerance",
                    Some(false) => ", beyond tolerance",
                    None => "",
                };
                outln!("{pad}  {} {}{within}", f.path, f.change);
            }
        }
    }
    for n in &report.notes {
        outln!("note: {n}");
    }
    let count = |v: Verdict| report.steps.values().filter(|s| s.verdict == v).count();
    let summary = match report.verdict {
        Verdict::Identical => format!(
            "run {} reproduced: every output of its {} steps is identical",
            report.run_id,
            report.steps.len()
        ),
        Verdict::WithinTolerance => format!(
            "run {} reproduced: {} steps identical, {} within tolerance ({:e} relative), none beyond",
            report.run_id,
            count(Verdict::Identical),
            count(Verdict::WithinTolerance),
            compare::TOLERANCE
        ),
        Verdict::Different => format!(
            "run {} NOT reproduced: {} of {} steps differ",
            report.run_id,
            count(Verdict::Different),
            report.steps.len()
        ),
    };
    outln!("{summary}");
    match &report.kept {
        Some(k) => outln!(
            "the reproduction is kept in {k}; the report in {}",
            kept_report.display()
        ),
        None => outln!("the report is in {}", kept_report.display()),
    }
}
