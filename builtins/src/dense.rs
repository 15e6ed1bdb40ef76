//! Dense numeric helpers shared by linear-learner, kmeans and pca.
//!
//! The three algorithms see a data set the same way: a row-major `f32` matrix
//! with missing values imputed by the training mean, processed in fixed blocks
//! of rows whose partial results are summed in block order. Fixing the block
//! partition (not the thread count) is what makes every result identical
//! whatever the number of threads. Small linear algebra (Cholesky, symmetric
//! eigendecomposition) runs in `f64` on matrices of size features x features.

use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::cluster::Cluster;
use crate::dataset::Dataset;
use crate::error::{BuiltinError, DataError, io_failed};

/// Rows per block of every parallel pass; part of the numerical result, so fixed.
pub const BLOCK_ROWS: usize = 4096;

/// Runs `f` on a pool of `threads` workers (0 means rayon's default).
pub fn with_threads<T: Send>(
    threads: usize,
    f: impl FnOnce() -> Result<T, BuiltinError> + Send,
) -> Result<T, BuiltinError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| BuiltinError::failed(format!("start {threads} worker threads: {e}")))?;
    pool.install(f)
}

/// Applies `f` to each block of `block` rows of `0..n_rows` in parallel and
/// returns the results in block order, so callers can reduce deterministically.
pub fn map_blocks<T: Send>(
    n_rows: usize,
    block: usize,
    f: impl Fn(Range<usize>) -> T + Sync + Send,
) -> Vec<T> {
    let n_blocks = n_rows.div_ceil(block);
    (0..n_blocks)
        .into_par_iter()
        .map(|b| f(b * block..((b + 1) * block).min(n_rows)))
        .collect()
}

/// A small seeded generator (SplitMix64): fast, portable, and the same stream
/// on every platform, which is all sampling and initialisation need.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Per-feature mean and standard deviation over the non-missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub names: Vec<String>,
    /// Mean of the present values (0 for a column with none): the imputed value.
    pub mean: Vec<f64>,
    /// Population standard deviation, 1 where it is 0 (constant or empty columns).
    pub scale: Vec<f64>,
}

impl FeatureStats {
    /// Computes the statistics of every feature column of `ds`.
    pub fn of(ds: &Dataset) -> Self {
        let cols: Vec<&[f32]> = ds.features().map(|c| c.values.as_slice()).collect();
        let per: Vec<(f64, f64)> = cols
            .par_iter()
            .map(|v| {
                // Two passes over fixed blocks: exact enough in f64 and order-fixed.
                let parts: Vec<(f64, usize)> = v
                    .chunks(BLOCK_ROWS)
                    .map(|c| {
                        c.iter()
                            .filter(|x| !x.is_nan())
                            .fold((0.0, 0), |(s, n), &x| (s + x as f64, n + 1))
                    })
                    .collect();
                let (s, n) = parts
                    .iter()
                    .fold((0.0, 0), |(a, b), &(s, n)| (a + s, b + n));
                if n == 0 {
                    return (0.0, 1.0);
                }
                let mean = s / n as f64;
                let ss: f64 = v
                    .chunks(BLOCK_ROWS)
                    .map(|c| {
                        c.iter()
                            .filter(|x| !x.is_nan())
                            .map(|&x| (x as f64 - mean).powi(2))
                            .sum::<f64>()
                    })
                    .sum();
                let sd = (ss / n as f64).sqrt();
                (
                    mean,
                    if sd > 1e-12 * mean.abs().max(1.0) {
                        sd
                    } else {
                        1.0
                    },
                )
            })
            .collect();
        FeatureStats {
            names: ds.feature_names(),
            mean: per.iter().map(|p| p.0).collect(),
            scale: per.iter().map(|p| p.1).collect(),
        }
    }

