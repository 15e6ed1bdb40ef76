//! The batch backend: each attempt of a step is one AWS Batch job.
//!
//! A job has no access to the engine's disk, so the step's data goes
//! through the shared store (`--store s3://...`, which `executor: batch`
//! requires):
//!
//! 1. the attempt's laid-out root (config, channels, empty output
//!    directories, checkpoints) is put into the store as one artifact (a
//!    manifest of blobs: data already there is not sent again), and a job
//!    description (`jobs/RUN/STEP/ATTEMPT/job.json`: that artifact, the
//!    command and its environment) beside it, written once;
//! 2. the job runs `pipeline batch-node jobs/RUN/STEP/ATTEMPT` ([`node`]) in
//!    the runtime image (built-in steps) or in the *staged* image of the
//!    step's own image (`docker::image::ensure_staged`: the user's image
//!    with this program added under `/opt/pipeline`): it brings the root to
//!    `/opt/ml`, runs the step's command there (for a user's image, the
//!    image's own entrypoint with `train` or the step's command, as the
//!    image's own user), puts `model/`, `output/` and `checkpoints/` back
//!    into the store and writes `result.json` (exit code and that artifact),
//!    once;
//! 3. the engine follows the job (states read for every job at once, logs
//!    from CloudWatch Logs into the step's log and the live display), then
//!    brings the result into the attempt's root, where the scheduler stores
//!    the outputs as for any other executor.
//!
//! Job definitions are registered once for the same needs (image, vCPUs,
//! memory, roles, timeout, retry strategy; the name is their digest). Every
//! job is tagged with its run, step and attempt; the job's ID is written
//! beside the attempt (`ATTEMPT.batch.json`) as soon as it is known.
//! Ctrl-C, a timeout and a job stuck in RUNNABLE past `runnable_timeout`
//! stop the job (TerminateJob), and wait for AWS Batch to say it ended.

pub mod node;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_aws::batch::{
    Batch, BatchError, BatchOptions, JobDefinition, JobState, State, Submit,
};
use serde::{Deserialize, Serialize};

use crate::store::TreeEntry;
use tokio::sync::watch;

use super::{
    Backend, BoxFuture, FailureKind, LineWriter, Outcome, StepJob, failed, read_failure_file,
    wait_cancelled,
};
use crate::spec::model::BatchSettings;
use crate::spec::source::Diagnostic;

/// The format of `job.json`.
pub const JOB_FORMAT: &str = "pipeline-batch-job-v1";
/// The format of `result.json`.
pub const RESULT_FORMAT: &str = "pipeline-batch-result-v1";
/// The directories of a node's root that come back from a job.
pub const RESULT_DIRS: &[&str] = &["model", "output", "checkpoints"];
/// How long a job may wait in RUNNABLE unless `runnable_timeout` says.
pub const DEFAULT_RUNNABLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Memory of a job whose step sets no `resources.memory`.
const DEFAULT_MEMORY_MIB: u64 = 2048;
/// Attempts AWS Batch makes when an instance is taken away (spot reclaims).
const INFRASTRUCTURE_ATTEMPTS: u32 = 3;
/// How often job states are read, at least; and at most, after errors.
const POLL: Duration = Duration::from_secs(1);
const POLL_MAX: Duration = Duration::from_secs(30);
/// How long a stopped job may take to be reported ended.
const STOP_GRACE: Duration = Duration::from_secs(120);

/// What `job.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobManifest {
    pub format: String,
    /// `RUN-STEP-ATTEMPT`.
    pub job: String,
    pub argv: Vec<String>,
    /// Each node's part, by its index (`AWS_BATCH_JOB_NODE_INDEX`); the main
    /// node, 0, is the only one on a single-node job.
    pub nodes: Vec<NodePart>,
}

/// One node's root and environment.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodePart {
    /// The artifact of the node's root (see the module's description).
    pub root: String,
    pub env: Vec<(String, String)>,
}

/// What `result.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobResult {
    pub format: String,
    /// The command's exit code, or 128 + the signal that ended it.
    pub exit_code: Option<i32>,
    /// The artifact of `model/`, `output/` and `checkpoints/` after the command.
    pub outputs: Option<String>,
    /// Why the job's own work (not the command) failed: staging, uploading.
    pub error: Option<String>,
}

/// A record of a job's checkpoints, `PREFIX/checkpoints/NNNNNNNN.json`, one
/// each time they changed while the job ran (written once, numbered in order).
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The artifact of `checkpoints/` (entries under `checkpoints/`).
    pub artifact: String,
}

/// The artifact of the last checkpoints a job under `prefix` recorded.
pub fn latest_checkpoint(
    shared: &crate::store::s3::Shared,
    prefix: &str,
) -> crate::error::Result<Option<String>> {
    let keys = shared.keys(&format!("{prefix}/checkpoints/"))?;
    let Some(last) = keys.iter().rev().find(|k| k.ends_with(".json")) else {
        return Ok(None);
    };
    let Some(bytes) = shared.get(last)? else {
        return Ok(None);
    };
    let r: CheckpointRecord = serde_json::from_slice(&bytes)
        .map_err(|e| crate::error::Error::failed(format!("{last}: {e}")))?;
    Ok(Some(r.artifact))
}

/// Stores `root/checkpoints` and records it under `prefix` as the newest.
pub fn record_checkpoint(
    shared: &crate::store::s3::Shared,
    prefix: &str,
    root: &std::path::Path,
) -> crate::error::Result<String> {
    let artifact = shared.put_dirs(root, &["checkpoints"])?;
    let body = serde_json::to_vec(&CheckpointRecord {
        artifact: artifact.clone(),
    })
    .expect("json");
    let first = shared.keys(&format!("{prefix}/checkpoints/"))?.len();
    // Another attempt of the same job may have recorded since the listing.
    for n in first..first + 1000 {
        if shared.put_once(&format!("{prefix}/checkpoints/{n:08}.json"), body.clone())? {
            return Ok(artifact);
        }
    }
    Err(crate::error::Error::failed(format!(
        "record the checkpoints under {prefix}: 1000 numbers taken"
    )))
}

