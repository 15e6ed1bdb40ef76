//! Pipe mode: a channel's data streamed through named pipes, never on disk.
//!
//! For a channel with `input_mode: pipe` the layout makes no
//! `input/data/<channel>/`; it only says where the bytes come from
//! ([`StreamSource`], kept here by node root until the backend starts the
//! node). While the node runs, a [`Feeder`] serves one epoch after another,
//! as SageMaker does: it creates the named pipe `<channel>_0`, waits for the
//! step to open it, writes every part of the channel in order and closes it
//! (the reader sees the end of the data), having already created
//! `<channel>_1` for the next pass, and so on until the node ends. Then it
//! stops and removes its pipes.
//!
//! The feeder never holds up a step: it waits for a reader by polling a
//! non-blocking open, and writes without blocking between checks of its stop
//! flag, so it ends within a fraction of a second of being stopped, whether
//! or not anything ever opened a pipe. A reader that goes away mid-stream
//! ends that epoch; it is not an error. A part that cannot be read is: the
//! node fails with that reason, whatever the step made of the cut stream.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use super::contract::StreamSource;
use super::{Failure, FailureKind, Outcome};

/// One pipe-mode channel of a node, ready to be fed.
#[derive(Debug, Clone)]
pub struct PipeChannel {
    pub name: String,
    pub source: Arc<dyn StreamSource>,
    /// The parts are lines of text of this format (known from the channel's
    /// input), so the stream keeps them apart: see [`Lines`].
    pub lines: Option<Lines>,
}

/// Line-oriented formats, whose parts are joined so that reading the stream
/// reads what reading the parts one by one reads: a part that does not end
/// with a line break gets one (its last line would otherwise run into the
/// next part's first), and for CSV a byte-order mark at the start of a part
/// after the first is left out (a reader drops it only at the very start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Csv,
    Libsvm,
}

/// Laid out, not yet started: each node root's pipe-mode channels.
static PENDING: Mutex<BTreeMap<PathBuf, Vec<PipeChannel>>> = Mutex::new(BTreeMap::new());

/// Records what feeds the pipe-mode channels of the node laid out at `root`
/// (called by the layout; nothing when it has none).
pub fn register(root: &Path, channels: Vec<PipeChannel>) {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if channels.is_empty() {
        pending.remove(root);
    } else {
        pending.insert(root.to_path_buf(), channels);
    }
}

/// Takes what [`register`] recorded for `root`.
pub fn take(root: &Path) -> Vec<PipeChannel> {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(root)
        .unwrap_or_default()
}

/// The named pipe of `channel`'s epoch `epoch`.
pub fn pipe_name(channel: &str, epoch: u64) -> String {
    format!("{channel}_{epoch}")
}

/// How long a feeder waits between looks for a reader, at most; it starts
/// at a few milliseconds and backs off to this.
const POLL_MAX: Duration = Duration::from_millis(100);
/// How long [`Feeder::finish`] waits for its threads.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// Feeds a node's pipe-mode channels while it runs (one thread a channel).
pub struct Feeder {
    dir: PathBuf,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// The first part that could not be read, if any.
    error: Arc<Mutex<Option<String>>>,
    done: bool,
}

impl Feeder {
    /// Starts feeding the pipe-mode channels laid out at node root `root`,
    /// in `root/input/data`; `None` when it has none.
    pub fn for_node(root: &Path) -> io::Result<Option<Feeder>> {
        let channels = take(root);
        if channels.is_empty() {
            return Ok(None);
        }
        Feeder::start(&root.join("input/data"), channels, None).map(Some)
    }

