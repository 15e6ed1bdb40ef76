//! `validate`, `plan` and `graph`: everything that reads a pipeline without running it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::ParamArgs;
use crate::dag::cache::{ChannelIdentity, KeyParts};
use crate::dag::render::{GraphFormat, render};
use crate::dag::{EdgeKind, Plan};
use crate::error::{Error, Result};
use crate::runs::{OutputRecord, RunsDb};
use crate::spec::model::{CachePolicy, Executor, InputDef, RefTarget};
use crate::spec::params::parse_overrides;
use crate::spec::{LoadOptions, Loaded, load_file};
use crate::store::Workspace;

/// Loads, validates and plans a pipeline file.
pub fn load_and_plan(
    file: &Path,
    params: &ParamArgs,
    executor: Option<Executor>,
) -> Result<(Loaded, Plan)> {
    let overrides = parse_overrides(&params.params).map_err(Error::invalid)?;
    let loaded = load_file(
        file,
        &LoadOptions {
            params: overrides,
            executor,
        },
    )?;
    let plan =
        Plan::build(Arc::new(loaded.pipeline.clone()), &loaded.source).map_err(Error::invalid)?;
    Ok((loaded, plan))
}

pub fn validate(file: &Path, params: &ParamArgs) -> Result<i32> {
    let (loaded, plan) = load_and_plan(file, params, None)?;
    for (step, warning) in hyperparameter_warnings(&loaded.pipeline) {
        eprintln!("warning: step `{step}`: {warning}");
    }
    outln!(
        "{}: ok: pipeline `{}`, {} steps, {} inputs",
        file.display(),
        loaded.pipeline.name,
        plan.len(),
        loaded.pipeline.inputs.len()
    );
    Ok(0)
}

/// For each built-in algorithm's step, the hyperparameters it was given that
/// cannot change its model (accepted for SageMaker compatibility).
pub fn hyperparameter_warnings(p: &crate::spec::model::Pipeline) -> Vec<(String, String)> {
    use crate::spec::model::StepKind;
    let mut out = Vec::new();
    for s in &p.steps {
        let (algorithm, hps) = match &s.kind {
            StepKind::Train(t) => (t.algorithm.as_deref(), &t.hyperparameters),
            StepKind::Evaluate(e) => (e.algorithm.as_deref(), &e.hyperparameters),
            _ => continue,
        };
        let Some(a) = algorithm else { continue };
        // Errors were reported by validation; only warnings are left to show.
        if let Ok(ws) = crate::exec::builtin::check_hyperparameters(a, hps) {
            out.extend(ws.into_iter().map(|w| (s.name.value.clone(), w)));
        }
    }
    out
}

pub fn graph(file: &Path, params: &ParamArgs, format: GraphFormat) -> Result<i32> {
    let (_, plan) = load_and_plan(file, params, None)?;
    out!("{}", render(&plan, format));
    Ok(0)
}

/// One line of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub step: String,
    pub kind: String,
    /// `run`, `cached`, or `maybe` (depends on a condition).
    pub action: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Works out, without running anything, which steps would run and why.
