//! The collective operations over a star: the main node talks to every
//! worker, workers talk only to the main node.
//!
//! A transport (TCP or in-process channels) supplies two things: a [`Link`]
//! that sends frames to one peer, and a channel of [`Event`]s that its reader
//! threads (or the peers themselves) fill. Everything else is here: round
//! numbers, deadlines, and what happens when a peer goes away. A node that
//! fails tells the others (an abort frame) so that every node stops with the
//! same reason, naming the node that caused it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::error::BuiltinError;

/// What travels between nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The payload of collective round `round`.
    Data { round: u64, payload: Vec<u8> },
    /// The sender failed, for this reason; the receiver fails too.
    Abort(String),
}

/// What a node learns about a peer.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    /// The connection ended (`None`: closed cleanly; `Some`: an error).
    Closed(Option<String>),
}

/// Sends frames to one peer.
pub trait Link: Send {
    fn send(&mut self, frame: &Frame) -> Result<(), String>;
    /// Ends the connection (the peer sees it closed).
    fn close(&mut self);
}

/// Payloads a worker sent ahead of time, with their rounds.
type Pending = VecDeque<(u64, Vec<u8>)>;
/// Whether a worker's connection ended, and why (`Some(None)`: closed cleanly).
type Closed = Option<Option<String>>;

enum Role {
    Main {
        inbox: Receiver<(usize, Event)>,
        /// One a worker (index 0 unused).
        links: Vec<Option<Box<dyn Link>>>,
        /// Payloads received ahead of time, per worker, with their rounds.
        pending: Vec<VecDeque<(u64, Vec<u8>)>>,
        /// Workers whose connection ended (after their last payload, which
        /// is fine unless more is expected of them), and why.
        closed: Vec<Option<Option<String>>>,
    },
    Worker {
        inbox: Receiver<Event>,
        link: Box<dyn Link>,
    },
}

struct State {
    round: u64,
    failed: Option<String>,
    role: Role,
}

/// One node of a star, whatever the transport.
pub struct Star {
    rank: usize,
    names: Vec<String>,
    peer_timeout: Duration,
    state: Mutex<State>,
}

impl Star {
    pub fn main(
        names: Vec<String>,
        peer_timeout: Duration,
        inbox: Receiver<(usize, Event)>,
        links: Vec<Option<Box<dyn Link>>>,
    ) -> Star {
        let n = names.len();
        Star {
            rank: 0,
            names,
            peer_timeout,
            state: Mutex::new(State {
                round: 0,
                failed: None,
                role: Role::Main {
                    inbox,
                    links,
                    pending: vec![VecDeque::new(); n],
                    closed: vec![None; n],
                },
            }),
        }
    }

