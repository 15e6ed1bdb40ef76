//! The regularised objective every solver minimises, with its gradient.
//!
//! `F(theta) = mean_i loss(x_i W + b, y_i) + wd/2 |W|^2 (+ l1 |W|_1, handled
//! by the solvers that support it)`. `theta` holds `W` (`d x c`, row-major,
//! feature-major) followed by the bias `b` (`c`). Sums over rows run over
//! fixed blocks in parallel and are added in block order, so the value does
//! not depend on the thread count.

use crate::dense::{BLOCK_ROWS, gram_block_into, map_blocks, symmetrize_upper};

use super::params::Loss;
use crate::cluster::Cluster;
use crate::error::BuiltinError;

/// A data set and loss, ready for the solvers.
pub struct Problem<'a> {
    /// Row-major `n x d` features (already imputed and, if asked, standardised).
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub n: usize,
    pub d: usize,
    /// Outputs a row: 1, or the number of classes for softmax.
    pub c: usize,
    pub loss: Loss,
    pub wd: f64,
    pub use_bias: bool,
    /// The nodes whose rows make up the data (this node's rows are `x`).
    pub cluster: &'a dyn Cluster,
    /// Rows over every node (the `n` of the mean loss).
    pub n_total: usize,
    /// The first communication failure, if any (the values are then NaN).
    pub failure: std::sync::Mutex<Option<BuiltinError>>,
}

