//! Splitting a node's rows between its children, in place and stably.
//!
//! Every node owns a contiguous range of one array of rows; a split reorders
//! the range so the left child's rows come first, keeping their order.

use rayon::prelude::*;

use super::binning::{BinnedMatrix, MISSING_BIN};
use super::grow::Split;
use super::histogram::Entry;

/// Rows one partition task covers (fixed, like the histogram chunks, though any
/// chunking gives the same result: the partition is stable).
const PART_CHUNK: usize = 1 << 15;

/// `(chunk length, rows that went left)` for each chunk of a node, in order.
type ChunkSplits = Vec<(usize, usize)>;

/// Partitions the rows of every node `(start, end, split)` that has a split,
/// in parallel over fixed chunks; returns how many rows of each node went left.
pub fn partition_level(
    rows: &mut [Entry],
    m: &BinnedMatrix,
    nodes: &[(usize, usize, Option<Split>)],
) -> Vec<usize> {
    // Chunks of every split node, as disjoint slices in row order.
    let mut tasks: Vec<(usize, &mut [Entry], Split)> = Vec::new();
    let mut rest: &mut [Entry] = rows;
    let mut offset = 0usize;
    for (k, &(start, end, split)) in nodes.iter().enumerate() {
        let Some(s) = split else { continue };
        let (_, tail) = rest.split_at_mut(start - offset);
        let (mut mine, tail) = tail.split_at_mut(end - start);
        rest = tail;
        offset = end;
        while !mine.is_empty() {
            let (chunk, more) = mine.split_at_mut(PART_CHUNK.min(mine.len()));
            tasks.push((k, chunk, s));
            mine = more;
        }
    }
    let lefts: Vec<(usize, usize, usize)> = tasks
        .into_par_iter()
        .map(|(k, chunk, s)| {
            (
                k,
                chunk.len(),
                partition(chunk, m, s.feature, s.bin, s.default_left),
            )
        })
        .collect();
    // Each chunk is now [left | right]; nodes of several chunks gather all lefts first.
    let mut n_left = vec![0usize; nodes.len()];
    let mut per_node: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nodes.len()];
    for &(k, len, l) in &lefts {
        n_left[k] += l;
        per_node[k].push((len, l));
    }
    let mut merges: Vec<(&mut [Entry], ChunkSplits)> = Vec::new();
    let mut rest: &mut [Entry] = rows;
    let mut offset = 0usize;
    for (k, &(start, end, _)) in nodes.iter().enumerate() {
        if per_node[k].len() < 2 {
            continue;
        }
        let (_, tail) = rest.split_at_mut(start - offset);
        let (mine, tail) = tail.split_at_mut(end - start);
        rest = tail;
        offset = end;
        merges.push((mine, std::mem::take(&mut per_node[k])));
    }
    merges.into_par_iter().for_each(|(slice, chunks)| {
        let mut merged = Vec::with_capacity(slice.len());
        let mut pos = 0;
        for &(len, l) in &chunks {
            merged.extend_from_slice(&slice[pos..pos + l]);
            pos += len;
        }
        pos = 0;
        for &(len, l) in &chunks {
            merged.extend_from_slice(&slice[pos + l..pos + len]);
            pos += len;
        }
        slice.copy_from_slice(&merged);
    });
    n_left
}

/// Stable partition: rows going left first; returns how many went left.
#[inline(never)]
fn partition(
    rows: &mut [Entry],
    m: &BinnedMatrix,
    feature: usize,
    bin: u8,
    default_left: bool,
) -> usize {
    // One column: a node's rows ascend, so this reads a small, cache-resident run.
    let col = m.column(feature);
    let mut right = vec![Entry::default(); rows.len()];
    let (mut w, mut j) = (0usize, 0usize);
    for i in 0..rows.len() {
        let r = rows[i];
        let b = col[r.row as usize];
        // Branch-free: which way a row goes is close to a coin flip for the predictor.
        let left = (b <= bin) & (b != MISSING_BIN) | (b == MISSING_BIN) & default_left;
        rows[w] = r;
        right[j] = r;
        w += usize::from(left);
        j += usize::from(!left);
    }
    rows[w..].copy_from_slice(&right[..j]);
    w
}
