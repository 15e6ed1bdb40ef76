//! Losses: label checks, starting margins, gradients, and margin-to-prediction transforms.
//!
//! Margins are kept in `f64`, row-major with `k` outputs a row (`k` is the
//! number of classes for multiclass objectives, else 1). The formulas follow
//! XGBoost's so that the same data and settings give comparable models.

use rayon::prelude::*;

use super::grow::GradPair;
use super::params::{Objective, Params};
use crate::error::{BuiltinError, DataError};

/// Rows a parallel task handles; fixed so results never depend on the thread count.
pub const CHUNK: usize = 1 << 14;
/// XGBoost's floor on hessians, so a confident row still counts a little.
const MIN_HESS: f64 = 1e-16;
/// XGBoost's `max_delta_step` for `count:poisson`: damps the hessian for stability.
const POISSON_MAX_DELTA: f64 = 0.7;

/// Checks every label lies in the objective's range; names the first bad row (1-based).
pub fn check_labels(
    obj: Objective,
    labels: &[f32],
    num_class: usize,
    what: &str,
) -> Result<(), BuiltinError> {
    let (ok, expect): (Box<dyn Fn(f32) -> bool>, String) = match obj {
        Objective::SquaredError => (Box::new(|v: f32| v.is_finite()), "a finite number".into()),
        Objective::RegLogistic => (
            Box::new(|v: f32| (0.0..=1.0).contains(&v)),
            "between 0 and 1".into(),
        ),
        Objective::BinaryLogistic => (
            Box::new(|v: f32| v == 0.0 || v == 1.0),
            "0 or 1 (or a column with two classes)".into(),
        ),
        Objective::MultiSoftprob | Objective::MultiSoftmax => (
            Box::new(move |v: f32| v >= 0.0 && v.fract() == 0.0 && (v as usize) < num_class),
            format!("a class number from 0 to {}", num_class.saturating_sub(1)),
        ),
        Objective::CountPoisson => (
            Box::new(|v: f32| v.is_finite() && v >= 0.0),
            "a count of at least 0".into(),
        ),
        Objective::Tweedie => (
            Box::new(|v: f32| v.is_finite() && v >= 0.0),
            "a number of at least 0".into(),
        ),
        Objective::Gamma => (
            Box::new(|v: f32| v.is_finite() && v > 0.0),
            "a number above 0".into(),
        ),
        Objective::PseudoHuber => (Box::new(|v: f32| v.is_finite()), "a finite number".into()),
        Objective::SquaredLogError => (
            Box::new(|v: f32| v.is_finite() && v > -1.0),
            "a number above -1".into(),
        ),
    };
    match labels.iter().position(|&v| !ok(v)) {
        None => Ok(()),
        Some(i) => {
            let v = labels[i];
            let shown = if v.is_nan() {
                "missing".to_string()
            } else {
                format!("{v}")
            };
            Err(BuiltinError::Data(
                DataError::new(
                    what,
                    format!(
                        "row {}: the label is {shown}, but `{}` needs {expect}",
                        i + 1,
                        obj.name()
                    ),
                )
                .hint("fix or drop that row, or choose the objective that matches the label"),
            ))
        }
    }
}

/// Outputs a row: one a class for multiclass objectives, else one.
pub fn n_outputs(obj: Objective, num_class: usize) -> usize {
    if obj.is_multiclass() { num_class } else { 1 }
}

/// The starting margin of each output: from `base_score` when given (in prediction
/// space, like XGBoost's), else the margin that best fits the labels with no trees.
/// What the starting margins depend on, summed over all training rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelStats {
    pub n: f64,
    pub sum: f64,
    /// Rows of each class (multiclass objectives only, else empty or zeros).
    pub counts: Vec<f64>,
}

