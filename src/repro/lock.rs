//! The lock: what a run is made of, taken before any of its steps starts.
//!
//! A lock holds the resolved pipeline (each step as its cache key sees it,
//! with its executor, nodes and seeds), the parameter values, the content
//! digest of every input and program file, the `registry://` models by
//! version and artifact, user images by ID and the engine version; and, for
//! one run, the [`RunFacts`]: the pipeline file's digest, the platform, each
//! step's thread count and the runtime image built-in docker steps ran in.
//! Nothing in it depends on the time or on where the workspace is.
//!
//! A lock file (`pipeline.lock`, JSON) holds one lock a pipeline file, by the
//! file's name: every run writes its own into its run directory
//! (`.pipeline/runs/RUN/pipeline.lock`, one entry, with its run facts), and
//! a plain `run` also updates its entry in the `pipeline.lock` beside the
//! pipeline file, as Cargo updates Cargo.lock. That one leaves the run facts
//! out: they belong to a machine, and a lock kept with the pipeline file
//! must not change from one machine to the next. `run --locked` never
//! writes it and refuses to run what differs from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dag::cache::{ENGINE_VERSION, diff_values, step_spec, user_image};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::runs::RunsDb;
use crate::schedule::{inputs, is_builtin, step_executor, step_threads};
use crate::spec::model::{Executor, Pipeline, RefTarget, Step, StepKind};
use crate::spec::source::{Diagnostic, Source, Span};
use crate::store::Workspace;

/// The name of a lock file, beside a pipeline file and in a run's directory.
pub const FILE_NAME: &str = "pipeline.lock";

/// The version of the lock file's format.
pub const FORMAT_VERSION: u32 = 1;

/// A lock file: the locks of the pipeline files of one directory (or of one run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub lock_version: u32,
    /// By the pipeline file's name (`train.yaml`).
    pub pipelines: BTreeMap<String, Lock>,
}

/// What one run of a pipeline file is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// The pipeline's `name:`.
    pub pipeline: String,
    /// `pipeline 0.1.0`: the engine version, part of every cache key.
    pub engine: String,
    /// Every param's value, defaults and `--param` applied. Secret params
    /// are never recorded.
    pub params: BTreeMap<String, Value>,
    pub inputs: BTreeMap<String, LockedInput>,
    /// Each `registry://` reference the steps read, as it resolved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, LockedModel>,
    /// Each user image a docker step runs in, by tag, with its image ID
    /// (`null`: not on the Docker Engine).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Option<String>>,
    pub steps: BTreeMap<String, LockedStep>,
    /// What one run was besides: in a run's lock, not in the one beside the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunFacts>,
}

/// What a lock records of one run that belongs to the machine it ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// blake3 of the pipeline file's text.
    pub source_digest: String,
    pub platform: Platform,
    /// Each step's `SM_NUM_CPUS`: the worker threads a built-in uses (its
    /// `resources.cpus`, at most the machine's cores; all of them without).
    pub threads: BTreeMap<String, usize>,
    /// The runtime image built-in docker steps run in: its tag names this
    /// program's content; its ID is `null` when it was still to be built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_image: Option<RuntimeImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeImage {
    pub tag: String,
    pub id: Option<String>,
}

/// Where a lock was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    pub fn current() -> Platform {
        Platform {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

/// A pipeline input: where it is (as written) and its content digest (an
/// S3 input's identity; see docs/s3.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedInput {
    pub path: String,
    pub digest: String,
}

/// A `registry://` reference as it resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedModel {
    pub group: String,
    pub version: u32,
    pub artifact_digest: String,
}

/// One step: what it computes and how it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedStep {
    pub kind: String,
    pub executor: String,
    pub nodes: u32,
    /// The seeds the step is given (`seed`, `hyperparameters.seed`), the
    /// built-ins' defaults included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seeds: BTreeMap<String, u64>,
    /// The user image it runs in (its ID is in [`Lock::images`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Content digests of the program files its `run:` names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub programs: BTreeMap<String, String>,
    /// The resolved step as its cache key sees it: every field that can
    /// change what it computes.
    pub spec: Value,
}

