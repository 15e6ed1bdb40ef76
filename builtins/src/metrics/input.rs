//! What a metric is computed from: true values, a model's predictions and,
//! for the unsupervised metrics, the features.
//!
//! Everything is held in `f64` so that sums over millions of rows do not lose
//! the precision `f32` predictions would; class labels are indices into the
//! model's class list (`Task::Binary`/`Task::Multiclass`), so a test file
//! whose labels appear in a different order than in training still lines up.

use crate::dataset::{ColumnKind, Dataset};
use crate::error::BuiltinError;
use crate::model::{Predictions, Task};

/// Dense row-major features in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub n_rows: usize,
    pub n_cols: usize,
    pub values: Vec<f64>,
}

impl Features {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.n_cols..(i + 1) * self.n_cols]
    }

    /// The feature columns of `data` (its target excluded); categorical columns are their codes.
    pub fn from_dataset(data: &Dataset) -> Features {
        let n_cols = data.n_features();
        let values = data
            .feature_matrix_row_major()
            .into_iter()
            .map(f64::from)
            .collect();
        Features {
            n_rows: data.n_rows(),
            n_cols,
            values,
        }
    }
}

/// The inputs of every metric.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalInput {
    /// The true value of each row: a class index into the task's classes for
    /// classification, the value for regression; `None` for clustering and projection.
    pub y_true: Option<Vec<f64>>,
    pub predictions: Predictions,
    /// The features, needed by `inertia`, `silhouette` and the projection metrics.
    pub features: Option<Features>,
}

impl EvalInput {
    /// Builds the input of a supervised or unsupervised evaluation from the data
    /// set the predictions were made on.
    ///
    /// For classification the target's labels are matched to the model's
    /// classes by name (a numeric target by value, so `1` matches class `1.0`).
    pub fn from_dataset(data: &Dataset, predictions: Predictions) -> Result<Self, BuiltinError> {
        if predictions.n_rows != data.n_rows() {
            return Err(BuiltinError::failed(format!(
                "evaluate: the model made {} predictions for {} rows",
                predictions.n_rows,
                data.n_rows()
            )));
        }
        let y_true = match (&predictions.task, data.target()) {
            (Task::Regression, Some(t)) if t.is_categorical() => {
                return Err(BuiltinError::failed(format!(
                    "evaluate: the target `{}` holds text, but the model predicts numbers; evaluate a regression model on a numeric target",
                    t.name
                )));
            }
            (Task::Regression, Some(t)) => Some(numeric_target(&t.name, &t.values)?),
            (Task::Binary { classes } | Task::Multiclass { classes }, Some(t)) => {
                Some(class_indices(&t.name, &t.kind, &t.values, classes)?)
            }
            (Task::Regression | Task::Binary { .. } | Task::Multiclass { .. }, None) => {
                return Err(BuiltinError::failed(
                    "evaluate: the evaluation data has no target column to compare predictions with",
                ));
            }
            (Task::Clustering | Task::Projection, _) => None,
        };
        Ok(EvalInput {
            y_true,
            predictions,
            features: Some(Features::from_dataset(data)),
        })
    }

    pub fn n_rows(&self) -> usize {
        self.predictions.n_rows
    }

    /// The rows at `indices` (repeats allowed), as bootstrap resampling needs.
    pub fn take_rows(&self, indices: &[usize]) -> EvalInput {
        let p = &self.predictions;
        let mut values = Vec::with_capacity(indices.len() * p.width);
        for &i in indices {
            values.extend_from_slice(p.row(i));
        }
        EvalInput {
            y_true: self
                .y_true
                .as_ref()
                .map(|y| indices.iter().map(|&i| y[i]).collect()),
            predictions: Predictions {
                task: p.task.clone(),
                n_rows: indices.len(),
                width: p.width,
                values,
                column_names: p.column_names.clone(),
            },
            features: self.features.as_ref().map(|f| {
                let mut values = Vec::with_capacity(indices.len() * f.n_cols);
                for &i in indices {
                    values.extend_from_slice(f.row(i));
                }
                Features {
                    n_rows: indices.len(),
                    n_cols: f.n_cols,
                    values,
                }
            }),
        }
    }
}

