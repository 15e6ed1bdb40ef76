//! `pipeline batch-node PREFIX`: what runs inside an AWS Batch job (see the
//! module above). It brings the step's root from the shared store to
//! `/opt/ml` (every file checked against its digest), runs the step's
//! command there with the step's environment, passing its output through,
//! then puts `model/`, `output/` and `checkpoints/` back into the store and
//! writes `PREFIX/result.json` once. Its exit code is the command's, so
//! that AWS Batch's own view of the job agrees with the engine's. On a
//! multi-node job every node runs it: each takes its own part of the job
//! (by `AWS_BATCH_JOB_NODE_INDEX`), and only the main node's results are
//! stored, as the step's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{JOB_FORMAT, JobManifest, JobResult, RESULT_DIRS, RESULT_FORMAT};

/// Exit code when the job's own work (not the command) failed.
const EXIT_STAGING: i32 = 70;

/// The root the step's command sees, as on every container executor.
fn root() -> PathBuf {
    PathBuf::from(crate::schedule::CONTAINER_ROOT)
}

/// In a staged image (a user's image made ready for AWS Batch), this
/// program's CA certificates, for an image that has none of its own.
fn staged_certificates() -> Option<PathBuf> {
    let ours = Path::new(crate::exec::docker::image::STAGED_HOME).join("certs/ca-certificates.crt");
    let system = crate::exec::docker::image::CA_BUNDLES
        .iter()
        .any(|p| Path::new(p).is_file());
    (ours.is_file() && !system && std::env::var_os("SSL_CERT_FILE").is_none()).then_some(ours)
}

/// Where copies are made while the step runs: the staged image's own scratch
/// directory (a user's image may have no writable `/tmp`), else the usual one.
fn scratch() -> PathBuf {
    let ours = Path::new(crate::exec::docker::image::STAGED_HOME).join("tmp");
    if ours.is_dir() {
        ours
    } else {
        std::env::temp_dir()
    }
}

