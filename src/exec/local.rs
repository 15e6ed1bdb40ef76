//! The local backend: each attempt is a child process on this machine (one a
//! node for multi-node steps, talking over loopback).
//!
//! The child is a supervisor ([`super::supervise`]) running the step's
//! command: a child subreaper that kills whatever the step left running
//! (even processes that called `setsid` or double-forked) before it reports
//! the exit, so no process of a step outlives it. It has its own process
//! group (stopping a step sends SIGTERM to the group; the supervisor passes
//! it on and kills what is left after a grace period) and dies with the
//! engine (it sets `PR_SET_PDEATHSIG` on itself as it starts, so the engine
//! can start it with `posix_spawn` rather than `fork`). Every process of an attempt carries `PIPELINE_ATTEMPT_ID` in its
//! environment, by which `resume` finds and stops what an engine killed
//! outright left behind.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;

use futures_util::StreamExt;

use super::{
    Backend, BoxFuture, Failure, FailureKind, LineWriter, NodeJob, Outcome, StepJob, failed,
    read_failure_file, wait_cancelled,
};

/// The hosts file of `node` (written beside its root), naming every node of
/// the step; `None` when it cannot be written (the step then runs without).
fn hosts_file(job: &StepJob, node: &NodeJob) -> Option<PathBuf> {
    let hosts: Vec<String> = job.nodes().into_iter().map(|n| n.host).collect();
    // The machine's own, read once: every local node of every step starts from it.
    static MACHINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let machine = MACHINE.get_or_init(|| std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    let path = node.root.with_extension("hosts");
    std::fs::write(&path, super::supervise::hosts_file_text(machine, &hosts)).ok()?;
    Some(path)
}

/// How long a stopped step may take to exit after SIGTERM beyond the
/// supervisor's own grace: a little for it to kill and reap what is left.
const GRACE_MARGIN: Duration = Duration::from_secs(2);

pub struct LocalBackend;

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome> {
        Box::pin(run_local(job, cancel))
    }
}

async fn run_local(job: StepJob, cancel: watch::Receiver<bool>) -> Outcome {
    if job.workers.is_empty() {
        let node = job.nodes().remove(0);
        return run_node(&job, node, None, cancel).await;
    }
    // A multi-node step: one process a node, the main node on a free loopback port.
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("find a free port for the main node: {e}"),
                None,
            );
        }
    };
    let nodes = job.nodes();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut running = futures_util::stream::FuturesUnordered::new();
    for (i, mut node) in nodes.iter().cloned().enumerate() {
        node.env
            .push(("PIPELINE_COORDINATOR_PORT".into(), port.to_string()));
        node.env.push(("PIPELINE_JOB_ID".into(), job.job_id()));
        if i > 0 {
            node.env.push((
                "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS".into(),
                "127.0.0.1".into(),
            ));
        }
        let tag = Some(node.host.clone());
        let job = &job;
        let stop = stop_rx.clone();
        running.push(async move { (i, run_node(job, node, tag, stop).await) });
    }
    let mut cancel = cancel;
    let mut results: Vec<(usize, Outcome)> = Vec::new();
    // When to stop the nodes still running: shortly after the first failure,
    // or a while after the main node succeeded (as AWS Batch ends a
    // multi-node job with its main node).
    let mut stop_at: Option<tokio::time::Instant> = None;
    let mut stopped = false;
    let mut cancelled = false;
    loop {
        let stop_timer = async {
            match stop_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = running.next() => match r {
                None => break,
                Some((i, o)) => {
                    let now = tokio::time::Instant::now();
                    match &o {
                        Outcome::Failed(_) if stop_at.is_none() && !stopped => {
                            stop_at = Some(now + SETTLE);
                        }
                        Outcome::Succeeded if i == 0 && stop_at.is_none() && !stopped => {
                            stop_at = Some(now + WORKERS_AFTER_MAIN);
                        }
                        _ => {}
                    }
                    results.push((i, o));
                }
            },
            _ = stop_timer => {
                let _ = stop_tx.send(true);
                stop_at = None;
                stopped = true;
            }
            _ = wait_cancelled(&mut cancel), if !cancelled => {
                cancelled = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    let main_succeeded = results
        .iter()
        .any(|(i, o)| *i == 0 && *o == Outcome::Succeeded);
    let only_stopped = results.iter().all(|(_, o)| match o {
        Outcome::Succeeded => true,
        Outcome::Failed(f) => f.kind == FailureKind::Cancelled,
    });
    if main_succeeded && only_stopped && !cancelled {
        return Outcome::Succeeded;
    }
    blame(&nodes, results)
}

/// After the first node fails, how long the others may take to fail on their
/// own (so the node that caused it is the one named).
const SETTLE: Duration = Duration::from_millis(1500);
/// After the main node succeeds, how long the other nodes may take to finish.
const WORKERS_AFTER_MAIN: Duration = Duration::from_secs(30);

/// The step's outcome from its nodes' outcomes: the node that caused a
/// failure is named (killed by a signal first, then the first to fail).
fn blame(nodes: &[super::NodeJob], results: Vec<(usize, Outcome)>) -> Outcome {
    let failures: Vec<(usize, Failure)> = results
        .into_iter()
        .filter_map(|(i, o)| match o {
            Outcome::Failed(f) => Some((i, f)),
            Outcome::Succeeded => None,
        })
        .collect();
    if failures.is_empty() {
        return Outcome::Succeeded;
    }
    let rank = |f: &Failure| match f.kind {
        FailureKind::OutOfMemory => 0,
        FailureKind::Signal => 1,
        FailureKind::Timeout => 2,
        FailureKind::ExitCode | FailureKind::Spawn => 3,
        FailureKind::Cancelled => 4,
    };
    let (i, f) = failures
        .iter()
        .min_by_key(|(_, f)| rank(f))
        .cloned()
        .expect("not empty");
    if f.kind == FailureKind::Cancelled || f.kind == FailureKind::Timeout {
        return Outcome::Failed(f);
    }
    Outcome::Failed(Failure {
        reason: format!("node {} (index {i}): {}", nodes[i].host, f.reason),
        ..f
    })
}

/// Runs one node to its end, feeding its pipe-mode channels meanwhile.
async fn run_node(
    job: &StepJob,
    node: super::NodeJob,
    tag: Option<String>,
    cancel: watch::Receiver<bool>,
) -> Outcome {
    let feeder = match super::pipe::Feeder::for_node(&node.root) {
        Ok(f) => f,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("feed the pipe-mode channels: {e}"),
                None,
            );
        }
    };
    let outcome = run_process(job, node, tag, cancel).await;
    // The step's processes are gone: nothing reads the pipes any more.
    match feeder {
        None => outcome,
        Some(f) => {
            let error = tokio::task::spawn_blocking(move || f.finish())
                .await
                .unwrap_or(None);
            super::pipe::with_feed_error(outcome, error)
        }
    }
}