    /// [`of`](Self::of) over the shards of every node of `cluster`: sums and
    /// counts are added over the nodes, so every node gets the same statistics
    /// (equal to one node's on all the rows up to rounding). One node: [`of`](Self::of).
    pub fn of_shards(ds: &Dataset, cluster: &dyn Cluster) -> Result<Self, BuiltinError> {
        if cluster.size() == 1 {
            return Ok(Self::of(ds));
        }
        let cols: Vec<&[f32]> = ds.features().map(|c| c.values.as_slice()).collect();
        let d = cols.len();
        // Per column: the sum, then the count of present values.
        let mut sums: Vec<f64> = cols
            .par_iter()
            .map(|v| {
                v.iter()
                    .filter(|x| !x.is_nan())
                    .fold((0.0, 0.0), |(s, n), &x| (s + x as f64, n + 1.0))
            })
            .collect::<Vec<(f64, f64)>>()
            .into_iter()
            .flat_map(|(s, n)| [s, n])
            .collect();
        cluster.allreduce_sum_f64(&mut sums)?;
        let mean: Vec<f64> = (0..d)
            .map(|j| {
                let n = sums[2 * j + 1];
                if n > 0.0 { sums[2 * j] / n } else { 0.0 }
            })
            .collect();
        let mut ss: Vec<f64> = cols
            .par_iter()
            .zip(&mean)
            .map(|(v, &m)| {
                v.iter()
                    .filter(|x| !x.is_nan())
                    .map(|&x| (x as f64 - m).powi(2))
                    .sum::<f64>()
            })
            .collect();
        cluster.allreduce_sum_f64(&mut ss)?;
        let scale = (0..d)
            .map(|j| {
                let n = sums[2 * j + 1];
                let sd = if n > 0.0 { (ss[j] / n).sqrt() } else { 0.0 };
                if n > 0.0 && sd > 1e-12 * mean[j].abs().max(1.0) {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Ok(FeatureStats {
            names: ds.feature_names(),
            mean,
            scale,
        })
    }

    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// True when names, means and scales describe the same features (a
    /// check for model files edited by hand or truncated).
    pub fn is_consistent(&self) -> bool {
        let d = self.mean.len();
        d > 0
            && self.names.len() == d
            && self.scale.len() == d
            && self.mean.iter().chain(&self.scale).all(|v| v.is_finite())
            && self.scale.iter().all(|&s| s > 0.0)
    }

    /// Checks that `ds` has the features the model was trained on.
    pub fn check(&self, ds: &Dataset, algorithm: &str) -> Result<(), BuiltinError> {
        let n = ds.n_features();
        if n != self.n_features() {
            return Err(BuiltinError::Data(
                DataError::new(
                    "input data",
                    format!(
                        "has {n} feature columns, but the {algorithm} model was trained on {}",
                        self.n_features()
                    ),
                )
                .hint(format!(
                    "give the same feature columns as in training: {}",
                    self.names.join(", ")
                )),
            ));
        }
        Ok(())
    }

    /// The features of `ds` as a row-major matrix, missing values replaced by
    /// the mean; when `standardise`, every value becomes `(x - mean) / scale`.
    pub fn matrix(&self, ds: &Dataset, standardise: bool) -> Vec<f32> {
        let cols: Vec<&[f32]> = ds.features().map(|c| c.values.as_slice()).collect();
        let d = cols.len();
        let n = ds.n_rows();
        let mut out = vec![0f32; n * d];
        if d == 0 {
            return out;
        }
        let (shift, mul): (Vec<f32>, Vec<f32>) = (0..d)
            .map(|j| {
                if standardise {
                    (self.mean[j] as f32, (1.0 / self.scale[j]) as f32)
                } else {
                    (0.0, 1.0)
                }
            })
            .unzip();
        let fill: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
        out.par_chunks_mut(BLOCK_ROWS * d)
            .enumerate()
            .for_each(|(b, chunk)| {
                let r0 = b * BLOCK_ROWS;
                for (j, col) in cols.iter().enumerate() {
                    let (s, m, f) = (shift[j], mul[j], fill[j]);
                    for (i, row) in chunk.chunks_exact_mut(d).enumerate() {
                        let v = col[r0 + i];
                        let v = if v.is_nan() { f } else { v };
                        row[j] = (v - s) * m;
                    }
                }
            });
        out
    }
}

/// Adds the upper triangle of `x^T x` for the rows of the row-major block `x`
/// (`d` columns) into `acc` (`d * d`, row-major, `f64`).
///
/// Register tiles of 4 x 8 accumulate in `f32` over at most one block of rows
/// and are then added in `f64`, so long sums do not lose precision while the
/// inner loop stays a vectorisable multiply-add.
pub fn gram_block_into(x: &[f32], d: usize, acc: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { gram_block_avx2(x, d, acc) };
        return;
    }
    gram_block_portable(x, d, acc);
}

/// The same loop compiled for 256-bit vectors. Nothing is fused or reordered
/// (every sum still runs over rows in order), so results are bit-identical.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gram_block_avx2(x: &[f32], d: usize, acc: &mut [f64]) {
    gram_block_portable(x, d, acc);
}

#[inline(always)]
fn gram_block_portable(x: &[f32], d: usize, acc: &mut [f64]) {
    const TI: usize = 4;
    const TJ: usize = 8;
    let rows = x.len() / d.max(1);
    let mut i0 = 0;
    while i0 < d {
        let ti = TI.min(d - i0);
        let mut j0 = i0 - i0 % TJ;
        while j0 < d {
            let tj = TJ.min(d - j0);
            let mut t = [[0f32; TJ]; TI];
            if ti == TI && tj == TJ {
                for r in x.chunks_exact(d).take(rows) {
                    let (a0, a1, a2, a3) = (r[i0], r[i0 + 1], r[i0 + 2], r[i0 + 3]);
                    let Ok(b) = <&[f32; TJ]>::try_from(&r[j0..j0 + TJ]) else {
                        continue;
                    };
                    for l in 0..TJ {
                        t[0][l] += a0 * b[l];
                        t[1][l] += a1 * b[l];
                        t[2][l] += a2 * b[l];
                        t[3][l] += a3 * b[l];
                    }
                }
            } else {
                for r in x.chunks_exact(d) {
                    for k in 0..ti {
                        for l in 0..tj {
                            t[k][l] += r[i0 + k] * r[j0 + l];
                        }
                    }
                }
            }
            for k in 0..ti {
                for l in 0..tj {
                    if j0 + l >= i0 + k {
                        acc[(i0 + k) * d + j0 + l] += t[k][l] as f64;
                    }
                }
            }
            j0 += TJ;
        }
        i0 += TI;
    }
}

/// Dot product in `f32` with eight running sums in a fixed pairing: it
/// vectorises, and gives the same value on every machine and thread count.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        s += x * y;
    }
    s
}