pub fn main(prefix: &str) -> i32 {
    // Read by the TLS stack when the S3 client is made, below; the step's
    // own program is started without it.
    let certificates = staged_certificates();
    if let Some(c) = &certificates {
        // SAFETY: no other thread runs yet; this is the program's first act.
        unsafe { std::env::set_var("SSL_CERT_FILE", c) };
    }
    let shared = match crate::store::remote::shared() {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!(
                "pipeline batch-node: PIPELINE_STORE is not set; the engine sets it for every job"
            );
            return EXIT_STAGING;
        }
        Err(e) => {
            eprintln!("pipeline batch-node: {e}");
            return EXIT_STAGING;
        }
    };
    let root = root();
    let report = |r: JobResult| {
        let put = shared.put_once(
            &format!("{prefix}/result.json"),
            serde_json::to_vec_pretty(&r).expect("json"),
        );
        match put {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "pipeline batch-node: {prefix}/result.json is there already (an earlier attempt of this job wrote it); it is kept"
            ),
            Err(e) => eprintln!("pipeline batch-node: write {prefix}/result.json: {e}"),
        }
    };
    let staging_failed = |what: String| {
        eprintln!("pipeline batch-node: {what}");
        report(JobResult {
            format: RESULT_FORMAT.into(),
            exit_code: None,
            outputs: None,
            error: Some(what),
        });
        EXIT_STAGING
    };
    let manifest: JobManifest = match shared.get(&format!("{prefix}/job.json")) {
        Ok(Some(b)) => match serde_json::from_slice(&b) {
            Ok(m) => m,
            Err(e) => return staging_failed(format!("{prefix}/job.json: {e}")),
        },
        Ok(None) => return staging_failed(format!("no {prefix}/job.json in the store")),
        Err(e) => return staging_failed(format!("read {prefix}/job.json: {e}")),
    };
    if manifest.format != JOB_FORMAT {
        return staging_failed(format!(
            "{prefix}/job.json is in the format `{}`, which this engine does not read (it reads {JOB_FORMAT}): the job's runtime image is another version of the engine than the one that submitted it",
            manifest.format
        ));
    }
    // A node of a multi-node job finds its part by its index (AWS Batch
    // gives every node its own); only the main node's results are the step's.
    let index = match std::env::var("AWS_BATCH_JOB_NODE_INDEX") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(i) => i,
            Err(_) => {
                return staging_failed(format!("AWS_BATCH_JOB_NODE_INDEX = `{v}` is not a number"));
            }
        },
        Err(_) => 0,
    };
    let Some(part) = manifest.nodes.get(index) else {
        return staging_failed(format!(
            "this is node {index}, and the job has {} node{}",
            manifest.nodes.len(),
            if manifest.nodes.len() == 1 { "" } else { "s" }
        ));
    };
    let main = index == 0;
    if let Err(e) = shared.materialize(&part.root, &root) {
        let what = format!("bring the step's data to {}: {e}", root.display());
        if main {
            return staging_failed(what);
        }
        eprintln!("pipeline batch-node: {what}");
        return EXIT_STAGING;
    }
    // The checkpoints an earlier attempt of this job recorded (AWS Batch
    // runs the job again when its instance went away), over the ones it was
    // given; and, while the step runs, its checkpoints whenever they change.
    let mut sync = None;
    if main {
        match super::latest_checkpoint(&shared, prefix) {
            Ok(Some(a)) => match shared.materialize(&a, &root) {
                Ok(()) => eprintln!(
                    "pipeline batch-node: continuing from the checkpoints an earlier attempt of this job recorded ({a})"
                ),
                Err(e) => eprintln!(
                    "pipeline batch-node: the recorded checkpoints could not be brought back: {e}"
                ),
            },
            Ok(None) => {}
            Err(e) => eprintln!("pipeline batch-node: look for recorded checkpoints: {e}"),
        }
        sync = Some(Sync::start(
            shared.clone(),
            prefix.to_string(),
            root.clone(),
        ));
    }
    let ran = run(
        &manifest.argv,
        &part.env,
        &root,
        certificates.is_some().then_some("SSL_CERT_FILE"),
    );
    // Stopped from outside (AWS Batch sends SIGTERM before it takes a spot
    // instance away, on TerminateJob and at the attempt's timeout): the
    // step's last checkpoints are recorded, and no result is written, so
    // that the job's next attempt, if AWS Batch starts one, begins from them.
    let stopped = matches!(
        ran,
        Ok(Ran {
            terminated: true,
            ..
        })
    );
    if let Some(s) = sync {
        s.stop(stopped);
    }
    if let Ok(Ran {
        code,
        terminated: true,
    }) = ran
    {
        eprintln!(
            "pipeline batch-node: stopped by SIGTERM; the step's checkpoints are recorded, and no result is written"
        );
        return code;
    }
    let code = match ran.map(|r| r.code) {
        Ok(c) => c,
        Err(e) if main => return staging_failed(e),
        Err(e) => {
            eprintln!("pipeline batch-node: {e}");
            return EXIT_STAGING;
        }
    };
    if !main {
        return code;
    }
    match shared.put_dirs(&root, RESULT_DIRS) {
        Ok(outputs) => {
            report(JobResult {
                format: RESULT_FORMAT.into(),
                exit_code: Some(code),
                outputs: Some(outputs),
                error: None,
            });
            code
        }
        Err(e) => staging_failed(format!("store the step's outputs: {e}")),
    }
}

/// How often the step's checkpoints are looked at while it runs, unless
/// `PIPELINE_BATCH_CHECKPOINT_INTERVAL` says (a duration).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

/// Records the step's checkpoints in the store whenever they changed, at
/// most once an interval, until stopped.
struct Sync {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Ends with the digest of the checkpoints last recorded.
    thread: std::thread::JoinHandle<Option<String>>,
    shared: Arc<crate::store::s3::Shared>,
    prefix: String,
    dir: PathBuf,
}