    pub fn worker(
        rank: usize,
        names: Vec<String>,
        peer_timeout: Duration,
        inbox: Receiver<Event>,
        link: Box<dyn Link>,
    ) -> Star {
        Star {
            rank,
            names,
            peer_timeout,
            state: Mutex::new(State {
                round: 0,
                failed: None,
                role: Role::Worker { inbox, link },
            }),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.names.len()
    }

    pub fn node_name(&self, rank: usize) -> String {
        describe(&self.names, rank)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Main: every node's payload in node order. Worker: sends its own, gets nothing back.
    pub fn gather(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, BuiltinError> {
        let mut st = self.lock();
        let round = begin(&mut st)?;
        let result = match &mut st.role {
            Role::Main {
                inbox,
                pending,
                closed,
                ..
            } => {
                let mut out = vec![data.to_vec()];
                (1..self.names.len())
                    .try_for_each(|r| {
                        out.push(self.receive_from(inbox, (pending, closed), r, round)?);
                        Ok(())
                    })
                    .map(|()| out)
            }
            Role::Worker { link, inbox } => link
                .send(&Frame::Data {
                    round,
                    payload: data.to_vec(),
                })
                .map(|()| Vec::new())
                .map_err(|e| {
                    // The main node may have stopped because of another node:
                    // its last word says why.
                    match inbox.recv_timeout(Duration::from_secs(2)) {
                        Ok(Event::Frame(Frame::Abort(msg))) => msg,
                        _ => format!(
                            "lost the connection to the main node {} during round {round}: {e}",
                            self.node_name(0)
                        ),
                    }
                }),
        };
        finish(&mut st, result)
    }

    /// Every node gets the main node's `data` (the others' argument is ignored).
    pub fn broadcast(&self, data: &[u8]) -> Result<Vec<u8>, BuiltinError> {
        let mut st = self.lock();
        let round = begin(&mut st)?;
        let result = match &mut st.role {
            Role::Main { links, .. } => {
                let frame = Frame::Data {
                    round,
                    payload: data.to_vec(),
                };
                let mut result = Ok(data.to_vec());
                for (r, link) in links.iter_mut().enumerate() {
                    if let Some(link) = link
                        && let Err(e) = link.send(&frame)
                    {
                        result = Err(format!(
                            "node {} is unreachable during round {round}: {e}",
                            self.node_name(r)
                        ));
                        break;
                    }
                }
                result
            }
            Role::Worker { inbox, .. } => self.receive_from_main(inbox, round),
        };
        finish(&mut st, result)
    }

    /// Tells the other nodes this one failed (best effort), once.
    pub fn abort(&self, reason: &str) {
        let mut st = self.lock();
        if st.failed.is_some() {
            return;
        }
        let msg = format!("node {} failed: {reason}", self.node_name(self.rank));
        abort_peers(&mut st.role, &msg);
        st.failed = Some(msg);
    }

    fn receive_from(
        &self,
        inbox: &Receiver<(usize, Event)>,
        (pending, closed): (&mut [Pending], &mut [Closed]),
        want: usize,
        round: u64,
    ) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + self.peer_timeout;
        while pending[want].is_empty() {
            if let Some(why) = &closed[want] {
                return Err(self.closed(want, round, why.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(left) {
                Ok((r, Event::Frame(Frame::Data { round, payload }))) => {
                    pending[r].push_back((round, payload));
                }
                Ok((_, Event::Frame(Frame::Abort(msg)))) => return Err(msg),
                Ok((r, Event::Closed(why))) => closed[r] = Some(why),
                Err(RecvTimeoutError::Timeout) => return Err(self.silent(want, round)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.closed(want, round, None));
                }
            }
        }
        let (got, payload) = pending[want].pop_front().expect("checked non-empty");
        if got != round {
            return Err(format!(
                "node {} is out of step: it sent round {got} while the main node is at round {round}",
                self.node_name(want)
            ));
        }
        Ok(payload)
    }

    fn receive_from_main(&self, inbox: &Receiver<Event>, round: u64) -> Result<Vec<u8>, String> {
        match inbox.recv_timeout(self.peer_timeout) {
            Ok(Event::Frame(Frame::Data {
                round: got,
                payload,
            })) if got == round => Ok(payload),
            Ok(Event::Frame(Frame::Data { round: got, .. })) => Err(format!(
                "the main node {} is out of step: it sent round {got} while node {} is at round {round}",
                self.node_name(0),
                self.node_name(self.rank)
            )),
            Ok(Event::Frame(Frame::Abort(msg))) => Err(msg),
            Ok(Event::Closed(why)) => Err(self.closed(0, round, why)),
            Err(RecvTimeoutError::Disconnected) => Err(self.closed(0, round, None)),
            Err(RecvTimeoutError::Timeout) => Err(self.silent(0, round)),
        }
    }

    fn closed(&self, rank: usize, round: u64, why: Option<String>) -> String {
        let what = if rank == 0 { "the main node" } else { "node" };
        match why {
            None => format!(
                "{what} {} closed its connection during round {round} (did it stop or crash?)",
                self.node_name(rank)
            ),
            Some(e) => format!(
                "lost the connection to {what} {} during round {round}: {e}",
                self.node_name(rank)
            ),
        }
    }

    fn silent(&self, rank: usize, round: u64) -> String {
        format!(
            "no word from node {} for {} s during round {round}; raise PIPELINE_PEER_TIMEOUT_S if a step legitimately takes longer",
            self.node_name(rank),
            self.peer_timeout.as_secs()
        )
    }
}

impl Drop for Star {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        match &mut st.role {
            Role::Main { links, .. } => links.iter_mut().flatten().for_each(|l| l.close()),
            Role::Worker { link, .. } => link.close(),
        }
    }
}

/// `algo-3 (index 2)`.
pub fn describe(names: &[String], rank: usize) -> String {
    match names.get(rank) {
        Some(n) => format!("{n} (index {rank})"),
        None => format!("index {rank}"),
    }
}

fn begin(st: &mut State) -> Result<u64, BuiltinError> {
    if let Some(f) = &st.failed {
        return Err(BuiltinError::failed(f.clone()));
    }
    st.round += 1;
    Ok(st.round)
}

fn finish<T>(st: &mut State, r: Result<T, String>) -> Result<T, BuiltinError> {
    r.map_err(|msg| {
        abort_peers(&mut st.role, &msg);
        st.failed = Some(msg.clone());
        BuiltinError::failed(msg)
    })
}

fn abort_peers(role: &mut Role, msg: &str) {
    let frame = Frame::Abort(msg.to_string());
    match role {
        Role::Main { links, .. } => {
            for l in links.iter_mut().flatten() {
                let _ = l.send(&frame);
            }
        }
        Role::Worker { link, .. } => {
            let _ = link.send(&frame);
        }
    }
}
