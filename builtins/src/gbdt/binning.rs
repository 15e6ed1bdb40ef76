//! Quantile binning: every feature value becomes a one-byte bin index.
//!
//! Training never looks at raw values again after this step: histograms are
//! indexed by bin, and a split "bin <= b" is stored as the raw threshold
//! `value < cuts[b]`, which sends exactly the same training rows left because
//! bins are defined by those same cuts. That equivalence is what lets a saved
//! model predict raw data and agree with what training saw.
//!
//! Bins are kept twice, as one-byte indices. Column-major (one contiguous run
//! a feature) serves partitioning, which reads a single feature of a node's
//! rows: a 1M-row column is 1 MB and stays in cache. Row-major (a row's bins
//! are `n_features` consecutive bytes) serves histograms, which read every
//! feature of a node's rows: deep in a tree those rows are scattered, and one
//! row then costs one cache line instead of one miss a feature. Profiles of
//! the 1M-row benchmark showed a column-major histogram loop stalled on
//! exactly those misses.

use rayon::prelude::*;

/// The bin that holds missing values (NaN); value bins are `0..n_bins`, at most 255 of them.
pub const MISSING_BIN: u8 = 255;
/// Histogram slots a feature: 255 value bins and the missing bin.
pub const SLOTS: usize = 256;
/// Rows looked at to place the cuts; enough for quantiles at 1/255 resolution.
const SAMPLE_ROWS: usize = 200_000;

/// The bin boundaries of one feature: bin `b` holds values `v` with
/// `cuts[b-1] <= v < cuts[b]`; the last bin is unbounded above.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureCuts {
    pub cuts: Vec<f32>,
}

impl FeatureCuts {
    /// Value bins of this feature (one more than the number of cuts).
    pub fn n_bins(&self) -> usize {
        self.cuts.len() + 1
    }

    pub fn bin(&self, v: f32) -> u8 {
        if v.is_nan() {
            MISSING_BIN
        } else {
            self.cuts.partition_point(|&c| c <= v) as u8
        }
    }

    /// Cuts at quantiles of `values` (NaN ignored), at most `max_bins` bins.
    pub fn from_values(values: &[f32], max_bins: usize) -> FeatureCuts {
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_unstable_by(f32::total_cmp);
        let mut distinct: Vec<(f32, usize)> = Vec::new();
        for v in sorted.iter().copied() {
            match distinct.last_mut() {
                // -0.0 and 0.0 compare equal as thresholds, so they share a bin.
                Some((last, count)) if *last == v => *count += 1,
                _ => distinct.push((v, 1)),
            }
        }
        let max_bins = max_bins.clamp(1, SLOTS - 1);
        if distinct.len() <= max_bins {
            return FeatureCuts {
                cuts: distinct.iter().skip(1).map(|d| d.0).collect(),
            };
        }
        let n = sorted.len() as f64;
        let per_bin = n / max_bins as f64;
        let mut cuts = Vec::with_capacity(max_bins - 1);
        let mut seen = 0usize;
        for w in distinct.windows(2) {
            seen += w[0].1;
            if cuts.len() + 1 >= max_bins {
                break;
            }
            if seen as f64 >= per_bin * (cuts.len() + 1) as f64 {
                cuts.push(w[1].0);
            }
        }
        FeatureCuts { cuts }
    }
}

/// The rows whose values place the cuts when there are more than
/// `SAMPLE_ROWS` of `n_rows` (`None`: all rows): an evenly strided sample,
/// deterministic and spread over the whole file.
pub fn sample_rows(n_rows: usize) -> Option<Vec<usize>> {
    (n_rows > SAMPLE_ROWS).then(|| (0..SAMPLE_ROWS).map(|k| k * n_rows / SAMPLE_ROWS).collect())
}

/// The training features as bin indices, row-major.
pub struct BinnedMatrix {
    pub n_rows: usize,
    pub cuts: Vec<FeatureCuts>,
    /// Row-major bins.
    bins: Vec<u8>,
    /// Column-major bins.
    columns: Vec<u8>,
}

