//! Gradient histograms: for every feature, the gradient sums of a node's rows in each bin.
//!
//! This is where training spends most of its time. Rows are read in fixed
//! chunks, each chunk into its own histogram, and chunks are added in order,
//! so the sums are the same on any number of threads.

use rayon::prelude::*;

use super::binning::{BinnedMatrix, SLOTS};
use super::grow::Sum;

/// A row with its gradients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    pub row: u32,
    pub g: f32,
    pub h: f32,
}

/// A gradient histogram: `SLOTS` sums a feature.
pub type Hist = Vec<[Sum; SLOTS]>;

/// Rows one histogram task covers. Fixed, so each node's sums are added in
/// the same order (rows within a chunk, then chunks in order) on any number of threads.
pub const HIST_CHUNK: usize = 1 << 15;

/// Histograms of the row ranges `nodes` (start, len) of `rows`, one a node.
/// Features not in use are left at zero (they are never split on).
pub fn build_histograms(
    m: &BinnedMatrix,
    entries: &[Entry],
    nodes: &[(usize, usize)],
    use_feature: &[bool],
) -> Vec<Hist> {
    let nf = m.n_features();
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    for (k, &(s, n)) in nodes.iter().enumerate() {
        let mut c = 0;
        loop {
            tasks.push((k, s + c, s + (c + HIST_CHUNK).min(n)));
            c += HIST_CHUNK;
            if c >= n {
                break;
            }
        }
    }
    let all_used = use_feature.iter().all(|&u| u);
    let partials: Vec<Hist> = tasks
        .par_iter()
        .map(|&(_, a, b)| {
            let mut h = vec![[Sum::default(); SLOTS]; nf];
            if all_used {
                accumulate(m, &entries[a..b], &mut h);
            } else {
                accumulate_some(m, &entries[a..b], use_feature, &mut h);
            }
            h
        })
        .collect();
    let mut groups: Vec<Vec<Hist>> = nodes.iter().map(|_| Vec::new()).collect();
    for (t, h) in tasks.iter().zip(partials) {
        groups[t.0].push(h);
    }
    groups
        .into_par_iter()
        .map(|g| {
            let mut it = g.into_iter();
            let mut total = it.next().expect("every node has a chunk");
            for h in it {
                for (tf, hf) in total.iter_mut().zip(&h) {
                    for (t, x) in tf.iter_mut().zip(hf) {
                        *t = t.plus(*x);
                    }
                }
            }
            total
        })
        .collect()
}

/// How many rows ahead the histogram and partition loops prefetch. Deep in a
/// tree a node's rows are scattered, and without prefetching these loops wait
/// on memory for almost every row (seen in profiles of the 1M-row benchmark).
pub const PREFETCH_AHEAD: usize = 24;

/// Asks the CPU to start loading the cache line holding `v`.
#[inline(always)]
pub fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults; the pointer comes from a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((v as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Adds each row's gradients into its bin of every feature.
#[inline(never)]
fn accumulate(m: &BinnedMatrix, entries: &[Entry], out: &mut Hist) {
    for (i, e) in entries.iter().enumerate() {
        if let Some(ahead) = entries.get(i + PREFETCH_AHEAD) {
            prefetch(&m.row(ahead.row as usize)[0]);
        }
        let (g, h) = (e.g as f64, e.h as f64);
        for (hf, &b) in out.iter_mut().zip(m.row(e.row as usize)) {
            let e = &mut hf[b as usize];
            e.g += g;
            e.h += h;
        }
    }
}

/// [`accumulate`] restricted to the features in use (column subsampling).
fn accumulate_some(m: &BinnedMatrix, entries: &[Entry], use_feature: &[bool], out: &mut Hist) {
    for e in entries {
        let (g, h) = (e.g as f64, e.h as f64);
        for ((hf, &b), _) in out
            .iter_mut()
            .zip(m.row(e.row as usize))
            .zip(use_feature)
            .filter(|(_, u)| **u)
        {
            let e = &mut hf[b as usize];
            e.g += g;
            e.h += h;
        }
    }
}
