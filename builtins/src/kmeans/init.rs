//! Choosing the first centres.
//!
//! Greedy k-means++ follows scikit-learn's procedure (first centre uniform,
//! then for each further centre `2 + floor(ln k)` candidates drawn with
//! probability proportional to the squared distance to the nearest chosen
//! centre, keeping the candidate that lowers the total the most), so the final
//! inertia is comparable with scikit-learn's on the same data.

use rayon::prelude::*;

use crate::cluster::Cluster;
use crate::dense::{BLOCK_ROWS, Rng};
use crate::error::BuiltinError;

use super::distance::sq_dist_f32;

/// `k` centres by greedy k-means++ over the row-major `x` (`d` columns).
pub fn kmeans_plus_plus(x: &[f32], d: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = x.len() / d;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = Vec::with_capacity(k * d);
    let first = rng.below(n);
    let c0 = &x[first * d..(first + 1) * d];
    centres.extend_from_slice(c0);
    let mut closest = vec![f32::INFINITY; n];
    closest
        .par_chunks_mut(BLOCK_ROWS)
        .enumerate()
        .for_each(|(b, out)| {
            let rows = &x[b * BLOCK_ROWS * d..(b * BLOCK_ROWS + out.len()) * d];
            let far = vec![f32::INFINITY; out.len()];
            fold_candidate(out, rows, &far, c0);
        });
    let mut potential = block_sum(&closest);
    let mut cumsum = vec![0f64; n];
    // Squared distances with each candidate folded in: row-major, n x trials,
    // so one pass over the rows serves every candidate.
    let mut cand_dist = vec![0f32; trials * n];
    for _ in 1..k {
        let mut s = 0.0;
        for (c, v) in cumsum.iter_mut().zip(&closest) {
            s += *v as f64;
            *c = s;
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let target = rng.next_f64() * potential;
                cumsum.partition_point(|&c| c < target).min(n - 1)
            })
            .collect();
        let cands: Vec<&[f32]> = candidates.iter().map(|&c| &x[c * d..(c + 1) * d]).collect();
        let parts: Vec<Vec<f64>> = cand_dist
            .par_chunks_mut(BLOCK_ROWS * trials)
            .zip(closest.par_chunks(BLOCK_ROWS))
            .enumerate()
            .map(|(b, (out, cl))| {
                let rows = &x[b * BLOCK_ROWS * d..(b * BLOCK_ROWS + cl.len()) * d];
                fold_candidates(out, rows, cl, &cands)
            })
            .collect();
        let pots: Vec<f64> = (0..trials)
            .map(|t| parts.iter().map(|p| p[t]).sum())
            .collect();
        let mut best = 0;
        for t in 1..trials {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        let c = candidates[best];
        centres.extend_from_slice(&x[c * d..(c + 1) * d]);
        closest
            .par_iter_mut()
            .zip(cand_dist.par_chunks(trials))
            .for_each(|(c, row)| *c = row[best]);
        potential = pots[best];
    }
    centres
}

/// `out[i] = min(closest[i], |row_i - centre|^2)` for a block of rows.
fn fold_candidate(out: &mut [f32], rows: &[f32], closest: &[f32], centre: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { fold_candidate_avx2(out, rows, closest, centre) };
        return;
    }
    fold_candidate_portable(out, rows, closest, centre);
}

/// The same loop compiled for 256-bit vectors; no operation is reordered, so
/// the values are bit-identical to the portable version.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold_candidate_avx2(out: &mut [f32], rows: &[f32], closest: &[f32], centre: &[f32]) {
    fold_candidate_portable(out, rows, closest, centre);
}

#[inline(always)]
fn fold_candidate_portable(out: &mut [f32], rows: &[f32], closest: &[f32], centre: &[f32]) {
    let d = centre.len();
    for ((o, r), c) in out.iter_mut().zip(rows.chunks_exact(d)).zip(closest) {
        *o = c.min(sq_dist_f32(r, centre));
    }
}