/// Where the lock file beside a pipeline file is, and its entry's name.
pub fn beside(file: &Path) -> (PathBuf, String) {
    let dir = file.parent().unwrap_or(Path::new(""));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir.join(FILE_NAME), name)
}

/// The lock a run wrote into its directory.
pub fn of_run(ws: &Workspace, run_id: &str) -> PathBuf {
    ws.run_dir(run_id).join(FILE_NAME)
}

/// The lock run `run_id` recorded (its one pipeline's entry), when it has a
/// readable one.
pub fn recorded(ws: &Workspace, run_id: &str) -> Option<Lock> {
    LockFile::read(&of_run(ws, run_id))
        .ok()
        .flatten()
        .and_then(|f| f.pipelines.into_values().next())
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile {
            lock_version: FORMAT_VERSION,
            pipelines: BTreeMap::new(),
        }
    }
}

impl LockFile {
    /// Reads a lock file; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<LockFile>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let file: LockFile = serde_json::from_str(&text).map_err(|e| {
            Error::invalid(
                Diagnostic::new(format!("{} is not a lock file: {e}", path.display()))
                    .help("remove it; a run without --locked writes it again"),
            )
        })?;
        if file.lock_version > FORMAT_VERSION {
            return Err(Error::invalid(Diagnostic::new(format!(
                "{} was written by a newer engine (lock format {}, this engine knows {FORMAT_VERSION})",
                path.display(),
                file.lock_version
            )).help("upgrade the engine")));
        }
        Ok(Some(file))
    }

    /// The text written: pretty JSON, keys sorted, one line at the end.
    pub fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("locks serialize");
        s.push('\n');
        s
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        crate::store::write_atomic(path, self.to_text().as_bytes())
            .map_err(|e| Error::io("write", path, e))
    }

    /// Sets the entry `name` of the lock file at `path` to `lock` without
    /// its run facts, keeping the other entries; writes nothing when it is
    /// already so. Returns whether the file changed.
    pub fn update(path: &Path, name: &str, lock: &Lock) -> Result<bool> {
        let lock = &Lock {
            run: None,
            ..lock.clone()
        };
        // Runs of two pipeline files of one directory at once each keep the other's entry.
        let _guard = DirLock::take(path.parent().unwrap_or(Path::new("")))?;
        let mut file = Self::read(path)?.unwrap_or_default();
        if file.pipelines.get(name) == Some(lock) && file.lock_version == FORMAT_VERSION {
            return Ok(false);
        }
        file.lock_version = FORMAT_VERSION;
        file.pipelines.insert(name.to_string(), lock.clone());
        file.write(path)?;
        Ok(true)
    }

    /// A lock file of one entry (a run's).
    pub fn single(name: &str, lock: &Lock) -> LockFile {
        let mut file = LockFile::default();
        file.pipelines.insert(name.to_string(), lock.clone());
        file
    }
}

/// An exclusive `flock` on a directory, held while its lock file is
/// read, changed and written (the file itself is replaced by a rename, so it
/// cannot carry the lock).
struct DirLock {
    _held: std::fs::File,
}

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock> {
        use std::os::fd::AsRawFd;
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let f = std::fs::File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        // SAFETY: flock on a descriptor we own; the lock goes with it.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("lock", dir, std::io::Error::last_os_error()));
        }
        Ok(DirLock { _held: f })
    }
}

/// What a lock is taken from, besides the pipeline itself.
pub struct Facts {
    pub inputs: BTreeMap<String, LockedInput>,
    pub models: BTreeMap<String, LockedModel>,
    pub images: Images,
}

/// The images of a pipeline's docker steps, as the Docker Engine knows them.
#[derive(Debug, Default)]
pub struct Images {
    /// User images by tag, with their IDs.
    pub user: BTreeMap<String, Option<String>>,
    /// The runtime image, when a built-in step runs on docker.
    pub runtime: Option<RuntimeImage>,
}