pub fn base_margins(
    obj: Objective,
    stats: &LabelStats,
    num_class: usize,
    base_score: Option<f64>,
) -> Vec<f64> {
    let n = stats.n.max(1.0);
    let mean = stats.sum / n;
    match obj {
        Objective::SquaredError | Objective::PseudoHuber => vec![base_score.unwrap_or(mean)],
        Objective::SquaredLogError => vec![base_score.unwrap_or(mean).max(-1.0 + 1e-6)],
        Objective::Gamma | Objective::Tweedie => vec![base_score.unwrap_or(mean).max(1e-6).ln()],
        Objective::RegLogistic | Objective::BinaryLogistic => {
            let p = base_score.unwrap_or(mean).clamp(1e-6, 1.0 - 1e-6);
            vec![(p / (1.0 - p)).ln()]
        }
        Objective::CountPoisson => vec![base_score.unwrap_or(mean).max(1e-6).ln()],
        Objective::MultiSoftprob | Objective::MultiSoftmax => match base_score {
            // Softmax margins are their own "prediction space" in XGBoost.
            Some(b) => vec![b; num_class],
            None => {
                let counts = &stats.counts;
                let logs: Vec<f64> = counts
                    .iter()
                    .map(|c| ((c + 1.0) / (n + num_class as f64)).ln())
                    .collect();
                let avg = logs.iter().sum::<f64>() / num_class as f64;
                logs.iter().map(|l| l - avg).collect()
            }
        },
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Gradients of output `class` at `margins` (row-major, `k` a row) into `out`
/// (one a row); `p` gives the objective's own settings.
pub fn gradients(
    obj: Objective,
    labels: &[f32],
    margins: &[f64],
    k: usize,
    class: usize,
    p: &Params,
    out: &mut [GradPair],
) {
    let scale_pos_weight = p.scale_pos_weight;
    let rho = p.tweedie_variance_power;
    let slope = p.huber_slope;
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = c * CHUNK;
            for (j, o) in chunk.iter_mut().enumerate() {
                let i = base + j;
                let y = labels[i] as f64;
                let (g, h) = match obj {
                    Objective::SquaredError => (margins[i] - y, 1.0),
                    Objective::RegLogistic | Objective::BinaryLogistic => {
                        let p = sigmoid(margins[i]);
                        let w = if y == 1.0 { scale_pos_weight } else { 1.0 };
                        ((p - y) * w, (p * (1.0 - p)).max(MIN_HESS) * w)
                    }
                    Objective::CountPoisson => {
                        let m = margins[i];
                        (m.exp() - y, (m + POISSON_MAX_DELTA).exp())
                    }
                    Objective::Gamma => {
                        let e = y * (-margins[i]).exp();
                        (1.0 - e, e)
                    }
                    Objective::Tweedie => {
                        let m = margins[i];
                        let a = ((1.0 - rho) * m).exp();
                        let b = ((2.0 - rho) * m).exp();
                        (-y * a + b, -y * (1.0 - rho) * a + (2.0 - rho) * b)
                    }
                    Objective::PseudoHuber => {
                        let z = margins[i] - y;
                        let scale = 1.0 + (z / slope) * (z / slope);
                        let root = scale.sqrt();
                        (z / root, 1.0 / (scale * root))
                    }
                    Objective::SquaredLogError => {
                        let m = margins[i].max(-1.0 + 1e-6);
                        let d = m.ln_1p() - y.ln_1p();
                        (
                            d / (m + 1.0),
                            ((1.0 - d) / ((m + 1.0) * (m + 1.0))).max(1e-6),
                        )
                    }
                    Objective::MultiSoftprob | Objective::MultiSoftmax => {
                        let row = &margins[i * k..(i + 1) * k];
                        let p = softmax_one(row, class);
                        let t = if labels[i] as usize == class {
                            1.0
                        } else {
                            0.0
                        };
                        (p - t, (2.0 * p * (1.0 - p)).max(MIN_HESS))
                    }
                };
                *o = GradPair {
                    g: g as f32,
                    h: h as f32,
                };
            }
        });
}

fn softmax_one(row: &[f64], class: usize) -> f64 {
    let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|m| (m - mx).exp()).sum();
    (row[class] - mx).exp() / sum
}

