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
//! - [`batch`]: jobs on AWS Batch, their data staged through the shared S3
//!   store (feature `aws`);
//! - [`Dispatch`]: picks the backend each step's `executor` names.
//! - [`pipe`]: feeds pipe-mode channels through named pipes while a node runs
//!   (both backends start and stop it around each node).
//! - [`builtin`]: what runs *inside* a built-in step's process (`pipeline builtin`).

#[cfg(feature = "aws")]
pub mod batch;
pub mod builtin;
pub mod contract;
pub mod docker;
pub mod hooks;
pub mod local;
pub mod pipe;
pub mod supervise;
pub mod training_env;

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
    /// The step runs its entry point itself: from each node's code
    /// directory (`code/` under its root), as the training toolkit runs it.
    pub in_code_dir: bool,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here.
    pub log_path: PathBuf,
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when the step is stopped.
    pub stop_grace: Duration,
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
    /// Where it runs on AWS Batch (`executor: batch`), as the file says.
    pub batch: crate::spec::model::BatchSettings,
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
    /// A progress segment ended by a lone `\r`: it replaces the step's
    /// previous progress segment on a live display, and is not a line of the log.
    pub progress: bool,
}

/// Lines longer than this are cut: the log and the live display get the
/// first `MAX_LINE` bytes and a marker saying how many bytes were dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// Lines waiting for the live display at most; when the display falls
/// behind, further lines are not shown live (the log file still has them)
/// and a marker says how many were skipped.
pub const LIVE_LINES: usize = 256;

/// Where steps' lines go for the live display: a bounded channel that never
/// blocks a step (see [`LIVE_LINES`]).
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: tokio::sync::mpsc::Sender<LogLine>,
}

impl LogSink {
    /// A sink and the receiving end the live display reads.
    pub fn channel() -> (LogSink, tokio::sync::mpsc::Receiver<LogLine>) {
        let (tx, rx) = tokio::sync::mpsc::channel(LIVE_LINES);
        (LogSink { tx }, rx)
    }

    /// Passes `line` on unless the display is `LIVE_LINES` behind; `false` if it was dropped.
    fn offer(&self, line: LogLine) -> bool {
        self.tx.try_send(line).is_ok()
    }
}

