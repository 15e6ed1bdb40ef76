//! Metrics of scores rather than labels: ROC AUC and the ROC and
//! precision-recall curves drawn in the evaluation report.
//!
//! All are built on one pass over the rows sorted by score, descending, with
//! tied scores forming one step (so ties count half, as in scikit-learn).

use serde::Serialize;

/// Cumulative false and true positives at each distinct score, highest first.
struct BinaryCurve {
    fps: Vec<f64>,
    tps: Vec<f64>,
    thresholds: Vec<f64>,
}

fn binary_curve(positive: &[bool], scores: &[f64]) -> BinaryCurve {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Descending; NaN scores sort last so they act as the lowest score.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut c = BinaryCurve {
        fps: Vec::new(),
        tps: Vec::new(),
        thresholds: Vec::new(),
    };
    let (mut tp, mut fp) = (0.0, 0.0);
    for (pos, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order
            .get(pos + 1)
            .is_none_or(|&j| scores[j].total_cmp(&scores[i]).is_ne());
        if last_of_tie {
            c.fps.push(fp);
            c.tps.push(tp);
            c.thresholds.push(scores[i]);
        }
    }
    c
}

/// Area under the ROC curve of one class against the rest; `None` when the
/// rows are all of one kind (the area is undefined).
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let c = binary_curve(positive, scores);
    let (p, n) = (*c.tps.last()?, *c.fps.last()?);
    if p == 0.0 || n == 0.0 {
        return None;
    }
    let (mut area, mut prev_fp, mut prev_tp) = (0.0, 0.0, 0.0);
    for (&fp, &tp) in c.fps.iter().zip(&c.tps) {
        area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
        prev_fp = fp;
        prev_tp = tp;
    }
    Some(area / (p * n))
}

/// Binary ROC AUC of many reweightings of the same rows (bootstrap
/// resamples) without sorting each one: the order by score is found once, and
/// a resample is a count per row. Gives exactly what [`roc_auc`] gives on the
/// resampled rows, since the ties and counts are the same.
pub struct ResampledAuc {
    order: Vec<usize>,
    positive: Vec<bool>,
    scores: Vec<f64>,
}

impl ResampledAuc {
    pub fn new(positive: Vec<bool>, scores: Vec<f64>) -> Self {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        ResampledAuc {
            order,
            positive,
            scores,
        }
    }

    /// The AUC of the rows `rows` (repeats allowed); `None` when they are all of one kind.
    pub fn auc(&self, rows: &[usize]) -> Option<f64> {
        let mut count = vec![0u32; self.scores.len()];
        for &r in rows {
            count[r] += 1;
        }
        let (mut tp, mut fp) = (0.0, 0.0);
        let (mut area, mut prev_fp, mut prev_tp) = (0.0, 0.0, 0.0);
        let mut any = false;
        for (pos, &i) in self.order.iter().enumerate() {
            let c = f64::from(count[i]);
            if self.positive[i] {
                tp += c;
            } else {
                fp += c;
            }
            any |= count[i] > 0;
            let last_of_tie = self
                .order
                .get(pos + 1)
                .is_none_or(|&j| self.scores[j].total_cmp(&self.scores[i]).is_ne());
            // A score none of the resampled rows has is no step of their curve.
            if last_of_tie && any {
                area += (fp - prev_fp) * (tp + prev_tp) / 2.0;
                prev_fp = fp;
                prev_tp = tp;
                any = false;
            }
        }
        if tp == 0.0 || fp == 0.0 {
            return None;
        }
        Some(area / (tp * fp))
    }
}

/// Points of a ROC curve, from (0, 0) at threshold +infinity to (1, 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    /// A row is called positive when its score is at least the threshold.
    pub thresholds: Vec<f64>,
}