/// For a block of rows, `out[i * t + j] = min(closest[i], |row_i - cand_j|^2)`
/// for every candidate `j`, and the per-candidate sums of `out` (in `f64`,
/// in row order).
fn fold_candidates(out: &mut [f32], rows: &[f32], closest: &[f32], cands: &[&[f32]]) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { fold_candidates_avx2(out, rows, closest, cands) };
    }
    fold_candidates_portable(out, rows, closest, cands)
}

/// The same loop compiled for 256-bit vectors; bit-identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold_candidates_avx2(
    out: &mut [f32],
    rows: &[f32],
    closest: &[f32],
    cands: &[&[f32]],
) -> Vec<f64> {
    fold_candidates_portable(out, rows, closest, cands)
}

#[inline(always)]
fn fold_candidates_portable(
    out: &mut [f32],
    rows: &[f32],
    closest: &[f32],
    cands: &[&[f32]],
) -> Vec<f64> {
    let t = cands.len();
    let d = cands.first().map_or(1, |c| c.len());
    let mut sums = vec![0f64; t];
    for ((row, c), o) in rows
        .chunks_exact(d)
        .zip(closest)
        .zip(out.chunks_exact_mut(t))
    {
        for ((cand, slot), sum) in cands.iter().zip(o.iter_mut()).zip(sums.iter_mut()) {
            let v = c.min(sq_dist_f32(row, cand));
            *slot = v;
            *sum += v as f64;
        }
    }
    sums
}

/// `k` distinct rows drawn uniformly (a partial Fisher-Yates over row indices).
pub fn random_rows(x: &[f32], d: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = x.len() / d;
    random_indices(n, k, rng)
        .iter()
        .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
        .collect()
}

/// `k` distinct indices of `0..n` drawn uniformly.
fn random_indices(n: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    let mut swapped = std::collections::HashMap::new();
    for i in 0..k {
        let j = i + rng.below(n - i);
        let vj = *swapped.get(&j).unwrap_or(&j);
        let vi = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, vi);
        picked.push(vj);
    }
    picked
}

/// Sum in `f64` over fixed blocks in parallel, added in block order, so the
/// result does not depend on how work was split.
fn block_sum(v: &[f32]) -> f64 {
    let parts: Vec<f64> = v
        .par_chunks(BLOCK_ROWS)
        .map(|c| c.iter().map(|&x| x as f64).sum::<f64>())
        .collect();
    parts.iter().sum()
}

/// The rows at global indices `rows` (each held by one node), on every node:
/// the holder contributes the values, the others zeros, and the sum over the
/// nodes is the values exactly.
pub fn fetch_rows(
    x: &[f32],
    d: usize,
    offset: usize,
    rows: &[usize],
    cluster: &dyn Cluster,
) -> Result<Vec<f32>, BuiltinError> {
    let n = x.len() / d;
    let mut v = vec![0f64; rows.len() * d];
    for (slot, &g) in rows.iter().enumerate() {
        if (offset..offset + n).contains(&g) {
            let r = g - offset;
            for (o, &a) in v[slot * d..(slot + 1) * d]
                .iter_mut()
                .zip(&x[r * d..(r + 1) * d])
            {
                *o = a as f64;
            }
        }
    }
    cluster.allreduce_sum_f64(&mut v)?;
    Ok(v.iter().map(|&a| a as f32).collect())
}

