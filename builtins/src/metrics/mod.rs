//! Metrics of the `evaluate` step, by the names users write in a pipeline.
//!
//! The step hands over an [`EvalInput`] (true values, the model's
//! [`Predictions`](crate::model::Predictions), the features) and a list of
//! names; [`compute`] returns one `f64` per name. Every metric equals
//! scikit-learn's on the same predictions (the tests compare them to 1e-9 on
//! vectors scikit-learn produced), so numbers in a report can be checked
//! against a notebook:
//!
//! | names | task | defined as |
//! |---|---|---|
//! | `accuracy` | classification | `accuracy_score` |
//! | `precision`, `recall`, `f1` | binary | `average="binary"`, positive class = the model's second class |
//! | `precision_macro`, `recall_macro`, `f1_macro`, `*_weighted` | classification | `average="macro"` / `"weighted"` |
//! | `auc` | classification | `roc_auc_score`; multiclass one-vs-rest, macro |
//! | `logloss` | classification | `log_loss` (clipped to machine epsilon) |
//! | `rmse`, `mse`, `mae`, `r2`, `mape` | regression | `root_mean_squared_error`, ..., `mean_absolute_percentage_error` |
//! | `inertia`, `silhouette` | clustering | squared distances to the cluster means; `silhouette_score` (sampled above a bound) |
//! | `explained_variance_ratio`, `reconstruction_error` | projection | see [`projection`] |
//!
//! Besides single numbers: [`confusion_matrix`], the ROC and precision-recall
//! curves of [`ranking`] and [`regression::residual_summary`] feed the HTML
//! report, and [`bootstrap`] gives confidence intervals of a metric and of the
//! difference between two variants (the `ab` evaluation).
//!
//! Binary predictions are P(second class) (or both classes' probabilities); a
//! row is predicted positive when it is above 0.5. Multiclass rows predict
//! their most probable class. Clustering predictions are cluster indices; when
//! they carry a second column (the distance to the row's centre), `inertia`
//! sums its squares, otherwise it uses the distances to the clusters' means.

pub mod bootstrap;
pub mod classification;
pub mod clustering;
pub mod input;
pub mod projection;
pub mod ranking;
pub mod regression;

pub use input::{EvalInput, Features};

use crate::error::BuiltinError;
use crate::hyperparams::closest;
use crate::model::Task;
use classification::Average;

/// The kinds of task a metric may apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Regression,
    Binary,
    Multiclass,
    Clustering,
    Projection,
}

impl TaskKind {
    pub fn of(task: &Task) -> TaskKind {
        match task {
            Task::Regression => TaskKind::Regression,
            Task::Binary { .. } => TaskKind::Binary,
            Task::Multiclass { .. } => TaskKind::Multiclass,
            Task::Clustering => TaskKind::Clustering,
            Task::Projection => TaskKind::Projection,
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            TaskKind::Regression => "a regression model",
            TaskKind::Binary => "a binary classifier",
            TaskKind::Multiclass => "a multiclass classifier",
            TaskKind::Clustering => "a clustering model",
            TaskKind::Projection => "a projection (pca) model",
        }
    }
}

/// A metric users may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    pub name: &'static str,
    /// Whether a larger value is a better model (for comparisons and conditions).
    pub higher_is_better: bool,
    pub tasks: &'static [TaskKind],
}

const CLS: &[TaskKind] = &[TaskKind::Binary, TaskKind::Multiclass];
const BIN: &[TaskKind] = &[TaskKind::Binary];
const REG: &[TaskKind] = &[TaskKind::Regression];
const CLU: &[TaskKind] = &[TaskKind::Clustering];
const PROJ: &[TaskKind] = &[TaskKind::Projection];

const fn m(name: &'static str, higher_is_better: bool, tasks: &'static [TaskKind]) -> MetricInfo {
    MetricInfo {
        name,
        higher_is_better,
        tasks,
    }
}