/// Predictions from margins: probabilities, means or counts; `k` values a row.
pub fn transform(obj: Objective, margins: &[f64], k: usize) -> Vec<f32> {
    match obj {
        Objective::SquaredError | Objective::PseudoHuber | Objective::SquaredLogError => {
            margins.iter().map(|&m| m as f32).collect()
        }
        Objective::Gamma | Objective::Tweedie => margins.iter().map(|&m| m.exp() as f32).collect(),
        Objective::RegLogistic | Objective::BinaryLogistic => {
            margins.iter().map(|&m| sigmoid(m) as f32).collect()
        }
        Objective::CountPoisson => margins.iter().map(|&m| m.exp() as f32).collect(),
        Objective::MultiSoftprob | Objective::MultiSoftmax => {
            let mut out = Vec::with_capacity(margins.len());
            for row in margins.chunks(k) {
                let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().map(|m| (m - mx).exp()).sum();
                out.extend(row.iter().map(|m| ((m - mx).exp() / sum) as f32));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_labels_name_the_first_row() {
        let e = check_labels(
            Objective::BinaryLogistic,
            &[0.0, 1.0, 2.0, 3.0],
            0,
            "training data",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("row 3: the label is 2"), "{s}");
        assert!(e.is_invalid_input());
        check_labels(Objective::MultiSoftprob, &[0.0, 2.0], 3, "t").unwrap();
        assert!(check_labels(Objective::MultiSoftprob, &[0.0, 3.0], 3, "t").is_err());
        assert!(check_labels(Objective::CountPoisson, &[-1.0], 0, "t").is_err());
        assert!(check_labels(Objective::SquaredError, &[f32::NAN], 0, "t").is_err());
    }

    #[test]
    fn logistic_gradients_and_base_margin() {
        let stats = LabelStats {
            n: 4.0,
            sum: 3.0,
            counts: Vec::new(),
        };
        let m = base_margins(Objective::BinaryLogistic, &stats, 0, None);
        assert!((m[0] - 3f64.ln()).abs() < 1e-9);
        let mut out = vec![GradPair::default(); 2];
        let p = Params {
            scale_pos_weight: 2.0,
            ..Params::default()
        };
        gradients(
            Objective::BinaryLogistic,
            &[0.0, 1.0],
            &[0.0, 0.0],
            1,
            0,
            &p,
            &mut out,
        );
        assert_eq!(out[0], GradPair { g: 0.5, h: 0.25 });
        assert_eq!(out[1], GradPair { g: -1.0, h: 0.5 });
    }

    /// Each new loss's gradient is the derivative of its loss, and its
    /// hessian the gradient's (central differences).
    #[test]
    fn gradients_are_the_losses_derivatives() {
        let p = Params {
            tweedie_variance_power: 1.3,
            huber_slope: 0.7,
            ..Params::default()
        };
        let (rho, d) = (p.tweedie_variance_power, p.huber_slope);
        type Loss<'a> = &'a dyn Fn(f64, f64) -> f64;
        let losses: [(Objective, Loss); 4] = [
            (Objective::Gamma, &|y: f64, m: f64| y * (-m).exp() + m),
            (Objective::Tweedie, &|y: f64, m: f64| {
                -y * ((1.0 - rho) * m).exp() / (1.0 - rho) + ((2.0 - rho) * m).exp() / (2.0 - rho)
            }),
            (Objective::PseudoHuber, &|y: f64, m: f64| {
                d * d * ((1.0 + ((m - y) / d).powi(2)).sqrt() - 1.0)
            }),
            (Objective::SquaredLogError, &|y: f64, m: f64| {
                0.5 * (m.ln_1p() - y.ln_1p()).powi(2)
            }),
        ];
        let eps = 1e-4;
        for (obj, loss) in losses {
            for (y, m) in [(0.5f64, 0.2f64), (2.0, -0.3), (1.5, 1.1)] {
                let mut out = vec![GradPair::default(); 1];
                gradients(obj, &[y as f32], &[m], 1, 0, &p, &mut out);
                let y = y as f32 as f64;
                let g = (loss(y, m + eps) - loss(y, m - eps)) / (2.0 * eps);
                let h = (loss(y, m + eps) - 2.0 * loss(y, m) + loss(y, m - eps)) / (eps * eps);
                assert!(
                    (out[0].g as f64 - g).abs() < 1e-3 * (1.0 + g.abs()),
                    "{obj:?} g at {y},{m}: {} vs {g}",
                    out[0].g
                );
                if obj != Objective::SquaredLogError || h > 1e-6 {
                    assert!(
                        (out[0].h as f64 - h).abs() < 1e-2 * (1.0 + h.abs()),
                        "{obj:?} h at {y},{m}: {} vs {h}",
                        out[0].h
                    );
                }
            }
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let p = transform(Objective::MultiSoftprob, &[0.0, 1.0, 2.0, 5.0, 5.0, 5.0], 3);
        assert!((p[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[3] - 1.0 / 3.0).abs() < 1e-6);
    }
}