/// The content digest of every pipeline input, remembered by file identity
/// in `db` when there is one (a run), hashed afresh without.
pub fn input_digests(
    p: &Pipeline,
    ws: &Workspace,
    db: Option<&RunsDb>,
) -> Result<BTreeMap<String, LockedInput>> {
    let mut out = BTreeMap::new();
    for (name, def) in &p.inputs {
        let digest = match db {
            Some(db) => inputs::input_digest(db, ws, def)?,
            None if def.remote().is_some() => {
                return Err(Error::failed(
                    "an S3 input is identified through the workspace's database, which does not exist yet",
                ));
            }
            None => crate::store::digest_path(&def.resolved)
                .map_err(|e| Error::io("hash the input", &def.resolved, e))?,
        };
        out.insert(
            name.clone(),
            LockedInput {
                path: def.path.clone(),
                digest,
            },
        );
    }
    Ok(out)
}

/// Each `registry://` reference the steps read, resolved in the registry at
/// `registry` (held to `pins`, by reference text, when given). A
/// reference that does not resolve now is left out: its step fails saying why.
pub fn model_versions(
    p: &Pipeline,
    registry: &crate::registry::Location,
    pins: &BTreeMap<String, u32>,
) -> BTreeMap<String, LockedModel> {
    let mut out = BTreeMap::new();
    let refs: Vec<_> = p
        .steps
        .iter()
        .flat_map(|s| s.inputs().into_iter().map(|(_, r)| r))
        .filter_map(|r| match &r.target {
            RefTarget::Registry(reg) => Some((r.text.clone(), reg.clone())),
            _ => None,
        })
        .collect();
    if refs.is_empty() {
        return out;
    }
    let Ok(reg) = Registry::open_existing(registry.clone()) else {
        return out;
    };
    for (text, mut reg_ref) in refs {
        if let Some(&v) = pins.get(&text) {
            reg_ref.selector = crate::registry::Selector::Version(v);
        }
        if let Ok(v) = reg.resolve(&reg_ref) {
            out.insert(
                text,
                LockedModel {
                    group: v.group,
                    version: v.version,
                    artifact_digest: v.artifact_digest,
                },
            );
        }
    }
    out
}

/// The images the docker steps run in: user images by the ID the Docker
/// Engine gives their tags, and for built-in steps the runtime image (whose
/// tag names this program's content).
pub async fn image_ids(p: &Pipeline) -> Images {
    let user = inputs::image_ids(p).await;
    let mut runtime = None;
    if p.steps
        .iter()
        .any(|s| is_builtin(s) && step_executor(s) == Executor::Docker)
        && let Ok(tag) = crate::exec::docker::image::runtime_tag()
    {
        let id = match crate::exec::docker::connect().await {
            Ok(d) => d.inspect_image(&tag).await.ok().and_then(|i| i.id),
            Err(_) => None,
        };
        runtime = Some(RuntimeImage { tag, id });
    }
    Images { user, runtime }
}

/// The seeds a step is given, the built-ins' defaults (0) included.
fn seeds_of(step: &Step) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let hp_seed = |hps: &BTreeMap<String, String>, builtin: bool| -> Option<u64> {
        match hps.get("seed") {
            Some(s) => s.trim().parse().ok(),
            None => builtin.then_some(0),
        }
    };
    match &step.kind {
        StepKind::Split(s) => {
            out.insert("seed".to_string(), s.seed);
        }
        StepKind::Evaluate(e) => {
            out.insert("seed".to_string(), e.seed);
            if let Some(seed) = hp_seed(&e.hyperparameters, e.algorithm.is_some()) {
                out.insert("hyperparameters.seed".to_string(), seed);
            }
        }
        StepKind::Train(t) => {
            if let Some(seed) = hp_seed(&t.hyperparameters, t.algorithm.is_some()) {
                out.insert("hyperparameters.seed".to_string(), seed);
            }
        }
        StepKind::Command(c) => {
            if let Some(seed) = hp_seed(&c.hyperparameters, false) {
                out.insert("hyperparameters.seed".to_string(), seed);
            }
        }
        StepKind::Tune(t) | StepKind::Automl(t) => {
            out.insert("seed".to_string(), t.seed);
        }
        StepKind::Register(_) | StepKind::Transform(_) => {}
    }
    out
}

