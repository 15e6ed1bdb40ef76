//! Choosing the first centres.
//!
//! Greedy k-means++ follows scikit-learn's procedure (first centre uniform,
//! then for each further centre `2 + floor(ln k)` candidates drawn with
//! probability proportional to the squared distance to the nearest chosen
//! centre, keeping the candidate that lowers the total the most), so the final
//! inertia is comparable with scikit-learn's on the same data.

use rayon::prelude::*;

use crate::dense::{BLOCK_ROWS, Rng};

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
    // Squared distances with each candidate folded in, one run of n a candidate.
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
        for (t, &c) in candidates.iter().enumerate() {
            let cr = &x[c * d..(c + 1) * d];
            cand_dist[t * n..(t + 1) * n]
                .par_chunks_mut(BLOCK_ROWS)
                .zip(closest.par_chunks(BLOCK_ROWS))
                .enumerate()
                .for_each(|(b, (out, cl))| {
                    let rows = &x[b * BLOCK_ROWS * d..(b * BLOCK_ROWS + out.len()) * d];
                    fold_candidate(out, rows, cl, cr);
                });
        }
        let pots: Vec<f64> = (0..trials)
            .map(|t| block_sum(&cand_dist[t * n..(t + 1) * n]))
            .collect();
        let mut best = 0;
        for t in 1..trials {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        let c = candidates[best];
        centres.extend_from_slice(&x[c * d..(c + 1) * d]);
        closest.copy_from_slice(&cand_dist[best * n..(best + 1) * n]);
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

/// `k` distinct rows drawn uniformly (a partial Fisher-Yates over row indices).
pub fn random_rows(x: &[f32], d: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = x.len() / d;
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
        .iter()
        .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
        .collect()
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