impl Sync {
    fn start(shared: Arc<crate::store::s3::Shared>, prefix: String, root: PathBuf) -> Sync {
        let interval = std::env::var("PIPELINE_BATCH_CHECKPOINT_INTERVAL")
            .ok()
            .and_then(|v| crate::spec::model::duration::parse(&v))
            .unwrap_or(CHECKPOINT_INTERVAL);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let dir = root.join("checkpoints");
        let thread = {
            let (stop, shared, prefix, dir) =
                (stop.clone(), shared.clone(), prefix.clone(), dir.clone());
            std::thread::spawn(move || {
                let mut last = crate::store::tree_entries(&dir)
                    .ok()
                    .map(|e| crate::store::digest_entries(&e));
                loop {
                    let (lock, cv) = &*stop;
                    let stopped = cv
                        .wait_timeout_while(lock.lock().expect("lock"), interval, |stop| !*stop)
                        .map(|(g, _)| *g)
                        .unwrap_or(true);
                    if stopped {
                        return last;
                    }
                    record_if_changed(&shared, &prefix, &dir, &mut last);
                }
            })
        };
        Sync {
            stop,
            thread,
            shared,
            prefix,
            dir,
        }
    }

    /// Stops looking; with `flush`, records the checkpoints once more if
    /// they changed since they were last recorded.
    fn stop(self, flush: bool) {
        let (lock, cv) = &*self.stop;
        *lock.lock().expect("lock") = true;
        cv.notify_all();
        let mut last = self.thread.join().ok().flatten();
        if flush {
            record_if_changed(&self.shared, &self.prefix, &self.dir, &mut last);
        }
    }
}

/// Records the checkpoints in `dir` unless they are empty or their digest is
/// `last`, which then becomes theirs.
fn record_if_changed(
    shared: &Arc<crate::store::s3::Shared>,
    prefix: &str,
    dir: &Path,
    last: &mut Option<String>,
) {
    let Ok(entries) = crate::store::tree_entries(dir) else {
        return;
    };
    let now = crate::store::digest_entries(&entries);
    if entries.is_empty() || last.as_deref() == Some(now.as_str()) {
        return;
    }
    // A copy, each file read through one open: a file the step replaces
    // meanwhile is either the old one whole or the new one.
    let snapshot = scratch().join(format!("checkpoints-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&snapshot);
    let copied = copy_tree(dir, &snapshot.join("checkpoints"));
    let recorded = copied
        .map_err(|e| format!("copy {}: {e}", dir.display()))
        .and_then(|()| {
            super::record_checkpoint(shared, prefix, &snapshot).map_err(|e| e.to_string())
        });
    let _ = std::fs::remove_dir_all(&snapshot);
    match recorded {
        Ok(_) => *last = Some(now),
        Err(e) => eprintln!("pipeline batch-node: record the checkpoints: {e}"),
    }
}

/// Copies the files and directories under `from` to `to` (made anew).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = std::fs::metadata(&src)?;
        if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            match std::fs::copy(&src, &dst) {
                Ok(_) => {}
                // Replaced or removed since it was listed (a temporary file).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// How the step's command ended.
#[derive(Debug, Clone, Copy)]
struct Ran {
    /// Its exit code, or 128 + the signal that ended it.
    code: i32,
    /// Whether this program was sent SIGTERM meanwhile (and passed it on).
    terminated: bool,
}

/// Runs the step's command in `root` with its environment (without
/// `hidden`, a variable only this program needed). A SIGTERM sent to this
/// program is passed on to the command, which then has until the container
/// is killed to end.
fn run(
    argv: &[String],
    env: &[(String, String)],
    root: &Path,
    hidden: Option<&str>,
) -> Result<Ran, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the job has no command".into());
    };
    let term = Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone())
        .map_err(|e| format!("watch for SIGTERM: {e}"))?;
    let mut c = Command::new(program);
    c.args(args).current_dir(root);
    if let Some(h) = hidden {
        c.env_remove(h);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().map_err(|e| format!("start `{program}`: {e}"))?;
    let mut passed_on = false;
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| format!("wait for `{program}`: {e}"))?
        {
            break s;
        }
        if !passed_on && term.load(std::sync::atomic::Ordering::Relaxed) {
            passed_on = true;
            eprintln!("pipeline batch-node: SIGTERM; passing it on to the step");
            // SAFETY: kill(2) on our own child's pid, which it keeps until reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(Ran {
        code: status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        terminated: passed_on,
    })
}
