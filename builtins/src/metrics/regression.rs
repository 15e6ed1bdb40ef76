//! Regression metrics (RMSE, MSE, MAE, R², MAPE) and the residuals summary of
//! the evaluation report, defined as scikit-learn defines them.

use serde::Serialize;

pub fn mse(y: &[f64], p: &[f64]) -> f64 {
    mean(y.iter().zip(p).map(|(a, b)| (a - b) * (a - b)), y.len())
}

pub fn rmse(y: &[f64], p: &[f64]) -> f64 {
    mse(y, p).sqrt()
}

pub fn mae(y: &[f64], p: &[f64]) -> f64 {
    mean(y.iter().zip(p).map(|(a, b)| (a - b).abs()), y.len())
}

/// Coefficient of determination. With constant true values it is 1 for a
/// perfect prediction and 0 otherwise (scikit-learn's `force_finite`).
pub fn r2(y: &[f64], p: &[f64]) -> f64 {
    let m = mean(y.iter().copied(), y.len());
    let ss_res: f64 = y.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
    let ss_tot: f64 = y.iter().map(|a| (a - m) * (a - m)).sum();
    if ss_tot == 0.0 {
        if ss_res == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - ss_res / ss_tot
    }
}

/// Mean of `|y - p| / max(|y|, eps)`, `eps` the `f64` machine epsilon: a zero
/// true value gives a huge but finite term rather than infinity. A fraction,
/// not a percentage.
pub fn mape(y: &[f64], p: &[f64]) -> f64 {
    mean(
        y.iter()
            .zip(p)
            .map(|(a, b)| (a - b).abs() / a.abs().max(f64::EPSILON)),
        y.len(),
    )
}

fn mean(values: impl Iterator<Item = f64>, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    values.sum::<f64>() / n as f64
}

/// The distribution of `true - predicted`, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResidualSummary {
    pub count: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator).
    pub std: f64,
    pub min: f64,
    pub p05: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p95: f64,
    pub max: f64,
}

/// Summary of the residuals; quantiles interpolate linearly between order
/// statistics (numpy's default). `None` for no rows.
pub fn residual_summary(y: &[f64], p: &[f64]) -> Option<ResidualSummary> {
    let mut r: Vec<f64> = y.iter().zip(p).map(|(a, b)| a - b).collect();
    if r.is_empty() {
        return None;
    }
    let n = r.len();
    let m = r.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        r.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    r.sort_by(f64::total_cmp);
    Some(ResidualSummary {
        count: n,
        mean: m,
        std: var.sqrt(),
        min: r[0],
        p05: quantile_sorted(&r, 0.05),
        p25: quantile_sorted(&r, 0.25),
        median: quantile_sorted(&r, 0.5),
        p75: quantile_sorted(&r, 0.75),
        p95: quantile_sorted(&r, 0.95),
        max: r[n - 1],
    })
}

/// The `q` quantile of ascending `sorted` (not empty), interpolating linearly.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        let y = [1.0, 2.0, 3.0, 0.0];
        let p = [1.0, 3.0, 1.0, 1.0];
        assert_eq!(mse(&y, &p), 1.5);
        assert_eq!(mae(&y, &p), 1.0);
        assert!((r2(&y, &p) - (1.0 - 6.0 / 5.0)).abs() < 1e-12);
        assert_eq!(r2(&[2.0, 2.0], &[2.0, 2.0]), 1.0);
        assert_eq!(r2(&[2.0, 2.0], &[2.0, 1.0]), 0.0);
        let m = mape(&y, &p);
        assert!((m - (0.0 + 0.5 + 2.0 / 3.0 + 1.0 / f64::EPSILON) / 4.0).abs() / m < 1e-15);
        let s = residual_summary(&y, &p).unwrap();
        assert_eq!((s.min, s.max, s.median), (-1.0, 2.0, -0.5));
    }
}
