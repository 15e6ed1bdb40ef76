//! The local backend: each attempt is a child process on this machine.
//!
//! The child gets its own process group, so stopping a step stops everything
//! it started (SIGTERM to the group, SIGKILL after a grace period), and dies
//! with the engine if the engine is killed, so no step outlives a run that a
//! later `resume` will redo.

use std::fs::OpenOptions;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;

use super::{Backend, BoxFuture, Failure, FailureKind, Outcome, StepJob, read_failure_file};

/// How long a stopped step may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

pub struct LocalBackend;

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome> {
        Box::pin(run_local(job, cancel))
    }
}

fn failed(kind: FailureKind, reason: String, exit_code: Option<i32>) -> Outcome {
    Outcome::Failed(Failure {
        kind,
        reason,
        exit_code,
    })
}

async fn run_local(job: StepJob, mut cancel: watch::Receiver<bool>) -> Outcome {
    let log = match OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.log_path)
    {
        Ok(f) => f,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("cannot open the log {}: {e}", job.log_path.display()),
                None,
            );
        }
    };
    let log_err = match log.try_clone() {
        Ok(f) => f,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("cannot open the log: {e}"),
                None,
            );
        }
    };
    let Some((program, args)) = job.argv.split_first() else {
        return failed(FailureKind::Spawn, "the step has no command".into(), None);
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&job.cwd)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                format!("cannot start `{program}`: no such program (is it installed and on PATH?)")
            } else {
                format!("cannot start `{program}`: {e}")
            };
            return failed(FailureKind::Spawn, reason, None);
        }
    };
    let pid = child.id().map(|p| p as i32);
    let deadline = async {
        match job.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let stop_kind = tokio::select! {
        status = child.wait() => {
            return match status {
                Ok(s) => exit_outcome(&job, s),
                Err(e) => failed(FailureKind::ExitCode, format!("waiting for the step failed: {e}"), None),
            };
        }
        _ = deadline => FailureKind::Timeout,
        _ = wait_cancelled(&mut cancel) => FailureKind::Cancelled,
    };
    if let Some(pid) = pid {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        if let Some(pid) = pid {
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = child.wait().await;
    }
    let reason = match stop_kind {
        FailureKind::Timeout => format!(
            "timed out after {}",
            crate::spec::model::duration::format(job.timeout.unwrap_or_default())
        ),
        _ => "stopped: the run was cancelled".to_string(),
    };
    failed(stop_kind, reason, None)
}

async fn wait_cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn exit_outcome(job: &StepJob, status: std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Outcome::Succeeded;
    }
    let own = read_failure_file(&job.root);
    if let Some(code) = status.code() {
        let reason = own.unwrap_or_else(|| format!("exited with code {code}"));
        return failed(FailureKind::ExitCode, reason, Some(code));
    }
    let sig = status.signal().unwrap_or(0);
    if sig == libc::SIGKILL {
        let reason = own.unwrap_or_else(|| {
            "killed by SIGKILL (possibly by the kernel for running out of memory)".into()
        });
        return failed(FailureKind::Signal, reason, None);
    }
    failed(
        FailureKind::Signal,
        own.unwrap_or_else(|| format!("killed by signal {sig}")),
        None,
    )
}
