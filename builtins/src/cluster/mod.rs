//! Collective communication for data-parallel training on several nodes.
//!
//! Every node runs the same training code on its own shard of the rows and
//! meets the others at collective operations: sums of partial statistics,
//! a broadcast from the main node (index 0), a gather to it. All nodes make
//! the same calls in the same order; each call is one numbered round.
//!
//! Results never depend on timing: the main node adds contributions in node
//! order `0..N` and sends the total to everyone, so every node holds the same
//! bits. A cluster of one node ([`Solo`]) does no communication at all, and
//! the algorithms take their single-node code paths when `size() == 1`.
//!
//! Two transports share the collective logic ([`star`]): TCP ([`TcpCluster`],
//! the main node listens, workers connect) and in-process channels
//! ([`LocalCluster`], for tests). Failures are prompt and named: a node whose
//! connection closes, or that reports an error, makes every other node fail
//! with a message naming it, and waiting for any one message has a deadline.

mod local;
mod star;
mod tcp;

pub use local::LocalCluster;
pub use tcp::{MainListener, TcpCluster, TcpConfig};

use std::time::Duration;

use crate::dataset::{ColumnKind, Dataset};
use crate::error::{BuiltinError, DataError};

/// How long a node waits for every node to join, unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node waits for any one message from a peer, unless told otherwise.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(600);

