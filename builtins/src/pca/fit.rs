//! The two ways of computing principal components.

use rayon::prelude::*;

use crate::dense::{BLOCK_ROWS, Rng, gram, map_blocks, symmetric_eigen};

/// Components and how much variance each explains.
pub struct Fit {
    /// `k x d`, row-major, unit rows, largest-magnitude entry of each positive.
    pub components: Vec<f32>,
    /// Variance along each component (`n - 1` in the denominator).
    pub explained_variance: Vec<f64>,
    /// Share of the total variance along each component.
    pub explained_variance_ratio: Vec<f64>,
    /// Singular values of the (centred) data matrix along each component.
    pub singular_values: Vec<f64>,
}

/// Exact: the covariance matrix and its full eigendecomposition.
pub fn regular(x: &[f32], d: usize, shift: Option<&[f32]>, k: usize) -> Fit {
    from_gram(gram(x, d, shift), d, k, x.len() / d)
}

/// [`regular`] from the Gram matrix of the (shifted) rows, `n` of them
/// (with several nodes: the sum of every node's Gram matrix).
pub fn from_gram(mut cov: Vec<f64>, d: usize, k: usize, n: usize) -> Fit {
    let denom = (n - 1) as f64;
    cov.iter_mut().for_each(|v| *v /= denom);
    let total: f64 = (0..d).map(|j| cov[j * d + j]).sum();
    let (values, vectors) = symmetric_eigen(&cov, d);
    let explained: Vec<f64> = values[..k].iter().map(|v| v.max(0.0)).collect();
    let components = vectors[..k * d].iter().map(|&v| v as f32).collect();
    finish(components, explained, total, denom)
}

/// Randomized range finder: `k + oversampling` seeded Gaussian directions,
/// power iterations with re-orthonormalisation, then the exact decomposition
/// of the data projected on the range found.
pub fn randomized(
    x: &[f32],
    d: usize,
    shift: Option<&[f32]>,
    k: usize,
    oversampling: usize,
    seed: u64,
) -> Fit {
    let n = x.len() / d;
    let denom = (n - 1) as f64;
    // More directions than rows is fine: the extra ones orthonormalise to zero.
    let l = (k + oversampling).min(d);
    let zero = vec![0f32; d];
    let m = shift.unwrap_or(&zero);
    let mut rng = Rng::new(seed);
    let mut omega: Vec<f32> = (0..d * l).map(|_| rng.normal() as f32).collect();
    // Power iterations sharpen the spectrum; scikit-learn's choice of count.
    let power = if (k as f64) < 0.1 * d.min(n) as f64 {
        7
    } else {
        4
    };
    let mut y = times(x, d, m, &omega, l);
    orthonormalise(&mut y, l);
    for _ in 0..power {
        omega = transpose_times(x, d, m, &y, l);
        orthonormalise(&mut omega, l);
        y = times(x, d, m, &omega, l);
        orthonormalise(&mut y, l);
    }
    // B^T = Xc^T Q is d x l; the right singular vectors of B are those of Xc.
    let bt = transpose_times(x, d, m, &y, l);
    let mut bbt = vec![0f64; l * l];
    for a in 0..l {
        for b in 0..l {
            bbt[a * l + b] = (0..d)
                .map(|j| bt[j * l + a] as f64 * bt[j * l + b] as f64)
                .sum();
        }
    }
    let (values, u) = symmetric_eigen(&bbt, l);
    let mut components = Vec::with_capacity(k * d);
    let mut explained = Vec::with_capacity(k);
    for c in 0..k {
        let s2 = values[c].max(0.0);
        let s = s2.sqrt();
        let uc = &u[c * l..(c + 1) * l];
        for j in 0..d {
            let v: f64 = (0..l).map(|a| bt[j * l + a] as f64 * uc[a]).sum();
            components.push(if s > 0.0 { (v / s) as f32 } else { 0.0 });
        }
        explained.push(s2 / denom);
    }
    let total = total_variance(x, d, m) / denom;
    finish(components, explained, total, denom)
}

fn finish(mut components: Vec<f32>, explained: Vec<f64>, total: f64, denom: f64) -> Fit {
    let d = components.len() / explained.len().max(1);
    for row in components.chunks_exact_mut(d.max(1)) {
        let big = row
            .iter()
            .copied()
            .fold(0f32, |b, v| if v.abs() > b.abs() { v } else { b });
        if big < 0.0 {
            row.iter_mut().for_each(|v| *v = -*v);
        }
    }
    let ratio = explained
        .iter()
        .map(|v| if total > 0.0 { v / total } else { 0.0 })
        .collect();
    let singular_values = explained.iter().map(|v| (v * denom).sqrt()).collect();
    Fit {
        components,
        explained_variance: explained,
        explained_variance_ratio: ratio,
        singular_values,
    }
}