/// Every metric, in the order they are listed to users.
pub const METRICS: &[MetricInfo] = &[
    m("accuracy", true, CLS),
    m("precision", true, BIN),
    m("recall", true, BIN),
    m("f1", true, BIN),
    m("precision_macro", true, CLS),
    m("recall_macro", true, CLS),
    m("f1_macro", true, CLS),
    m("precision_weighted", true, CLS),
    m("recall_weighted", true, CLS),
    m("f1_weighted", true, CLS),
    m("auc", true, CLS),
    m("logloss", false, CLS),
    m("rmse", false, REG),
    m("mse", false, REG),
    m("mae", false, REG),
    m("r2", true, REG),
    m("mape", false, REG),
    m("inertia", false, CLU),
    m("silhouette", true, CLU),
    m("explained_variance_ratio", true, PROJ),
    m("reconstruction_error", false, PROJ),
];

/// The metric named `name`, if there is one.
pub fn info(name: &str) -> Option<&'static MetricInfo> {
    METRICS.iter().find(|m| m.name == name)
}

/// The metrics that apply to models of `task`.
pub fn names_for(task: &Task) -> Vec<&'static str> {
    let kind = TaskKind::of(task);
    METRICS
        .iter()
        .filter(|m| m.tasks.contains(&kind))
        .map(|m| m.name)
        .collect()
}

/// The metric an evaluation reports when the pipeline names none.
pub fn default_for(task: &Task) -> &'static str {
    match TaskKind::of(task) {
        TaskKind::Regression => "rmse",
        TaskKind::Binary => "auc",
        TaskKind::Multiclass => "accuracy",
        TaskKind::Clustering => "inertia",
        TaskKind::Projection => "explained_variance_ratio",
    }
}

/// Checks that `name` is a metric that applies to `task`, without data, so
/// the engine can reject a pipeline before running it.
pub fn check_name(name: &str, task: &Task) -> Result<&'static MetricInfo, BuiltinError> {
    let kind = TaskKind::of(task);
    let Some(info) = info(name) else {
        let err = BuiltinError::hyperparameter("metrics", Some(name), "is not a metric");
        let fitting = names_for(task);
        return Err(match closest(name, METRICS.iter().map(|m| m.name)) {
            Some(c) => err.with_hint(format!("did you mean `{c}`?")),
            None => err.with_hint(format!(
                "metrics for {}: {}",
                kind.phrase(),
                fitting.join(", ")
            )),
        });
    };
    if !info.tasks.contains(&kind) {
        let mut hint = format!(
            "metrics for {}: {}",
            kind.phrase(),
            names_for(task).join(", ")
        );
        if kind == TaskKind::Multiclass && info.tasks == BIN {
            hint = format!("use `{name}_macro` or `{name}_weighted` for several classes");
        }
        return Err(BuiltinError::hyperparameter(
            "metrics",
            Some(name),
            format!("does not apply to {}", kind.phrase()),
        )
        .with_hint(hint));
    }
    Ok(info)
}

/// Settings of the metrics that have any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The silhouette is computed on a seeded sample of at most this many rows.
    pub silhouette_max_rows: usize,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            silhouette_max_rows: 10_000,
            seed: 0,
        }
    }
}

/// The value of metric `name` on `input`, with default [`Options`].
pub fn compute(name: &str, input: &EvalInput) -> Result<f64, BuiltinError> {
    compute_with(name, input, &Options::default())
}