/// Takes the lock of `p` (loaded from `source_text`).
pub fn take(p: &Pipeline, source_text: &str, facts: Facts, db: Option<&RunsDb>) -> Result<Lock> {
    let mut steps = BTreeMap::new();
    for s in &p.steps {
        steps.insert(
            s.name().to_string(),
            LockedStep {
                kind: s.kind.name().to_string(),
                executor: step_executor(s).name().to_string(),
                nodes: s.resources.nodes.max(1),
                seeds: seeds_of(s),
                image: user_image(s).map(str::to_string),
                programs: inputs::program_digests(db, s, &p.base_dir)?,
                spec: step_spec(s),
            },
        );
    }
    Ok(Lock {
        pipeline: p.name.clone(),
        engine: format!("pipeline {ENGINE_VERSION}"),
        params: p.params.clone(),
        inputs: facts.inputs,
        models: facts.models,
        images: facts.images.user,
        steps,
        run: Some(RunFacts {
            source_digest: blake3::hash(source_text.as_bytes()).to_hex().to_string(),
            platform: Platform::current(),
            threads: p
                .steps
                .iter()
                .map(|s| (s.name().to_string(), step_threads(s)))
                .collect(),
            runtime_image: facts.images.runtime,
        }),
    })
}

/// Where `path` (keys from the top of the file) is written in `source`.
pub fn key_span(source: &Arc<Source>, path: &[&str]) -> Span {
    use crate::spec::yaml::NodeKind;
    let Ok(mut node) = crate::spec::yaml::parse(source) else {
        return Span::default();
    };
    let mut span = Span::default();
    for key in path {
        let NodeKind::Map(entries) = node.kind else {
            return Span::default();
        };
        let Some((k, v)) = entries
            .into_iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
        else {
            return Span::default();
        };
        span = k.span;
        node = v;
    }
    span
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a comparison of locks is for, in its messages.
pub struct Check<'a> {
    /// How the recorded lock is named (`pipeline.lock`).
    pub lock_name: &'a str,
    /// The first help line of every difference: what the user can do.
    pub remedy: &'a str,
}