/// Splits a step's output into lines, appends them to its log file (prefixed
/// with the node on multi-node steps) and passes them on live.
///
/// Work and memory are bounded by [`MAX_LINE`] whatever the output: bytes
/// are looked at once, a line longer than the bound is cut with a marker
/// (the rest counted, not kept), and the live display gets lines through a
/// bounded channel, dropped with a count when it falls behind, never
/// slowing the step. A `\r` not followed by `\n` (progress bars) ends a
/// segment: the live display shows it in place of the previous one, and
/// the log keeps the last segment of each line, as a terminal shows it. A
/// `\r\n` line ending is an ordinary line end.
pub struct LineWriter {
    file: std::fs::File,
    /// The current segment of the current line (at most `MAX_LINE` bytes).
    pending: Vec<u8>,
    /// Bytes of the current segment beyond `MAX_LINE`, dropped.
    dropped: u64,
    /// The last chunk ended with `\r`: whether it ends a line or a segment depends on the next byte.
    cr: bool,
    /// Log text not yet written (one write a chunk).
    out: Vec<u8>,
    step: String,
    node: Option<String>,
    sink: Option<LogSink>,
    /// Secret values to mask in every line.
    mask: Vec<String>,
    /// Lines the live display did not get since it last got one.
    unshown: u64,
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
        Ok(Self::on(file, step, node, sink))
    }

    /// A second writer into the same log (a process's stderr beside its
    /// stdout): the file is shared, not opened again.
    pub fn another(&self) -> std::io::Result<Self> {
        Ok(Self::on(
            self.file.try_clone()?,
            &self.step,
            self.node.clone(),
            self.sink.clone(),
        )
        .masking(&self.mask))
    }

    fn on(file: std::fs::File, step: &str, node: Option<String>, sink: Option<LogSink>) -> Self {
        LineWriter {
            file,
            pending: Vec::new(),
            dropped: 0,
            cr: false,
            out: Vec::new(),
            step: step.to_string(),
            node,
            sink,
            unshown: 0,
            mask: Vec::new(),
        }
    }

    /// Masks these secret values in every line written.
    pub fn masking(mut self, secrets: &[String]) -> Self {
        self.mask = secrets.to_vec();
        self
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        if self.cr && !bytes.is_empty() {
            self.cr = false;
            if bytes[0] == b'\n' {
                self.end_line();
                bytes = &bytes[1..];
            } else {
                self.end_segment();
            }
        }
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.take(&bytes[..i]);
            let is_cr = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            if !is_cr {
                self.end_line();
            } else if bytes.is_empty() {
                self.cr = true;
            } else if bytes[0] == b'\n' {
                self.end_line();
                bytes = &bytes[1..];
            } else {
                self.end_segment();
            }
        }
        self.take(bytes);
        self.flush();
    }

    /// Writes what is left of an unfinished last line.
    pub fn finish(&mut self) {
        if self.cr || !self.pending.is_empty() || self.dropped > 0 {
            self.cr = false;
            self.end_line();
        }
        self.flush();
        if self.unshown > 0
            && let Some(s) = self.sink.clone()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // The display is behind: tell it, waiting for room, off the step's path.
            let line = self.unshown_marker();
            rt.spawn(async move {
                let _ = s.tx.send(line).await;
            });
            self.unshown = 0;
        }
    }

    /// Keeps the part of `bytes` that fits in the line bound; counts the rest.
    fn take(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.pending.len());
        let keep = bytes.len().min(room);
        self.pending.extend_from_slice(&bytes[..keep]);
        self.dropped += (bytes.len() - keep) as u64;
    }

    /// The current segment as text, with the cut marker if it was cut.
    fn text(&mut self) -> String {
        if self.dropped > 0 {
            // A character split by the cut is dropped whole, not shown half.
            if let Err(e) = std::str::from_utf8(&self.pending)
                && e.error_len().is_none()
            {
                self.dropped += (self.pending.len() - e.valid_up_to()) as u64;
                self.pending.truncate(e.valid_up_to());
            }
        }
        let mut text = String::from_utf8_lossy(&self.pending).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(
                " [… line cut: {} more bytes dropped; lines are kept up to {} KiB]",
                self.dropped,
                MAX_LINE / 1024
            ));
        }
        self.pending.clear();
        self.dropped = 0;
        if self.mask.is_empty() {
            text
        } else {
            mask_secrets(&text, self.mask.iter().map(String::as_str))
        }
    }

    fn end_line(&mut self) {
        use std::io::Write;
        let text = self.text();
        let _ = match &self.node {
            Some(n) => writeln!(self.out, "[{n}] {text}"),
            None => writeln!(self.out, "{text}"),
        };
        self.live(text, false);
    }

    /// A segment ended by a lone `\r`: shown live, replaced in the log by what follows.
    fn end_segment(&mut self) {
        let text = self.text();
        if !text.trim().is_empty() {
            self.live(text, true);
        }
    }

    fn unshown_marker(&self) -> LogLine {
        LogLine {
            step: self.step.clone(),
            node: self.node.clone(),
            line: format!(
                "[… {} lines not shown live: the display fell behind; `pipeline logs` has them all]",
                self.unshown
            ),
            progress: false,
        }
    }

    fn live(&mut self, line: String, progress: bool) {
        let Some(s) = &self.sink else { return };
        if progress {
            // A progress segment the display has no room for is simply not shown:
            // a later one replaces it anyway.
            if self.unshown == 0 {
                let _ = s.offer(LogLine {
                    step: self.step.clone(),
                    node: self.node.clone(),
                    line,
                    progress,
                });
            }
            return;
        }
        if self.unshown > 0 {
            if !s.offer(self.unshown_marker()) {
                self.unshown += 1;
                return;
            }
            self.unshown = 0;
        }
        let line = LogLine {
            step: self.step.clone(),
            node: self.node.clone(),
            line,
            progress: false,
        };
        if !s.offer(line) {
            self.unshown += 1;
        }
    }

    fn flush(&mut self) {
        use std::io::Write;
        if !self.out.is_empty() {
            let _ = self.file.write_all(&self.out);
            self.out.clear();
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

/// A failed attempt's outcome.
pub fn failed(kind: FailureKind, reason: String, exit_code: Option<i32>) -> Outcome {
    Outcome::Failed(Failure {
        kind,
        reason,
        exit_code,
    })
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
    pub batch: Option<std::sync::Arc<dyn Backend>>,
}

impl Backend for Dispatch {
    fn name(&self) -> &'static str {
        "dispatch"
    }
    fn run(&self, job: StepJob, cancel: watch::Receiver<bool>) -> BoxFuture<Outcome> {
        match (job.executor, &self.docker, &self.batch) {
            (Executor::Docker, Some(d), _) => d.run(job, cancel),
            (Executor::Batch, _, Some(b)) => b.run(job, cancel),
            (Executor::Local, _, _) => self.local.run(job, cancel),
            (e, _, _) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(node: Option<&str>) -> (tempfile::TempDir, std::path::PathBuf, LineWriter) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("log");
        let w = LineWriter::open(&p, "s", node.map(str::to_string), None).unwrap();
        (t, p, w)
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        let (_t, p, mut w) = writer(Some("algo-2"));
        for chunk in [&b"one\r"[..], b"\ntw", b"o\n\r\nthree"] {
            w.write(chunk);
        }
        w.finish();
        assert_eq!(
            std::fs::read_to_string(p).unwrap(),
            "[algo-2] one\n[algo-2] two\n[algo-2] \n[algo-2] three\n"
        );
    }

    #[test]
    fn progress_segments_keep_the_last_one_in_the_log_and_replace_live() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("log");
        let (sink, mut rx) = LogSink::channel();
        let mut w = LineWriter::open(&p, "s", None, Some(sink)).unwrap();
        w.write(b" 10%\r 50%\r");
        w.write(b"100%\ndone\n");
        w.finish();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "100%\ndone\n");
        let mut live = Vec::new();
        while let Ok(l) = rx.try_recv() {
            live.push((l.line, l.progress));
        }
        assert_eq!(
            live,
            [
                (" 10%".to_string(), true),
                (" 50%".to_string(), true),
                ("100%".to_string(), false),
                ("done".to_string(), false),
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker_and_the_next_line_is_whole() {
        let (_t, p, mut w) = writer(None);
        let chunk = vec![b'x'; 10_000];
        for _ in 0..100 {
            w.write(&chunk);
        }
        w.write(b"\nnext\n");
        assert!(
            w.pending.capacity() <= 2 * MAX_LINE,
            "the pending line stays bounded"
        );
        w.finish();
        let text = std::fs::read_to_string(p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{}", &text[text.len() - 200..]);
        assert!(lines[0].starts_with(&"x".repeat(MAX_LINE)));
        assert!(
            lines[0].ends_with(&format!(
                "[… line cut: {} more bytes dropped; lines are kept up to 64 KiB]",
                1_000_000 - MAX_LINE
            )),
            "{}",
            &lines[0][MAX_LINE..]
        );
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn a_cut_does_not_leave_half_a_character() {
        let (_t, p, mut w) = writer(None);
        let mut line = vec![b'a'; MAX_LINE - 1];
        line.extend_from_slice("é and more".as_bytes());
        w.write(&line);
        w.finish();
        let text = std::fs::read_to_string(p).unwrap();
        assert!(!text.contains('\u{FFFD}'), "{}", &text[MAX_LINE - 4..]);
        assert!(
            text.contains(" [… line cut: 11 more bytes dropped"),
            "{}",
            &text[MAX_LINE - 4..]
        );
    }

    #[test]
    fn a_display_that_falls_behind_gets_a_count_not_a_backlog() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("log");
        let (sink, mut rx) = LogSink::channel();
        let mut w = LineWriter::open(&p, "s", None, Some(sink)).unwrap();
        let many: String = (0..LIVE_LINES * 4).map(|i| format!("line {i}\n")).collect();
        w.write(many.as_bytes());
        // The display catches up, then one more line comes.
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, LIVE_LINES);
        w.write(b"last\n");
        let marker = rx.try_recv().unwrap().line;
        assert_eq!(
            marker,
            format!(
                "[… {} lines not shown live: the display fell behind; `pipeline logs` has them all]",
                LIVE_LINES * 3
            )
        );
        assert_eq!(rx.try_recv().unwrap().line, "last");
        w.finish();
        // The log has every line.
        assert_eq!(
            std::fs::read_to_string(p).unwrap().lines().count(),
            LIVE_LINES * 4 + 1
        );
    }
}
