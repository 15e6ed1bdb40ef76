//! Execute: one [`Backend`] trait, one implementation per place a step can run.
//!
//! Every step, built-in or user code, runs as a separate process (or
//! container) under the container contract ([`contract`]): the scheduler
//! prepares a [`StepJob`] and a backend runs it to an [`Outcome`]. Backends
//! never touch run records; they only report what happened.
//!
//! - [`local`]: child processes on this machine (one a node);
//! - [`docker`]: containers on the local Docker Engine (one a node, on a
//!   private network for multi-node steps);
//! - [`Dispatch`]: picks the backend each step's `executor` names.
//! - [`builtin`]: what runs *inside* a built-in step's process (`pipeline builtin`).

pub mod builtin;
pub mod contract;
pub mod docker;
pub mod hooks;
pub mod local;
pub mod supervise;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;

use crate::spec::model::{Executor, Network, Resources, RetryOn};

/// Everything a backend needs to run one attempt of one step.
#[derive(Debug, Clone)]
pub struct StepJob {
    pub run_id: String,
    pub step: String,
    pub attempt: u32,
    /// The step's root: `/opt/ml` in a container, a work directory locally.
    pub root: PathBuf,
    /// Working directory for local processes (the pipeline file's directory).
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here.
    pub log_path: PathBuf,
    pub timeout: Option<Duration>,
    pub resources: Resources,
    /// The user's image, for container backends (else the runtime image).
    pub image: Option<String>,
    pub executor: Executor,
    pub network: Network,
    /// The main node is `root`/`env` (host `algo-1`); these are the others.
    pub workers: Vec<NodeJob>,
    /// Where the step's output lines go as they come, besides the log file.
    pub live_log: Option<LogSink>,
    /// Secret values the step's environment holds: masked in what it prints.
    pub secrets: Vec<String>,
}

impl StepJob {
    /// Every node of the step, the main node first.
    pub fn nodes(&self) -> Vec<NodeJob> {
        let mut v = vec![NodeJob {
            host: "algo-1".into(),
            root: self.root.clone(),
            env: self.env.clone(),
        }];
        v.extend(self.workers.iter().cloned());
        v
    }
    /// Identifies this attempt among every job the engine runs.
    pub fn job_id(&self) -> String {
        format!("{}-{}-{}", self.run_id, self.step, self.attempt)
    }
}

/// One node of a (multi-node) step: its own root and environment.
#[derive(Debug, Clone)]
pub struct NodeJob {
    /// `algo-1`, `algo-2`...
    pub host: String,
    pub root: PathBuf,
    pub env: Vec<(String, String)>,
}

/// One line a step printed.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub step: String,
    /// The node, on multi-node steps.
    pub node: Option<String>,
    pub line: String,
}

pub type LogSink = tokio::sync::mpsc::UnboundedSender<LogLine>;

/// Splits a step's output into lines, appends them to its log file (prefixed
/// with the node on multi-node steps) and passes them on live.
pub struct LineWriter {
    file: std::fs::File,
    pending: Vec<u8>,
    step: String,
    node: Option<String>,
    sink: Option<LogSink>,
    /// Secret values to mask in every line.
    mask: Vec<String>,
}

impl LineWriter {
    pub fn open(
        path: &std::path::Path,
        step: &str,
        node: Option<String>,
        sink: Option<LogSink>,
    ) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LineWriter {
            file,
            pending: Vec::new(),
            step: step.to_string(),
            node,
            sink,
            mask: Vec::new(),
        })
    }

    /// Masks these secret values in every line written.
    pub fn masking(mut self, secrets: &[String]) -> Self {
        self.mask = secrets.to_vec();
        self
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            self.emit(&line[..line.len() - 1]);
        }
    }

    /// Writes what is left of an unfinished last line.
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn emit(&mut self, line: &[u8]) {
        use std::io::Write;
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let masked;
        let text = if self.mask.is_empty() {
            text
        } else {
            masked = mask_secrets(text, self.mask.iter().map(String::as_str));
            masked.as_str()
        };
        let _ = match &self.node {
            Some(n) => writeln!(self.file, "[{n}] {text}"),
            None => writeln!(self.file, "{text}"),
        };
        if let Some(s) = &self.sink {
            let _ = s.send(LogLine {
                step: self.step.clone(),
                node: self.node.clone(),
                line: text.to_string(),
            });
        }
    }
}

/// Replaces every occurrence of a secret value in `text` with `***` (the
/// longest values first, so one that contains another is masked whole).
pub fn mask_secrets<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut values: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    values.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for v in values {
        if out.contains(v) {
            out = out.replace(v, "***");
        }
    }
    out
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    /// What the step said (`output/failure`) or what we saw.
    pub reason: String,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The process exited with a non-zero code.
    ExitCode,
    /// Killed by a signal we did not send.
    Signal,
    Timeout,
    OutOfMemory,
    /// Could not be started at all (no such program...): retrying will not help.
    Spawn,
    /// Stopped because the run was cancelled or another step failed.
    Cancelled,
}

impl FailureKind {
    /// Whether a retry policy's `on:` list covers this failure.
    pub fn retried_by(&self, on: &[RetryOn]) -> bool {
        let k = match self {
            FailureKind::ExitCode => RetryOn::ExitCode,
            FailureKind::Signal => RetryOn::Signal,
            FailureKind::Timeout => RetryOn::Timeout,
            FailureKind::OutOfMemory => RetryOn::Oom,
            FailureKind::Spawn | FailureKind::Cancelled => return false,
        };
        on.contains(&k)
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A place steps run.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Runs one attempt. When `cancel` turns true the backend stops the step
    /// (gracefully, then by force) and returns `FailureKind::Cancelled`.
    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome>;
}

/// Resolves once `rx` says the run is cancelled (never, if its sender is gone).
pub async fn wait_cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Reads `root/output/failure` (the step's own failure reason), if it wrote one.
pub fn read_failure_file(root: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("output/failure")).ok()?;
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let mut s: String = t.chars().take(2000).collect();
    if t.chars().count() > 2000 {
        s.push('…');
    }
    Some(s)
}

/// Runs each step on the backend its `executor` names.
pub struct Dispatch {
    pub local: std::sync::Arc<dyn Backend>,
    pub docker: Option<std::sync::Arc<dyn Backend>>,
}

impl Backend for Dispatch {
    fn name(&self) -> &'static str {
        "dispatch"
    }
    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome> {
        match (job.executor, &self.docker) {
            (Executor::Docker, Some(d)) => d.run(job, cancel),
            (Executor::Local, _) => self.local.run(job, cancel),
            (e, _) => {
                let reason = format!("no backend for the `{}` executor in this run", e.name());
                Box::pin(async move {
                    Outcome::Failed(Failure {
                        kind: FailureKind::Spawn,
                        reason,
                        exit_code: None,
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod mask_tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let m = mask_secrets("pw=hunter2 again hunter2; hunt", ["hunt", "hunter2", ""]);
        assert_eq!(m, "pw=*** again ***; ***");
    }

    #[test]
    fn line_writer_masks_the_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut w = LineWriter::open(&log, "s", None, None)
            .unwrap()
            .masking(&["s3cr3t".to_string()]);
        w.write(b"connecting with s3cr3t\nno secret here\npartial s3c");
        w.write(b"r3t\n");
        w.finish();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "connecting with ***\nno secret here\npartial ***\n");
    }
}
