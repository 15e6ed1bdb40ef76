//! Checking the target column and turning it into numbers the losses use.
//!
//! A bad label is reported with its 1-based data row, so it can be found.

use crate::dataset::{ColumnKind, Dataset};
use crate::error::{BuiltinError, DataError};

use super::params::PredictorType;

/// The target as the losses see it, plus the class names for predictions.
pub struct Labels {
    /// 0/1 for binary, the class index for multiclass, the value for regressors.
    pub y: Vec<f32>,
    /// Class names (empty for a regressor).
    pub classes: Vec<String>,
}

/// The classes of a multiclass classifier whose `num_classes` is not given:
/// the distinct text labels, or numeric labels `0..=max`. On several nodes
/// only text labels (one dictionary across the nodes) can be counted.
pub fn count_classes(ds: &Dataset, nodes: usize) -> Result<usize, BuiltinError> {
    let Some(t) = ds.target() else {
        return Err(BuiltinError::Data(
            DataError::new("train data", "has no target column")
                .hint("name the label column (or put it first in a headerless CSV)"),
        ));
    };
    let k = match &t.kind {
        ColumnKind::Categorical { levels } => levels.len(),
        ColumnKind::Numeric if nodes > 1 => {
            return Err(BuiltinError::hyperparameter(
                "num_classes",
                None,
                "is needed on several nodes when the labels are numbers (each node sees only its rows)",
            )
            .with_hint("set `num_classes` to the number of distinct labels"));
        }
        ColumnKind::Numeric => t
            .values
            .iter()
            .filter(|v| v.is_finite() && **v >= 0.0 && v.fract() == 0.0)
            .fold(0usize, |m, &v| m.max(v as usize + 1)),
    };
    if k < 3 {
        return Err(BuiltinError::hyperparameter(
            "num_classes",
            None,
            format!("is not given, and the training labels make {k} classes; a multiclass_classifier needs at least 3"),
        )
        .with_hint("for two classes use predictor_type: binary_classifier"));
    }
    if k > super::params::MAX_CLASSES {
        return Err(BuiltinError::hyperparameter(
            "num_classes",
            None,
            format!(
                "is not given, and the training labels make {k} classes, more than the {} allowed",
                super::params::MAX_CLASSES
            ),
        ));
    }
    Ok(k)
}

/// Reads and checks the target of `ds` (`channel` names it in messages).
pub fn labels(
    ds: &Dataset,
    predictor: PredictorType,
    num_classes: usize,
    channel: &str,
) -> Result<Labels, BuiltinError> {
    let t = ds.target().ok_or_else(|| {
        BuiltinError::Data(
            DataError::new(channel, "has no target column")
                .hint("name the label column (or put it first in a headerless CSV)"),
        )
    })?;
    let bad = |row: usize, msg: String, hint: &str| {
        BuiltinError::Data(
            DataError::new(channel, format!("data row {}: {msg}", row + 1)).hint(hint.to_string()),
        )
    };
    if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
        return Err(bad(
            i,
            format!("the label in column `{}` is missing or infinite", t.name),
            "remove rows without a label, or fill them in",
        ));
    }
    match (predictor, &t.kind) {
        (PredictorType::Regressor, ColumnKind::Categorical { .. }) => Err(BuiltinError::Data(
            DataError::new(
                channel,
                format!(
                    "the target column `{}` holds text, a regressor needs numbers",
                    t.name
                ),
            )
            .hint("use predictor_type binary_classifier or multiclass_classifier for class labels"),
        )),
        (PredictorType::Regressor, ColumnKind::Numeric) => Ok(Labels {
            y: t.values.clone(),
            classes: Vec::new(),
        }),
        (_, ColumnKind::Categorical { levels }) => {
            if levels.len() > num_classes {
                let i = t
                    .values
                    .iter()
                    .position(|&v| v as usize >= num_classes)
                    .unwrap_or(0);
                return Err(bad(
                    i,
                    format!(
                        "label `{}` makes {} distinct labels, more than the {num_classes} classes",
                        levels[t.values[i] as usize],
                        levels.len()
                    ),
                    "set num_classes to the number of distinct labels",
                ));
            }
            if levels.len() < 2 {
                return Err(BuiltinError::Data(
                    DataError::new(channel, "every row has the same label")
                        .hint("a classifier needs rows of at least two classes"),
                ));
            }
            let mut classes = levels.clone();
            classes.extend((levels.len()..num_classes).map(|i| format!("class_{i}")));
            Ok(Labels {
                y: t.values.clone(),
                classes,
            })
        }
        (_, ColumnKind::Numeric) => {
            if let Some(i) = t
                .values
                .iter()
                .position(|&v| v < 0.0 || v.fract() != 0.0 || v as usize >= num_classes)
            {
                let msg = if predictor == PredictorType::Binary {
                    format!("label {} is not 0 or 1", t.values[i])
                } else {
                    format!(
                        "label {} is not a whole number from 0 to {}",
                        t.values[i],
                        num_classes - 1
                    )
                };
                return Err(bad(
                    i,
                    msg,
                    "recode the labels as 0..num_classes-1 (or use text labels)",
                ));
            }
            Ok(Labels {
                y: t.values.clone(),
                classes: (0..num_classes).map(|i| i.to_string()).collect(),
            })
        }
    }
}