/// The value of metric `name` on `input`.
pub fn compute_with(name: &str, input: &EvalInput, opts: &Options) -> Result<f64, BuiltinError> {
    let p = &input.predictions;
    let info = check_name(name, &p.task)?;
    if p.values.len() != p.n_rows * p.width {
        return Err(BuiltinError::failed(format!(
            "compute {name}: the predictions hold {} values for {} rows of width {}",
            p.values.len(),
            p.n_rows,
            p.width
        )));
    }
    if p.n_rows == 0 {
        return Err(BuiltinError::failed(format!(
            "compute {name}: the evaluation data has no rows"
        )));
    }
    match TaskKind::of(&p.task) {
        TaskKind::Binary | TaskKind::Multiclass => classification_metric(info.name, input),
        TaskKind::Regression => {
            let y = y_true(name, input)?;
            let pred: Vec<f64> = p
                .values
                .iter()
                .step_by(p.width.max(1))
                .map(|&v| f64::from(v))
                .collect();
            Ok(match info.name {
                "rmse" => regression::rmse(y, &pred),
                "mse" => regression::mse(y, &pred),
                "mae" => regression::mae(y, &pred),
                "r2" => regression::r2(y, &pred),
                _ => regression::mape(y, &pred),
            })
        }
        TaskKind::Clustering => {
            let f = features(name, input)?;
            let labels = cluster_labels(name, input)?;
            match info.name {
                "inertia" if p.width >= 2 => Ok(p
                    .values
                    .chunks_exact(p.width)
                    .map(|r| f64::from(r[1]) * f64::from(r[1]))
                    .sum()),
                "inertia" => Ok(clustering::inertia(f, &labels)),
                _ => clustering::silhouette(f, &labels, opts.silhouette_max_rows.max(2), opts.seed)
                    .ok_or_else(|| {
                        BuiltinError::failed(format!(
                            "compute {name}: the silhouette needs at least 2 clusters and fewer clusters than rows"
                        ))
                    }),
            }
        }
        TaskKind::Projection => {
            let f = features(name, input)?;
            let z: Vec<f64> = p.values.iter().map(|&v| f64::from(v)).collect();
            let r = projection::reconstruct(f, &z, p.width);
            Ok(match info.name {
                "explained_variance_ratio" => r.explained_variance_ratio(),
                _ => r.error(),
            })
        }
    }
}

fn y_true<'a>(name: &str, input: &'a EvalInput) -> Result<&'a [f64], BuiltinError> {
    let y = input.y_true.as_deref().ok_or_else(|| {
        BuiltinError::failed(format!(
            "compute {name}: no true values were given (the evaluation data needs its target column)"
        ))
    })?;
    if y.len() != input.n_rows() {
        return Err(BuiltinError::failed(format!(
            "compute {name}: {} true values for {} predictions",
            y.len(),
            input.n_rows()
        )));
    }
    Ok(y)
}

fn features<'a>(name: &str, input: &'a EvalInput) -> Result<&'a Features, BuiltinError> {
    let f = input.features.as_ref().ok_or_else(|| {
        BuiltinError::failed(format!("compute {name}: the metric needs the features"))
    })?;
    if f.n_rows != input.n_rows() || f.values.len() != f.n_rows * f.n_cols {
        return Err(BuiltinError::failed(format!(
            "compute {name}: {} feature rows for {} predictions",
            f.n_rows,
            input.n_rows()
        )));
    }
    if let Some(i) = f.values.iter().position(|v| !v.is_finite()) {
        return Err(BuiltinError::failed(format!(
            "compute {name}: data row {} has a missing feature value; distances need every value, so fill or drop it",
            i / f.n_cols.max(1) + 1
        )));
    }
    Ok(f)
}

/// The cluster of each row, renumbered `0..k` in order of the clusters'
/// indices, so that sparse indices (a model with 1000 clusters scoring 50
/// rows) cost no memory.
fn cluster_labels(name: &str, input: &EvalInput) -> Result<Vec<usize>, BuiltinError> {
    let raw = raw_cluster_labels(name, input)?;
    let mut distinct = raw.clone();
    distinct.sort_unstable();
    distinct.dedup();
    Ok(raw
        .iter()
        .map(|l| distinct.binary_search(l).unwrap_or(0))
        .collect())
}

fn raw_cluster_labels(name: &str, input: &EvalInput) -> Result<Vec<usize>, BuiltinError> {
    let p = &input.predictions;
    p.values
        .iter()
        .step_by(p.width.max(1))
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 && v < 1e15 {
                Ok(v as usize)
            } else {
                Err(BuiltinError::failed(format!(
                    "compute {name}: prediction {} is `{v}`, not a cluster index",
                    i + 1
                )))
            }
        })
        .collect()
}

fn n_classes(task: &Task) -> usize {
    match task {
        Task::Binary { .. } => 2,
        Task::Multiclass { classes } => classes.len(),
        _ => 0,
    }
}

