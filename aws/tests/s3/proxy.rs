//! A TCP proxy in front of a test server that breaks connections on
//! purpose: it cuts a connection, flips a byte, or stops forwarding, once a
//! connection has carried a given number of bytes in one direction.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server: request bodies (uploads).
    Up,
    /// Server to client: response bodies (downloads).
    Down,
}

/// What happens to a connection once it has carried the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Both ends are closed.
    Cut,
    /// The next byte is inverted (and everything still forwarded).
    Flip,
    /// Nothing more is forwarded, and the connection is left open.
    Stall,
}

const FAULTS: [Fault; 3] = [Fault::Cut, Fault::Flip, Fault::Stall];

fn slot(dir: Dir, f: Fault) -> usize {
    let d = match dir {
        Dir::Up => 0,
        Dir::Down => 1,
    };
    let k = match f {
        Fault::Cut => 0,
        Fault::Flip => 1,
        Fault::Stall => 2,
    };
    d * 3 + k
}

/// One fault: after how many bytes of a connection, for how many more
/// connections (-1: every one), and how many times it happened.
#[derive(Default)]
struct Rule {
    after: AtomicU64,
    remaining: AtomicI64,
    done: AtomicU64,
}

impl Rule {
    /// Whether a connection that just reached `after` bytes gets the fault.
    fn take(&self) -> bool {
        let mut r = self.remaining.load(Ordering::SeqCst);
        loop {
            if r == 0 {
                return false;
            }
            let next = if r < 0 { r } else { r - 1 };
            match self
                .remaining
                .compare_exchange(r, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.done.fetch_add(1, Ordering::SeqCst);
                    return true;
                }
                Err(now) => r = now,
            }
        }
    }
}

struct State {
    rules: [Rule; 6],
    stop: AtomicBool,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    state: Arc<State>,
}

/// How many connections a fault hits.
#[derive(Debug, Clone, Copy)]
pub enum Times {
    First(u32),
    Always,
}

impl Proxy {
    /// A proxy forwarding to `upstream` (`http://HOST:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(State {
            rules: Default::default(),
            stop: AtomicBool::new(false),
        });
        let s = state.clone();
        listener.set_nonblocking(true).expect("nonblocking");
        thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (c2, s2) = (
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                        );
                        let (st1, st2) = (s.clone(), s.clone());
                        thread::spawn(move || pump(st1, Dir::Up, client, server));
                        thread::spawn(move || pump(st2, Dir::Down, s2, c2));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy { url, state }
    }

    /// From now on, `fault` hits connections in direction `dir` that reach
    /// `after` bytes, `times` of them.
    pub fn set(&self, dir: Dir, fault: Fault, after: u64, times: Times) {
        let r = &self.state.rules[slot(dir, fault)];
        r.after.store(after, Ordering::SeqCst);
        r.remaining.store(
            match times {
                Times::First(n) => n as i64,
                Times::Always => -1,
            },
            Ordering::SeqCst,
        );
    }

    /// No more faults (connections already stalled stay so).
    pub fn clear(&self) {
        for r in &self.state.rules {
            r.remaining.store(0, Ordering::SeqCst);
        }
    }

    /// How many times `fault` happened in direction `dir`.
    pub fn count(&self, dir: Dir, fault: Fault) -> u64 {
        self.state.rules[slot(dir, fault)]
            .done
            .load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
    }
}

/// Where a connection's stream is: for requests (`Dir::Up`), offsets count
/// from the start of each request's body, so that every request can be hit
/// (a connection is reused for many); for responses, from the start of the
/// connection.
enum Track {
    Headers(Vec<u8>),
    Body { left: u64, off: u64 },
    Connection { pos: u64 },
}

fn content_length(head: &[u8]) -> u64 {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Copies `from` to `to`, applying the faults of `dir`.
fn pump(state: Arc<State>, dir: Dir, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut track = match dir {
        Dir::Up => Track::Headers(Vec::new()),
        Dir::Down => Track::Connection { pos: 0 },
    };
    let close = |a: &TcpStream, b: &TcpStream| {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        // Walk the bytes read, finding where faults fall.
        let mut stop: Option<(usize, Fault)> = None;
        let mut i = 0;
        while i < n && stop.is_none() {
            let (off, m) = match &mut track {
                Track::Headers(h) => {
                    h.push(buf[i]);
                    i += 1;
                    if h.ends_with(b"\r\n\r\n") {
                        let len = content_length(h);
                        track = if len == 0 {
                            Track::Headers(Vec::new())
                        } else {
                            Track::Body { left: len, off: 0 }
                        };
                    }
                    continue;
                }
                Track::Body { left, off } => ((*off), (*left).min((n - i) as u64)),
                Track::Connection { pos } => ((*pos), (n - i) as u64),
            };
            for f in FAULTS {
                let r = &state.rules[slot(dir, f)];
                let after = r.after.load(Ordering::SeqCst);
                if r.remaining.load(Ordering::SeqCst) != 0
                    && off <= after
                    && after < off + m
                    && r.take()
                {
                    let at = i + (after - off) as usize;
                    match f {
                        Fault::Flip => buf[at] ^= 0xff,
                        Fault::Cut | Fault::Stall => {
                            stop = Some((at, f));
                            break;
                        }
                    }
                }
            }
            i += m as usize;
            match &mut track {
                Track::Body { left, off } => {
                    *left -= m;
                    *off += m;
                    if *left == 0 {
                        track = Track::Headers(Vec::new());
                    }
                }
                Track::Connection { pos } => *pos += m,
                Track::Headers(_) => unreachable!(),
            }
        }
        let upto = stop.map_or(n, |(at, _)| at);
        if to.write_all(&buf[..upto]).is_err() {
            close(&from, &to);
            return;
        }
        if let Some((_, f)) = stop {
            if f == Fault::Stall {
                // Hold the connection open, forwarding nothing, until the
                // test ends or a minute has passed.
                let until = Instant::now() + Duration::from_secs(60);
                while !state.stop.load(Ordering::SeqCst) && Instant::now() < until {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            close(&from, &to);
            return;
        }
    }
}
