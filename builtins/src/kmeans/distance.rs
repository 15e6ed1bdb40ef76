//! Squared distances from a block of rows to every centre, as a matrix product.
//!
//! `|x - c|^2 = |x|^2 - 2 x.c + |c|^2`: the cross term for a block of rows and
//! all centres is a small GEMM. The centres are stored transposed and padded
//! (`d x k_pad`) so the micro-kernel keeps a 4-row x 16-centre tile of sums in
//! registers and streams one contiguous run of centre values per feature.

/// Centres laid out for the distance kernel.
pub struct CentresT {
    pub k: usize,
    pub k_pad: usize,
    pub d: usize,
    /// `d x k_pad`, row-major: `t[j * k_pad + c]` is feature `j` of centre `c`.
    pub t: Vec<f32>,
    /// `|c|^2`, padded entries `+inf` so they never win an argmin.
    pub norms: Vec<f32>,
}

const TR: usize = 4;
const TC: usize = 16;

impl CentresT {
    pub fn new(centres: &[f32], d: usize) -> Self {
        let k = centres.len() / d;
        let k_pad = k.div_ceil(TC) * TC;
        let mut t = vec![0f32; d * k_pad];
        let mut norms = vec![f32::INFINITY; k_pad];
        for c in 0..k {
            let row = &centres[c * d..(c + 1) * d];
            for j in 0..d {
                t[j * k_pad + c] = row[j];
            }
            norms[c] = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() as f32;
        }
        CentresT {
            k,
            k_pad,
            d,
            t,
            norms,
        }
    }

    /// For each row of the row-major block `x`, the closest centre and its
    /// squared distance (clamped at 0, as rounding can make it slightly negative).
    pub fn nearest(&self, x: &[f32], labels: &mut [u32], dist: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.nearest_avx2(x, labels, dist) };
            return;
        }
        self.nearest_portable(x, labels, dist);
    }

    /// The same loop compiled for 256-bit vectors. No operation is fused or
    /// reordered by the wider code (each sum still runs over features in
    /// order), so results are bit-identical to the portable version.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn nearest_avx2(&self, x: &[f32], labels: &mut [u32], dist: &mut [f32]) {
        self.nearest_portable(x, labels, dist);
    }

    #[inline(always)]
    pub(super) fn nearest_portable(&self, x: &[f32], labels: &mut [u32], dist: &mut [f32]) {
        let d = self.d;
        let kp = self.k_pad;
        let rows = x.len() / d;
        let mut dots = vec![0f32; TR * kp];
        let mut r0 = 0;
        while r0 < rows {
            let tr = TR.min(rows - r0);
            self.dot_tile(&x[r0 * d..(r0 + tr) * d], tr, &mut dots);
            for i in 0..tr {
                let row = &x[(r0 + i) * d..(r0 + i + 1) * d];
                let xn = sq_norm(row);
                let mut best = f32::INFINITY;
                let mut arg = 0u32;
                for c in 0..self.k {
                    let v = self.norms[c] - 2.0 * dots[i * kp + c];
                    if v < best {
                        best = v;
                        arg = c as u32;
                    }
                }
                labels[r0 + i] = arg;
                dist[r0 + i] = (best + xn).max(0.0);
            }
            r0 += tr;
        }
    }

    /// `dots[i * k_pad + c] = x_i . c` for the `tr <= 4` rows of `x`.
    #[inline(always)]
    fn dot_tile(&self, x: &[f32], tr: usize, dots: &mut [f32]) {
        let d = self.d;
        let kp = self.k_pad;
        for c0 in (0..kp).step_by(TC) {
            let mut acc = [[0f32; TC]; TR];
            if tr == TR {
                let (x0, rest) = x.split_at(d);
                let (x1, rest) = rest.split_at(d);
                let (x2, x3) = rest.split_at(d);
                for j in 0..d {
                    let base = j * kp + c0;
                    let Ok(ct) = <&[f32; TC]>::try_from(&self.t[base..base + TC]) else {
                        continue;
                    };
                    let (a0, a1, a2, a3) = (x0[j], x1[j], x2[j], x3[j]);
                    for l in 0..TC {
                        acc[0][l] += a0 * ct[l];
                        acc[1][l] += a1 * ct[l];
                        acc[2][l] += a2 * ct[l];
                        acc[3][l] += a3 * ct[l];
                    }
                }
            } else {
                for j in 0..d {
                    let ct = &self.t[j * kp + c0..j * kp + c0 + TC];
                    for (r, acc_r) in acc.iter_mut().enumerate().take(tr) {
                        let a = x[r * d + j];
                        for (l, v) in acc_r.iter_mut().enumerate() {
                            *v += a * ct[l];
                        }
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(tr) {
                dots[r * kp + c0..r * kp + c0 + TC].copy_from_slice(acc_r);
            }
        }
    }
}

/// Squared distance in `f32` with eight running sums, so it vectorises; the
/// pairing of terms is fixed, so the value is the same on every machine.
#[inline(always)]
pub fn sq_dist_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..8 {
            let t = x[k] - y[k];
            acc[k] += t * t;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        let t = x - y;
        s += t * t;
    }
    s
}

/// `|a|^2` in `f32` with eight running sums in a fixed pairing (vectorises,
/// and gives the same value on every machine).
#[inline(always)]
fn sq_norm(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ac = a.chunks_exact(8);
    for x in &mut ac {
        for k in 0..8 {
            acc[k] += x[k] * x[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for x in ac.remainder() {
        s += x * x;
    }
    s
}

/// Exact squared distance, for the figures reported to people.
pub fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let t = (x - y) as f64;
            t * t
        })
        .sum()
}