impl Problem<'_> {
    pub fn dim(&self) -> usize {
        self.d * self.c + self.c
    }

    /// Scores of one row: `x W + b`, in `f64` so that objective values stay
    /// comparable down to tiny differences near the optimum.
    #[inline(always)]
    fn scores(&self, row: &[f32], w: &[f64], b: &[f64], out: &mut [f64]) {
        out.copy_from_slice(b);
        if self.c == 1 {
            // Four partial sums let the compiler keep several multiply-adds in flight.
            let mut acc = [0f64; 4];
            let mut rc = row.chunks_exact(4);
            let mut wc = w.chunks_exact(4);
            for (r, w) in (&mut rc).zip(&mut wc) {
                for k in 0..4 {
                    acc[k] += r[k] as f64 * w[k];
                }
            }
            let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            for (x, w) in rc.remainder().iter().zip(wc.remainder()) {
                s += *x as f64 * w;
            }
            out[0] += s;
        } else {
            for (j, &xj) in row.iter().enumerate() {
                let xj = xj as f64;
                for (o, w) in out.iter_mut().zip(&w[j * self.c..(j + 1) * self.c]) {
                    *o += xj * w;
                }
            }
        }
    }

    /// Loss of one row given its scores, and `d loss / d score` into `r`.
    #[inline]
    fn loss_grad(&self, s: &[f64], y: f32, r: &mut [f64]) -> f64 {
        match self.loss {
            Loss::Squared => {
                let e = s[0] - y as f64;
                r[0] = e;
                0.5 * e * e
            }
            Loss::Logistic => {
                let z = s[0];
                let p = sigmoid(z);
                r[0] = p - y as f64;
                softplus(z) - y as f64 * z
            }
            Loss::Softmax => {
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut tot = 0.0;
                for (ri, &si) in r.iter_mut().zip(s) {
                    *ri = (si - m).exp();
                    tot += *ri;
                }
                for ri in r.iter_mut() {
                    *ri /= tot;
                }
                let yi = y as usize;
                let loss = tot.ln() + m - s[yi];
                r[yi] -= 1.0;
                loss
            }
        }
    }

    /// Summed loss over rows `rows` (the penalty not included) and its
    /// gradient (summed, not yet divided) accumulated into `g`.
    fn block_value_grad(
        &self,
        rows: std::ops::Range<usize>,
        w: &[f64],
        b: &[f64],
        g: &mut [f64],
    ) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.block_value_grad_avx2(rows, w, b, g) };
        }
        self.block_value_grad_portable(rows, w, b, g)
    }

    /// The same loop compiled for 256-bit vectors; nothing is fused or
    /// reordered, so results are bit-identical to the portable version.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_value_grad_avx2(
        &self,
        rows: std::ops::Range<usize>,
        w: &[f64],
        b: &[f64],
        g: &mut [f64],
    ) -> f64 {
        self.block_value_grad_portable(rows, w, b, g)
    }

    #[inline(always)]
    fn block_value_grad_portable(
        &self,
        rows: std::ops::Range<usize>,
        w: &[f64],
        b: &[f64],
        g: &mut [f64],
    ) -> f64 {
        let (d, c) = (self.d, self.c);
        let mut s = vec![0f64; c];
        let mut r = vec![0f64; c];
        let mut total = 0.0;
        let (gw, gb) = g.split_at_mut(d * c);
        for i in rows {
            let row = &self.x[i * d..(i + 1) * d];
            self.scores(row, w, b, &mut s);
            total += self.loss_grad(&s, self.y[i], &mut r);
            if c == 1 {
                let r0 = r[0];
                for (gj, &xj) in gw.iter_mut().zip(row) {
                    *gj += r0 * xj as f64;
                }
            } else {
                for (j, &xj) in row.iter().enumerate() {
                    let xj = xj as f64;
                    for (gj, rk) in gw[j * c..(j + 1) * c].iter_mut().zip(&r) {
                        *gj += xj * rk;
                    }
                }
            }
            for (gk, rk) in gb.iter_mut().zip(&r) {
                *gk += rk;
            }
        }
        total
    }

    /// Sums `v` over the nodes. A lost node ends training: the solvers have
    /// no error path, and every node stops the same way.
    fn reduce(&self, v: &mut [f64]) {
        if let Err(e) = self.cluster.allreduce_sum_f64(v) {
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            v.iter_mut().for_each(|x| *x = f64::NAN);
        }
    }

    fn split<'t>(&self, theta: &'t [f64]) -> (&'t [f64], &'t [f64]) {
        theta.split_at(self.d * self.c)
    }

    /// Smooth part of the objective (mean loss + L2) and its gradient.
    pub fn value_grad(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (w, b) = self.split(theta);
        let dim = self.dim();
        let parts = map_blocks(self.n, BLOCK_ROWS, |r| {
            let mut g = vec![0f64; dim];
            let v = self.block_value_grad(r, w, b, &mut g);
            (v, g)
        });
        let mut value = 0.0;
        let mut grad = vec![0f64; dim];
        for (v, g) in parts {
            value += v;
            grad.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
        if self.cluster.size() > 1 {
            grad.push(value);
            self.reduce(&mut grad);
            value = grad.pop().expect("the value was pushed");
        }
        let inv = 1.0 / self.n_total as f64;
        value *= inv;
        grad.iter_mut().for_each(|g| *g *= inv);
        let wpart = self.d * self.c;
        for (g, t) in grad[..wpart].iter_mut().zip(&theta[..wpart]) {
            *g += self.wd * t;
        }
        value += 0.5 * self.wd * theta[..wpart].iter().map(|t| t * t).sum::<f64>();
        if !self.use_bias {
            grad[wpart..].iter_mut().for_each(|g| *g = 0.0);
        }
        (value, grad)
    }

    /// Gradient of the mean loss over the rows `rows` only (for mini-batches),
    /// with the L2 term added; returns the batch's mean loss.
    pub fn batch_grad(&self, theta: &[f64], rows: &[usize], g: &mut [f64]) -> f64 {
        let (w, b) = self.split(theta);
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut total = 0.0;
        for &i in rows {
            total += self.block_value_grad(i..i + 1, w, b, g);
        }
        let inv = 1.0 / rows.len().max(1) as f64;
        g.iter_mut().for_each(|v| *v *= inv);
        let wpart = self.d * self.c;
        for (gj, t) in g[..wpart].iter_mut().zip(&theta[..wpart]) {
            *gj += self.wd * t;
        }
        if !self.use_bias {
            g[wpart..].iter_mut().for_each(|v| *v = 0.0);
        }
        total * inv
    }

    /// Hessian of the smooth objective for one output (`c == 1`: logistic or
    /// squared loss), `(d + 1) x (d + 1)` with the bias last: `X~^T S X~ / n +
    /// wd I` where `S` holds the per-row second derivatives. Built as the Gram
    /// matrix of rows scaled by `sqrt(s_i)`, by the same tiled kernel as PCA.
    pub fn hessian(&self, theta: &[f64]) -> Vec<f64> {
        let d = self.d;
        let m = d + 1;
        let (w, b) = self.split(theta);
        const SUB: usize = 256;
        // Rows padded with zeros to a multiple of 8 columns keep every tile
        // of the Gram kernel full (and vectorised); the padding is dropped below.
        let mp = m.div_ceil(8) * 8;
        let parts = map_blocks(self.n, BLOCK_ROWS, |rows| {
            let mut acc = vec![0f64; mp * mp];
            let mut scratch = vec![0f32; SUB * mp];
            let mut s = [0f64; 1];
            let idx: Vec<usize> = rows.collect();
            for sub in idx.chunks(SUB) {
                for (k, &i) in sub.iter().enumerate() {
                    let row = &self.x[i * d..(i + 1) * d];
                    let h = match self.loss {
                        Loss::Squared => 1.0,
                        _ => {
                            self.scores(row, w, b, &mut s);
                            let p = sigmoid(s[0]);
                            p * (1.0 - p)
                        }
                    };
                    let sq = h.sqrt() as f32;
                    let out = &mut scratch[k * mp..(k + 1) * mp];
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o = v * sq;
                    }
                    out[d] = sq;
                }
                gram_block_into(&scratch[..sub.len() * mp], mp, &mut acc);
            }
            acc
        });
        let mut h = vec![0f64; m * m];
        for p in parts {
            for i in 0..m {
                for j in 0..m {
                    h[i * m + j] += p[i * mp + j];
                }
            }
        }
        symmetrize_upper(&mut h, m);
        self.reduce(&mut h);
        let inv = 1.0 / self.n_total as f64;
        h.iter_mut().for_each(|v| *v *= inv);
        for j in 0..d {
            h[j * m + j] += self.wd;
        }
        if !self.use_bias {
            for j in 0..m {
                h[j * m + d] = 0.0;
                h[d * m + j] = 0.0;
            }
            h[d * m + d] = 1.0;
        }
        h
    }
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}