/// Mirrors the upper triangle of a `d x d` row-major matrix into the lower one.
pub fn symmetrize_upper(a: &mut [f64], d: usize) {
    for i in 0..d {
        for j in 0..i {
            a[i * d + j] = a[j * d + i];
        }
    }
}

/// `(x - shift)^T (x - shift)` of a row-major `n x d` matrix (`shift` is
/// subtracted from every row when given), summed over fixed row blocks in order.
pub fn gram(x: &[f32], d: usize, shift: Option<&[f32]>) -> Vec<f64> {
    // Smaller sub-blocks than BLOCK_ROWS keep the f32 tile sums short.
    const GRAM_ROWS: usize = 256;
    let n = x.len().checked_div(d).unwrap_or(0);
    let parts = map_blocks(n, BLOCK_ROWS, |r| {
        let mut acc = vec![0f64; d * d];
        let mut scratch = Vec::new();
        for sub in x[r.start * d..r.end * d].chunks(GRAM_ROWS * d) {
            match shift {
                None => gram_block_into(sub, d, &mut acc),
                Some(m) => {
                    scratch.clear();
                    scratch.extend_from_slice(sub);
                    for row in scratch.chunks_exact_mut(d) {
                        row.iter_mut().zip(m).for_each(|(v, m)| *v -= m);
                    }
                    gram_block_into(&scratch, d, &mut acc);
                }
            }
        }
        acc
    });
    let mut total = vec![0f64; d * d];
    for p in parts {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    symmetrize_upper(&mut total, d);
    total
}

/// Solves `a x = b` for symmetric positive definite `a` (`n x n`, row-major)
/// by Cholesky; `None` when `a` is not positive definite.
pub fn cholesky_solve(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let v = a[i * n + i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    let mut y = vec![0f64; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Some(x)
}

/// Eigenvalues (descending) and unit eigenvectors of a symmetric `n x n`
/// row-major matrix, by cyclic Jacobi rotations.
///
/// Jacobi is slower than tridiagonal QR for large `n` but is simple, accurate
/// to full relative precision for the small matrices met here (features x
/// features), and needs no dependency. Vector `k` is `vectors[k*n..(k+1)*n]`,
/// with its largest-magnitude entry made positive so signs are reproducible.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    // v is stored column-wise in rows: v[k*n + i] is entry i of vector k.
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * total || total == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let app = m[p * n + p];
                let aqq = m[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let mkp = m[k * n + p];
                    let mkq = m[k * n + q];
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[p * n + k];
                    let mqk = m[q * n + k];
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let vp = v[p * n + k];
                    let vq = v[q * n + k];
                    v[p * n + k] = c * vp - s * vq;
                    v[q * n + k] = s * vp + c * vq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| m[y * n + y].total_cmp(&m[x * n + x]));
    let values = order.iter().map(|&k| m[k * n + k]).collect();
    let mut vectors = Vec::with_capacity(n * n);
    for &k in &order {
        let col = &v[k * n..(k + 1) * n];
        let big = col
            .iter()
            .copied()
            .fold(0.0f64, |b, x| if x.abs() > b.abs() { x } else { b });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        vectors.extend(col.iter().map(|x| x * sign));
    }
    (values, vectors)
}

#[derive(Serialize)]
struct FileOut<'a, T> {
    format: &'a str,
    format_version: u32,
    algorithm: &'a str,
    model: &'a T,
}

#[derive(Deserialize)]
struct FileIn<T> {
    format: String,
    format_version: u32,
    algorithm: String,
    model: T,
}

/// Writes `dir/model.json` with the common header and `model` as the payload.
pub fn save_model_json<T: Serialize>(
    dir: &Path,
    algorithm: &str,
    version: u32,
    model: &T,
) -> Result<(), BuiltinError> {
    let path = dir.join("model.json");
    let text = serde_json::to_string(&FileOut {
        format: "pipeline-model",
        format_version: version,
        algorithm,
        model,
    })
    .map_err(|e| BuiltinError::failed(format!("write {}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| io_failed("write", &path, e))
}

/// Reads `dir/model.json`, checking its header names `algorithm` at a version this build reads.
pub fn load_model_json<T: DeserializeOwned>(
    dir: &Path,
    algorithm: &str,
    version: u32,
) -> Result<T, BuiltinError> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io_failed("read", &path, e))?;
    let f: FileIn<T> = serde_json::from_str(&text).map_err(|e| {
        BuiltinError::failed(format!(
            "read {}: not a {algorithm} model file: {e}",
            path.display()
        ))
    })?;
    if f.format != "pipeline-model" || f.algorithm != algorithm {
        return Err(BuiltinError::failed(format!(
            "read {}: holds a `{}` model, not `{algorithm}`",
            path.display(),
            f.algorithm
        )));
    }
    if f.format_version != version {
        return Err(BuiltinError::failed(format!(
            "read {}: {algorithm} model format version {} is not supported (this build reads version {version})",
            path.display(),
            f.format_version
        )));
    }
    Ok(f.model)
}

/// Rejects infinite feature values, naming the first one's row and column:
/// they would turn every mean, distance and weight into NaN.
pub fn reject_infinite(ds: &Dataset, channel: &str) -> Result<(), BuiltinError> {
    for c in ds.features() {
        if let Some(i) = c.values.iter().position(|v| v.is_infinite()) {
            return Err(BuiltinError::Data(
                DataError::new(
                    channel,
                    format!(
                        "data row {}: the value in column `{}` is infinite",
                        i + 1,
                        c.name
                    ),
                )
                .hint("replace it with a finite number, or leave it empty to mark it missing"),
            ));
        }
    }
    Ok(())
}

/// The error for a data set with no rows or no feature columns.
pub fn empty_data(channel: &str, what: &str) -> BuiltinError {
    BuiltinError::Data(
        DataError::new(channel, format!("has {what}"))
            .hint("give the algorithm at least one row and one feature column"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_matches_naive_product() {
        let mut rng = Rng::new(3);
        for &(n, d) in &[(1usize, 1usize), (7, 3), (300, 13), (5000, 9)] {
            let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
            let g = gram(&x, d, None);
            let shift: Vec<f32> = (0..d).map(|j| j as f32).collect();
            let gs = gram(&x, d, Some(&shift));
            for i in 0..d {
                for j in 0..d {
                    let want: f64 = (0..n)
                        .map(|r| x[r * d + i] as f64 * x[r * d + j] as f64)
                        .sum();
                    assert!((g[i * d + j] - want).abs() < 1e-4 * (1.0 + want.abs()));
                    let want: f64 = (0..n)
                        .map(|r| {
                            (x[r * d + i] - i as f32) as f64 * (x[r * d + j] - j as f32) as f64
                        })
                        .sum();
                    assert!((gs[i * d + j] - want).abs() < 1e-4 * (1.0 + want.abs()));
                }
            }
        }
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_f32(&a, &b) - want).abs() < 1e-3);
        assert_eq!(dot_f32(&[], &[]), 0.0);
    }

    #[test]
    fn cholesky_solves_and_rejects_indefinite() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&a, 2, &[2.0, 1.0]).unwrap();
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12);
        assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert!(cholesky_solve(&[1.0, 2.0, 2.0, 1.0], 2, &[1.0, 1.0]).is_none());
    }

    #[test]
    fn eigen_reconstructs_the_matrix() {
        let mut rng = Rng::new(9);
        let n = 6;
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[k * n + i] * b[k * n + j]).sum();
            }
        }
        let (vals, vecs) = symmetric_eigen(&a, n);
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n)
                    .map(|k| vals[k] * vecs[k * n + i] * vecs[k * n + j])
                    .sum();
                assert!((r - a[i * n + j]).abs() < 1e-9, "{r} vs {}", a[i * n + j]);
            }
        }
    }

    #[test]
    fn stats_impute_and_standardise() {
        let ds = Dataset::from_rows(
            &[
                vec![1.0, f32::NAN, 5.0],
                vec![3.0, f32::NAN, 5.0],
                vec![f32::NAN, f32::NAN, 5.0],
            ],
            None,
        );
        let s = FeatureStats::of(&ds);
        assert_eq!(s.mean, [2.0, 0.0, 5.0]);
        assert_eq!(s.scale, [1.0, 1.0, 1.0]);
        assert_eq!(
            s.matrix(&ds, false),
            [1.0, 0.0, 5.0, 3.0, 0.0, 5.0, 2.0, 0.0, 5.0]
        );
        assert_eq!(
            s.matrix(&ds, true),
            [-1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn infinite_values_are_rejected_with_their_place() {
        let ds = Dataset::from_rows(&[vec![1.0, 2.0], vec![3.0, f32::INFINITY]], None);
        let e = reject_infinite(&ds, "train data").unwrap_err().to_string();
        assert!(
            e.contains("data row 2: the value in column `f1` is infinite"),
            "{e}"
        );
        let fine = Dataset::from_rows(&[vec![1.0, f32::NAN]], None);
        assert!(reject_infinite(&fine, "train data").is_ok());
    }

    #[test]
    fn rng_is_reproducible() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(1);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(1);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert!(Rng::new(5).below(10) < 10);
    }
}
