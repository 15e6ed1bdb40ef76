//! Metrics of a projection (PCA): explained variance ratio and reconstruction error.
//!
//! A projection's predictions are its components, not the axes it projects
//! on, so both metrics come from the best affine reconstruction of the
//! features from the components (least squares of the features on the
//! components plus an intercept). On the data PCA was fitted on this is
//! exactly PCA's own reconstruction, so the ratio equals the sum of
//! scikit-learn's `explained_variance_ratio_` and the error its
//! `inverse_transform` error; and because that reconstruction is optimal, the
//! rounding of the components to `f32` barely moves either figure.

use super::input::Features;

/// Residual and total sums of squares of the features about their mean.
pub struct Reconstruction {
    pub residual_ss: f64,
    pub total_ss: f64,
    pub n_rows: usize,
}

impl Reconstruction {
    /// Share of the features' total variance the components keep.
    pub fn explained_variance_ratio(&self) -> f64 {
        if self.total_ss == 0.0 {
            1.0
        } else {
            1.0 - self.residual_ss / self.total_ss
        }
    }

    /// Mean over rows of the squared distance between a row and its reconstruction.
    pub fn error(&self) -> f64 {
        if self.n_rows == 0 {
            0.0
        } else {
            self.residual_ss / self.n_rows as f64
        }
    }
}

/// Fits the features (`n x d`) from the components (`n x k`, row-major).
pub fn reconstruct(features: &Features, components: &[f64], k: usize) -> Reconstruction {
    let n = features.n_rows;
    let d = features.n_cols;
    let mean_of = |values: &[f64], width: usize| -> Vec<f64> {
        let mut m = vec![0.0; width];
        for row in values.chunks_exact(width.max(1)).take(n) {
            for (s, v) in m.iter_mut().zip(row) {
                *s += v;
            }
        }
        m.iter_mut().for_each(|s| *s /= n.max(1) as f64);
        m
    };
    let mx = mean_of(&features.values, d);
    let mz = mean_of(components, k);
    // Normal equations (Zc' Zc) B = Zc' Xc.
    let mut a = vec![0.0; k * k];
    let mut rhs = vec![0.0; k * d];
    let mut zc = vec![0.0; k];
    for i in 0..n {
        for (j, z) in zc.iter_mut().enumerate() {
            *z = components[i * k + j] - mz[j];
        }
        let x = features.row(i);
        for r in 0..k {
            for c in 0..k {
                a[r * k + c] += zc[r] * zc[c];
            }
            for c in 0..d {
                rhs[r * d + c] += zc[r] * (x[c] - mx[c]);
            }
        }
    }
    let b = solve(&mut a, &mut rhs, k, d);
    let (mut residual_ss, mut total_ss) = (0.0, 0.0);
    for i in 0..n {
        let x = features.row(i);
        for c in 0..d {
            let xc = x[c] - mx[c];
            let fit: f64 = (0..k)
                .map(|r| (components[i * k + r] - mz[r]) * b[r * d + c])
                .sum();
            residual_ss += (xc - fit) * (xc - fit);
            total_ss += xc * xc;
        }
    }
    Reconstruction {
        residual_ss,
        total_ss,
        n_rows: n,
    }
}

/// Solves `a x = rhs` (`a` is `k x k`, `rhs` `k x d`) by Gaussian elimination
/// with partial pivoting. A component that is constant or a combination of the
/// others adds nothing to the fit, so a vanishing pivot drops it.
fn solve(a: &mut [f64], rhs: &mut [f64], k: usize, d: usize) -> Vec<f64> {
    let scale = (0..k).map(|i| a[i * k + i].abs()).fold(0.0, f64::max);
    let mut dropped = vec![false; k];
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&x, &y| a[x * k + col].abs().total_cmp(&a[y * k + col].abs()))
            .unwrap_or(col);
        if a[piv * k + col].abs() <= scale * 1e-12 {
            dropped[col] = true;
            continue;
        }
        if piv != col {
            for c in 0..k {
                a.swap(piv * k + c, col * k + c);
            }
            for c in 0..d {
                rhs.swap(piv * d + c, col * d + c);
            }
        }
        for r in 0..k {
            if r == col {
                continue;
            }
            let f = a[r * k + col] / a[col * k + col];
            if f == 0.0 {
                continue;
            }
            for c in col..k {
                a[r * k + c] -= f * a[col * k + c];
            }
            for c in 0..d {
                rhs[r * d + c] -= f * rhs[col * d + c];
            }
        }
    }
    let mut x = vec![0.0; k * d];
    for r in 0..k {
        if dropped[r] {
            continue;
        }
        for c in 0..d {
            x[r * d + c] = rhs[r * d + c] / a[r * k + r];
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_one_cloud_is_fully_explained_by_its_axis() {
        // points on the line (1, 2) t + (3, -1)
        let ts = [-2.0, -0.5, 0.0, 1.0, 4.0];
        let values: Vec<f64> = ts.iter().flat_map(|t| [3.0 + t, -1.0 + 2.0 * t]).collect();
        let f = Features {
            n_rows: 5,
            n_cols: 2,
            values,
        };
        let z: Vec<f64> = ts.iter().map(|t| t * 5f64.sqrt()).collect();
        let r = reconstruct(&f, &z, 1);
        assert!((r.explained_variance_ratio() - 1.0).abs() < 1e-12);
        assert!(r.error() < 1e-20);
        // a constant component explains nothing and does not break the solve
        let r0 = reconstruct(&f, &[1.0; 5], 1);
        assert!(r0.explained_variance_ratio().abs() < 1e-12);
        assert!((r0.error() - r0.total_ss / 5.0).abs() < 1e-12);
    }
}