fn numeric_target(name: &str, values: &[f32]) -> Result<Vec<f64>, BuiltinError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is_nan() {
                Err(BuiltinError::failed(format!(
                    "evaluate: the target `{name}` is missing on data row {}; drop or fill such rows before evaluating",
                    i + 1
                )))
            } else {
                Ok(f64::from(*v))
            }
        })
        .collect()
}

fn class_indices(
    name: &str,
    kind: &ColumnKind,
    values: &[f32],
    classes: &[String],
) -> Result<Vec<f64>, BuiltinError> {
    let numeric_classes: Vec<Option<f64>> = classes.iter().map(|c| c.parse().ok()).collect();
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        if v.is_nan() {
            return Err(BuiltinError::failed(format!(
                "evaluate: the target `{name}` is missing on data row {}; drop or fill such rows before evaluating",
                i + 1
            )));
        }
        let found = match kind {
            ColumnKind::Categorical { levels } => levels
                .get(*v as usize)
                .and_then(|label| classes.iter().position(|c| c == label)),
            ColumnKind::Numeric => numeric_classes
                .iter()
                .position(|c| *c == Some(f64::from(*v))),
        };
        match found {
            Some(k) => out.push(k as f64),
            None => {
                let label = match kind {
                    ColumnKind::Categorical { levels } => levels
                        .get(*v as usize)
                        .cloned()
                        .unwrap_or_else(|| format!("code {v}")),
                    ColumnKind::Numeric => v.to_string(),
                };
                return Err(BuiltinError::failed(format!(
                    "evaluate: data row {} has label `{label}` in `{name}`, a class the model never saw (it knows {})",
                    i + 1,
                    classes.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Column;

    fn preds(task: Task, width: usize, values: Vec<f32>) -> Predictions {
        Predictions {
            task,
            n_rows: values.len() / width,
            width,
            values,
            column_names: (0..width).map(|j| format!("p{j}")).collect(),
        }
    }

    #[test]
    fn labels_match_classes_by_name_not_code() {
        let ds = Dataset::new(
            vec![
                Column::categorical("y", vec!["b".into(), "a".into()], vec![0.0, 1.0, 0.0]),
                Column::numeric("x", vec![1.0, 2.0, 3.0]),
            ],
            Some("y"),
        );
        let task = Task::Binary {
            classes: vec!["a".into(), "b".into()],
        };
        let input = EvalInput::from_dataset(&ds, preds(task, 1, vec![0.9, 0.1, 0.8])).unwrap();
        assert_eq!(input.y_true.unwrap(), [1.0, 0.0, 1.0]);
        assert_eq!(input.features.unwrap().values, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn numeric_labels_match_numeric_class_names() {
        let ds = Dataset::from_rows(&[vec![0.0], vec![1.0]], Some(&[1.0, 0.0]));
        let task = Task::Binary {
            classes: vec!["0.0".into(), "1".into()],
        };
        let input = EvalInput::from_dataset(&ds, preds(task, 1, vec![0.9, 0.1])).unwrap();
        assert_eq!(input.y_true.unwrap(), [1.0, 0.0]);
    }

    #[test]
    fn an_unknown_label_names_the_row() {
        let ds = Dataset::from_rows(&[vec![0.0], vec![1.0]], Some(&[1.0, 2.0]));
        let task = Task::Binary {
            classes: vec!["0".into(), "1".into()],
        };
        let err = EvalInput::from_dataset(&ds, preds(task, 1, vec![0.9, 0.1])).unwrap_err();
        assert!(
            err.to_string().contains("data row 2 has label `2`"),
            "{err}"
        );
    }

    #[test]
    fn a_text_target_for_a_regression_model_is_refused() {
        let ds = Dataset::new(
            vec![Column::categorical("y", vec!["a".into()], vec![0.0])],
            Some("y"),
        );
        let err = EvalInput::from_dataset(&ds, preds(Task::Regression, 1, vec![0.5])).unwrap_err();
        assert!(err.to_string().contains("holds text"), "{err}");
    }

    #[test]
    fn take_rows_repeats_rows() {
        let input = EvalInput {
            y_true: Some(vec![1.0, 2.0]),
            predictions: preds(Task::Regression, 1, vec![1.5, 2.5]),
            features: None,
        };
        let t = input.take_rows(&[1, 1, 0]);
        assert_eq!(t.y_true.unwrap(), [2.0, 2.0, 1.0]);
        assert_eq!(t.predictions.values, [2.5, 2.5, 1.5]);
    }
}