/// Rows binned by one parallel task.
const BIN_CHUNK: usize = 1 << 14;

impl BinnedMatrix {
    /// Bins `columns` (one slice a feature, all `n_rows` long) into at most `max_bins` bins each.
    pub fn build(columns: &[&[f32]], n_rows: usize, max_bins: usize) -> BinnedMatrix {
        let sample = sample_rows(n_rows);
        let cuts: Vec<FeatureCuts> = columns
            .par_iter()
            .map(|col| match &sample {
                Some(rows) => {
                    let vals: Vec<f32> = rows.iter().map(|&i| col[i]).collect();
                    FeatureCuts::from_values(&vals, max_bins)
                }
                None => FeatureCuts::from_values(col, max_bins),
            })
            .collect();
        Self::with_cuts(columns, n_rows, cuts)
    }

    /// Bins `columns` by the given cuts (one a feature).
    pub fn with_cuts(columns: &[&[f32]], n_rows: usize, cuts: Vec<FeatureCuts>) -> BinnedMatrix {
        let nf = columns.len();
        let mut by_col = vec![0u8; n_rows * nf];
        let mut bins = vec![0u8; n_rows * nf];
        if nf > 0 && n_rows > 0 {
            by_col
                .par_chunks_mut(n_rows)
                .zip(columns.par_iter().zip(cuts.par_iter()))
                .for_each(|(out, (col, fc))| {
                    for (o, &v) in out.iter_mut().zip(col.iter()) {
                        *o = fc.bin(v);
                    }
                });
            bins.par_chunks_mut(BIN_CHUNK * nf)
                .enumerate()
                .for_each(|(c, out)| {
                    let start = c * BIN_CHUNK;
                    for f in 0..nf {
                        let col = &by_col[f * n_rows + start..f * n_rows + start + out.len() / nf];
                        for (o, &b) in out.iter_mut().skip(f).step_by(nf).zip(col) {
                            *o = b;
                        }
                    }
                });
        }
        BinnedMatrix {
            n_rows,
            cuts,
            bins,
            columns: by_col,
        }
    }

    pub fn n_features(&self) -> usize {
        self.cuts.len()
    }

    /// The bins of feature `f`, one a row.
    #[inline]
    pub fn column(&self, f: usize) -> &[u8] {
        &self.columns[f * self.n_rows..(f + 1) * self.n_rows]
    }

    /// The bins of row `i`, one a feature.
    #[inline]
    pub fn row(&self, i: usize) -> &[u8] {
        let nf = self.cuts.len();
        &self.bins[i * nf..(i + 1) * nf]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each() {
        let fc = FeatureCuts::from_values(&[3.0, 1.0, 2.0, 2.0, f32::NAN], 256);
        assert_eq!(fc.cuts, [2.0, 3.0]);
        assert_eq!(fc.bin(1.0), 0);
        assert_eq!(fc.bin(2.0), 1);
        assert_eq!(fc.bin(2.5), 1);
        assert_eq!(fc.bin(3.0), 2);
        assert_eq!(fc.bin(f32::NAN), MISSING_BIN);
        assert_eq!(fc.bin(-1e30), 0);
    }

    #[test]
    fn many_values_fill_roughly_equal_bins() {
        let vals: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let fc = FeatureCuts::from_values(&vals, 10);
        assert_eq!(fc.n_bins(), 10);
        let mut counts = [0usize; 10];
        for v in &vals {
            counts[fc.bin(*v) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..=1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn both_layouts_agree_and_never_exceed_255_value_bins() {
        let a: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..1000)
            .map(|i| if i % 3 == 0 { f32::NAN } else { 1.0 })
            .collect();
        let m = BinnedMatrix::build(&[&a, &b], 1000, 256);
        assert_eq!(m.cuts[0].n_bins(), 255);
        assert_eq!(m.row(999)[0], 254);
        assert_eq!(m.row(0), [0, MISSING_BIN]);
        assert_eq!(m.row(1)[1], 0);
        for i in 0..1000 {
            assert_eq!(m.row(i), [m.column(0)[i], m.column(1)[i]]);
        }
    }
}