    /// Creates each channel's first pipe in `dir` (mode 0600, owned by
    /// `owner` when given) and starts feeding it.
    pub fn start(
        dir: &Path,
        channels: Vec<PipeChannel>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Feeder> {
        let mut feeder = Feeder {
            dir: dir.to_path_buf(),
            names: channels.iter().map(|c| c.name.clone()).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            error: Arc::new(Mutex::new(None)),
            done: false,
        };
        // Every first pipe exists before the step starts.
        let mut first = Vec::new();
        for c in &channels {
            let p = dir.join(pipe_name(&c.name, 0));
            make_fifo(&p, owner).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("create the named pipe {}: {e}", p.display()),
                )
            })?;
            first.push(p);
        }
        for (c, path) in channels.into_iter().zip(first) {
            let feed = Feed {
                dir: dir.to_path_buf(),
                channel: c,
                stop: feeder.stop.clone(),
                error: feeder.error.clone(),
                owner,
            };
            let thread = std::thread::Builder::new()
                .name(format!("pipe {}", feed.channel.name))
                .spawn(move || feed.run(path))?;
            feeder.threads.push(thread);
        }
        Ok(feeder)
    }

    /// Stops feeding, removes the pipes, and returns why a part could not
    /// be read, if one could not. Returns within a few seconds whatever the
    /// sources do (a thread still inside a source is left to end on its own:
    /// it writes nothing more).
    pub fn finish(mut self) -> Option<String> {
        self.shut_down();
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn shut_down(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + JOIN_WAIT;
        for t in std::mem::take(&mut self.threads) {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        // Each thread removes its own pipes; whatever is left goes too.
        remove_pipes(&self.dir, &self.names);
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// `outcome`, unless feeding a pipe failed: then that is why the node failed.
pub fn with_feed_error(outcome: Outcome, error: Option<String>) -> Outcome {
    let Some(reason) = error else {
        return outcome;
    };
    if let Outcome::Failed(f) = &outcome
        && f.kind == FailureKind::Cancelled
    {
        return outcome;
    }
    Outcome::Failed(Failure {
        kind: FailureKind::ExitCode,
        reason,
        exit_code: None,
    })
}

/// Removes the named pipes `<name>_<N>` in `dir` of these channels.
fn remove_pipes(dir: &Path, names: &[String]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        let ours = names.iter().any(|n| {
            file.strip_prefix(n.as_str())
                .and_then(|r| r.strip_prefix('_'))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
        if ours && e.file_type().is_ok_and(|t| t.is_fifo()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Creates a named pipe at `path` (replacing whatever is there), mode 0600,
/// handed to `owner`.
fn make_fifo(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    for _ in 0..2 {
        // SAFETY: `c` is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
            }
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        fs::remove_file(path)?;
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "something keeps creating it",
    ))
}

/// One channel's feeding thread.
struct Feed {
    dir: PathBuf,
    channel: PipeChannel,
    stop: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
    owner: Option<(u32, u32)>,
}

/// How an epoch's stream ended early.
enum Cut {
    /// The feeder was stopped.
    Stopped,
    /// The reader closed the pipe (or the pipe failed under it).
    ReaderGone,
    /// A part could not be read: the engine's failure.
    Source(String),
}

impl Feed {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn fail(&self, message: String) {
        let mut e = self.error.lock().unwrap_or_else(|e| e.into_inner());
        e.get_or_insert(message);
    }

    /// Serves epochs from the pipe at `path` (already created) until stopped.
    fn run(self, mut path: PathBuf) {
        let parts = self.channel.source.parts();
        let mut epoch = 0u64;
        loop {
            let file = match self.wait_for_reader(&path) {
                None => break,
                Some(Ok(f)) => f,
                // The pipe is gone (the step removed it): nothing to feed.
                Some(Err(_)) => break,
            };
            // A larger pipe buffer means fewer wake-ups; the default is fine too.
            // SAFETY: an fcntl on a descriptor we own.
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
            let mut w = PipeWriter {
                file,
                stop: &self.stop,
                gone: false,
                stopped: false,
                last: None,
            };
            match self.stream(&parts, &mut w) {
                Ok(()) | Err(Cut::ReaderGone) => {}
                Err(Cut::Stopped) => break,
                Err(Cut::Source(m)) => {
                    self.fail(m);
                    break;
                }
            }
            if self.stopped() {
                break;
            }
            // The next epoch's pipe exists before this one ends, so a reader
            // that opens it on seeing the end finds it.
            let next = self.dir.join(pipe_name(&self.channel.name, epoch + 1));
            if let Err(e) = make_fifo(&next, self.owner) {
                self.fail(format!(
                    "channel `{}` (pipe mode): cannot create the named pipe {}: {e}",
                    self.channel.name,
                    next.display()
                ));
                break;
            }
            drop(w);
            let _ = fs::remove_file(&path);
            epoch += 1;
            path = next;
        }
        let _ = fs::remove_file(&path);
    }

    /// Opens the pipe for writing once a reader has opened it; `None` when
    /// stopped first.
    fn wait_for_reader(&self, path: &Path) -> Option<io::Result<fs::File>> {
        let mut wait = Duration::from_millis(2);
        loop {
            if self.stopped() {
                return None;
            }
            // Non-blocking: without a reader the open fails at once (ENXIO)
            // instead of holding the thread until one comes.
            match fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(f) => return Some(Ok(f)),
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(POLL_MAX);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Writes every part, in order, into one epoch's pipe.
    fn stream(&self, parts: &[String], w: &mut PipeWriter) -> Result<(), Cut> {
        for (i, name) in parts.iter().enumerate() {
            let mut part = PartWriter {
                out: &mut *w,
                head: Vec::new(),
                skip_bom: self.channel.lines == Some(Lines::Csv) && i > 0,
            };
            let written = self
                .channel
                .source
                .write_part(i, &mut part)
                .and_then(|n| part.end().map(|()| n));
            let cut = |w: &PipeWriter, e: io::Error| {
                if w.stopped {
                    Cut::Stopped
                } else if w.gone {
                    Cut::ReaderGone
                } else {
                    Cut::Source(format!(
                        "channel `{}` (pipe mode): cannot read part `{name}`: {e}",
                        self.channel.name
                    ))
                }
            };
            if let Err(e) = written {
                return Err(cut(w, e));
            }
            let more = i + 1 < parts.len();
            if more
                && self.channel.lines.is_some()
                && w.last.is_some_and(|b| b != b'\n')
                && let Err(e) = w.write_all(b"\n")
            {
                return Err(cut(w, e));
            }
            w.last = None;
        }
        Ok(())
    }
}

/// The write end of one epoch's pipe: non-blocking, waiting for room in
/// short polls so that a stop is noticed.
struct PipeWriter<'a> {
    file: fs::File,
    stop: &'a AtomicBool,
    /// A write failed: the reader went away.
    gone: bool,
    /// Stopped while writing.
    stopped: bool,
    /// The last byte written of the current part.
    last: Option<u8>,
}

impl Write for PipeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.stopped = true;
                // Not `Interrupted`, which `write_all` would try again.
                return Err(io::Error::other("the step ended"));
            }
            match (&self.file).write(buf) {
                Ok(n) => {
                    if n > 0 {
                        self.last = Some(buf[n - 1]);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut p = libc::pollfd {
                        fd: self.file.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd. A closed reader shows as
                    // POLLERR; the next write then fails with EPIPE.
                    unsafe { libc::poll(&mut p, 1, POLL_MAX.as_millis() as i32) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.gone = true;
                    return Err(e);
                }
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one part is written through: leaves out a leading byte-order mark
/// when asked.
struct PartWriter<'a, 'b> {
    out: &'a mut PipeWriter<'b>,
    /// The first bytes, held while they may still be a byte-order mark.
    head: Vec<u8>,
    skip_bom: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl PartWriter<'_, '_> {
    /// Writes what is still held (a part shorter than a byte-order mark).
    fn end(&mut self) -> io::Result<()> {
        self.skip_bom = false;
        let head = std::mem::take(&mut self.head);
        self.out.write_all(&head)
    }
}

impl Write for PartWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.skip_bom {
            return self.out.write(buf);
        }
        let take = (BOM.len() - self.head.len()).min(buf.len());
        self.head.extend_from_slice(&buf[..take]);
        if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
            return Ok(take);
        }
        self.skip_bom = false;
        if self.head != BOM {
            let head = std::mem::take(&mut self.head);
            self.out.write_all(&head)?;
        }
        self.head.clear();
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Parts held in memory; part `fail` cannot be read.
    #[derive(Debug)]
    struct Parts {
        parts: Vec<Vec<u8>>,
        fail: Option<usize>,
    }

    impl StreamSource for Parts {
        fn parts(&self) -> Vec<String> {
            (0..self.parts.len()).map(|i| format!("part-{i}")).collect()
        }
        fn write_part(&self, i: usize, w: &mut dyn Write) -> io::Result<u64> {
            if self.fail == Some(i) {
                return Err(io::Error::other("the disk is on fire"));
            }
            // In small writes, so a part spans many.
            for chunk in self.parts[i].chunks(7) {
                w.write_all(chunk)?;
            }
            Ok(self.parts[i].len() as u64)
        }
    }

    fn channel(name: &str, parts: Vec<&[u8]>, lines: Option<Lines>) -> PipeChannel {
        PipeChannel {
            name: name.into(),
            source: Arc::new(Parts {
                parts: parts.into_iter().map(<[u8]>::to_vec).collect(),
                fail: None,
            }),
            lines,
        }
    }

    fn read_all(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        fs::File::open(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    /// Waits (boundedly) for `path` to exist.
    fn appears(path: &Path) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if path.exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn every_epoch_streams_the_parts_in_order() {
        let t = tempfile::tempdir().unwrap();
        let f = Feeder::start(
            t.path(),
            vec![channel("train", vec![b"a,b\n", b"", b"1,2\n3,4"], None)],
            None,
        )
        .unwrap();
        let p0 = t.path().join("train_0");
        assert!(fs::symlink_metadata(&p0).unwrap().file_type().is_fifo());
        assert_eq!(read_all(&p0), b"a,b\n1,2\n3,4");
        // The next epoch's pipe is there by the time the reader sees the end.
        let p1 = t.path().join("train_1");
        assert!(p1.exists());
        assert_eq!(read_all(&p1), b"a,b\n1,2\n3,4");
        assert!(appears(&t.path().join("train_2")));
        assert!(!p0.exists(), "a finished epoch's pipe is removed");
        assert_eq!(f.finish(), None);
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            0,
            "no pipe is left"
        );
    }

    #[test]
    fn stops_promptly_when_nobody_ever_opened_the_pipe() {
        let t = tempfile::tempdir().unwrap();
        let f = Feeder::start(t.path(), vec![channel("train", vec![b"x\n"], None)], None).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        assert_eq!(f.finish(), None);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(!t.path().join("train_0").exists());
    }

    #[test]
    fn stops_promptly_while_a_reader_holds_the_pipe_without_reading() {
        let t = tempfile::tempdir().unwrap();
        let big = vec![b'x'; 8 << 20];
        let f = Feeder::start(t.path(), vec![channel("train", vec![&big], None)], None).unwrap();
        let reader = fs::File::open(t.path().join("train_0")).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        assert_eq!(f.finish(), None);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        drop(reader);
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_reader_that_goes_away_ends_its_epoch_not_the_feeder() {
        let t = tempfile::tempdir().unwrap();
        let big = vec![b'y'; 4 << 20];
        let f = Feeder::start(
            t.path(),
            vec![channel("train", vec![&big, b"tail"], None)],
            None,
        )
        .unwrap();
        let mut r = fs::File::open(t.path().join("train_0")).unwrap();
        let mut some = [0u8; 1000];
        r.read_exact(&mut some).unwrap();
        drop(r);
        // The next epoch is served whole.
        let p1 = t.path().join("train_1");
        assert!(appears(&p1));
        let all = read_all(&p1);
        assert_eq!(all.len(), big.len() + 4);
        assert!(all.ends_with(b"tail"));
        assert_eq!(f.finish(), None, "a reader going away is not an error");
    }

    #[test]
    fn a_part_that_cannot_be_read_is_the_error() {
        let t = tempfile::tempdir().unwrap();
        let c = PipeChannel {
            name: "train".into(),
            source: Arc::new(Parts {
                parts: vec![b"1\n".to_vec(), b"2\n".to_vec()],
                fail: Some(1),
            }),
            lines: None,
        };
        let f = Feeder::start(t.path(), vec![c], None).unwrap();
        assert_eq!(read_all(&t.path().join("train_0")), b"1\n");
        let e = f.finish().unwrap();
        assert!(
            e.contains(
                "channel `train` (pipe mode): cannot read part `part-1`: the disk is on fire"
            ),
            "{e}"
        );
        let o = with_feed_error(Outcome::Succeeded, Some(e));
        assert!(matches!(o, Outcome::Failed(f) if f.kind == FailureKind::ExitCode));
    }

    #[test]
    fn text_parts_are_kept_apart_as_lines() {
        let t = tempfile::tempdir().unwrap();
        let f = Feeder::start(
            t.path(),
            vec![
                channel(
                    "csv",
                    vec![b"\xEF\xBB\xBF1,2", b"\xEF\xBB\xBF3,4\n", b"\xEF\xBB", b"5"],
                    Some(Lines::Csv),
                ),
                channel("svm", vec![b"1 1:2", b"0 2:1\n"], Some(Lines::Libsvm)),
                channel("raw", vec![b"1 1:2", b"0 2:1"], None),
            ],
            None,
        )
        .unwrap();
        // The first part's mark stays (a reader drops it), later ones go;
        // a part too short to be a mark is written as it is.
        assert_eq!(
            read_all(&t.path().join("csv_0")),
            b"\xEF\xBB\xBF1,2\n3,4\n\xEF\xBB\n5"
        );
        assert_eq!(read_all(&t.path().join("svm_0")), b"1 1:2\n0 2:1\n");
        assert_eq!(read_all(&t.path().join("raw_0")), b"1 1:20 2:1");
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn channels_registered_for_a_root_are_taken_once() {
        let root = Path::new("/nonexistent/pipe-test-root");
        register(root, vec![channel("train", vec![b"x"], None)]);
        assert_eq!(take(root).len(), 1);
        assert!(take(root).is_empty());
    }
}