/// Runs one node's process to its end, its output into the step's log.
async fn run_process(
    job: &StepJob,
    node: super::NodeJob,
    tag: Option<String>,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let writers = LineWriter::open(&job.log_path, &job.step, tag.clone(), job.live_log.clone())
        .map(|w| w.masking(&job.secrets))
        .and_then(|w| Ok((w.another()?, w)));
    let (mut err_w, mut out_w) = match writers {
        Ok(w) => w,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("cannot open the log {}: {e}", job.log_path.display()),
                None,
            );
        }
    };
    if job.argv.is_empty() {
        return failed(FailureKind::Spawn, "the step has no command".into(), None);
    }
    let (program, subcommand) = match supervisor() {
        Ok(p) => p,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!("find the pipeline program to supervise the step: {e}"),
                None,
            );
        }
    };
    let spawn_error = node.root.join(SPAWN_ERROR);
    let _ = std::fs::remove_file(&spawn_error);
    let mut cmd = Command::new(&program);
    cmd.args(subcommand)
        .arg("--die-with")
        .arg(std::process::id().to_string())
        .arg("--spawn-error")
        .arg(&spawn_error)
        .arg("--grace")
        .arg(job.stop_grace.as_secs_f64().to_string());
    if let Some(hosts) = hosts_file(job, &node) {
        cmd.arg("--hostname")
            .arg(&node.host)
            .arg("--hosts-file")
            .arg(hosts);
    }
    cmd.arg("--")
        .args(&job.argv)
        .current_dir(if job.in_code_dir {
            node.root.join("code")
        } else {
            job.cwd.clone()
        })
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .env(
            super::supervise::ATTEMPT_VAR,
            super::supervise::attempt_id(&job.run_id, &job.step, job.attempt, &node.host),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // No `pre_exec` here: without one the standard library starts the child
    // with `posix_spawn` (a `vfork`-like clone that copies none of the
    // engine's memory) instead of `fork`, which costs more the larger the
    // plan. The supervisor ties its life to the engine itself (`--die-with`).
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return failed(
                FailureKind::Spawn,
                format!(
                    "cannot start the step supervisor `{}`: {e}",
                    program.display()
                ),
                None,
            );
        }
    };
    let pid = child.id().map(|p| p as i32);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pump = async move {
        let a = async {
            if let Some(mut r) = stdout {
                pump_into(&mut r, &mut out_w).await;
            }
        };
        let b = async {
            if let Some(mut r) = stderr {
                pump_into(&mut r, &mut err_w).await;
            }
        };
        tokio::join!(a, b);
    };
    tokio::pin!(pump);
    let deadline = async {
        match job.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let stop_kind = tokio::select! {
        (status, ()) = async { tokio::join!(child.wait(), &mut pump) } => {
            return match status {
                Ok(s) => match std::fs::read_to_string(&spawn_error) {
                    // The supervisor could not start the step's command.
                    Ok(reason) if s.code() == Some(127) => failed(FailureKind::Spawn, reason, None),
                    _ => exit_outcome(&node.root, s),
                },
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
    if tokio::time::timeout(job.stop_grace + GRACE_MARGIN, child.wait())
        .await
        .is_err()
    {
        if let Some(pid) = pid {
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = child.wait().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut pump).await;
    let reason = match stop_kind {
        FailureKind::Timeout => format!(
            "timed out after {}",
            crate::spec::model::duration::format(job.timeout.unwrap_or_default())
        ),
        _ => "stopped: the run was cancelled".to_string(),
    };
    failed(stop_kind, reason, None)
}

/// The supervisor to start a step under: `pipeline-supervise` beside this
/// program (it starts several times faster), else `pipeline supervise`.
fn supervisor() -> std::io::Result<(std::path::PathBuf, Option<&'static str>)> {
    let exe = std::env::current_exe()?;
    let small = exe.with_file_name("pipeline-supervise");
    Ok(if small.is_file() {
        (small, None)
    } else {
        (exe, Some("supervise"))
    })
}

/// Where the supervisor says why the step's command could not start (in the node's root).
const SPAWN_ERROR: &str = ".spawn-error";

/// Copies a child's output into the log until it closes.
async fn pump_into(r: &mut (impl tokio::io::AsyncRead + Unpin), w: &mut LineWriter) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => w.write(&buf[..n]),
        }
    }
    w.finish();
}

fn exit_outcome(root: &std::path::Path, status: std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Outcome::Succeeded;
    }
    let own = read_failure_file(root);
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
