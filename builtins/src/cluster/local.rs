//! Nodes as threads of one process, joined by channels: the same collective
//! code as over TCP, for tests.

use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use super::star::{Event, Frame, Link, Star};
use super::{Cluster, DEFAULT_PEER_TIMEOUT};
use crate::error::BuiltinError;

/// One node of an in-process group made by [`LocalCluster::group`].
/// Dropping it is what a node's death looks like to the others.
pub struct LocalCluster(Star);

struct ToMain {
    rank: usize,
    tx: Sender<(usize, Event)>,
}

impl Link for ToMain {
    fn send(&mut self, f: &Frame) -> Result<(), String> {
        self.tx
            .send((self.rank, Event::Frame(f.clone())))
            .map_err(|_| "the main node is gone".to_string())
    }
    fn close(&mut self) {
        let _ = self.tx.send((self.rank, Event::Closed(None)));
    }
}

struct ToWorker(Sender<Event>);

impl Link for ToWorker {
    fn send(&mut self, f: &Frame) -> Result<(), String> {
        self.0
            .send(Event::Frame(f.clone()))
            .map_err(|_| "the worker is gone".to_string())
    }
    fn close(&mut self) {
        let _ = self.0.send(Event::Closed(None));
    }
}

impl LocalCluster {
    /// `n` connected nodes named `algo-1`..`algo-n`, index 0 the main node.
    pub fn group(n: usize) -> Vec<LocalCluster> {
        Self::group_with_timeout(n, DEFAULT_PEER_TIMEOUT)
    }

    /// Like [`group`](Self::group), waiting at most `peer_timeout` for any message.
    pub fn group_with_timeout(n: usize, peer_timeout: Duration) -> Vec<LocalCluster> {
        assert!(n >= 1, "a cluster has at least one node");
        let names: Vec<String> = (1..=n).map(|i| format!("algo-{i}")).collect();
        let (to_main, main_inbox) = channel();
        let mut links: Vec<Option<Box<dyn Link>>> = vec![None];
        let mut workers = Vec::new();
        for rank in 1..n {
            let (tx, rx) = channel();
            links.push(Some(Box::new(ToWorker(tx))));
            let link = Box::new(ToMain {
                rank,
                tx: to_main.clone(),
            });
            workers.push(LocalCluster(Star::worker(
                rank,
                names.clone(),
                peer_timeout,
                rx,
                link,
            )));
        }
        let main = LocalCluster(Star::main(names, peer_timeout, main_inbox, links));
        std::iter::once(main).chain(workers).collect()
    }
}

impl Cluster for LocalCluster {
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
