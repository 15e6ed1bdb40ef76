//! Clustering metrics: inertia and the silhouette coefficient.
//!
//! The silhouette needs every pairwise distance, so on inputs larger than a
//! bound it is computed on a seeded random sample of rows (exact below it);
//! the rows of the sample are scored in parallel and summed in row order, so
//! the value does not depend on the thread count.

use rayon::prelude::*;

use super::input::Features;
use crate::split::rng::Rng;

/// Sum of squared Euclidean distances of rows to the mean of their cluster.
pub fn inertia(features: &Features, labels: &[usize]) -> f64 {
    let k = labels.iter().map(|&l| l + 1).max().unwrap_or(0);
    let d = features.n_cols;
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0.0; k];
    for (i, &l) in labels.iter().enumerate() {
        counts[l] += 1.0;
        for (s, x) in sums[l * d..(l + 1) * d].iter_mut().zip(features.row(i)) {
            *s += x;
        }
    }
    for (l, &c) in counts.iter().enumerate() {
        if c > 0.0 {
            sums[l * d..(l + 1) * d].iter_mut().for_each(|s| *s /= c);
        }
    }
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| sq_dist(features.row(i), &sums[l * d..(l + 1) * d]))
        .sum()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Adds the distance from `xi` to every row of `xs` (`d` values a row) into
/// `sums[labels[j]]`. The hot loop of the silhouette: eight independent
/// partial sums let the compiler use vector instructions (a single running
/// sum may not be reordered).
#[inline(always)]
fn distance_sums_body(xi: &[f64], xs: &[f64], d: usize, labels: &[usize], sums: &mut [f64]) {
    for (xj, &l) in xs.chunks_exact(d).zip(labels) {
        let mut acc = [0.0f64; 8];
        let (ca, cb) = (xi.chunks_exact(8), xj.chunks_exact(8));
        let mut tail = 0.0;
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            tail += (x - y) * (x - y);
        }
        for (x, y) in ca.zip(cb) {
            for k in 0..8 {
                let t = x[k] - y[k];
                acc[k] += t * t;
            }
        }
        let s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        sums[l] += (s + tail).sqrt();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn distance_sums_avx2(xi: &[f64], xs: &[f64], d: usize, labels: &[usize], sums: &mut [f64]) {
    distance_sums_body(xi, xs, d, labels, sums)
}

/// `(xi, xs, d, labels, sums)`: see [`distance_sums_body`].
type DistanceSums = fn(&[f64], &[f64], usize, &[usize], &mut [f64]);

/// The widest kernel this processor runs, chosen once per call.
fn distance_sums_kernel() -> DistanceSums {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return |xi, xs, d, labels, sums| {
            // SAFETY: the processor was just found to support AVX2 and FMA.
            unsafe { distance_sums_avx2(xi, xs, d, labels, sums) }
        };
    }
    distance_sums_body
}

/// Mean silhouette coefficient over the rows (or a seeded sample of
/// `max_rows` of them). `None` when it is undefined: fewer than 2 clusters,
/// or as many clusters as rows.
pub fn silhouette(
    features: &Features,
    labels: &[usize],
    max_rows: usize,
    seed: u64,
) -> Option<f64> {
    let n = labels.len();
    let rows: Vec<usize> = if n > max_rows {
        let mut all: Vec<usize> = (0..n).collect();
        let mut rng = Rng::new(seed);
        // Partial Fisher-Yates: the first `max_rows` positions are a uniform sample.
        for i in 0..max_rows {
            let j = i + rng.below(n - i);
            all.swap(i, j);
        }
        all.truncate(max_rows);
        all.sort_unstable();
        all
    } else {
        (0..n).collect()
    };
    let m = rows.len();
    let k = rows.iter().map(|&i| labels[i] + 1).max().unwrap_or(0);
    let mut sizes = vec![0usize; k];
    for &i in &rows {
        sizes[labels[i]] += 1;
    }
    let n_clusters = sizes.iter().filter(|&&s| s > 0).count();
    if n_clusters < 2 || n_clusters >= m {
        return None;
    }
    // The sample as one contiguous block, so the hot loop streams through memory.
    let d = features.n_cols;
    let mut xs = Vec::with_capacity(m * d);
    for &i in &rows {
        xs.extend_from_slice(features.row(i));
    }
    let ls: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    let kernel = distance_sums_kernel();
    let scores: Vec<f64> = (0..m)
        .into_par_iter()
        .map(|r| {
            let own = ls[r];
            if sizes[own] <= 1 {
                return 0.0;
            }
            let mut dist_sum = vec![0.0; k];
            kernel(&xs[r * d..(r + 1) * d], &xs, d.max(1), &ls, &mut dist_sum);
            let a = dist_sum[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| dist_sum[c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            let den = a.max(b);
            if den > 0.0 { (b - a) / den } else { 0.0 }
        })
        .collect();
    Some(scores.iter().sum::<f64>() / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(rows: &[[f64; 2]]) -> Features {
        Features {
            n_rows: rows.len(),
            n_cols: 2,
            values: rows.iter().flatten().copied().collect(),
        }
    }

    #[test]
    fn two_tight_clusters() {
        let f = feats(&[[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]]);
        let labels = [0, 0, 1, 1];
        assert_eq!(inertia(&f, &labels), 1.0);
        let s = silhouette(&f, &labels, 100, 0).unwrap();
        let b = (10.0 + 101f64.sqrt()) / 2.0;
        assert!((s - (b - 1.0) / b).abs() < 1e-12);
        assert_eq!(silhouette(&f, &[0, 0, 0, 0], 100, 0), None);
    }

    #[test]
    fn the_vector_kernel_matches_a_plain_loop() {
        // 11 columns: one block of eight and a remainder of three
        let (n, d) = (40, 11);
        let values: Vec<f64> = (0..n * d).map(|i| ((i * 37) % 101) as f64 / 7.0).collect();
        let f = Features {
            n_rows: n,
            n_cols: d,
            values,
        };
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let mut expected = 0.0;
        for i in 0..n {
            let mut sums = [0.0; 3];
            for j in 0..n {
                sums[labels[j]] += sq_dist(f.row(i), f.row(j)).sqrt();
            }
            let own = labels[i];
            let size = |c: usize| labels.iter().filter(|&&l| l == c).count() as f64;
            let a = sums[own] / (size(own) - 1.0);
            let b = (0..3)
                .filter(|&c| c != own)
                .map(|c| sums[c] / size(c))
                .fold(f64::INFINITY, f64::min);
            expected += (b - a) / a.max(b);
        }
        expected /= n as f64;
        let got = silhouette(&f, &labels, 100, 0).unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn sampling_is_seeded() {
        let rows: Vec<[f64; 2]> = (0..300)
            .map(|i| {
                [
                    (i % 3) as f64 * 5.0 + (i as f64 * 0.37).sin(),
                    (i as f64 * 0.11).cos(),
                ]
            })
            .collect();
        let labels: Vec<usize> = (0..300).map(|i| i % 3).collect();
        let f = feats(&rows);
        let a = silhouette(&f, &labels, 50, 9).unwrap();
        assert_eq!(a, silhouette(&f, &labels, 50, 9).unwrap());
        let exact = silhouette(&f, &labels, 1000, 9).unwrap();
        assert!((a - exact).abs() < 0.1, "{a} vs {exact}");
    }
}