/// The settings a step runs with: the file's, else the environment's.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub job_queue: String,
    pub region: Option<String>,
    pub job_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub runtime_image: Option<String>,
    pub image_repository: Option<String>,
    pub runnable_timeout: Duration,
    pub job_environment: BTreeMap<String, String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Resolves `s` against the environment; a located message when something
/// needed is missing (`step` names the step).
pub fn resolve(step: &str, s: &BatchSettings) -> Result<Resolved, Diagnostic> {
    let Some(job_queue) = s
        .job_queue
        .clone()
        .or_else(|| env("PIPELINE_BATCH_JOB_QUEUE"))
    else {
        return Err(Diagnostic::new(format!(
            "step `{step}` runs on AWS Batch but no job queue is configured"
        ))
        .help("set `batch: {job_queue: NAME}` under `defaults:` or the step, or PIPELINE_BATCH_JOB_QUEUE; docs/aws.md shows how to make one"));
    };
    let mut job_environment = match env("PIPELINE_BATCH_JOB_ENVIRONMENT") {
        Some(t) => crate::spec::batch::parse_env_list(&t).map_err(|e| {
            Diagnostic::new(format!("PIPELINE_BATCH_JOB_ENVIRONMENT: {e}"))
                .help("write NAME=VALUE pairs separated by commas or new lines")
        })?,
        None => BTreeMap::new(),
    };
    job_environment.extend(s.job_environment.clone());
    let runnable_timeout = match (s.runnable_timeout, env("PIPELINE_BATCH_RUNNABLE_TIMEOUT")) {
        (Some(t), _) => t,
        (None, Some(t)) => crate::spec::model::duration::parse(&t).ok_or_else(|| {
            Diagnostic::new(format!(
                "PIPELINE_BATCH_RUNNABLE_TIMEOUT: `{t}` is not a duration"
            ))
            .help("for example 30m or 2h")
        })?,
        (None, None) => DEFAULT_RUNNABLE_TIMEOUT,
    };
    Ok(Resolved {
        job_queue,
        region: s.region.clone().or_else(|| env("PIPELINE_BATCH_REGION")),
        job_role_arn: s
            .job_role_arn
            .clone()
            .or_else(|| env("PIPELINE_BATCH_JOB_ROLE_ARN")),
        execution_role_arn: s
            .execution_role_arn
            .clone()
            .or_else(|| env("PIPELINE_BATCH_EXECUTION_ROLE_ARN")),
        runtime_image: s
            .runtime_image
            .clone()
            .or_else(|| env("PIPELINE_BATCH_RUNTIME_IMAGE")),
        image_repository: s
            .image_repository
            .clone()
            .or_else(|| env("PIPELINE_BATCH_IMAGE_REPOSITORY")),
        runnable_timeout,
        job_environment,
    })
}

/// The key prefix of an attempt's job files in the shared store: by the
/// attempt's directory, which no other attempt of the run ever had (a
/// resumed run counts its retries from 1 again, its directories never).
pub fn job_prefix(job: &StepJob) -> String {
    let dir = job.root.file_name().map_or_else(
        || job.attempt.to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("jobs/{}/{}/{dir}", job.run_id, job.step)
}

/// A job's name: `pipeline-RUN-STEP-ATTEMPT` (the attempt's directory) in
/// the characters AWS Batch allows, at most 128.
fn job_name(job: &StepJob, prefix: &str) -> String {
    let dir = prefix.rsplit('/').next().unwrap_or_default();
    let s: String = format!("pipeline-{}-{}-{dir}", job.run_id, job.step)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.chars().take(128).collect()
}

#[derive(Default)]
pub struct BatchBackend {
    inner: Arc<Inner>,
}

impl BatchBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Default)]
struct Inner {
    /// One client a region (`None`: the AWS chain's).
    clients: Mutex<HashMap<Option<String>, Batch>>,
    /// Job definitions known to be registered: name to ARN.
    definitions: tokio::sync::Mutex<HashMap<String, String>>,
    /// The local runtime image, once built (no `runtime_image` configured).
    runtime: tokio::sync::Mutex<Option<String>>,
    poller: Mutex<Poller>,
}

/// Jobs being followed, read with one `DescribeJobs` a region a round.
#[derive(Default)]
struct Poller {
    watched: HashMap<String, Watched>,
    running: bool,
}

struct Watched {
    client: Batch,
    region: Option<String>,
    tx: watch::Sender<Option<Result<JobState, String>>>,
}

impl Inner {
    fn client(&self, region: &Option<String>) -> Result<Batch, String> {
        let mut c = self.clients.lock().expect("lock");
        if let Some(b) = c.get(region) {
            return Ok(b.clone());
        }
        let b = Batch::connect(BatchOptions {
            region: region.clone(),
            ..BatchOptions::default()
        })
        .map_err(|e| e.to_string())?;
        c.insert(region.clone(), b.clone());
        Ok(b)
    }

    async fn definition(&self, client: &Batch, def: &JobDefinition) -> Result<String, BatchError> {
        let name = def.name();
        let mut known = self.definitions.lock().await;
        if let Some(arn) = known.get(&name) {
            return Ok(arn.clone());
        }
        let arn = client.job_definition(def).await?;
        known.insert(name, arn.clone());
        Ok(arn)
    }

