//! Label metrics of classifiers: accuracy, precision, recall, F1 and the
//! confusion matrix, defined as scikit-learn defines them.
//!
//! Class labels are indices `0..n_classes`. Macro and weighted averages run
//! over the classes that occur in the true or the predicted labels (a class
//! the model knows but that appears in neither is left out, as scikit-learn
//! does when no `labels=` is given); a ratio with a zero denominator counts as
//! 0 (scikit-learn's `zero_division` default).

use crate::model::{Predictions, Task};

/// How per-class scores are combined, as scikit-learn's `average=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// The score of the positive class (index 1) only.
    Binary,
    /// The unweighted mean over classes.
    Macro,
    /// The mean over classes weighted by their number of true rows.
    Weighted,
}

/// The predicted class of every row: for a binary model the positive class
/// when its probability is above 0.5, otherwise the most probable class (the
/// first one on a tie).
pub fn predicted_classes(p: &Predictions) -> Vec<usize> {
    match p.task {
        Task::Binary { .. } => (0..p.n_rows)
            .map(|i| usize::from(positive_probability(p, i) > 0.5))
            .collect(),
        _ => (0..p.n_rows)
            .map(|i| {
                let row = p.row(i);
                let mut best = 0;
                for (k, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = k;
                    }
                }
                best
            })
            .collect(),
    }
}

/// P(class 1) of row `i` of a binary model, whether it predicts one column
/// (that probability) or two (both classes').
pub fn positive_probability(p: &Predictions, i: usize) -> f64 {
    let row = p.row(i);
    f64::from(row[row.len().min(2) - 1])
}

/// The share of rows whose predicted class is the true one.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> f64 {
    if y_true.is_empty() {
        return 0.0;
    }
    let right = y_true.iter().zip(y_pred).filter(|(a, b)| a == b).count();
    right as f64 / y_true.len() as f64
}

/// Counts of (true class, predicted class): `m[t][p]`.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Vec<Vec<u64>> {
    let n = n_classes.max(
        y_true
            .iter()
            .chain(y_pred)
            .map(|&c| c + 1)
            .max()
            .unwrap_or(0),
    );
    let mut m = vec![vec![0u64; n]; n];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        m[t][p] += 1;
    }
    m
}

/// Per-class counts behind precision and recall.
struct ClassCounts {
    tp: Vec<f64>,
    /// Rows predicted as the class.
    predicted: Vec<f64>,
    /// Rows truly of the class.
    support: Vec<f64>,
}

fn class_counts(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> ClassCounts {
    let n = n_classes.max(
        y_true
            .iter()
            .chain(y_pred)
            .map(|&c| c + 1)
            .max()
            .unwrap_or(0),
    );
    let mut c = ClassCounts {
        tp: vec![0.0; n],
        predicted: vec![0.0; n],
        support: vec![0.0; n],
    };
    for (&t, &p) in y_true.iter().zip(y_pred) {
        c.support[t] += 1.0;
        c.predicted[p] += 1.0;
        if t == p {
            c.tp[t] += 1.0;
        }
    }
    c
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

/// Precision, recall and F1 combined by `average`.
pub fn precision_recall_f1(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
    average: Average,
) -> (f64, f64, f64) {
    let c = class_counts(y_true, y_pred, n_classes);
    let per_class = |k: usize| {
        let p = ratio(c.tp[k], c.predicted[k]);
        let r = ratio(c.tp[k], c.support[k]);
        // F1 from counts, so a class with precision or recall undefined still gets a value.
        let f = ratio(2.0 * c.tp[k], c.predicted[k] + c.support[k]);
        (p, r, f)
    };
    match average {
        Average::Binary if c.tp.len() > 1 => per_class(1),
        Average::Binary => (0.0, 0.0, 0.0),
        Average::Macro | Average::Weighted => {
            let present: Vec<usize> = (0..c.tp.len())
                .filter(|&k| c.support[k] > 0.0 || c.predicted[k] > 0.0)
                .collect();
            let weight = |k: usize| match average {
                Average::Weighted => c.support[k],
                _ => 1.0,
            };
            let total: f64 = present.iter().map(|&k| weight(k)).sum();
            if total == 0.0 {
                return (0.0, 0.0, 0.0);
            }
            let (mut sp, mut sr, mut sf) = (0.0, 0.0, 0.0);
            for &k in &present {
                let (p, r, f) = per_class(k);
                let w = weight(k);
                sp += w * p;
                sr += w * r;
                sf += w * f;
            }
            (sp / total, sr / total, sf / total)
        }
    }
}

/// Mean negative log-likelihood of the true classes. Probabilities are clipped
/// to `[eps, 1 - eps]` (`eps` the `f64` machine epsilon) and not renormalised,
/// as scikit-learn's `log_loss` does. A binary model's single column is
/// P(class 1).
pub fn logloss(y_true: &[usize], p: &Predictions) -> f64 {
    if y_true.is_empty() {
        return 0.0;
    }
    let eps = f64::EPSILON;
    let binary = matches!(p.task, Task::Binary { .. }) || p.width == 1;
    let mut sum = 0.0;
    for (i, &t) in y_true.iter().enumerate() {
        let q = if binary {
            let pos = positive_probability(p, i);
            if t == 1 { pos } else { 1.0 - pos }
        } else {
            f64::from(p.row(i)[t])
        };
        sum -= q.clamp(eps, 1.0 - eps).ln();
    }
    sum / y_true.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_multiclass_scores() {
        // class 2 is never predicted; class 0 is never true
        let y = [1, 1, 2, 2, 1];
        let p = [1, 0, 1, 1, 1];
        let (pm, rm, fm) = precision_recall_f1(&y, &p, 3, Average::Macro);
        // class 0: p 0, r 0 (no support), f 0; class 1: tp 2, pred 4, sup 3; class 2: 0
        assert!((pm - (0.5 / 3.0)).abs() < 1e-12);
        assert!((rm - (2.0 / 3.0 / 3.0)).abs() < 1e-12);
        assert!((fm - (4.0 / 7.0 / 3.0)).abs() < 1e-12);
        let (_, rw, _) = precision_recall_f1(&y, &p, 3, Average::Weighted);
        assert!((rw - 0.4).abs() < 1e-12);
        assert_eq!(accuracy(&y, &p), 0.4);
        assert_eq!(
            confusion_matrix(&y, &p, 3),
            vec![vec![0, 0, 0], vec![1, 2, 0], vec![0, 2, 0]]
        );
    }

    #[test]
    fn binary_scores_the_positive_class() {
        let y = [0, 1, 1, 0];
        let p = [0, 1, 0, 1];
        let (pr, re, f) = precision_recall_f1(&y, &p, 2, Average::Binary);
        assert_eq!((pr, re, f), (0.5, 0.5, 0.5));
        assert_eq!(
            precision_recall_f1(&[0, 0], &[0, 0], 2, Average::Binary),
            (0.0, 0.0, 0.0)
        );
    }
}
