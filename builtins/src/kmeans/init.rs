//! Choosing the first centres.
//!
//! Greedy k-means++ follows scikit-learn's procedure (first centre uniform,
//! then for each further centre `2 + floor(ln k)` candidates drawn with
//! probability proportional to the squared distance to the nearest chosen
//! centre, keeping the candidate that lowers the total the most), so the final
//! inertia is comparable with scikit-learn's on the same data.

use crate::dense::{BLOCK_ROWS, Rng, map_blocks};

use super::distance::sq_dist;

/// `k` centres by greedy k-means++ over the row-major `x` (`d` columns).
pub fn kmeans_plus_plus(x: &[f32], d: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = x.len() / d;
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = Vec::with_capacity(k * d);
    let first = rng.below(n);
    centres.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut closest: Vec<f64> = map_blocks(n, BLOCK_ROWS, |r| {
        r.map(|i| sq_dist(&x[i * d..(i + 1) * d], &x[first * d..(first + 1) * d]))
            .collect::<Vec<f64>>()
    })
    .concat();
    let mut potential: f64 = block_sum(&closest);
    for _ in 1..k {
        let mut cumsum = Vec::with_capacity(n);
        let mut s = 0.0;
        for v in &closest {
            s += v;
            cumsum.push(s);
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let target = rng.next_f64() * potential;
                cumsum.partition_point(|&c| c < target).min(n - 1)
            })
            .collect();
        // Per block: for each candidate, the summed new closest distances.
        let parts = map_blocks(n, BLOCK_ROWS, |r| {
            candidates
                .iter()
                .map(|&c| {
                    let cr = &x[c * d..(c + 1) * d];
                    r.clone()
                        .map(|i| closest[i].min(sq_dist(&x[i * d..(i + 1) * d], cr)))
                        .sum::<f64>()
                })
                .collect::<Vec<f64>>()
        });
        let pots: Vec<f64> = (0..candidates.len())
            .map(|t| parts.iter().map(|p| p[t]).sum())
            .collect();
        let mut best = 0;
        for t in 1..pots.len() {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        let c = candidates[best];
        let cr = &x[c * d..(c + 1) * d];
        centres.extend_from_slice(cr);
        let updated: Vec<f64> = map_blocks(n, BLOCK_ROWS, |r| {
            r.map(|i| closest[i].min(sq_dist(&x[i * d..(i + 1) * d], cr)))
                .collect::<Vec<f64>>()
        })
        .concat();
        closest = updated;
        potential = block_sum(&closest);
    }
    centres
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

/// Sum in fixed blocks, so the result does not depend on how work was split.
fn block_sum(v: &[f64]) -> f64 {
    v.chunks(BLOCK_ROWS).map(|c| c.iter().sum::<f64>()).sum()
}