/// How `now` differs from the `recorded` lock in what a locked run may not
/// change: inputs, params, models, images, program files and steps. One
/// located diagnostic a difference, pointing into `source` (the pipeline
/// file `now` was taken from); `given` are the `--param` overrides.
pub fn differences(
    recorded: &Lock,
    now: &Lock,
    source: &Arc<Source>,
    given: &[(String, String)],
    check: &Check,
) -> Vec<Diagnostic> {
    let lock_name = check.lock_name;
    let mut out = Vec::new();
    let at = |path: &[&str], message: String| {
        let span = key_span(source, path);
        if span.is_known() {
            Diagnostic::at(source, span, message)
        } else {
            Diagnostic::in_file(source, message)
        }
    };
    let update = check.remedy.to_string();
    for (name, old) in &recorded.inputs {
        match now.inputs.get(name) {
            Some(new) if new.digest != old.digest => out.push(
                at(
                    &["inputs", name],
                    format!("input `{name}` differs from {lock_name}"),
                )
                .label(format!("the content of {} changed", new.path))
                .note(format!("digest in {lock_name}: {}", old.digest))
                .note(format!("digest now: {}", new.digest))
                .help(format!("{update}, or restore {} as it was", new.path)),
            ),
            Some(_) => {}
            None => out.push(
                Diagnostic::in_file(
                    source,
                    format!(
                        "input `{name}` ({}) is in {lock_name} but no longer in the pipeline",
                        old.path
                    ),
                )
                .note(format!("digest in {lock_name}: {}", old.digest))
                .help(update.clone()),
            ),
        }
    }
    for (name, new) in now
        .inputs
        .iter()
        .filter(|(n, _)| !recorded.inputs.contains_key(*n))
    {
        out.push(
            at(
                &["inputs", name],
                format!("input `{name}` is not in {lock_name}"),
            )
            .label("added since the lock was written")
            .note(format!("digest now: {}", new.digest))
            .help(update.clone()),
        );
    }
    for (name, old) in &recorded.params {
        let cli = given.iter().any(|(k, _)| k == name);
        match now.params.get(name) {
            Some(new) if new != old => out.push(
                at(
                    &["params", name],
                    format!("param `{name}` differs from {lock_name}"),
                )
                .label(format!(
                    "{} in {lock_name}, {} now{}",
                    compact(old),
                    compact(new),
                    if cli { " (given with --param)" } else { "" }
                ))
                .help(format!("{update}, or pass --param {name}={}", compact(old))),
            ),
            Some(_) => {}
            None => out.push(
                Diagnostic::in_file(
                    source,
                    format!("param `{name}` is in {lock_name} but no longer in the pipeline"),
                )
                .note(format!("value in {lock_name}: {}", compact(old)))
                .help(update.clone()),
            ),
        }
    }
    for (name, new) in now
        .params
        .iter()
        .filter(|(n, _)| !recorded.params.contains_key(*n))
    {
        out.push(
            at(
                &["params", name],
                format!("param `{name}` is not in {lock_name}"),
            )
            .label(format!(
                "added since the lock was written ({} now)",
                compact(new)
            ))
            .help(update.clone()),
        );
    }
    for (text, old) in &recorded.models {
        let was = format!("version {} (artifact {})", old.version, old.artifact_digest);
        let differs = match now.models.get(text) {
            Some(new) if new != old => Some(format!(
                "version {} (artifact {})",
                new.version, new.artifact_digest
            )),
            Some(_) => None,
            None => Some("nothing".to_string()),
        };
        if let Some(is) = differs {
            out.push(
                Diagnostic::in_file(source, format!("`{text}` differs from {lock_name}"))
                    .note(format!("in {lock_name}: {was}"))
                    .note(format!("now: {is}"))
                    .help(format!(
                        "{update}, or name the version: registry://{}@{}",
                        old.group, old.version
                    )),
            );
        }
    }
    for (tag, old) in &recorded.images {
        let new = now.images.get(tag).cloned().flatten();
        if old.is_some() && &new != old {
            out.push(
                Diagnostic::in_file(source, format!("image `{tag}` differs from {lock_name}"))
                    .note(format!(
                        "image ID in {lock_name}: {}",
                        old.as_deref().unwrap_or("none")
                    ))
                    .note(format!(
                        "image ID now: {}",
                        new.as_deref().unwrap_or("not on the Docker Engine")
                    ))
                    .help(format!(
                        "{update}, or tag the image the lock names as `{tag}` again"
                    )),
            );
        }
    }
    let step_at = |name: &str, message: String| at(&["steps", name], message);
    for (name, old) in &recorded.steps {
        let Some(new) = now.steps.get(name) else {
            out.push(
                Diagnostic::in_file(
                    source,
                    format!("step `{name}` is in {lock_name} but no longer in the pipeline"),
                )
                .help(update.clone()),
            );
            continue;
        };
        for (path, d) in &old.programs {
            match new.programs.get(path) {
                Some(n) if n != d => out.push(
                    step_at(
                        name,
                        format!("program file `{path}` of step `{name}` differs from {lock_name}"),
                    )
                    .note(format!("digest in {lock_name}: {d}"))
                    .note(format!("digest now: {n}"))
                    .help(format!("{update}, or restore {path} as it was")),
                ),
                Some(_) => {}
                None => out.push(
                    step_at(
                        name,
                        format!(
                            "step `{name}` no longer runs the program file `{path}` of {lock_name}"
                        ),
                    )
                    .help(update.clone()),
                ),
            }
        }
        for path in new
            .programs
            .keys()
            .filter(|p| !old.programs.contains_key(*p))
        {
            out.push(
                step_at(
                    name,
                    format!(
                        "step `{name}` runs the program file `{path}`, which is not in {lock_name}"
                    ),
                )
                .help(update.clone()),
            );
        }
        let mut changes = Vec::new();
        diff_values("", &old.spec, &new.spec, &mut changes);
        if old.kind != new.kind {
            changes.insert(0, format!("kind changed ({} -> {})", old.kind, new.kind));
        }
        if old.nodes != new.nodes {
            changes.push(format!("nodes changed ({} -> {})", old.nodes, new.nodes));
        }
        if old.executor != new.executor {
            changes.push(format!(
                "executor changed ({} -> {})",
                old.executor, new.executor
            ));
        }
        // A param's change shows in the steps that use it; it was named above.
        if !changes.is_empty() && recorded.params == now.params {
            let mut d = step_at(name, format!("step `{name}` differs from {lock_name}"));
            for c in changes.iter().take(3) {
                d = d.note(c.clone());
            }
            if changes.len() > 3 {
                d = d.note(format!("and {} more changes", changes.len() - 3));
            }
            out.push(d.help(update.clone()));
        }
    }
    for name in now
        .steps
        .keys()
        .filter(|n| !recorded.steps.contains_key(*n))
    {
        out.push(
            step_at(name, format!("step `{name}` is not in {lock_name}"))
                .label("added since the lock was written")
                .help(update.clone()),
        );
    }
    out
}