/// The nodes of a data-parallel job, as seen from one of them.
///
/// The two primitives are [`gather_bytes`](Cluster::gather_bytes) and
/// [`broadcast_bytes`](Cluster::broadcast_bytes); the typed reductions are
/// built on them. Every method is collective: all nodes must call it, in the
/// same order, or they fail as out of step.
pub trait Cluster: Sync {
    /// This node's index, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of nodes.
    fn size(&self) -> usize;
    /// `algo-3 (index 2)`: how messages name a node.
    fn node_name(&self, rank: usize) -> String;
    /// Main node: every node's `data`, in node order. Other nodes: an empty list.
    fn gather_bytes(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, BuiltinError>;
    /// Every node gets the main node's `data` (the others' argument is ignored).
    fn broadcast_bytes(&self, data: &[u8]) -> Result<Vec<u8>, BuiltinError>;
    /// Tells the other nodes this one failed, so they stop now with `reason`
    /// (best effort; not collective).
    fn abort(&self, reason: &str);

    /// True on the main node (index 0), which alone reads validation data and
    /// writes models and checkpoints.
    fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// Every node gets every node's `data`, in node order.
    fn allgather_bytes(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, BuiltinError> {
        if self.size() == 1 {
            return Ok(vec![data.to_vec()]);
        }
        let parts = self.gather_bytes(data)?;
        let joined = self.broadcast_bytes(&encode_parts(&parts))?;
        decode_parts(&joined)
    }

    /// Element-wise sums over the nodes, added in node order on the main node
    /// so every node gets bit-identical totals.
    fn allreduce_sum_f64(&self, v: &mut [f64]) -> Result<(), BuiltinError> {
        self.allreduce_f64(v, |a, b| a + b)
    }

    /// Element-wise maxima over the nodes.
    fn allreduce_max_f64(&self, v: &mut [f64]) -> Result<(), BuiltinError> {
        self.allreduce_f64(v, f64::max)
    }

    /// Element-wise `op` over the nodes, applied in node order on the main node.
    fn allreduce_f64(&self, v: &mut [f64], op: fn(f64, f64) -> f64) -> Result<(), BuiltinError> {
        if self.size() == 1 {
            return Ok(());
        }
        let parts = self.gather_bytes(&f64_bytes(v))?;
        let mut total = Vec::new();
        if self.is_main() {
            total = v.to_vec();
            for (r, p) in parts.iter().enumerate().skip(1) {
                let p = bytes_f64(p);
                if p.len() != total.len() {
                    return Err(self.mismatch(r, "sum", p.len(), total.len()));
                }
                total.iter_mut().zip(p).for_each(|(a, b)| *a = op(*a, b));
            }
        }
        let total = bytes_f64(&self.broadcast_bytes(&f64_bytes(&total))?);
        if total.len() != v.len() {
            return Err(self.mismatch(0, "sum", total.len(), v.len()));
        }
        v.copy_from_slice(&total);
        Ok(())
    }

    /// Element-wise sums of counts over the nodes.
    fn allreduce_sum_u64(&self, v: &mut [u64]) -> Result<(), BuiltinError> {
        if self.size() == 1 {
            return Ok(());
        }
        let parts = self.gather_bytes(&u64_bytes(v))?;
        let mut total = Vec::new();
        if self.is_main() {
            total = v.to_vec();
            for (r, p) in parts.iter().enumerate().skip(1) {
                let p = bytes_u64(p);
                if p.len() != total.len() {
                    return Err(self.mismatch(r, "count", p.len(), total.len()));
                }
                total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            }
        }
        let total = bytes_u64(&self.broadcast_bytes(&u64_bytes(&total))?);
        if total.len() != v.len() {
            return Err(self.mismatch(0, "count", total.len(), v.len()));
        }
        v.copy_from_slice(&total);
        Ok(())
    }

    /// Returns once every node has called it.
    fn barrier(&self) -> Result<(), BuiltinError> {
        if self.size() == 1 {
            return Ok(());
        }
        self.gather_bytes(&[])?;
        self.broadcast_bytes(&[])?;
        Ok(())
    }

    #[doc(hidden)]
    fn mismatch(&self, rank: usize, what: &str, got: usize, want: usize) -> BuiltinError {
        BuiltinError::failed(format!(
            "node {} sent a {what} of {got} values where {want} were expected; the nodes are out of step",
            self.node_name(rank)
        ))
    }
}

/// The cluster of one node: no networking, every collective is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Solo;

impl Cluster for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn node_name(&self, rank: usize) -> String {
        format!("index {rank}")
    }
    fn gather_bytes(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, BuiltinError> {
        Ok(vec![data.to_vec()])
    }
    fn broadcast_bytes(&self, data: &[u8]) -> Result<Vec<u8>, BuiltinError> {
        Ok(data.to_vec())
    }
    fn abort(&self, _reason: &str) {}
}

pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_f64(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

pub fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_u64(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Several byte strings as one: each with its length first.
pub fn encode_parts(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        out.extend((p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub fn decode_parts(mut b: &[u8]) -> Result<Vec<Vec<u8>>, BuiltinError> {
    let bad = || BuiltinError::failed("a message from another node is malformed");
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = u64::from_le_bytes(b.get(..8).ok_or_else(bad)?.try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| bad())?;
        let rest = &b[8..];
        out.push(rest.get(..len).ok_or_else(bad)?.to_vec());
        b = &rest[len..];
    }
    Ok(out)
}

/// Where this node's rows sit among all rows: `(offset, total)`, the global
/// index of its first row and the row count of all shards together.
pub fn shard_offset(cluster: &dyn Cluster, n_local: usize) -> Result<(usize, usize), BuiltinError> {
    if cluster.size() == 1 {
        return Ok((0, n_local));
    }
    let parts = cluster.allgather_bytes(&(n_local as u64).to_le_bytes())?;
    let counts: Vec<u64> = parts
        .iter()
        .map(|p| bytes_u64(p).first().copied().unwrap_or(0))
        .collect();
    let offset = counts[..cluster.rank()].iter().sum::<u64>() as usize;
    Ok((offset, counts.iter().sum::<u64>() as usize))
}

/// The rows `[floor(i n / N), floor((i + 1) n / N))` of `n`: node `i`'s share
/// of a channel every node reads whole.
pub fn row_range(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let at = |i: usize| ((i as u128 * n as u128) / size as u128) as usize;
    at(rank)..at(rank + 1)
}

/// Makes the shards of one data set agree: the same columns on every node,
/// and categorical codes numbered by one dictionary, the levels in order of
/// first appearance over the shards in node order (which is what one node
/// reading all the rows would have found).
pub fn align_dataset(cluster: &dyn Cluster, ds: &mut Dataset) -> Result<(), BuiltinError> {
    if cluster.size() == 1 {
        return Ok(());
    }
    let mine: Vec<(String, Option<Vec<String>>)> = ds
        .columns()
        .iter()
        .map(|c| (c.name.clone(), c.levels().map(<[String]>::to_vec)))
        .collect();
    let bytes = serde_json::to_vec(&mine).expect("names and levels serialise");
    let all = cluster.allgather_bytes(&bytes)?;
    let mut schemas = Vec::with_capacity(all.len());
    for p in &all {
        let s: Vec<(String, Option<Vec<String>>)> = serde_json::from_slice(p)
            .map_err(|e| BuiltinError::failed(format!("read the columns of another node: {e}")))?;
        schemas.push(s);
    }
    let names = |s: &[(String, Option<Vec<String>>)]| -> Vec<String> {
        s.iter().map(|c| c.0.clone()).collect()
    };
    let first = names(&schemas[0]);
    for (r, s) in schemas.iter().enumerate().skip(1) {
        if names(s) != first {
            return Err(BuiltinError::Data(
                DataError::new(
                    "train data",
                    format!(
                        "node {} has the columns {}, node {} has {}",
                        cluster.node_name(0),
                        first.join(","),
                        cluster.node_name(r),
                        names(s).join(",")
                    ),
                )
                .hint("every file of a sharded channel must have the same columns"),
            ));
        }
    }
    for (j, col) in ds.columns_mut().iter_mut().enumerate() {
        let text: Vec<usize> = (0..schemas.len())
            .filter(|&r| schemas[r][j].1.is_some())
            .collect();
        if text.is_empty() {
            continue;
        }
        if text.len() != schemas.len() {
            let numeric = (0..schemas.len()).find(|r| !text.contains(r)).unwrap_or(0);
            return Err(BuiltinError::Data(
                DataError::new(
                    "train data",
                    format!(
                        "column `{}` holds text on node {} but only numbers on node {}",
                        col.name,
                        cluster.node_name(text[0]),
                        cluster.node_name(numeric)
                    ),
                )
                .hint("give the column the same kind of values in every file"),
            ));
        }
        let mut global: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut my_map = Vec::new();
        for (r, s) in schemas.iter().enumerate() {
            for l in s[j].1.as_deref().unwrap_or_default() {
                let code = *index.entry(l.clone()).or_insert_with(|| {
                    global.push(l.clone());
                    global.len() - 1
                });
                if r == cluster.rank() {
                    my_map.push(code as f32);
                }
            }
        }
        for v in col.values.iter_mut() {
            if !v.is_nan() {
                *v = my_map[*v as usize];
            }
        }
        col.kind = ColumnKind::Categorical { levels: global };
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::dataset::Column;

    /// Runs `f` on every node of `nodes`, one thread each; results in node order.
    pub fn on_nodes<C: Cluster + Send, T: Send>(
        nodes: Vec<C>,
        f: impl Fn(&C) -> T + Sync,
    ) -> Vec<T> {
        std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .into_iter()
                .map(|c| {
                    let f = &f;
                    s.spawn(move || f(&c))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("node thread"))
                .collect()
        })
    }

    /// The rows `range` of `ds` as a reader of only those rows would see
    /// them: text levels numbered in order of first appearance in the shard.
    pub fn shard(ds: &Dataset, range: std::ops::Range<usize>) -> Dataset {
        let rows: Vec<usize> = range.collect();
        let part = ds.take_rows(&rows);
        let target = part.target().map(|t| t.name.clone());
        let columns = part
            .columns()
            .iter()
            .map(|c| match c.levels() {
                None => c.clone(),
                Some(levels) => {
                    let mut local: Vec<String> = Vec::new();
                    let codes = c
                        .values
                        .iter()
                        .map(|&v| {
                            if v.is_nan() {
                                return v;
                            }
                            let l = &levels[v as usize];
                            let i = local.iter().position(|x| x == l).unwrap_or_else(|| {
                                local.push(l.clone());
                                local.len() - 1
                            });
                            i as f32
                        })
                        .collect();
                    Column::categorical(c.name.clone(), local, codes)
                }
            })
            .collect();
        Dataset::new(columns, target.as_deref())
    }

    /// Trains with `f` on `cuts.len() - 1` in-process nodes, node `i` on the
    /// rows `cuts[i]..cuts[i + 1]` of `ds` (aligned as the engine aligns them).
    pub fn train_on_nodes<T: Send>(
        ds: &Dataset,
        cuts: &[usize],
        f: impl Fn(&Dataset, &crate::model::TrainContext) -> T + Sync,
    ) -> Vec<T> {
        on_nodes(LocalCluster::group(cuts.len() - 1), |c| {
            let r = c.rank();
            let mut part = shard(ds, cuts[r]..cuts[r + 1]);
            align_dataset(c, &mut part).expect("aligned");
            let ctx = crate::model::TrainContext {
                threads: 1 + r % 2,
                checkpoint_dir: None,
                log: &|_| {},
                cluster: c,
            };
            f(&part, &ctx)
        })
    }
}

#[cfg(test)]
mod tests;
