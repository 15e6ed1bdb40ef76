//! Bootstrap confidence intervals of a metric, and of the difference of a
//! metric between two variants (the `ab` evaluation).
//!
//! Each of the `B` resamples draws `n` rows with replacement from its own
//! seeded stream, so the interval is the same for a seed whatever the number
//! of threads. The interval is the percentile interval of the resampled
//! values. A resample on which the metric is undefined (an AUC on a resample
//! holding one class) is skipped and counted; more than half skipped is an
//! error, since the interval would then describe something else.

use rayon::prelude::*;
use serde::Serialize;

use super::classification::positive_probability;
use super::ranking::ResampledAuc;
use super::regression::quantile_sorted;
use super::{EvalInput, Options, TaskKind, compute_with};
use crate::error::BuiltinError;
use crate::model::Task;
use crate::split::rng::Rng;

/// How to bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapOptions {
    /// Number of resamples (`B`).
    pub resamples: usize,
    /// Coverage of the interval, e.g. 0.95.
    pub confidence: f64,
    pub seed: u64,
    /// Settings passed to the metric.
    pub metric: Options,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            resamples: 1000,
            confidence: 0.95,
            seed: 0,
            metric: Options::default(),
        }
    }
}

/// A metric with its confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub metric: String,
    /// The metric on all rows.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    pub confidence: f64,
    pub resamples: usize,
    /// Resamples on which the metric was undefined and which were left out.
    pub skipped: usize,
}

/// The difference `b - a` of a metric between two variants, with its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub metric: String,
    pub a: f64,
    pub b: f64,
    /// `b - a` on all rows.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    pub confidence: f64,
    pub resamples: usize,
    pub skipped: usize,
    /// True when both variants were scored on the same rows with the same
    /// true values, so each resample takes the same rows for both (which
    /// cancels the noise the rows share); otherwise each is resampled alone.
    pub paired: bool,
    /// Share of resamples in which `b` was better than `a` (by the metric's direction).
    pub b_better_share: f64,
}

fn check_options(o: &BootstrapOptions) -> Result<(), BuiltinError> {
    if o.resamples < 2 {
        return Err(BuiltinError::hyperparameter(
            "bootstrap_resamples",
            Some(&o.resamples.to_string()),
            "must be at least 2",
        ));
    }
    if !(o.confidence > 0.0 && o.confidence < 1.0) {
        return Err(BuiltinError::hyperparameter(
            "confidence",
            Some(&o.confidence.to_string()),
            "must be between 0 and 1 (exclusive), e.g. 0.95",
        ));
    }
    Ok(())
}

/// A metric on resamples of one input: the generic way (copy the rows,
/// compute) or, for a binary AUC, without sorting each resample.
struct Resampler<'a> {
    name: &'a str,
    input: &'a EvalInput,
    opts: &'a Options,
    auc: Option<ResampledAuc>,
}

impl<'a> Resampler<'a> {
    fn new(name: &'a str, input: &'a EvalInput, opts: &'a Options) -> Self {
        let auc = match (&input.predictions.task, &input.y_true) {
            (Task::Binary { .. }, Some(y)) if name == "auc" => {
                let p = &input.predictions;
                Some(ResampledAuc::new(
                    y.iter().map(|&v| v == 1.0).collect(),
                    (0..p.n_rows).map(|i| positive_probability(p, i)).collect(),
                ))
            }
            _ => None,
        };
        Resampler {
            name,
            input,
            opts,
            auc,
        }
    }

    fn on(&self, rows: &[usize]) -> Option<f64> {
        match &self.auc {
            Some(a) => a.auc(rows),
            None => compute_with(self.name, &self.input.take_rows(rows), self.opts).ok(),
        }
    }
}

/// A copy of `input` without its features when metric `name` does not read
/// them, so resamples do not copy (possibly wide) feature rows for nothing.
fn without_unused_features(name: &str, input: &EvalInput) -> Option<EvalInput> {
    let uses_features = super::info(name).is_some_and(|m| {
        m.tasks
            .iter()
            .any(|t| matches!(t, TaskKind::Clustering | TaskKind::Projection))
    });
    (!uses_features && input.features.is_some()).then(|| EvalInput {
        y_true: input.y_true.clone(),
        predictions: input.predictions.clone(),
        features: None,
    })
}

fn draw(rng: &mut Rng, n: usize) -> Vec<usize> {
    (0..n).map(|_| rng.below(n)).collect()
}

/// Percentile interval of `values`; `None` when too many resamples were skipped.
fn percentile(mut values: Vec<f64>, total: usize, confidence: f64) -> Option<(f64, f64)> {
    if values.len() * 2 < total || values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    Some((
        quantile_sorted(&values, alpha),
        quantile_sorted(&values, 1.0 - alpha),
    ))
}

fn too_many_skipped(name: &str, skipped: usize, total: usize) -> BuiltinError {
    BuiltinError::failed(format!(
        "bootstrap {name}: the metric was undefined on {skipped} of {total} resamples; the evaluation data is too small or too unbalanced for an interval"
    ))
}

/// The metric `name` on `input` with its bootstrap interval.
pub fn interval(
    name: &str,
    input: &EvalInput,
    opts: &BootstrapOptions,
) -> Result<Interval, BuiltinError> {
    check_options(opts)?;
    let estimate = compute_with(name, input, &opts.metric)?;
    let slim = without_unused_features(name, input);
    let input = slim.as_ref().unwrap_or(input);
    let metric = Resampler::new(name, input, &opts.metric);
    let n = input.n_rows();
    let values: Vec<Option<f64>> = (0..opts.resamples)
        .into_par_iter()
        .map(|r| {
            let idx = draw(&mut Rng::stream(opts.seed, r as u64), n);
            metric.on(&idx)
        })
        .collect();
    let ok: Vec<f64> = values.iter().flatten().copied().collect();
    let skipped = opts.resamples - ok.len();
    let (lower, upper) = percentile(ok, opts.resamples, opts.confidence)
        .ok_or_else(|| too_many_skipped(name, skipped, opts.resamples))?;
    Ok(Interval {
        metric: name.to_string(),
        estimate,
        lower,
        upper,
        confidence: opts.confidence,
        resamples: opts.resamples,
        skipped,
    })
}

