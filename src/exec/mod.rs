//! Execute: one [`Backend`] trait, one implementation per place a step can run.
//!
//! Every step, built-in or user code, runs as a separate process (or
//! container) under the container contract ([`contract`]): the scheduler
//! prepares a [`StepJob`] and a backend runs it to an [`Outcome`]. Backends
//! never touch run records; they only report what happened.
//!
//! - [`local`]: a child process on this machine (implemented);
//! - Docker Engine and AWS Batch (multi-node) backends plug in behind the same trait.
//! - [`builtin`]: what runs *inside* a built-in step's process (`pipeline builtin`).

pub mod builtin;
pub mod contract;
pub mod hooks;
pub mod local;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;

use crate::spec::model::{Resources, RetryOn};

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
    /// The user's image, for container backends.
    pub image: Option<String>,
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