fn class_labels(name: &str, input: &EvalInput) -> Result<Vec<usize>, BuiltinError> {
    let k = n_classes(&input.predictions.task);
    y_true(name, input)?
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 && (v as usize) < k {
                Ok(v as usize)
            } else {
                Err(BuiltinError::failed(format!(
                    "compute {name}: true value {} of row {} is not a class index below {k}",
                    v,
                    i + 1
                )))
            }
        })
        .collect()
}

fn classification_metric(name: &str, input: &EvalInput) -> Result<f64, BuiltinError> {
    let p = &input.predictions;
    let k = n_classes(&p.task);
    let expected_width = if k == 2 { 1 } else { k };
    if p.width != expected_width && !(k == 2 && p.width == 2) {
        return Err(BuiltinError::failed(format!(
            "compute {name}: predictions of {k} classes have width {}",
            p.width
        )));
    }
    let y = class_labels(name, input)?;
    let pred = classification::predicted_classes(p);
    let prf = |avg: Average| classification::precision_recall_f1(&y, &pred, k, avg);
    Ok(match name {
        "accuracy" => classification::accuracy(&y, &pred),
        "precision" => prf(Average::Binary).0,
        "recall" => prf(Average::Binary).1,
        "f1" => prf(Average::Binary).2,
        "precision_macro" => prf(Average::Macro).0,
        "recall_macro" => prf(Average::Macro).1,
        "f1_macro" => prf(Average::Macro).2,
        "precision_weighted" => prf(Average::Weighted).0,
        "recall_weighted" => prf(Average::Weighted).1,
        "f1_weighted" => prf(Average::Weighted).2,
        "logloss" => classification::logloss(&y, p),
        _ => auc(name, &y, input)?,
    })
}

/// Scores of class `c` for each row: P(class c).
fn class_scores(p: &crate::model::Predictions, c: usize) -> Vec<f64> {
    if matches!(p.task, Task::Binary { .. }) {
        (0..p.n_rows)
            .map(|i| {
                let pos = classification::positive_probability(p, i);
                if c == 1 { pos } else { 1.0 - pos }
            })
            .collect()
    } else {
        (0..p.n_rows).map(|i| f64::from(p.row(i)[c])).collect()
    }
}

fn auc(name: &str, y: &[usize], input: &EvalInput) -> Result<f64, BuiltinError> {
    let p = &input.predictions;
    let k = n_classes(&p.task);
    if k == 2 {
        let positive: Vec<bool> = y.iter().map(|&c| c == 1).collect();
        return ranking::roc_auc(&positive, &class_scores(p, 1)).ok_or_else(|| {
            BuiltinError::failed(format!(
                "compute {name}: the evaluation data holds only one class, so the ROC AUC is undefined"
            ))
        });
    }
    // One class against the rest, averaged over the classes present in the
    // data (a class with no rows has no ROC curve).
    let mut sum = 0.0;
    let mut n = 0usize;
    for c in 0..k {
        let positive: Vec<bool> = y.iter().map(|&t| t == c).collect();
        if let Some(a) = ranking::roc_auc(&positive, &class_scores(p, c)) {
            sum += a;
            n += 1;
        }
    }
    if n == 0 {
        return Err(BuiltinError::failed(format!(
            "compute {name}: the evaluation data holds only one class, so the ROC AUC is undefined"
        )));
    }
    Ok(sum / n as f64)
}

/// The confusion matrix (`m[true][predicted]`, classes in the model's order).
pub fn confusion_matrix(input: &EvalInput) -> Result<Vec<Vec<u64>>, BuiltinError> {
    let p = &input.predictions;
    let k = n_classes(&p.task);
    if k == 0 {
        return Err(BuiltinError::failed(
            "compute the confusion matrix: the model is not a classifier",
        ));
    }
    let y = class_labels("the confusion matrix", input)?;
    Ok(classification::confusion_matrix(
        &y,
        &classification::predicted_classes(p),
        k,
    ))
}