/// The difference `b - a` of metric `name` with its bootstrap interval.
pub fn difference(
    name: &str,
    a: &EvalInput,
    b: &EvalInput,
    opts: &BootstrapOptions,
) -> Result<Difference, BuiltinError> {
    check_options(opts)?;
    let va = compute_with(name, a, &opts.metric)?;
    let vb = compute_with(name, b, &opts.metric)?;
    let higher_is_better = super::info(name).is_some_and(|m| m.higher_is_better);
    let paired = a.n_rows() == b.n_rows() && a.y_true == b.y_true && a.features == b.features;
    let (slim_a, slim_b) = (
        without_unused_features(name, a),
        without_unused_features(name, b),
    );
    let (a, b) = (slim_a.as_ref().unwrap_or(a), slim_b.as_ref().unwrap_or(b));
    let (metric_a, metric_b) = (
        Resampler::new(name, a, &opts.metric),
        Resampler::new(name, b, &opts.metric),
    );
    let (na, nb) = (a.n_rows(), b.n_rows());
    let diffs: Vec<Option<f64>> = (0..opts.resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = Rng::stream(opts.seed, r as u64);
            let ia = draw(&mut rng, na);
            let ib = if paired {
                ia.clone()
            } else {
                draw(&mut rng, nb)
            };
            let ra = metric_a.on(&ia)?;
            let rb = metric_b.on(&ib)?;
            Some(rb - ra)
        })
        .collect();
    let ok: Vec<f64> = diffs.iter().flatten().copied().collect();
    let skipped = opts.resamples - ok.len();
    let better = ok
        .iter()
        .filter(|&&d| if higher_is_better { d > 0.0 } else { d < 0.0 })
        .count();
    let b_better_share = if ok.is_empty() {
        0.0
    } else {
        better as f64 / ok.len() as f64
    };
    let (lower, upper) = percentile(ok, opts.resamples, opts.confidence)
        .ok_or_else(|| too_many_skipped(name, skipped, opts.resamples))?;
    Ok(Difference {
        metric: name.to_string(),
        a: va,
        b: vb,
        estimate: vb - va,
        lower,
        upper,
        confidence: opts.confidence,
        resamples: opts.resamples,
        skipped,
        paired,
        b_better_share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Predictions, Task};

    fn regression(y: &[f64], p: &[f32]) -> EvalInput {
        EvalInput {
            y_true: Some(y.to_vec()),
            predictions: Predictions {
                task: Task::Regression,
                n_rows: p.len(),
                width: 1,
                values: p.to_vec(),
                column_names: vec!["prediction".into()],
            },
            features: None,
        }
    }

    fn data(noise: f32) -> EvalInput {
        let y: Vec<f64> = (0..200).map(|i| (i as f64 * 0.1).sin() * 10.0).collect();
        let p: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(i, v)| *v as f32 + noise * ((i * 7919 % 13) as f32 - 6.0))
            .collect();
        regression(&y, &p)
    }

    #[test]
    fn interval_is_seeded_and_covers_the_estimate() {
        let input = data(0.5);
        let opts = BootstrapOptions {
            resamples: 300,
            seed: 42,
            ..Default::default()
        };
        let a = interval("mae", &input, &opts).unwrap();
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| interval("mae", &input, &opts).unwrap());
        assert_eq!(a, b);
        assert!(a.lower < a.estimate && a.estimate < a.upper, "{a:?}");
        let other = interval("mae", &input, &BootstrapOptions { seed: 43, ..opts }).unwrap();
        assert_ne!(a.lower, other.lower);
    }

    #[test]
    fn the_fast_binary_auc_path_gives_the_generic_values() {
        let y: Vec<f64> = (0..300).map(|i| f64::from((i * 7) % 5 < 2)).collect();
        let p: Vec<f32> = (0..300)
            .map(|i| ((i * 13) % 17) as f32 / 20.0 + y[i] as f32 * 0.1)
            .collect();
        let input = EvalInput {
            y_true: Some(y),
            predictions: Predictions {
                task: Task::Binary {
                    classes: vec!["0".into(), "1".into()],
                },
                n_rows: 300,
                width: 1,
                values: p,
                column_names: vec!["p".into()],
            },
            features: None,
        };
        let opts = Options::default();
        let fast = Resampler::new("auc", &input, &opts);
        assert!(fast.auc.is_some());
        for r in 0..10 {
            let idx = draw(&mut Rng::stream(5, r), 300);
            let generic = compute_with("auc", &input.take_rows(&idx), &opts).ok();
            assert_eq!(fast.on(&idx), generic);
        }
    }

    #[test]
    fn a_clearly_better_variant_wins_every_paired_resample() {
        let opts = BootstrapOptions {
            resamples: 200,
            seed: 1,
            ..Default::default()
        };
        let d = difference("rmse", &data(1.0), &data(0.2), &opts).unwrap();
        assert!(d.paired);
        assert!(d.estimate < 0.0 && d.upper < 0.0, "{d:?}");
        assert_eq!(d.b_better_share, 1.0);
        let bad = BootstrapOptions {
            confidence: 1.5,
            ..opts
        };
        assert!(interval("rmse", &data(1.0), &bad).is_err());
    }
}