/// `(x - m) w` for row-major `x` (`n x d`) and `w` (`d x l`): `n x l`.
fn times(x: &[f32], d: usize, m: &[f32], w: &[f32], l: usize) -> Vec<f32> {
    let n = x.len() / d;
    let mut out = vec![0f32; n * l];
    out.par_chunks_mut(BLOCK_ROWS * l)
        .enumerate()
        .for_each(|(b, o)| {
            let r0 = b * BLOCK_ROWS;
            for (i, orow) in o.chunks_exact_mut(l).enumerate() {
                let row = &x[(r0 + i) * d..(r0 + i + 1) * d];
                for j in 0..d {
                    let v = row[j] - m[j];
                    let wr = &w[j * l..(j + 1) * l];
                    orow.iter_mut().zip(wr).for_each(|(a, w)| *a += v * w);
                }
            }
        });
    out
}

/// `(x - m)^T y` for row-major `x` (`n x d`) and `y` (`n x l`): `d x l`,
/// summed in `f64` over fixed blocks in order.
fn transpose_times(x: &[f32], d: usize, m: &[f32], y: &[f32], l: usize) -> Vec<f32> {
    let n = x.len() / d;
    let parts = map_blocks(n, BLOCK_ROWS, |r| {
        let mut acc = vec![0f64; d * l];
        let mut tile = vec![0f32; d * l];
        for sub in r.clone().collect::<Vec<_>>().chunks(256) {
            tile.iter_mut().for_each(|v| *v = 0.0);
            for &i in sub {
                let row = &x[i * d..(i + 1) * d];
                let yr = &y[i * l..(i + 1) * l];
                for j in 0..d {
                    let v = row[j] - m[j];
                    tile[j * l..(j + 1) * l]
                        .iter_mut()
                        .zip(yr)
                        .for_each(|(a, y)| *a += v * y);
                }
            }
            acc.iter_mut().zip(&tile).for_each(|(a, t)| *a += *t as f64);
        }
        acc
    });
    let mut total = vec![0f64; d * l];
    for p in parts {
        total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    total.into_iter().map(|v| v as f32).collect()
}

/// Orthonormalises the `l` columns of the row-major `rows x l` matrix `a`
/// (modified Gram-Schmidt, twice, in `f64`). A column that vanishes (the data
/// has lower rank) becomes zero rather than noise.
fn orthonormalise(a: &mut [f32], l: usize) {
    let rows = a.len() / l;
    let mut cols: Vec<Vec<f64>> = (0..l)
        .map(|c| (0..rows).map(|r| a[r * l + c] as f64).collect())
        .collect();
    let norms0: Vec<f64> = cols.iter().map(|c| dot(c, c).sqrt()).collect();
    for _pass in 0..2 {
        for (c, &norm0) in norms0.iter().enumerate() {
            let (done, rest) = cols.split_at_mut(c);
            let cur = &mut rest[0];
            for prev in done.iter() {
                let p = dot(prev, cur);
                cur.iter_mut().zip(prev).for_each(|(v, q)| *v -= p * q);
            }
            let nrm = dot(cur, cur).sqrt();
            if nrm > 1e-10 * norm0.max(f64::MIN_POSITIVE) {
                cur.iter_mut().for_each(|v| *v /= nrm);
            } else {
                cur.iter_mut().for_each(|v| *v = 0.0);
            }
        }
    }
    for (c, col) in cols.iter().enumerate() {
        for (r, v) in col.iter().enumerate() {
            a[r * l + c] = *v as f32;
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.chunks(BLOCK_ROWS)
        .zip(b.chunks(BLOCK_ROWS))
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>())
        .sum()
}

fn total_variance(x: &[f32], d: usize, m: &[f32]) -> f64 {
    map_blocks(x.len() / d, BLOCK_ROWS, |r| {
        x[r.start * d..r.end * d]
            .chunks_exact(d)
            .map(|row| {
                row.iter()
                    .zip(m)
                    .map(|(v, m)| ((v - m) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
    })
    .iter()
    .sum()
}

impl Fit {
    /// The fit as bytes, to send to other nodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        use crate::cluster::{encode_parts, f32_bytes, f64_bytes};
        encode_parts(&[
            f32_bytes(&self.components),
            f64_bytes(&self.explained_variance),
            f64_bytes(&self.explained_variance_ratio),
            f64_bytes(&self.singular_values),
        ])
    }

    pub fn from_bytes(b: &[u8]) -> Result<Fit, crate::error::BuiltinError> {
        use crate::cluster::{bytes_f32, bytes_f64, decode_parts};
        let p = decode_parts(b)?;
        if p.len() != 4 {
            return Err(crate::error::BuiltinError::failed(
                "a malformed pca fit from the main node",
            ));
        }
        Ok(Fit {
            components: bytes_f32(&p[0]),
            explained_variance: bytes_f64(&p[1]),
            explained_variance_ratio: bytes_f64(&p[2]),
            singular_values: bytes_f64(&p[3]),
        })
    }
}
