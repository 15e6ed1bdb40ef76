//! Lloyd iterations: assign every row to its nearest centre, move each centre
//! to the mean of its rows, until the centres stop moving.
//!
//! Partial sums are kept per fixed block of rows in `f64` and added in block
//! order, so the centres are the same whatever the thread count. Convergence
//! follows scikit-learn: stop when no label changes, or when the summed squared
//! centre shift is at most `tol` times the mean feature variance; then one
//! last assignment makes labels and centres agree before inertia is measured.

use rayon::prelude::*;

use crate::dense::{BLOCK_ROWS, map_blocks};

use super::distance::{CentresT, sq_dist};

/// The outcome of the iterations.
pub struct Fit {
    pub centres: Vec<f32>,
    pub inertia: f64,
    pub iterations: usize,
}

struct BlockStats {
    sums: Vec<f64>,
    counts: Vec<u64>,
    changed: u64,
}

pub fn run(
    x: &[f32],
    d: usize,
    mut centres: Vec<f32>,
    max_iterations: usize,
    tol: f64,
    log: &(dyn Fn(&str) + Sync),
) -> Fit {
    let n = x.len() / d;
    let k = centres.len() / d;
    let tol = tol * mean_variance(x, d);
    let mut labels = vec![u32::MAX; n];
    let mut dist = vec![0f32; n];
    let mut iterations = 0;
    for it in 0..max_iterations {
        iterations = it + 1;
        let ct = CentresT::new(&centres, d);
        let parts: Vec<BlockStats> = labels
            .par_chunks_mut(BLOCK_ROWS)
            .zip(dist.par_chunks_mut(BLOCK_ROWS))
            .enumerate()
            .map(|(b, (lab, dis))| {
                let r0 = b * BLOCK_ROWS;
                assign_block(&ct, &x[r0 * d..(r0 + lab.len()) * d], lab, dis)
            })
            .collect();
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0u64; k];
        let mut changed = 0;
        for p in &parts {
            sums.iter_mut().zip(&p.sums).for_each(|(a, b)| *a += b);
            counts.iter_mut().zip(&p.counts).for_each(|(a, b)| *a += b);
            changed += p.changed;
        }
        relocate_empty(x, d, &labels, &dist, &mut sums, &mut counts);
        let mut shift = 0.0;
        for c in 0..k {
            if counts[c] == 0 {
                continue;
            }
            for j in 0..d {
                let v = (sums[c * d + j] / counts[c] as f64) as f32;
                shift += ((v - centres[c * d + j]) as f64).powi(2);
                centres[c * d + j] = v;
            }
        }
        log(&format!(
            "kmeans: iteration {iterations}, {changed} labels changed, centre shift {shift:.3e}"
        ));
        if changed == 0 {
            break;
        }
        if shift <= tol {
            break;
        }
    }
    let inertia = inertia(x, d, &centres);
    Fit {
        centres,
        inertia,
        iterations,
    }
}

/// Assigns the rows of the block `xb` to their nearest centre and sums them
/// per centre, counting labels that changed.
fn assign_block(ct: &CentresT, xb: &[f32], lab: &mut [u32], dis: &mut [f32]) -> BlockStats {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { assign_block_avx2(ct, xb, lab, dis) };
    }
    assign_block_portable(ct, xb, lab, dis)
}

/// The same code compiled for 256-bit vectors; bit-identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn assign_block_avx2(
    ct: &CentresT,
    xb: &[f32],
    lab: &mut [u32],
    dis: &mut [f32],
) -> BlockStats {
    assign_block_portable(ct, xb, lab, dis)
}

#[inline(always)]
fn assign_block_portable(
    ct: &CentresT,
    xb: &[f32],
    lab: &mut [u32],
    dis: &mut [f32],
) -> BlockStats {
    let (k, d) = (ct.k, ct.d);
    let before: Vec<u32> = lab.to_vec();
    ct.nearest_portable(xb, lab, dis);
    let mut sums = vec![0f64; k * d];
    let mut counts = vec![0u64; k];
    let mut changed = 0;
    for (i, row) in xb.chunks_exact(d).enumerate() {
        let c = lab[i] as usize;
        changed += u64::from(before[i] != lab[i]);
        counts[c] += 1;
        for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(row) {
            *s += *v as f64;
        }
    }
    BlockStats {
        sums,
        counts,
        changed,
    }
}

/// Sum of squared distances of the rows of `x` to their nearest centre,
/// with the nearest centre chosen by the same kernel as training.
pub fn inertia(x: &[f32], d: usize, centres: &[f32]) -> f64 {
    let n = x.len() / d;
    let ct = CentresT::new(centres, d);
    map_blocks(n, BLOCK_ROWS, |r| {
        let xb = &x[r.start * d..r.end * d];
        let mut lab = vec![0u32; r.len()];
        let mut dis = vec![0f32; r.len()];
        ct.nearest(xb, &mut lab, &mut dis);
        xb.chunks_exact(d)
            .zip(&lab)
            .map(|(row, &c)| sq_dist(row, &centres[c as usize * d..(c as usize + 1) * d]))
            .sum::<f64>()
    })
    .iter()
    .sum()
}

/// Mean over features of the population variance (scikit-learn's tolerance scale).
fn mean_variance(x: &[f32], d: usize) -> f64 {
    let n = x.len() / d;
    let parts = map_blocks(n, BLOCK_ROWS, |r| {
        let mut s = vec![0f64; d];
        let mut ss = vec![0f64; d];
        for row in x[r.start * d..r.end * d].chunks_exact(d) {
            for j in 0..d {
                let v = row[j] as f64;
                s[j] += v;
                ss[j] += v * v;
            }
        }
        (s, ss)
    });
    let mut s = vec![0f64; d];
    let mut ss = vec![0f64; d];
    for (a, b) in &parts {
        for j in 0..d {
            s[j] += a[j];
            ss[j] += b[j];
        }
    }
    let nf = n as f64;
    (0..d)
        .map(|j| (ss[j] / nf - (s[j] / nf).powi(2)).max(0.0))
        .sum::<f64>()
        / d as f64
}

/// Gives every empty cluster the row farthest from its own centre (as
/// scikit-learn does), moving that row's contribution out of its old cluster.
fn relocate_empty(
    x: &[f32],
    d: usize,
    labels: &[u32],
    dist: &[f32],
    sums: &mut [f64],
    counts: &mut [u64],
) {
    let empty: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
    if empty.is_empty() {
        return;
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    // Farthest first; ties by row index so the choice is reproducible.
    order.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    let mut taken = order.into_iter();
    for c in empty {
        let Some(row) = taken.find(|&r| counts[labels[r] as usize] > 1) else {
            return;
        };
        let old = labels[row] as usize;
        let xr = &x[row * d..(row + 1) * d];
        for j in 0..d {
            sums[old * d + j] -= xr[j] as f64;
            sums[c * d + j] = xr[j] as f64;
        }
        counts[old] -= 1;
        counts[c] = 1;
    }
}
