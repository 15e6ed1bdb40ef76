//! Validation metrics used for early stopping and the training record.
//!
//! They read predictions (after the objective's transform), `k` values a row,
//! and follow XGBoost's definitions so scores can be compared with its logs.

use super::params::EvalMetric;

const EPS: f64 = 1e-16;

/// The score of `preds` against `labels`.
pub fn evaluate(metric: EvalMetric, labels: &[f32], preds: &[f32], k: usize) -> f64 {
    let n = labels.len().max(1) as f64;
    let pairs = || {
        labels
            .iter()
            .map(|&y| y as f64)
            .zip(preds.iter().map(|&p| p as f64))
    };
    match metric {
        EvalMetric::Rmse => (pairs().map(|(y, p)| (p - y) * (p - y)).sum::<f64>() / n).sqrt(),
        EvalMetric::Mae => pairs().map(|(y, p)| (p - y).abs()).sum::<f64>() / n,
        EvalMetric::Logloss => {
            -pairs()
                .map(|(y, p)| {
                    let p = p.clamp(EPS, 1.0 - EPS);
                    y * p.ln() + (1.0 - y) * (1.0 - p).ln()
                })
                .sum::<f64>()
                / n
        }
        EvalMetric::Error => pairs().filter(|&(y, p)| (p > 0.5) != (y > 0.5)).count() as f64 / n,
        EvalMetric::ErrorAt(t) => pairs().filter(|&(y, p)| (p > t) != (y > 0.5)).count() as f64 / n,
        EvalMetric::Auc => auc(labels, preds),
        EvalMetric::Mlogloss => {
            -labels
                .iter()
                .enumerate()
                .map(|(i, &y)| (preds[i * k + y as usize] as f64).clamp(EPS, 1.0).ln())
                .sum::<f64>()
                / n
        }
        EvalMetric::Merror => {
            labels
                .iter()
                .enumerate()
                .filter(|&(i, &y)| argmax(&preds[i * k..(i + 1) * k]) != y as usize)
                .count() as f64
                / n
        }
        EvalMetric::Rmsle => (pairs()
            .map(|(y, p)| (p.ln_1p() - y.ln_1p()).powi(2))
            .sum::<f64>()
            / n)
            .sqrt(),
        EvalMetric::Mape => pairs().map(|(y, p)| ((y - p) / y).abs()).sum::<f64>() / n,
        EvalMetric::GammaNloglik => pairs().map(|(y, p)| y / p + p.ln()).sum::<f64>() / n,
        EvalMetric::GammaDeviance => {
            const E: f64 = 1e-6;
            2.0 * pairs()
                .map(|(y, p)| {
                    let r = (y + E) / (p + E);
                    r - r.ln() - 1.0
                })
                .sum::<f64>()
                / n
        }
        EvalMetric::Mphe(d) => {
            pairs()
                .map(|(y, p)| d * d * ((1.0 + ((p - y) / d).powi(2)).sqrt() - 1.0))
                .sum::<f64>()
                / n
        }
        EvalMetric::TweedieNloglik(rho) => {
            pairs()
                .map(|(y, p)| {
                    let a = y * ((1.0 - rho) * p.ln()).exp() / (1.0 - rho);
                    let b = ((2.0 - rho) * p.ln()).exp() / (2.0 - rho);
                    b - a
                })
                .sum::<f64>()
                / n
        }
        EvalMetric::PoissonNloglik => {
            pairs()
                .map(|(y, p)| {
                    let p = p.max(EPS);
                    p - y * p.ln() + ln_gamma(y + 1.0)
                })
                .sum::<f64>()
                / n
        }
    }
}

/// The first index of the largest value.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Area under the ROC curve, ties counted half (the Mann-Whitney statistic).
pub fn auc(labels: &[f32], preds: &[f32]) -> f64 {
    let mut idx: Vec<usize> = (0..labels.len()).collect();
    idx.sort_unstable_by(|&a, &b| preds[a].total_cmp(&preds[b]).then(a.cmp(&b)));
    let (mut rank_sum, mut pos) = (0f64, 0f64);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && preds[idx[j]] == preds[idx[i]] {
            j += 1;
        }
        // Tied predictions share the average of their ranks (1-based).
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        for &r in &idx[i..j] {
            if labels[r] > 0.5 {
                rank_sum += avg_rank;
                pos += 1.0;
            }
        }
        i = j;
    }
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.2, 0.3, 0.4]), 1.0);
        assert_eq!(auc(&[1.0, 1.0, 0.0, 0.0], &[0.1, 0.2, 0.3, 0.4]), 0.0);
        assert_eq!(auc(&[0.0, 1.0], &[0.5, 0.5]), 0.5);
        assert!((auc(&[0.0, 1.0, 0.0, 1.0], &[0.1, 0.3, 0.35, 0.8]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn simple_metrics() {
        let y = [0.0, 1.0];
        assert!((evaluate(EvalMetric::Rmse, &y, &[0.0, 0.5], 1) - 0.125f64.sqrt()).abs() < 1e-12);
        assert_eq!(evaluate(EvalMetric::Mae, &y, &[0.5, 0.5], 1), 0.5);
        assert_eq!(evaluate(EvalMetric::Error, &y, &[0.6, 0.6], 1), 0.5);
        assert!((evaluate(EvalMetric::Logloss, &y, &[0.5, 0.5], 1) - 2f64.ln()).abs() < 1e-12);
        let p = [0.7, 0.2, 0.1, 0.1, 0.1, 0.8];
        assert_eq!(evaluate(EvalMetric::Merror, &[0.0, 1.0], &p, 3), 0.5);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }
}