    /// The runtime image built here, for compute environments that run this
    /// machine's Docker Engine (a test set-up); see docs/aws.md for a real account.
    async fn local_runtime(&self, log: &(dyn Fn(&str) + Sync)) -> Result<String, String> {
        let mut built = self.runtime.lock().await;
        if let Some(t) = built.as_ref() {
            return Ok(t.clone());
        }
        let docker = super::docker::connect().await.map_err(|e| {
            format!("{e}; or set `batch.runtime_image` (PIPELINE_BATCH_RUNTIME_IMAGE) to the runtime image pushed where your compute environment pulls from (docs/aws.md)")
        })?;
        let tag = super::docker::image::ensure_runtime(&docker, log).await?;
        *built = Some(tag.clone());
        Ok(tag)
    }

    /// The staged image of a user's image (see `docker::image`), built on
    /// this machine's Docker Engine, where the user's image must be.
    /// With a repository, the staged image is tagged there too, and the job
    /// names it by that tag (pushing it is the user's: docs/aws.md).
    async fn staged(
        &self,
        image: &str,
        repository: Option<&str>,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<super::docker::image::Staged, String> {
        let docker = super::docker::connect().await.map_err(|e| {
            format!("{e}: a step's own image is made ready for AWS Batch on this machine's Docker Engine (docs/aws.md)")
        })?;
        let mut staged = super::docker::image::ensure_staged(&docker, image, log).await?;
        if let Some(repo) = repository {
            let tag = staged
                .tag
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string();
            let opts = bollard::query_parameters::TagImageOptionsBuilder::new()
                .repo(repo)
                .tag(&tag)
                .build();
            docker
                .tag_image(&staged.tag, Some(opts))
                .await
                .map_err(|e| format!("tag {} as {repo}:{tag}: {e}", staged.tag))?;
            let remote = format!("{repo}:{tag}");
            log(&format!(
                "the job runs {remote} (the staged image of {image}); push it where the compute environment pulls from, if it is not there yet: docker push {remote}"
            ));
            staged.tag = remote;
        }
        Ok(staged)
    }

    /// Follows `id`: its state, as the poller reads it.
    fn watch(
        self: &Arc<Self>,
        client: &Batch,
        region: &Option<String>,
        id: &str,
    ) -> watch::Receiver<Option<Result<JobState, String>>> {
        let (tx, rx) = watch::channel(None);
        let mut p = self.poller.lock().expect("lock");
        p.watched.insert(
            id.to_string(),
            Watched {
                client: client.clone(),
                region: region.clone(),
                tx,
            },
        );
        if !p.running {
            p.running = true;
            tokio::spawn(poll(self.clone()));
        }
        rx
    }

    fn unwatch(&self, id: &str) {
        self.poller.lock().expect("lock").watched.remove(id);
    }
}

/// Reads the states of every followed job, a request a region (100 jobs
/// each), every second, backing off up to 30 s while requests fail; after
/// repeated failures that are the configuration's (credentials expired,
/// access taken away) the jobs are told, with the error.
async fn poll(inner: Arc<Inner>) {
    let mut pause = POLL;
    let mut failures = 0u32;
    loop {
        let groups: Vec<(Batch, Vec<String>)> = {
            let mut p = inner.poller.lock().expect("lock");
            p.watched.retain(|_, w| !w.tx.is_closed());
            if p.watched.is_empty() {
                p.running = false;
                return;
            }
            let mut g: HashMap<Option<String>, (Batch, Vec<String>)> = HashMap::new();
            for (id, w) in &p.watched {
                g.entry(w.region.clone())
                    .or_insert_with(|| (w.client.clone(), Vec::new()))
                    .1
                    .push(id.clone());
            }
            g.into_values().collect()
        };
        let mut failed = None;
        for (client, ids) in groups {
            match client.describe(ids).await {
                Ok(states) => {
                    let p = inner.poller.lock().expect("lock");
                    for s in states {
                        if let Some(w) = p.watched.get(&s.id) {
                            w.tx.send_replace(Some(Ok(s)));
                        }
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            None => {
                failures = 0;
                pause = POLL;
            }
            Some(e) => {
                failures += 1;
                pause = (pause * 2).min(POLL_MAX);
                // Configuration errors get a few tries; others about ten minutes.
                let give_up = if e.is_user_error() { 3 } else { 25 };
                if failures >= give_up {
                    let p = inner.poller.lock().expect("lock");
                    for w in p.watched.values() {
                        w.tx.send_replace(Some(Err(e.to_string())));
                    }
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

impl Backend for BatchBackend {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome> {
        let inner = self.inner.clone();
        Box::pin(async move { run_batch(inner, job, cancel).await })
    }
}

/// What the engine keeps of an attempt's job, beside the attempt's
/// directory (`ATTEMPT.batch.json`): written before the job is submitted,
/// and again with its ID once AWS Batch gave one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `None` between the first write and the answer to SubmitJob: the job
    /// may exist then, and is found by its name.
    pub job_id: Option<String>,
    pub job_name: String,
    pub queue: String,
    pub region: Option<String>,
    /// Where its job description and result are in the shared store.
    pub prefix: String,
    /// The artifact of the root it was given, and a digest of its command
    /// and environment: an attempt with the same two does the same work.
    pub root: String,
    pub command: String,
    /// The digest of every node's `input/` alone (configuration and
    /// channels): the work, whatever checkpoints the attempt started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    /// Set when this attempt follows a job an earlier attempt submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_from: Option<String>,
}

impl JobRecord {
    fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        crate::store::write_atomic(path, &serde_json::to_vec_pretty(self).expect("json"))
    }
}

/// The image, the program that starts `batch-node` in it and the step's
/// command, for a built-in step in the runtime image.
fn runtime_command(image: String, argv: &[String]) -> (String, Vec<String>, Vec<String>) {
    (
        image,
        vec![super::docker::RUNTIME_PROGRAM.to_string()],
        argv.to_vec(),
    )
}

/// The digest of a job's image, command and environment.
fn command_digest(image: &str, argv: &[String], env: &[(String, String)]) -> String {
    let json = serde_json::to_vec(&(image, argv, env)).expect("json");
    blake3::hash(&json).to_hex().to_string()
}

/// A job that an earlier attempt of this step in this run submitted for the
/// same work (same root artifact, command, environment and queue) and that
/// has not failed: an engine killed while it ran left it going, and `resume`
/// follows it instead of submitting the work again. Its ID and prefix.
///
/// Every other job an earlier attempt left going (one for other work: the
/// step's inputs changed when its upstream ran again) is stopped, so that
/// nothing of a killed engine's keeps running unfollowed; `stopped` hears of
/// each.
async fn reattach(
    client: &Batch,
    step_dir: &std::path::Path,
    me: &JobRecord,
    mine: &std::path::Path,
    stopped: &mut (dyn FnMut(&str) + Send),
) -> Option<(String, String)> {
    let mut earlier: Vec<(u64, JobRecord)> = std::fs::read_dir(step_dir)
        .ok()?
        .flatten()
        .filter(|e| e.path() != mine)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let n: u64 = name.strip_suffix(".batch.json")?.parse().ok()?;
            let r: JobRecord = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((n, r))
        })
        .collect();
    earlier.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut followed: Option<(String, String)> = None;
    let mut seen = std::collections::HashSet::new();
    for (_, r) in earlier {
        let id = match &r.job_id {
            Some(id) => id.clone(),
            None => match client.jobs_named(&r.queue, &r.job_name).await {
                Ok(ids) => match ids.into_iter().next() {
                    Some(id) => id,
                    None => continue,
                },
                Err(_) => continue,
            },
        };
        if !seen.insert(id.clone()) || followed.as_ref().is_some_and(|f| f.0 == id) {
            continue;
        }
        let Ok(states) = client.describe(vec![id.clone()]).await else {
            continue;
        };
        let Some(state) = states.iter().find(|s| s.id == id).map(|s| s.state) else {
            continue;
        };
        // An attempt that followed a job recorded that job's work as its own.
        // The inputs decide, not the whole root: an attempt that starts from
        // checkpoints the earlier job left (brought back before the engine
        // was killed) does the same work.
        let same_inputs = match (&r.inputs, &me.inputs) {
            (Some(a), Some(b)) => a == b,
            _ => r.root == me.root,
        };
        let same_work = same_inputs
            && (&r.command, &r.queue, &r.region) == (&me.command, &me.queue, &me.region);
        if followed.is_none() && same_work && state != State::Failed {
            followed = Some((id, r.attached_from.unwrap_or(r.prefix)));
        } else if !state.is_done() {
            let why = "pipeline resume: this attempt's work is no longer the step's";
            if client.terminate(&id, why).await.is_ok() {
                stopped(&format!(
                    "stopped job {id} ({}), which an earlier attempt left going for other work",
                    r.job_name
                ));
            }
        }
    }
    followed
}

async fn run_batch(inner: Arc<Inner>, job: StepJob, mut cancel: watch::Receiver<bool>) -> Outcome {
    let mut log = match LineWriter::open(&job.log_path, &job.step, None, job.live_log.clone())
        .map(|w| w.masking(&job.secrets))
    {
        Ok(w) => w,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("cannot open the log {}: {e}", job.log_path.display()),
                None,
            );
        }
    };
    let say = |log: &mut LineWriter, s: &str| log.write(format!("[batch] {s}\n").as_bytes());
    let r = match resolve(&job.step, &job.batch) {
        Ok(r) => r,
        Err(d) => return failed(FailureKind::Spawn, d.to_string(), None),
    };
    let shared = match crate::store::remote::shared() {
        Ok(Some(s)) => s,
        Ok(None) => {
            return failed(
                FailureKind::Spawn,
                "the batch executor needs a shared store: run with `--store s3://BUCKET/PREFIX` (or PIPELINE_STORE)".into(),
                None,
            );
        }
        Err(e) => return failed(FailureKind::Spawn, e.to_string(), None),
    };
    let client = match inner.client(&r.region) {
        Ok(c) => c,
        Err(e) => return failed(FailureKind::Spawn, e, None),
    };
    // The image, the command that starts `batch-node` in it, and the
    // step's command as `batch-node` starts it.
    let lines = Mutex::new(Vec::new());
    let note = |l: &str| lines.lock().expect("lock").push(l.to_string());
    let chosen = match (&job.image, &r.runtime_image) {
        (Some(user), _) => inner
            .staged(user, r.image_repository.as_deref(), &note)
            .await
            .map(|s| {
                let cmd = if job.argv.is_empty() {
                    vec!["train".to_string()]
                } else {
                    job.argv.clone()
                };
                let argv = s.entrypoint.iter().cloned().chain(cmd).collect::<Vec<_>>();
                (s.tag, s.program, argv)
            }),
        (None, Some(i)) => Ok(runtime_command(i.clone(), &job.argv)),
        (None, None) => inner
            .local_runtime(&note)
            .await
            .map(|t| runtime_command(t, &job.argv)),
    };
    for l in lines.into_inner().expect("lock") {
        say(&mut log, &l);
    }
    let (image, program, argv) = match chosen {
        Ok(c) => c,
        Err(e) => return failed(FailureKind::Spawn, e, None),
    };

    // 1. Each node's root and the job's description, into the store.
    let prefix = job_prefix(&job);
    let nodes = job.nodes();
    let staged = {
        let shared = shared.clone();
        let prefix = prefix.clone();
        let argv = argv.clone();
        let id = job.job_id();
        let multi = nodes.len() > 1;
        let nodes: Vec<(std::path::PathBuf, Vec<(String, String)>)> = nodes
            .iter()
            .map(|n| {
                let mut env = n.env.clone();
                if multi {
                    env.push((
                        "PIPELINE_COORDINATOR_PORT".into(),
                        super::docker::COORDINATOR_PORT.to_string(),
                    ));
                    env.push(("PIPELINE_JOB_ID".into(), id.clone()));
                }
                (n.root.clone(), env)
            })
            .collect();
        tokio::task::spawn_blocking(move || -> crate::error::Result<(String, String)> {
            let mut parts = Vec::with_capacity(nodes.len());
            let mut inputs = blake3::Hasher::new();
            for (root, env) in nodes {
                let entries = crate::store::s3::dir_entries(
                    &root,
                    &["input", "model", "output", "checkpoints"],
                )?;
                // The work is what `input/` holds (configuration and
                // channels), whatever checkpoints the attempt starts from.
                let input: Vec<_> = entries
                    .iter()
                    .filter(|e| match e {
                        TreeEntry::Dir(p) | TreeEntry::File(p, ..) => {
                            p == "input" || p.starts_with("input/")
                        }
                    })
                    .cloned()
                    .collect();
                inputs.update(crate::store::digest_entries(&input).as_bytes());
                inputs.update(b",");
                let tree = shared.put_tree(&root, entries)?;
                parts.push(NodePart { root: tree, env });
            }
            // What the job is given, as one digest (for finding it again).
            let whole = parts
                .iter()
                .map(|p| p.root.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let m = JobManifest {
                format: JOB_FORMAT.into(),
                job: id,
                argv,
                nodes: parts,
            };
            let key = format!("{prefix}/job.json");
            if !shared.put_once(&key, serde_json::to_vec_pretty(&m).expect("json"))? {
                return Err(crate::error::Error::failed(format!(
                    "{} is there already: another engine uses this run's ID in the same store",
                    shared.uri(&key)
                )));
            }
            Ok((whole, inputs.finalize().to_hex().to_string()))
        })
        .await
    };
    let (tree, inputs) = match staged {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return failed(
                FailureKind::Spawn,
                format!("stage the step's data in the shared store: {e}"),
                None,
            );
        }
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("stage the step's data: {e}"),
                None,
            );
        }
    };

    // 2. The job: one an earlier attempt of this run left doing the same
    // work, else a new one, recorded before it is submitted.
    let name = job_name(&job, &prefix);
    let record_path = job.root.with_extension("batch.json");
    let mut record = JobRecord {
        job_id: None,
        job_name: name.clone(),
        queue: r.job_queue.clone(),
        region: r.region.clone(),
        prefix: prefix.clone(),
        root: tree,
        inputs: Some(inputs),
        command: command_digest(
            &image,
            &argv,
            &nodes.iter().flat_map(|n| n.env.clone()).collect::<Vec<_>>(),
        ),
        attached_from: None,
    };
    let step_dir = job.root.parent().map(std::path::Path::to_path_buf);
    let mut stopped = Vec::new();
    let found = match &step_dir {
        Some(d) => {
            reattach(&client, d, &record, &record_path, &mut |l| {
                stopped.push(l.to_string())
            })
            .await
        }
        None => None,
    };
    for l in stopped {
        say(&mut log, &l);
    }
    let record_failed = |e: std::io::Error| {
        failed(
            FailureKind::Spawn,
            format!("record the job in {}: {e}", record_path.display()),
            None,
        )
    };
    let (id, result_prefix) = if let Some((id, from)) = found {
        record.job_id = Some(id.clone());
        record.attached_from = Some(from.clone());
        if let Err(e) = record.write(&record_path) {
            return record_failed(e);
        }
        say(
            &mut log,
            &format!(
                "following job {id}, which an earlier attempt submitted for the same work ({from})"
            ),
        );
        (id, from)
    } else {
        let mut environment = r.job_environment.clone();
        for (k, v) in store_environment(&shared) {
            environment.insert(k, v);
        }
        // What varies from job to job is a parameter, so that one definition
        // serves every job with the same needs.
        let def = JobDefinition {
            image,
            vcpus: job.resources.cpus.map_or(1, |c| c.ceil().max(1.0) as u32),
            memory_mib: job
                .resources
                .memory
                .map_or(DEFAULT_MEMORY_MIB, |m| m.div_ceil(1 << 20)),
            job_role_arn: r.job_role_arn.clone(),
            execution_role_arn: r.execution_role_arn.clone(),
            attempts: INFRASTRUCTURE_ATTEMPTS,
            timeout_s: job.timeout.map(|t| t.as_secs().max(1)),
            nodes: nodes.len() as u32,
            command: program
                .iter()
                .cloned()
                .chain(["batch-node".to_string(), "Ref::prefix".to_string()])
                .collect(),
            environment,
        };
        let definition = match inner.definition(&client, &def).await {
            Ok(a) => a,
            Err(e) => return failed(FailureKind::Spawn, e.to_string(), None),
        };
        let submit = Submit {
            name: name.clone(),
            queue: r.job_queue.clone(),
            definition,
            parameters: BTreeMap::from([("prefix".to_string(), prefix.clone())]),
            tags: BTreeMap::from([
                ("pipeline:run".to_string(), job.run_id.clone()),
                ("pipeline:step".to_string(), job.step.clone()),
                (
                    "pipeline:attempt".to_string(),
                    prefix.rsplit('/').next().unwrap_or_default().to_string(),
                ),
            ]),
        };
        if let Err(e) = record.write(&record_path) {
            return record_failed(e);
        }
        let id = match client.submit(submit).await {
            Ok(id) => id,
            Err(e) => return failed(FailureKind::Spawn, e.to_string(), None),
        };
        record.job_id = Some(id.clone());
        if let Err(e) = record.write(&record_path) {
            // The job runs; it is found by its name on resume.
            say(
                &mut log,
                &format!(
                    "could not record the job's ID in {}: {e}",
                    record_path.display()
                ),
            );
        }
        say(
            &mut log,
            &format!("submitted job {name} ({id}) to the queue {}", r.job_queue),
        );
        (id, prefix.clone())
    };

    // 3. Follow it.
    let mut states = inner.watch(&client, &r.region, &id);
    let started = Instant::now();
    let mut runnable_since: Option<Instant> = None;
    let mut last: Option<State> = None;
    let mut log_token: Option<String> = None;
    let mut stream: Option<String> = None;
    let mut stopping: Option<(Instant, FailureKind, String)> = None;
    let mut log_tick = tokio::time::interval(Duration::from_secs(2));
    let end: Result<JobState, String> = loop {
        let deadline = job
            .timeout
            .map(|t| started + t)
            .filter(|_| stopping.is_none());
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    break Err("the job's state could no longer be read".into());
                }
                let s = states.borrow_and_update().clone();
                match s {
                    None => {}
                    Some(Err(e)) => break Err(e),
                    Some(Ok(s)) => {
                        if Some(s.state) != last {
                            let why = match (&s.status_reason, s.state) {
                                (Some(r), State::Failed) => format!(": {r}"),
                                _ => String::new(),
                            };
                            say(&mut log, &format!("job {id} is {}{why}", s.state.name()));
                            last = Some(s.state);
                            runnable_since = (s.state == State::Runnable).then(Instant::now);
                        }
                        if s.log_stream.is_some() {
                            stream = s.log_stream.clone();
                        }
                        if s.state.is_done() {
                            break Ok(s);
                        }
                        if let Some(since) = runnable_since
                            && since.elapsed() > r.runnable_timeout
                            && stopping.is_none()
                        {
                            let why = stuck_reason(&client, &r.job_queue, r.runnable_timeout).await;
                            let _ = client.terminate(&id, "stuck in RUNNABLE").await;
                            stopping = Some((Instant::now(), FailureKind::Spawn, why));
                        }
                    }
                }
            }
            _ = log_tick.tick() => {
                if let Some(s) = &stream {
                    follow(&client, s, &mut log_token, &mut log).await;
                }
                if let Some((at, _, _)) = &stopping
                    && at.elapsed() > STOP_GRACE
                {
                    break Err(format!("job {id} was stopped but AWS Batch has not reported it ended after {} s", STOP_GRACE.as_secs()));
                }
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                let t = job.timeout.unwrap_or_default();
                let _ = client.terminate(&id, "the step's timeout").await;
                stopping = Some((Instant::now(), FailureKind::Timeout, format!("timed out after {}", crate::spec::model::duration::format(t))));
            }
            _ = wait_cancelled(&mut cancel), if stopping.is_none() => {
                let _ = client.terminate(&id, "the run was cancelled").await;
                stopping = Some((Instant::now(), FailureKind::Cancelled, "cancelled".into()));
            }
        }
    };
    inner.unwatch(&id);
    if let Some(s) = stream
        .as_ref()
        .or(end.as_ref().ok().and_then(|e| e.log_stream.as_ref()))
    {
        follow(&client, s, &mut log_token, &mut log).await;
    }
    log.finish();
    if let Some((_, kind, reason)) = stopping {
        return failed(kind, reason, None);
    }
    let state = match end {
        Ok(s) => s,
        Err(e) => return failed(FailureKind::Spawn, format!("job {id}: {e}"), None),
    };

    // 4. The result, into the attempt's root.
    let fetched = {
        let shared = shared.clone();
        let root = job.root.clone();
        let prefix = result_prefix.clone();
        tokio::task::spawn_blocking(move || -> crate::error::Result<Option<JobResult>> {
            let Some(bytes) = shared.get(&format!("{prefix}/result.json"))? else {
                return Ok(None);
            };
            let res: JobResult = serde_json::from_slice(&bytes)
                .map_err(|e| crate::error::Error::failed(format!("{prefix}/result.json: {e}")))?;
            if let Some(t) = &res.outputs {
                shared.materialize(t, &root)?;
            }
            Ok(Some(res))
        })
        .await
    };
    let result = match fetched {
        Ok(Ok(None)) => {
            // It ended without a result (its instance went away, say): the
            // checkpoints it recorded come back, for the next attempt.
            let shared = shared.clone();
            let root = job.root.clone();
            let prefix = result_prefix.clone();
            let kept =
                tokio::task::spawn_blocking(move || -> crate::error::Result<Option<String>> {
                    match latest_checkpoint(&shared, &prefix)? {
                        Some(a) => {
                            shared.materialize(&a, &root)?;
                            Ok(Some(a))
                        }
                        None => Ok(None),
                    }
                })
                .await;
            match kept {
                Ok(Ok(Some(a))) => say(
                    &mut log,
                    &format!("the job's last checkpoints ({a}) are kept for the next attempt"),
                ),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => say(
                    &mut log,
                    &format!("the job's checkpoints could not be brought back: {e}"),
                ),
                Err(e) => say(
                    &mut log,
                    &format!("the job's checkpoints could not be brought back: {e}"),
                ),
            }
            log.finish();
            None
        }
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return failed(
                FailureKind::Spawn,
                format!("job {id}: bring its results back from the shared store: {e}"),
                None,
            );
        }
        Err(e) => return failed(FailureKind::Spawn, format!("job {id}: {e}"), None),
    };
    outcome(&id, &state, result.as_ref(), &job.root)
}