pub fn explain(plan: &Plan, db: Option<&RunsDb>, no_cache: bool) -> Result<Vec<PlannedStep>> {
    let p = &plan.pipeline;
    let image_ids = if p
        .steps
        .iter()
        .any(|s| crate::dag::cache::user_image(s).is_some())
    {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::failed(format!("start the Docker Engine client: {e}")))?
            .block_on(crate::schedule::inputs::image_ids(p))
    } else {
        BTreeMap::new()
    };
    // Outputs known ahead of the run: those of steps that will be cached.
    let mut known: Vec<Option<BTreeMap<String, OutputRecord>>> = vec![None; p.steps.len()];
    // Whether each step planned so far may or may not run (depends on a condition).
    let mut maybe = vec![false; p.steps.len()];
    // How the outputs of steps that pass an input's rows on are read.
    let upstream: Vec<Option<InputDef>> = p
        .steps
        .iter()
        .map(|s| crate::schedule::upstream_input(p, s))
        .collect();
    let mut out = Vec::new();
    for &i in &plan.order {
        let step = &p.steps[i];
        let mut line = PlannedStep {
            step: step.name().to_string(),
            kind: step.kind.name().to_string(),
            action: "run".into(),
            reason: String::new(),
            key: None,
        };
        // Input digests, as far as they can be known now.
        let mut digests: BTreeMap<String, (String, Option<&InputDef>)> = BTreeMap::new();
        let mut unknown: Option<String> = None;
        for (ch, r) in step.inputs() {
            match &r.target {
                RefTarget::Input(n) => {
                    let path = &p.inputs[n].resolved;
                    let d = match db {
                        Some(db) => crate::schedule::inputs::input_digest(
                            db,
                            &Workspace::locate(),
                            &p.inputs[n],
                        )?,
                        None => crate::store::digest_path(path)
                            .map_err(|e| Error::io("hash the input", path, e))?,
                    };
                    digests.insert(ch, (d, Some(&p.inputs[n])));
                }
                RefTarget::Output { step: s, output } => {
                    let j = plan.step_index(s).expect("validated");
                    match known[j].as_ref().and_then(|o| o.get(output)) {
                        Some(o) => {
                            let reading = upstream[j].as_ref();
                            digests.insert(ch, (o.digest.clone(), reading));
                        }
                        None => {
                            unknown.get_or_insert_with(|| {
                                format!("input `{ch}` comes from `{s}`, which runs")
                            });
                        }
                    }
                }
                RefTarget::Registry(_) => {
                    unknown.get_or_insert_with(|| {
                        format!("input `{ch}` is `{}`, resolved when the run starts", r.text)
                    });
                }
            }
        }
        let conditional = step.when.is_some()
            || plan.deps(i).iter().any(|(j, k)| {
                // Looked up by index: a scan of the lines so far made plans quadratic.
                *k != EdgeKind::Order && maybe[*j]
            });
        if unknown.is_none() {
            unknown = crate::spec::tune::decided_when_it_runs(step);
        }
        if let Some(u) = unknown {
            line.reason = u;
        } else {
            let identities = digests
                .iter()
                .map(|(c, (d, reading))| {
                    (
                        c.clone(),
                        ChannelIdentity {
                            digest: d,
                            reading: *reading,
                        },
                    )
                })
                .collect();
            let code = crate::schedule::inputs::program_digests(db, step, &p.base_dir)?;
            let image = crate::schedule::inputs::image_of(step, &image_ids);
            let parts = KeyParts::new(step, &identities, code, image);
            let key = parts.key();
            line.key = Some(key[..12].to_string());
            let hit = match (db, step.cache, no_cache) {
                (_, CachePolicy::Off, _) => {
                    line.reason = "caching is off for this step (`cache: false`)".into();
                    None
                }
                (_, _, true) => {
                    line.reason = "--no-cache".into();
                    None
                }
                (None, _, _) => {
                    line.reason = "never run here before".into();
                    None
                }
                (Some(db), policy, false) => match crate::store::remote::cached(
                    db,
                    &Workspace::locate().store(),
                    &key,
                    crate::schedule::shares_cache(step),
                )? {
                    Some((e, origin)) => {
                        if !e.is_fresh(policy) {
                            line.reason =
                                format!("the cached result from run {} has expired", e.run_id);
                            None
                        } else {
                            Some((e, origin))
                        }
                    }
                    None => {
                        line.reason = match db.cache_latest(&p.name, step.name())? {
                            Some(prev) => {
                                let changes = parts.changes_since(&prev.parts);
                                if changes.is_empty() {
                                    "not cached".into()
                                } else {
                                    changes.join("; ")
                                }
                            }
                            None => "never run before".into(),
                        };
                        None
                    }
                },
            };
            if let Some((e, origin)) = hit {
                line.action = "cached".into();
                line.reason = origin.describe(&e.run_id);
                known[i] = Some(e.outputs);
            }
        }
        if conditional && line.action == "run" {
            line.action = "maybe".into();
            maybe[i] = true;
            if let Some(w) = &step.when {
                line.reason = format!("runs if `{}`; {}", w.value, line.reason);
            }
        }
        maybe[i] = line.action == "maybe";
        out.push(line);
    }
    Ok(out)
}

pub fn plan(file: &Path, params: &ParamArgs, no_cache: bool, json: bool) -> Result<i32> {
    let (loaded, plan) = load_and_plan(file, params, None)?;
    let ws = Workspace::locate();
    // S3 inputs' identities are remembered in the workspace, and a shared
    // cache may hold results for a workspace that has run nothing yet.
    let remote = crate::store::remote::settings().url.is_some()
        || loaded
            .pipeline
            .inputs
            .values()
            .any(|d| d.remote().is_some());
    if remote {
        ws.create_dirs()?;
    }
    let db = if ws.db_path().exists() || remote {
        Some(RunsDb::open(&ws.db_path())?)
    } else {
        None
    };
    let lines = explain(&plan, db.as_ref(), no_cache)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&lines).expect("json"));
        return Ok(0);
    }
    let to_run = lines.iter().filter(|l| l.action != "cached").count();
    outln!(
        "plan for `{}` ({}): {} steps, {} to run, {} cached",
        loaded.pipeline.name,
        file.display(),
        lines.len(),
        to_run,
        lines.len() - to_run
    );
    let w = lines.iter().map(|l| l.step.len()).max().unwrap_or(4).max(4);
    let wk = lines.iter().map(|l| l.kind.len()).max().unwrap_or(4).max(4);
    for l in &lines {
        outln!(
            "  {:<w$}  {:<wk$}  {:<6}  {}",
            l.step,
            l.kind,
            l.action,
            l.reason
        );
    }
    Ok(0)
}