/// What differs from the `recorded` lock but may: the engine, and of the
/// run facts (when both have them) the platform, the thread counts and the
/// runtime image (said, not refused).
pub fn notes(recorded: &Lock, now: &Lock) -> Vec<String> {
    let mut out = Vec::new();
    if recorded.engine != now.engine {
        out.push(format!(
            "the lock was written by {}; this is {}",
            recorded.engine, now.engine
        ));
    }
    let (Some(was), Some(is)) = (&recorded.run, &now.run) else {
        return out;
    };
    if was.platform != is.platform {
        out.push(format!(
            "the lock was written on {}; this is {}: floating-point results may differ between platforms",
            was.platform, is.platform
        ));
    }
    let threads: Vec<String> = was
        .threads
        .iter()
        .filter_map(|(step, n)| {
            let m = is.threads.get(step)?;
            (m != n).then(|| format!("{step} {n} -> {m}"))
        })
        .collect();
    if !threads.is_empty() {
        out.push(format!(
            "thread counts differ ({}); they change no result",
            threads.join(", ")
        ));
    }
    if let (Some(a), Some(b)) = (&was.runtime_image, &is.runtime_image)
        && a.tag != b.tag
    {
        out.push(format!(
            "built-in docker steps ran in {} and run in {} here: another build of the engine",
            a.tag, b.tag
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Lock {
        Lock {
            pipeline: "p".into(),
            engine: "pipeline 0".into(),
            params: BTreeMap::from([("depth".to_string(), Value::from(4))]),
            inputs: BTreeMap::from([(
                "data".to_string(),
                LockedInput {
                    path: "d.csv".into(),
                    digest: "aa".into(),
                },
            )]),
            models: BTreeMap::new(),
            images: BTreeMap::new(),
            steps: BTreeMap::new(),
            run: None,
        }
    }

    #[test]
    fn a_lock_file_round_trips_and_is_rewritten_only_on_a_change() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(FILE_NAME);
        assert!(LockFile::update(&path, "a.yaml", &lock()).unwrap());
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!LockFile::update(&path, "a.yaml", &lock()).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        let mut other = lock();
        other.pipeline = "q".into();
        assert!(LockFile::update(&path, "b.yaml", &other).unwrap());
        let back = LockFile::read(&path).unwrap().unwrap();
        assert_eq!(back.pipelines.len(), 2);
        assert_eq!(back.pipelines["a.yaml"], lock());
        assert_eq!(back.pipelines["b.yaml"], other);
    }

    #[test]
    fn changed_inputs_and_params_are_located_and_named() {
        let source = Arc::new(Source {
            name: "p.yaml".into(),
            text: "name: p\nparams:\n  depth: {type: int, default: 4}\ninputs:\n  data: d.csv\nsteps: {}\n".into(),
        });
        let mut now = lock();
        now.params.insert("depth".into(), Value::from(6));
        now.inputs.get_mut("data").unwrap().digest = "bb".into();
        let given = vec![("depth".to_string(), "6".to_string())];
        let check = Check {
            lock_name: FILE_NAME,
            remedy: "run without --locked",
        };
        let ds = differences(&lock(), &now, &source, &given, &check);
        let text: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
        assert_eq!(ds.len(), 2, "{text:?}");
        assert!(text[0].contains("input `data` differs") && text[0].contains("p.yaml:5:3"));
        assert!(
            text[0].contains("aa") && text[0].contains("bb"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("param `depth` differs") && text[1].contains("p.yaml:3:3"));
        assert!(
            text[1].contains("4 in pipeline.lock, 6 now (given with --param)"),
            "{}",
            text[1]
        );
        assert!(differences(&lock(), &lock(), &source, &[], &check).is_empty());
    }
}
