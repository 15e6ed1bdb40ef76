//! Lloyd iterations: assign every row to its nearest centre, move each centre
//! to the mean of its rows, until the centres stop moving.
//!
//! Partial sums are kept per fixed block of rows in `f64` and added in block
//! order, so the centres are the same whatever the thread count. Convergence
//! follows scikit-learn: stop when no label changes, or when the summed squared
//! centre shift is at most `tol` times the mean feature variance; then one
//! last assignment makes labels and centres agree before inertia is measured.

use rayon::prelude::*;

use crate::cluster::Cluster;
use crate::dense::{BLOCK_ROWS, map_blocks};
use crate::error::BuiltinError;

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

/// Lloyd iterations over this node's rows `x`; with several nodes the
/// per-centre sums and counts are added over all of them each iteration, so
/// every node moves the centres alike (`offset` is the global index of this
/// node's first row).
pub fn run(
    x: &[f32],
    d: usize,
    mut centres: Vec<f32>,
    (max_iterations, tol): (usize, f64),
    cluster: &dyn Cluster,
    offset: usize,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Fit, BuiltinError> {
    let n = x.len() / d;
    let k = centres.len() / d;
    let tol = tol * mean_variance(x, d, cluster)?;
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
        if cluster.size() > 1 {
            // One message: the sums, the counts and the changed labels (counts are exact in f64).
            let mut all = sums;
            all.extend(counts.iter().map(|&c| c as f64));
            all.push(changed as f64);
            cluster.allreduce_sum_f64(&mut all)?;
            changed = all[k * d + k] as u64;
            counts = all[k * d..k * d + k].iter().map(|&c| c as u64).collect();
            all.truncate(k * d);
            sums = all;
        }
        relocate_empty(
            x,
            d,
            (&labels, &dist),
            (&mut sums, &mut counts),
            cluster,
            offset,
        )?;
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
    let mut inertia = [inertia(x, d, &centres)];
    cluster.allreduce_sum_f64(&mut inertia)?;
    Ok(Fit {
        centres,
        inertia: inertia[0],
        iterations,
    })
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
fn mean_variance(x: &[f32], d: usize, cluster: &dyn Cluster) -> Result<f64, BuiltinError> {
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
    let mut nf = n as f64;
    if cluster.size() > 1 {
        let mut all = s;
        all.extend(&ss);
        all.push(nf);
        cluster.allreduce_sum_f64(&mut all)?;
        nf = all[2 * d];
        ss = all[d..2 * d].to_vec();
        all.truncate(d);
        s = all;
    }
    Ok((0..d)
        .map(|j| (ss[j] / nf - (s[j] / nf).powi(2)).max(0.0))
        .sum::<f64>()
        / d as f64)
}

/// Gives every empty cluster the row farthest from its own centre (as
/// scikit-learn does), moving that row's contribution out of its old cluster.
///
/// With several nodes, each offers its farthest rows (enough of them: every
/// row passed over belongs to a cluster of one row, so at most `k` are), and
/// every node makes the same choice from all offers.
fn relocate_empty(
    x: &[f32],
    d: usize,
    (labels, dist): (&[u32], &[f32]),
    (sums, counts): (&mut [f64], &mut [u64]),
    cluster: &dyn Cluster,
    offset: usize,
) -> Result<(), BuiltinError> {
    let empty: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
    if empty.is_empty() {
        return Ok(());
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    // Farthest first; ties by row index so the choice is reproducible.
    order.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    if cluster.size() == 1 {
        let rows = order.iter().map(|&r| (labels[r], &x[r * d..(r + 1) * d]));
        move_farthest(&empty, rows, d, sums, counts);
        return Ok(());
    }
    // Offers: distance, global row, label, values; as f64 (exact for all three).
    let mut offer = Vec::new();
    for &r in order.iter().take(empty.len() + counts.len()) {
        offer.push(dist[r] as f64);
        offer.push((offset + r) as f64);
        offer.push(labels[r] as f64);
        offer.extend(x[r * d..(r + 1) * d].iter().map(|&v| v as f64));
    }
    let all = cluster.allgather_bytes(&crate::cluster::f64_bytes(&offer))?;
    let all: Vec<f64> = all
        .iter()
        .flat_map(|b| crate::cluster::bytes_f64(b))
        .collect();
    let mut rows: Vec<&[f64]> = all.chunks_exact(3 + d).collect();
    rows.sort_by(|a, b| b[0].total_cmp(&a[0]).then(a[1].total_cmp(&b[1])));
    let values: Vec<(u32, Vec<f32>)> = rows
        .iter()
        .map(|r| (r[2] as u32, r[3..].iter().map(|&v| v as f32).collect()))
        .collect();
    move_farthest(
        &empty,
        values.iter().map(|(l, v)| (*l, v.as_slice())),
        d,
        sums,
        counts,
    );
    Ok(())
}

/// Gives each empty cluster the next row (farthest first) whose cluster can spare it.
fn move_farthest<'a>(
    empty: &[usize],
    mut rows: impl Iterator<Item = (u32, &'a [f32])>,
    d: usize,
    sums: &mut [f64],
    counts: &mut [u64],
) {
    for &c in empty {
        let Some((label, xr)) = rows.find(|&(l, _)| counts[l as usize] > 1) else {
            return;
        };
        let old = label as usize;
        for j in 0..d {
            sums[old * d + j] -= xr[j] as f64;
            sums[c * d + j] = xr[j] as f64;
        }
        counts[old] -= 1;
        counts[c] = 1;
    }
}