/// How a job that ended went, from AWS Batch's state, the job's own result
/// and the step's failure file.
fn outcome(
    id: &str,
    state: &JobState,
    result: Option<&JobResult>,
    root: &std::path::Path,
) -> Outcome {
    let own = read_failure_file(root);
    match (state.state, result) {
        (
            State::Succeeded,
            Some(JobResult {
                exit_code: Some(0),
                error: None,
                ..
            }),
        ) => Outcome::Succeeded,
        (_, Some(JobResult { error: Some(e), .. })) => {
            failed(FailureKind::Spawn, format!("job {id}: {e}"), None)
        }
        (
            _,
            Some(JobResult {
                exit_code: Some(code),
                ..
            }),
        ) if *code >= 128 && own.is_none() => failed(
            FailureKind::Signal,
            format!("killed by signal {}", code - 128),
            None,
        ),
        (
            _,
            Some(JobResult {
                exit_code: Some(code),
                ..
            }),
        ) => failed(
            FailureKind::ExitCode,
            own.unwrap_or_else(|| format!("exited with code {code}")),
            Some(*code),
        ),
        _ => {
            // The job ended without a result: it never ran, or its container was
            // taken away (AWS Batch's reasons say which).
            let reasons: Vec<&str> = [
                state.status_reason.as_deref(),
                state.container_reason.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect();
            let why = if reasons.is_empty() {
                format!("AWS Batch reports it {}", state.state.name())
            } else {
                reasons.join("; ")
            };
            let kind = if why.contains("CannotPullContainer") {
                FailureKind::Spawn
            } else if state.exit_code.is_some_and(|c| c >= 128) || why.contains("Host EC2") {
                FailureKind::Signal
            } else {
                FailureKind::ExitCode
            };
            let help = if why.contains("CannotPullContainer") {
                "; the image must be where the compute environment pulls from (docs/aws.md: ECR)"
            } else {
                ""
            };
            failed(
                kind,
                format!("job {id} ended without a result: {why}{help}"),
                state.exit_code,
            )
        }
    }
}

/// Appends the log lines after `token` to the step's log.
async fn follow(client: &Batch, stream: &str, token: &mut Option<String>, log: &mut LineWriter) {
    if let Ok((lines, next)) = client.log_lines(stream, token.clone()).await {
        for l in lines {
            log.write(l.as_bytes());
            log.write(b"\n");
        }
        *token = next;
    }
}

/// Why a job is stuck in RUNNABLE: the queue's compute environments and their states.
async fn stuck_reason(client: &Batch, queue: &str, waited: Duration) -> String {
    let mut why = format!(
        "the job waited in RUNNABLE for more than {} (`batch.runnable_timeout`): no compute environment of the queue `{queue}` took it",
        crate::spec::model::duration::format(waited)
    );
    if let Ok(Some(q)) = client.queue(queue).await
        && let Ok(envs) = client
            .compute_environments(q.compute_environments.clone())
            .await
    {
        let list: Vec<String> = envs
            .iter()
            .map(|(n, state, reason)| {
                if reason.is_empty() {
                    format!("{n} is {state}")
                } else {
                    format!("{n} is {state} ({reason})")
                }
            })
            .collect();
        if !list.is_empty() {
            why.push_str(&format!("; {}", list.join(", ")));
        }
    }
    why.push_str("; check that an environment is ENABLED and VALID with enough vCPUs and memory for the job's needs");
    why
}

/// What a job needs to reach the shared store: its URI and KMS key, and the
/// endpoint and region the engine uses (never its credentials: a job has a
/// role of its own, `batch.job_role_arn`).
fn store_environment(shared: &crate::store::s3::Shared) -> Vec<(String, String)> {
    let mut v = vec![("PIPELINE_STORE".to_string(), shared.url().to_string())];
    if let Some(k) = crate::store::remote::settings().kms_key_id {
        v.push(("PIPELINE_STORE_KMS_KEY_ID".into(), k));
    }
    for name in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"] {
        if let Some(val) = env(name) {
            v.push((name.to_string(), val));
        }
    }
    v
}