/// The ROC and precision-recall curves of each class against the rest (one
/// pair for a binary model: its positive class), for the report.
pub fn curves(
    input: &EvalInput,
) -> Result<Vec<(usize, ranking::RocCurve, ranking::PrCurve)>, BuiltinError> {
    let p = &input.predictions;
    let k = n_classes(&p.task);
    if k == 0 {
        return Err(BuiltinError::failed(
            "compute ROC curves: the model is not a classifier",
        ));
    }
    let y = class_labels("ROC curves", input)?;
    let classes: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
    Ok(classes
        .into_iter()
        .map(|c| {
            let positive: Vec<bool> = y.iter().map(|&t| t == c).collect();
            let s = class_scores(p, c);
            (
                c,
                ranking::roc_curve(&positive, &s, true),
                ranking::pr_curve(&positive, &s),
            )
        })
        .collect())
}

/// One bin of a binary classifier's reliability diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationBin {
    /// The bin's predicted-probability range, `[lower, upper)` (the last bin closed).
    pub lower: f64,
    pub upper: f64,
    /// Rows whose predicted probability of the positive class falls in it.
    pub count: usize,
    /// Their mean predicted probability and the fraction that are positive
    /// (`NaN` for an empty bin).
    pub mean_predicted: f64,
    pub fraction_positive: f64,
}

/// A binary classifier's calibration in `bins` equal-width bins of the
/// predicted probability of the positive class (scikit-learn's
/// `calibration_curve(strategy="uniform")`, empty bins kept).
pub fn calibration(input: &EvalInput, bins: usize) -> Result<Vec<CalibrationBin>, BuiltinError> {
    let p = &input.predictions;
    if !matches!(p.task, Task::Binary { .. }) || bins == 0 {
        return Err(BuiltinError::failed(
            "a calibration curve is made for binary classifiers",
        ));
    }
    let y = class_labels("a calibration curve", input)?;
    let s = class_scores(p, 1);
    let mut count = vec![0usize; bins];
    let mut sum_p = vec![0f64; bins];
    let mut pos = vec![0usize; bins];
    for (i, &score) in s.iter().enumerate() {
        let b = ((score.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        sum_p[b] += score;
        pos[b] += usize::from(y[i] == 1);
    }
    Ok((0..bins)
        .map(|b| CalibrationBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            count: count[b],
            mean_predicted: sum_p[b] / count[b] as f64,
            fraction_positive: pos[b] as f64 / count[b] as f64,
        })
        .collect())
}

/// What a binary classifier does at one decision threshold (a row is
/// predicted positive when its probability is at least the threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRow {
    pub threshold: f64,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
    /// `NaN` where undefined (nothing predicted positive, no positives).
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub false_positive_rate: f64,
}

