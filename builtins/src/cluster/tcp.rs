//! The star over TCP: the main node listens, workers connect to it.
//!
//! Every message is a frame: a kind byte, the round (`u64`), the payload's
//! length (`u64`), the payload; integers little-endian. A worker opens with a
//! hello (protocol tag, its index, the node count, the job's identity) and
//! the main node answers welcome or reject, so nodes of different jobs (or a
//! stale node of an earlier attempt) never join each other. One reader thread
//! a connection turns incoming frames into events; the collective code in
//! [`star`](super::star) applies the deadlines.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use super::star::{Event, Frame, Link, Star, describe};
use super::{Cluster, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PEER_TIMEOUT};
use crate::error::BuiltinError;

const TAG: &[u8] = b"pipeline-cluster/1";
const DATA: u8 = 1;
const ABORT: u8 = 2;
const HELLO: u8 = 3;
const WELCOME: u8 = 4;
const REJECT: u8 = 5;
/// Largest frame accepted (a guard against reading garbage as a length).
const MAX_FRAME: u64 = 1 << 36;

/// Where a node is and whom it works with.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// This node's index, 0 for the main node.
    pub rank: usize,
    /// Node names, one an index (`algo-1`, ...), for messages; their count is the node count.
    pub names: Vec<String>,
    /// Identifies the job: nodes with different ids never connect.
    pub job_id: String,
    /// The main node's address (workers connect to it; the main node ignores it).
    pub main_addr: String,
    /// The port the main node listens on (0 on the main node: any free port).
    pub port: u16,
    /// How long to wait for every node to join.
    pub connect_timeout: Duration,
    /// How long to wait for any one message before giving up on a silent peer.
    pub peer_timeout: Duration,
}

impl TcpConfig {
    /// Defaults for everything but who and where.
    pub fn new(rank: usize, names: Vec<String>, job_id: &str, main_addr: &str, port: u16) -> Self {
        TcpConfig {
            rank,
            names,
            job_id: job_id.to_string(),
            main_addr: main_addr.to_string(),
            port,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
        }
    }
}

/// One node of a TCP cluster.
pub struct TcpCluster(Star);

/// The main node's socket, bound but not yet accepting.
pub struct MainListener {
    listener: TcpListener,
    cfg: TcpConfig,
}

fn failed(msg: String) -> BuiltinError {
    BuiltinError::failed(msg)
}