/// The ROC curve; with `drop_intermediate`, points on a straight segment
/// between their neighbours are left out (scikit-learn's default), which
/// keeps the report small without changing the drawn curve.
pub fn roc_curve(positive: &[bool], scores: &[f64], drop_intermediate: bool) -> RocCurve {
    let mut c = binary_curve(positive, scores);
    if drop_intermediate && c.fps.len() > 2 {
        let n = c.fps.len();
        let keep: Vec<usize> = (0..n)
            .filter(|&i| {
                i == 0
                    || i == n - 1
                    || c.fps[i + 1] - 2.0 * c.fps[i] + c.fps[i - 1] != 0.0
                    || c.tps[i + 1] - 2.0 * c.tps[i] + c.tps[i - 1] != 0.0
            })
            .collect();
        c = BinaryCurve {
            fps: keep.iter().map(|&i| c.fps[i]).collect(),
            tps: keep.iter().map(|&i| c.tps[i]).collect(),
            thresholds: keep.iter().map(|&i| c.thresholds[i]).collect(),
        };
    }
    let p = c.tps.last().copied().unwrap_or(0.0);
    let n = c.fps.last().copied().unwrap_or(0.0);
    let scale = |v: f64, total: f64| if total > 0.0 { v / total } else { f64::NAN };
    RocCurve {
        fpr: std::iter::once(0.0)
            .chain(c.fps.iter().map(|&v| scale(v, n)))
            .collect(),
        tpr: std::iter::once(0.0)
            .chain(c.tps.iter().map(|&v| scale(v, p)))
            .collect(),
        thresholds: std::iter::once(f64::INFINITY).chain(c.thresholds).collect(),
    }
}

/// Points of a precision-recall curve, recall decreasing, ending at (precision 1, recall 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrCurve {
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    /// Ascending; one fewer than the points (the last point has no threshold).
    pub thresholds: Vec<f64>,
}

pub fn pr_curve(positive: &[bool], scores: &[f64]) -> PrCurve {
    let c = binary_curve(positive, scores);
    let total_pos = c.tps.last().copied().unwrap_or(0.0);
    let mut precision: Vec<f64> = c
        .tps
        .iter()
        .zip(&c.fps)
        .map(|(&tp, &fp)| if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 })
        .rev()
        .collect();
    let mut recall: Vec<f64> = c
        .tps
        .iter()
        .map(|&tp| if total_pos > 0.0 { tp / total_pos } else { 1.0 })
        .rev()
        .collect();
    precision.push(1.0);
    recall.push(0.0);
    PrCurve {
        precision,
        recall,
        thresholds: c.thresholds.into_iter().rev().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_half() {
        // one positive tied with one negative, one positive above both
        let auc = roc_auc(&[true, false, true], &[0.5, 0.5, 0.9]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12);
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
    }

    #[test]
    fn resampled_auc_equals_the_auc_of_the_resampled_rows() {
        let pos: Vec<bool> = (0..60).map(|i| (i * 7) % 5 < 2).collect();
        let s: Vec<f64> = (0..60).map(|i| ((i * 13) % 17) as f64 / 4.0).collect();
        let fast = ResampledAuc::new(pos.clone(), s.clone());
        for k in 0..20usize {
            let rows: Vec<usize> = (0..60).map(|i| (i * (k + 3) + k * k) % 60).collect();
            let p: Vec<bool> = rows.iter().map(|&r| pos[r]).collect();
            let sc: Vec<f64> = rows.iter().map(|&r| s[r]).collect();
            assert_eq!(fast.auc(&rows), roc_auc(&p, &sc), "resample {k}");
        }
        assert_eq!(fast.auc(&[0, 0, 0]), None);
    }

    #[test]
    fn curves_run_from_corner_to_corner() {
        let pos = [true, false, true, false, true];
        let s = [0.9, 0.8, 0.7, 0.3, 0.2];
        let roc = roc_curve(&pos, &s, false);
        assert_eq!(roc.fpr.first(), Some(&0.0));
        assert_eq!(roc.tpr.last(), Some(&1.0));
        assert_eq!(roc.thresholds.len(), 6);
        let pr = pr_curve(&pos, &s);
        assert_eq!(pr.recall.first(), Some(&1.0));
        assert_eq!(pr.precision.last(), Some(&1.0));
        assert_eq!(pr.thresholds.len() + 1, pr.precision.len());
    }
}