/// The confusion counts and rates of a binary classifier at each threshold.
pub fn threshold_table(
    input: &EvalInput,
    thresholds: &[f64],
) -> Result<Vec<ThresholdRow>, BuiltinError> {
    let p = &input.predictions;
    if !matches!(p.task, Task::Binary { .. }) {
        return Err(BuiltinError::failed(
            "a threshold table is made for binary classifiers",
        ));
    }
    let y = class_labels("a threshold table", input)?;
    let s = class_scores(p, 1);
    Ok(thresholds
        .iter()
        .map(|&t| {
            let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
            for (i, &score) in s.iter().enumerate() {
                match (score >= t, y[i] == 1) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, false) => tn += 1,
                    (false, true) => fn_ += 1,
                }
            }
            let precision = tp as f64 / (tp + fp) as f64;
            let recall = tp as f64 / (tp + fn_) as f64;
            ThresholdRow {
                threshold: t,
                tp,
                fp,
                tn,
                fn_,
                precision,
                recall,
                f1: 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64,
                false_positive_rate: fp as f64 / (fp + tn) as f64,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Predictions;

    fn binary_input(probs: &[f32], y: &[f64]) -> EvalInput {
        EvalInput {
            y_true: Some(y.to_vec()),
            predictions: Predictions {
                task: Task::Binary {
                    classes: vec!["no".into(), "yes".into()],
                },
                n_rows: probs.len(),
                width: 1,
                values: probs.to_vec(),
                column_names: vec!["probability".into()],
            },
            features: None,
        }
    }

    #[test]
    fn calibration_bins_count_rows_and_positives() {
        let input = binary_input(
            &[0.05, 0.15, 0.12, 0.95, 1.0, 0.55],
            &[0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
        );
        let c = calibration(&input, 10).unwrap();
        assert_eq!(c.len(), 10);
        assert_eq!(c[0].count, 1);
        assert_eq!(c[1].count, 2);
        assert!((c[1].mean_predicted - 0.135).abs() < 1e-6);
        assert_eq!(c[1].fraction_positive, 0.5);
        assert_eq!(c[9].count, 2); // 1.0 falls in the last, closed bin
        assert_eq!(c[9].fraction_positive, 1.0);
        assert!(c[3].mean_predicted.is_nan());
    }

    #[test]
    fn threshold_rows_count_as_sklearn_would() {
        let input = binary_input(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]);
        let t = threshold_table(&input, &[0.3, 0.5, 0.9]).unwrap();
        assert_eq!((t[0].tp, t[0].fp, t[0].tn, t[0].fn_), (2, 1, 1, 0));
        assert!((t[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t[0].recall, 1.0);
        assert_eq!((t[1].tp, t[1].fp, t[1].tn, t[1].fn_), (1, 0, 2, 1));
        assert!((t[1].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!(t[2].precision.is_nan());
        assert_eq!(t[2].false_positive_rate, 0.0);
    }

    fn binary(y: Vec<f64>, p: Vec<f32>) -> EvalInput {
        EvalInput {
            y_true: Some(y),
            predictions: Predictions {
                task: Task::Binary {
                    classes: vec!["no".into(), "yes".into()],
                },
                n_rows: p.len(),
                width: 1,
                values: p,
                column_names: vec!["p".into()],
            },
            features: None,
        }
    }

    #[test]
    fn unknown_and_misplaced_names_say_what_to_write() {
        let input = binary(vec![0.0, 1.0], vec![0.2, 0.7]);
        let e = compute("acuracy", &input).unwrap_err().to_string();
        assert!(e.contains("did you mean `accuracy`"), "{e}");
        let e = compute("rmse", &input).unwrap_err().to_string();
        assert!(e.contains("does not apply to a binary classifier"), "{e}");
        let multi = Task::Multiclass {
            classes: vec!["a".into(), "b".into(), "c".into()],
        };
        let e = check_name("f1", &multi).unwrap_err().to_string();
        assert!(e.contains("f1_macro"), "{e}");
        assert!(names_for(&Task::Regression).contains(&"mape"));
        assert!(names_for(&multi).contains(&default_for(&multi)));
    }

    #[test]
    fn two_column_binary_predictions_score_like_one_column() {
        let one = binary(vec![0.0, 1.0, 1.0, 0.0], vec![0.2, 0.7, 0.4, 0.6]);
        let mut two = one.clone();
        two.predictions.width = 2;
        two.predictions.values = vec![0.8, 0.2, 0.3, 0.7, 0.6, 0.4, 0.4, 0.6];
        for name in names_for(&one.predictions.task) {
            let (a, b) = (compute(name, &one).unwrap(), compute(name, &two).unwrap());
            assert!((a - b).abs() < 1e-7, "{name}: {a} vs {b}");
        }
    }

    #[test]
    fn binary_metrics_on_a_small_case() {
        let input = binary(vec![0.0, 1.0, 1.0, 0.0], vec![0.2, 0.7, 0.4, 0.6]);
        assert_eq!(compute("accuracy", &input).unwrap(), 0.5);
        assert_eq!(compute("auc", &input).unwrap(), 0.75);
        assert_eq!(
            confusion_matrix(&input).unwrap(),
            vec![vec![1, 1], vec![1, 1]]
        );
        let bad = binary(vec![0.0, 3.0], vec![0.2, 0.7]);
        assert!(compute("accuracy", &bad).is_err());
        let one_class = binary(vec![1.0, 1.0], vec![0.2, 0.7]);
        assert!(
            compute("auc", &one_class)
                .unwrap_err()
                .to_string()
                .contains("only one class")
        );
    }
}