/// [`kmeans_plus_plus`] over the shards of several nodes: the same draws over
/// global row indices (this node's rows start at `offset` of `n_total`), so
/// the centres are those one node would choose on all the rows (up to
/// rounding in the sums of distances, which only matters at exact ties).
pub fn kmeans_plus_plus_shards(
    x: &[f32],
    d: usize,
    k: usize,
    rng: &mut Rng,
    cluster: &dyn Cluster,
    (offset, n_total): (usize, usize),
) -> Result<Vec<f32>, BuiltinError> {
    let n = x.len() / d;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = rng.below(n_total);
    let c0 = fetch_rows(x, d, offset, &[first], cluster)?;
    let mut centres = Vec::with_capacity(k * d);
    centres.extend_from_slice(&c0);
    let mut closest = vec![f32::INFINITY; n];
    closest
        .par_chunks_mut(BLOCK_ROWS)
        .enumerate()
        .for_each(|(b, out)| {
            let rows = &x[b * BLOCK_ROWS * d..(b * BLOCK_ROWS + out.len()) * d];
            let far = vec![f32::INFINITY; out.len()];
            fold_candidate(out, rows, &far, &c0);
        });
    let mut potential = [block_sum(&closest)];
    cluster.allreduce_sum_f64(&mut potential)?;
    let mut potential = potential[0];
    let mut cumsum = vec![0f64; n];
    let mut cand_dist = vec![0f32; trials * n];
    for _ in 1..k {
        let mut s = 0.0;
        for (c, v) in cumsum.iter_mut().zip(&closest) {
            s += *v as f64;
            *c = s;
        }
        // Each node's total, in node order: where its rows sit on the global scale.
        let mut totals = vec![0f64; cluster.size()];
        totals[cluster.rank()] = s;
        cluster.allreduce_sum_f64(&mut totals)?;
        let before: f64 = totals[..cluster.rank()].iter().sum();
        let last = cluster.size() - 1;
        let mut picked = vec![0u64; trials];
        for p in picked.iter_mut() {
            let target = rng.next_f64() * potential;
            // The first node whose running total reaches the target holds the row
            // (the last node when rounding leaves the target beyond every total).
            let mut acc = 0.0;
            let mut owner = last;
            for (r, t) in totals.iter().enumerate() {
                acc += t;
                if acc >= target {
                    owner = r;
                    break;
                }
            }
            if owner == cluster.rank() && n > 0 {
                let local = cumsum.partition_point(|&c| before + c < target).min(n - 1);
                // Stored plus one so that "not mine" (0) adds nothing.
                *p = (offset + local) as u64 + 1;
            }
        }
        cluster.allreduce_sum_u64(&mut picked)?;
        let candidates: Vec<usize> = picked
            .iter()
            .map(|&p| (p as usize).saturating_sub(1).min(n_total - 1))
            .collect();
        let cand_rows = fetch_rows(x, d, offset, &candidates, cluster)?;
        let cands: Vec<&[f32]> = cand_rows.chunks_exact(d).collect();
        let parts: Vec<Vec<f64>> = cand_dist
            .par_chunks_mut(BLOCK_ROWS * trials)
            .zip(closest.par_chunks(BLOCK_ROWS))
            .enumerate()
            .map(|(b, (out, cl))| {
                let rows = &x[b * BLOCK_ROWS * d..(b * BLOCK_ROWS + cl.len()) * d];
                fold_candidates(out, rows, cl, &cands)
            })
            .collect();
        let mut pots: Vec<f64> = (0..trials)
            .map(|t| parts.iter().map(|p| p[t]).sum())
            .collect();
        cluster.allreduce_sum_f64(&mut pots)?;
        let mut best = 0;
        for t in 1..trials {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        centres.extend_from_slice(cands[best]);
        closest
            .par_iter_mut()
            .zip(cand_dist.par_chunks(trials))
            .for_each(|(c, row)| *c = row[best]);
        potential = pots[best];
    }
    Ok(centres)
}

/// [`random_rows`] over the shards of several nodes: the same global rows.
pub fn random_rows_shards(
    x: &[f32],
    d: usize,
    k: usize,
    rng: &mut Rng,
    cluster: &dyn Cluster,
    (offset, n_total): (usize, usize),
) -> Result<Vec<f32>, BuiltinError> {
    let picked = random_indices(n_total, k, rng);
    fetch_rows(x, d, offset, &picked, cluster)
}