impl MainListener {
    /// Binds `0.0.0.0:cfg.port`.
    pub fn bind(cfg: &TcpConfig) -> Result<MainListener, BuiltinError> {
        let listener = TcpListener::bind(("0.0.0.0", cfg.port)).map_err(|e| {
            failed(format!(
                "listen on port {} for the other nodes: {e}",
                cfg.port
            ))
        })?;
        Ok(MainListener {
            listener,
            cfg: cfg.clone(),
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Waits until every worker has joined (or the connect deadline passes).
    pub fn accept(self, log: &(dyn Fn(&str) + Sync)) -> Result<TcpCluster, BuiltinError> {
        let cfg = &self.cfg;
        let n = cfg.names.len();
        let deadline = Instant::now() + cfg.connect_timeout;
        self.listener
            .set_nonblocking(true)
            .map_err(|e| failed(format!("listen for the other nodes: {e}")))?;
        let mut streams: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
        let mut joined = 1;
        while joined < n {
            match self.listener.accept() {
                Ok((stream, peer)) => match handshake_main(stream, cfg, &streams) {
                    Ok((rank, stream)) => {
                        log(&format!(
                            "node {} joined from {peer}",
                            describe(&cfg.names, rank)
                        ));
                        streams[rank] = Some(stream);
                        joined += 1;
                    }
                    Err(Handshake::Fatal(e)) => return Err(failed(e)),
                    Err(Handshake::Ignore(e)) => {
                        log(&format!("refused a connection from {peer}: {e}"))
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<String> = (1..n)
                            .filter(|&r| streams[r].is_none())
                            .map(|r| describe(&cfg.names, r))
                            .collect();
                        return Err(failed(format!(
                            "waited {} s for every node to join; not connected: {} (raise PIPELINE_PEER_CONNECT_TIMEOUT_S if nodes start slowly)",
                            cfg.connect_timeout.as_secs(),
                            missing.join(", ")
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(failed(format!("accept a connection from a node: {e}"))),
            }
        }
        let (tx, inbox) = channel();
        let mut links: Vec<Option<Box<dyn Link>>> = vec![None];
        for (rank, s) in streams.into_iter().enumerate().skip(1) {
            let s = s.expect("every worker joined");
            s.set_write_timeout(Some(cfg.peer_timeout))
                .map_err(|e| failed(format!("set up the connection to a node: {e}")))?;
            let reader = s
                .try_clone()
                .map_err(|e| failed(format!("set up the connection to a node: {e}")))?;
            let tx = tx.clone();
            spawn_reader(reader, move |ev| tx.send((rank, ev)).is_ok());
            links.push(Some(Box::new(TcpLink(s))));
        }
        Ok(TcpCluster(Star::main(
            cfg.names.clone(),
            cfg.peer_timeout,
            inbox,
            links,
        )))
    }
}

enum Handshake {
    /// Not a node of this job: refuse it and keep waiting.
    Ignore(String),
    /// A node of this job that cannot work with this one.
    Fatal(String),
}

fn handshake_main(
    mut s: TcpStream,
    cfg: &TcpConfig,
    have: &[Option<TcpStream>],
) -> Result<(usize, TcpStream), Handshake> {
    let io = |e: std::io::Error| Handshake::Ignore(e.to_string());
    s.set_nonblocking(false).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    let (kind, _, payload) = read_frame(&mut s).map_err(io)?;
    let hello = (kind == HELLO)
        .then(|| parse_hello(&payload))
        .flatten()
        .ok_or_else(|| Handshake::Ignore("not a pipeline node".into()))?;
    let (rank, size, job) = hello;
    let mut refuse = |why: String, fatal: bool| {
        let _ = write_frame(&mut s, REJECT, 0, why.as_bytes());
        if fatal {
            Handshake::Fatal(why)
        } else {
            Handshake::Ignore(why)
        }
    };
    if job != cfg.job_id {
        return Err(refuse(
            format!("it belongs to job `{job}`, this is job `{}`", cfg.job_id),
            false,
        ));
    }
    let n = cfg.names.len();
    if size != n {
        return Err(refuse(
            format!("node index {rank} counts {size} nodes, the main node {n}"),
            true,
        ));
    }
    if rank == 0 || rank >= n {
        return Err(refuse(
            format!("a node says its index is {rank}, which is not a worker of {n} nodes"),
            true,
        ));
    }
    if have[rank].is_some() {
        return Err(refuse(
            format!("node {} connected twice", describe(&cfg.names, rank)),
            true,
        ));
    }
    write_frame(&mut s, WELCOME, 0, &[]).map_err(io)?;
    s.set_read_timeout(None).map_err(io)?;
    Ok((rank, s))
}

fn hello_payload(cfg: &TcpConfig) -> Vec<u8> {
    let mut p = TAG.to_vec();
    p.extend((cfg.rank as u32).to_le_bytes());
    p.extend((cfg.names.len() as u32).to_le_bytes());
    p.extend(cfg.job_id.as_bytes());
    p
}

fn parse_hello(p: &[u8]) -> Option<(usize, usize, String)> {
    let rest = p.strip_prefix(TAG)?;
    if rest.len() < 8 {
        return None;
    }
    let rank = u32::from_le_bytes(rest[0..4].try_into().ok()?) as usize;
    let size = u32::from_le_bytes(rest[4..8].try_into().ok()?) as usize;
    let job = String::from_utf8(rest[8..].to_vec()).ok()?;
    Some((rank, size, job))
}

impl TcpCluster {
    /// Joins the cluster: the main node binds and waits for the workers,
    /// a worker connects to the main node, retrying until the connect deadline.
    pub fn connect(
        cfg: &TcpConfig,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<TcpCluster, BuiltinError> {
        if cfg.rank == 0 {
            return MainListener::bind(cfg)?.accept(log);
        }
        let n = cfg.names.len();
        if cfg.rank >= n {
            return Err(failed(format!(
                "node index {} is not below the node count {n}",
                cfg.rank
            )));
        }
        let main = describe(&cfg.names, 0);
        let deadline = Instant::now() + cfg.connect_timeout;
        let mut last_error = String::from("no attempt made");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(failed(format!(
                    "could not join the main node {main} at {}:{} within {} s: {last_error}",
                    cfg.main_addr,
                    cfg.port,
                    cfg.connect_timeout.as_secs()
                )));
            }
            match try_join(cfg, left.min(Duration::from_secs(5))) {
                Ok(stream) => {
                    stream
                        .set_write_timeout(Some(cfg.peer_timeout))
                        .map_err(|e| failed(format!("set up the connection to {main}: {e}")))?;
                    let reader = stream
                        .try_clone()
                        .map_err(|e| failed(format!("set up the connection to {main}: {e}")))?;
                    let (tx, inbox) = channel();
                    spawn_reader(reader, move |ev| tx.send(ev).is_ok());
                    log(&format!("joined the main node {main}"));
                    return Ok(TcpCluster(Star::worker(
                        cfg.rank,
                        cfg.names.clone(),
                        cfg.peer_timeout,
                        inbox,
                        Box::new(TcpLink(stream)),
                    )));
                }
                Err(Join::Refused(why)) => {
                    return Err(failed(format!(
                        "the main node {main} refused this node: {why}"
                    )));
                }
                Err(Join::Retry(e)) => {
                    last_error = e;
                    std::thread::sleep(Duration::from_millis(250).min(left));
                }
            }
        }
    }
}

enum Join {
    Retry(String),
    Refused(String),
}

fn try_join(cfg: &TcpConfig, wait: Duration) -> Result<TcpStream, Join> {
    let retry = |e: std::io::Error| Join::Retry(e.to_string());
    let addr = (cfg.main_addr.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(retry)?
        .next()
        .ok_or_else(|| Join::Retry(format!("`{}` has no address", cfg.main_addr)))?;
    let mut s = TcpStream::connect_timeout(&addr, wait).map_err(retry)?;
    s.set_nodelay(true).map_err(retry)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(retry)?;
    write_frame(&mut s, HELLO, 0, &hello_payload(cfg)).map_err(retry)?;
    let (kind, _, payload) = read_frame(&mut s).map_err(retry)?;
    match kind {
        WELCOME => {
            s.set_read_timeout(None).map_err(retry)?;
            Ok(s)
        }
        REJECT => Err(Join::Refused(
            String::from_utf8_lossy(&payload).into_owned(),
        )),
        k => Err(Join::Retry(format!("unexpected answer (kind {k})"))),
    }
}

struct TcpLink(TcpStream);

impl Link for TcpLink {
    fn send(&mut self, f: &Frame) -> Result<(), String> {
        let r = match f {
            Frame::Data { round, payload } => write_frame(&mut self.0, DATA, *round, payload),
            Frame::Abort(msg) => write_frame(&mut self.0, ABORT, 0, msg.as_bytes()),
        };
        r.map_err(|e| e.to_string())
    }
    fn close(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// Reads frames until the connection ends, handing each to `deliver` (which
/// returns false when nobody listens any more).
fn spawn_reader(mut s: TcpStream, deliver: impl Fn(Event) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        loop {
            let ev = match read_frame(&mut s) {
                Ok((DATA, round, payload)) => Event::Frame(Frame::Data { round, payload }),
                Ok((ABORT, _, msg)) => {
                    Event::Frame(Frame::Abort(String::from_utf8_lossy(&msg).into_owned()))
                }
                Ok((k, _, _)) => Event::Closed(Some(format!("unexpected frame kind {k}"))),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Event::Closed(None),
                Err(e) => Event::Closed(Some(e.to_string())),
            };
            let end = matches!(ev, Event::Closed(_));
            if !deliver(ev) || end {
                return;
            }
        }
    });
}

fn write_frame(s: &mut TcpStream, kind: u8, round: u64, payload: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 17];
    head[0] = kind;
    head[1..9].copy_from_slice(&round.to_le_bytes());
    head[9..17].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    s.write_all(&head)?;
    s.write_all(payload)?;
    s.flush()
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, u64, Vec<u8>)> {
    let mut head = [0u8; 17];
    s.read_exact(&mut head)?;
    let round = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(head[9..17].try_into().expect("8 bytes"));
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is too large"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    Ok((head[0], round, payload))
}

impl Cluster for TcpCluster {
    fn rank(&self) -> usize {
        self.0.rank()
    }
    fn size(&self) -> usize {
        self.0.size()
    }
    fn node_name(&self, rank: usize) -> String {
        self.0.node_name(rank)
    }
    fn gather_bytes(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, BuiltinError> {
        self.0.gather(data)
    }
    fn broadcast_bytes(&self, data: &[u8]) -> Result<Vec<u8>, BuiltinError> {
        self.0.broadcast(data)
    }
    fn abort(&self, reason: &str) {
        self.0.abort(reason)
    }
}