impl BatchBackend {
    /// Checks, before anything runs, what a run's batch steps need:
    /// settings, a shared store, and queues that exist (with the clients the
    /// steps will use). Each problem is invalid input.
    pub fn preflight(&self, steps: &[(&str, &BatchSettings)]) -> Result<(), Diagnostic> {
        preflight(&self.inner, steps)
    }
}

fn preflight(inner: &Inner, steps: &[(&str, &BatchSettings)]) -> Result<(), Diagnostic> {
    if crate::store::remote::settings().url.is_none() {
        let (step, _) = steps[0];
        return Err(Diagnostic::new(format!(
            "step `{step}` runs on AWS Batch, which needs a shared store: a job cannot read this machine's disk"
        ))
        .help("run with `--store s3://BUCKET/PREFIX` (or set PIPELINE_STORE, or `store:` in .pipeline/config.yaml)"));
    }
    let mut queues: BTreeMap<(Option<String>, String), &str> = BTreeMap::new();
    for (step, s) in steps {
        let r = resolve(step, s)?;
        queues.entry((r.region, r.job_queue)).or_insert(step);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Diagnostic::new(format!("start: {e}")))?;
    for ((region, queue), step) in queues {
        let client = inner.client(&region).map_err(Diagnostic::new)?;
        match rt.block_on(client.queue(&queue)) {
            Ok(Some(q)) if q.state == "ENABLED" => {}
            Ok(Some(q)) => {
                return Err(Diagnostic::new(format!(
                    "step `{step}`: the job queue `{queue}` is {} ({}), so no job would start",
                    q.state, q.status
                ))
                .help(format!(
                    "enable it: `aws batch update-job-queue --job-queue {queue} --state ENABLED`"
                )));
            }
            Ok(None) => {
                return Err(Diagnostic::new(format!(
                    "step `{step}`: there is no job queue `{queue}`{}",
                    region.map(|r| format!(" in {r}")).unwrap_or_default()
                ))
                .help("check the name and the region (`aws batch describe-job-queues` lists them); docs/aws.md shows how to make one"));
            }
            Err(e) if e.is_user_error() => {
                return Err(Diagnostic::new(format!("step `{step}`: {e}")));
            }
            // Not reachable now: the run says so when the step starts.
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(s: State, reason: Option<&str>, exit: Option<i32>) -> JobState {
        JobState {
            id: "j".into(),
            state: s,
            status_reason: reason.map(str::to_string),
            exit_code: exit,
            container_reason: None,
            log_stream: None,
        }
    }

    fn result(exit: Option<i32>, error: Option<&str>) -> JobResult {
        JobResult {
            format: RESULT_FORMAT.into(),
            exit_code: exit,
            outputs: Some("d".into()),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn outcomes_come_from_the_result_then_from_aws_batch() {
        let t = tempfile::tempdir().unwrap();
        let ok = outcome(
            "j",
            &state(State::Succeeded, None, Some(0)),
            Some(&result(Some(0), None)),
            t.path(),
        );
        assert_eq!(ok, Outcome::Succeeded);
        // The step's own failure file names the reason.
        std::fs::create_dir_all(t.path().join("output")).unwrap();
        std::fs::write(t.path().join("output/failure"), "bad column\n").unwrap();
        let Outcome::Failed(f) = outcome(
            "j",
            &state(State::Failed, None, Some(3)),
            Some(&result(Some(3), None)),
            t.path(),
        ) else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.reason.as_str(), f.exit_code),
            (FailureKind::ExitCode, "bad column", Some(3))
        );
        std::fs::remove_file(t.path().join("output/failure")).unwrap();
        let Outcome::Failed(f) = outcome(
            "j",
            &state(State::Failed, None, Some(137)),
            Some(&result(Some(137), None)),
            t.path(),
        ) else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.reason.as_str()),
            (FailureKind::Signal, "killed by signal 9")
        );
        // The job's own work failed: staging, never the step.
        let Outcome::Failed(f) = outcome(
            "j",
            &state(State::Failed, None, Some(70)),
            Some(&result(None, Some("no space"))),
            t.path(),
        ) else {
            panic!()
        };
        assert_eq!(
            (f.kind, f.reason.as_str()),
            (FailureKind::Spawn, "job j: no space")
        );
        // No result: AWS Batch's reasons.
        let Outcome::Failed(f) = outcome(
            "j",
            &state(
                State::Failed,
                Some("Host EC2 (instance i-1) terminated."),
                None,
            ),
            None,
            t.path(),
        ) else {
            panic!()
        };
        assert_eq!(f.kind, FailureKind::Signal);
        assert!(
            f.reason.contains("Host EC2 (instance i-1) terminated."),
            "{}",
            f.reason
        );
        let Outcome::Failed(f) = outcome(
            "j",
            &state(
                State::Failed,
                Some("CannotPullContainerError: no such image"),
                None,
            ),
            None,
            t.path(),
        ) else {
            panic!()
        };
        assert_eq!(f.kind, FailureKind::Spawn);
        assert!(f.reason.contains("ECR"), "{}", f.reason);
        // SUCCEEDED by AWS Batch's word but no result written: not a success.
        assert!(matches!(
            outcome("j", &state(State::Succeeded, None, Some(0)), None, t.path()),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn job_definitions_are_named_by_their_needs() {
        let d = JobDefinition {
            image: "i".into(),
            vcpus: 1,
            memory_mib: 2048,
            job_role_arn: None,
            execution_role_arn: None,
            attempts: 3,
            timeout_s: None,
            nodes: 1,
            command: vec!["p".into()],
            environment: BTreeMap::new(),
        };
        let same = d.clone();
        assert_eq!(d.name(), same.name());
        assert!(d.name().starts_with("pipeline-") && d.name().len() <= 128);
        for other in [
            JobDefinition {
                vcpus: 2,
                ..d.clone()
            },
            JobDefinition {
                memory_mib: 4096,
                ..d.clone()
            },
            JobDefinition {
                image: "j".into(),
                ..d.clone()
            },
            JobDefinition {
                timeout_s: Some(60),
                ..d.clone()
            },
            JobDefinition {
                job_role_arn: Some("arn:r".into()),
                ..d.clone()
            },
            JobDefinition {
                nodes: 3,
                ..d.clone()
            },
            JobDefinition {
                environment: BTreeMap::from([("A".into(), "1".into())]),
                ..d.clone()
            },
        ] {
            assert_ne!(other.name(), d.name(), "{other:?}");
        }
    }

    #[test]
    fn the_file_s_settings_win_over_the_environment() {
        let s = BatchSettings {
            job_queue: Some("q".into()),
            region: Some("eu-west-1".into()),
            job_environment: BTreeMap::from([("A".into(), "1".into())]),
            runnable_timeout: Some(Duration::from_secs(60)),
            ..BatchSettings::default()
        };
        let r = resolve("s", &s).unwrap();
        assert_eq!(r.job_queue, "q");
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.runnable_timeout, Duration::from_secs(60));
        assert_eq!(r.job_environment.get("A").map(String::as_str), Some("1"));
    }

    #[test]
    fn commands_differ_by_their_arguments_and_environment() {
        let argv = vec!["p".to_string(), "builtin".to_string()];
        let env = vec![("SM_HPS".to_string(), "{}".to_string())];
        let base = command_digest("i", &argv, &env);
        assert_eq!(base, command_digest("i", &argv, &env));
        assert_ne!(base, command_digest("i", &argv[..1], &env));
        assert_ne!(base, command_digest("i", &argv, &[]));
        assert_ne!(base, command_digest("j", &argv, &env));
    }
}
