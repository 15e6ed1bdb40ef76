//! Weighted ensembles of trained models, and greedy ensemble selection
//! (Caruana et al., "Ensemble selection from libraries of models", ICML
//! 2004), as AutoML systems use to combine their best candidates.
//!
//! An [`EnsembleModel`] predicts the weighted mean of its members'
//! predictions (probabilities for a classifier, values for a regressor).
//! It is saved as `model.json` naming each member's directory and weight,
//! with each member saved under `members/N/`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::BuiltinError;
use crate::model::{Model, Predictions, Task};

const FORMAT_VERSION: u32 = 1;

/// The members and their weights.
pub struct EnsembleModel {
    members: Vec<(Box<dyn Model>, u32)>,
    /// What each member's directory is called and which algorithm it is.
    saved: Saved,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Member {
    /// Relative to the ensemble's directory.
    path: String,
    algorithm: String,
    /// How many times greedy selection picked it.
    weight: u32,
    /// What it was (an automl trial's name), for people reading the file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Saved {
    members: Vec<Member>,
}

/// Whether two class lists name the same classes in the same order (a
/// numeric class by value: `1` is `1.0`).
fn same_classes(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x == y || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(p), Ok(q)) if p == q)
        })
}

fn compatible(a: &Task, b: &Task) -> bool {
    match (a, b) {
        (Task::Regression, Task::Regression) => true,
        (Task::Binary { classes: x }, Task::Binary { classes: y })
        | (Task::Multiclass { classes: x }, Task::Multiclass { classes: y }) => same_classes(x, y),
        _ => false,
    }
}

/// The weighted mean of `preds` (all of one task and width).
fn blend(preds: &[&Predictions], weights: &[u32]) -> Result<Predictions, BuiltinError> {
    let first = preds
        .first()
        .ok_or_else(|| BuiltinError::failed("an ensemble needs at least one member"))?;
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let mut sum = vec![0f64; first.values.len()];
    for (p, &w) in preds.iter().zip(weights) {
        if p.values.len() != sum.len() || !compatible(&p.task, &first.task) {
            return Err(BuiltinError::failed(
                "the ensemble's members predict different things (another task, other classes or another width)",
            ));
        }
        for (s, &v) in sum.iter_mut().zip(&p.values) {
            *s += f64::from(w) * f64::from(v);
        }
    }
    Ok(Predictions {
        task: first.task.clone(),
        n_rows: first.n_rows,
        width: first.width,
        values: sum.into_iter().map(|s| (s / total) as f32).collect(),
        column_names: first.column_names.clone(),
    })
}

impl EnsembleModel {
    /// An ensemble of `members` (model, weight, where it came from); every
    /// member must be a classifier of the same classes or a regressor, and
    /// no member an ensemble itself.
    pub fn new(members: Vec<(Box<dyn Model>, u32, String)>) -> Result<Self, BuiltinError> {
        if members.is_empty() || members.iter().all(|m| m.1 == 0) {
            return Err(BuiltinError::failed(
                "an ensemble needs at least one member with a weight above 0",
            ));
        }
        let mut saved = Saved {
            members: Vec::new(),
        };
        let mut kept = Vec::new();
        for (i, (m, w, source)) in members.into_iter().enumerate() {
            if m.algorithm() == "ensemble" {
                return Err(BuiltinError::failed("an ensemble cannot hold an ensemble"));
            }
            saved.members.push(Member {
                path: format!("members/{i}"),
                algorithm: m.algorithm().to_string(),
                weight: w,
                source,
            });
            kept.push((m, w));
        }
        Ok(EnsembleModel {
            members: kept,
            saved,
        })
    }

    pub fn load(dir: &Path) -> Result<Self, BuiltinError> {
        let saved: Saved = crate::dense::load_model_json(dir, "ensemble", FORMAT_VERSION)?;
        let mut members = Vec::new();
        for m in &saved.members {
            let rel = Path::new(&m.path);
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(BuiltinError::failed(format!(
                    "{}: the member path `{}` leaves the model's directory",
                    dir.display(),
                    m.path
                )));
            }
            let sub = dir.join(rel);
            if crate::model::saved_algorithm(&sub)? == "ensemble" {
                return Err(BuiltinError::failed(format!(
                    "{}: an ensemble cannot hold an ensemble",
                    sub.display()
                )));
            }
            members.push((crate::algorithm::load(&sub)?, m.weight));
        }
        if members.is_empty() {
            return Err(BuiltinError::failed(format!(
                "{}: the ensemble has no members",
                dir.display()
            )));
        }
        Ok(EnsembleModel { members, saved })
    }

    /// (algorithm, weight, source) of each member.
    pub fn members(&self) -> Vec<(String, u32, String)> {
        self.saved
            .members
            .iter()
            .map(|m| (m.algorithm.clone(), m.weight, m.source.clone()))
            .collect()
    }
}

impl Model for EnsembleModel {
    fn algorithm(&self) -> &'static str {
        "ensemble"
    }

    fn predict(&self, data: &Dataset) -> Result<Predictions, BuiltinError> {
        let mut preds = Vec::with_capacity(self.members.len());
        let mut weights = Vec::with_capacity(self.members.len());
        for (m, w) in &self.members {
            if *w > 0 {
                preds.push(m.predict(data)?);
                weights.push(*w);
            }
        }
        let refs: Vec<&Predictions> = preds.iter().collect();
        blend(&refs, &weights)
    }

    fn save(&self, dir: &Path) -> Result<(), BuiltinError> {
        crate::dense::save_model_json(dir, "ensemble", FORMAT_VERSION, &self.saved)?;
        for ((m, _), s) in self.members.iter().zip(&self.saved.members) {
            let sub = dir.join(&s.path);
            std::fs::create_dir_all(&sub)
                .map_err(|e| crate::error::io_failed("create", &sub, e))?;
            m.save(&sub)?;
        }
        Ok(())
    }
}

/// Greedy ensemble selection with replacement: `rounds` times, add the
/// candidate whose addition gives the lowest `loss` of the blended
/// predictions (ties to the lower index); return each candidate's weight
/// (times picked) at the round with the lowest loss (the earliest such),
/// and that loss. `preds` are the candidates' predictions of the same rows,
/// best candidate first; `loss` of a blend is lower-better. Deterministic.
pub fn select(
    preds: &[Predictions],
    rounds: usize,
    loss: &dyn Fn(&Predictions) -> Result<f64, BuiltinError>,
) -> Result<(Vec<u32>, f64), BuiltinError> {
    let n = preds.len();
    if n == 0 {
        return Err(BuiltinError::failed("no candidates to select from"));
    }
    let mut weights = vec![0u32; n];
    let mut best: Option<(Vec<u32>, f64)> = None;
    for _ in 0..rounds.max(1) {
        let mut round: Option<(usize, f64)> = None;
        for c in 0..n {
            let mut w = weights.clone();
            w[c] += 1;
            let (refs, ws): (Vec<&Predictions>, Vec<u32>) = preds
                .iter()
                .zip(&w)
                .filter(|(_, w)| **w > 0)
                .map(|(p, w)| (p, *w))
                .unzip();
            let l = loss(&blend(&refs, &ws)?)?;
            if l.is_finite() && round.is_none_or(|(_, b)| l < b) {
                round = Some((c, l));
            }
        }
        let Some((c, l)) = round else { break };
        weights[c] += 1;
        if best.as_ref().is_none_or(|(_, b)| l < *b) {
            best = Some((weights.clone(), l));
        }
    }
    best.ok_or_else(|| BuiltinError::failed("no blend of the candidates has a finite loss"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(values: &[f32]) -> Predictions {
        Predictions {
            task: Task::Binary {
                classes: vec!["0".into(), "1".into()],
            },
            n_rows: values.len(),
            width: 1,
            values: values.to_vec(),
            column_names: vec!["probability".into()],
        }
    }

    /// Squared error against labels 1, 0, 1, 0.
    fn brier(p: &Predictions) -> Result<f64, BuiltinError> {
        let y = [1.0, 0.0, 1.0, 0.0];
        Ok(p.values
            .iter()
            .zip(y)
            .map(|(&v, t)| (f64::from(v) - t).powi(2))
            .sum())
    }

    #[test]
    fn selection_blends_models_whose_errors_differ() {
        // Each is right on two rows and unsure on the others: together they are right on all.
        let a = binary(&[1.0, 0.0, 0.5, 0.5]);
        let b = binary(&[0.5, 0.5, 1.0, 0.0]);
        let c = binary(&[0.4, 0.6, 0.4, 0.6]);
        let (w, l) = select(&[a.clone(), b.clone(), c], 10, &brier).unwrap();
        assert_eq!(w[2], 0, "the bad model is not picked: {w:?}");
        assert_eq!(w[0], w[1], "{w:?}");
        assert!(l < brier(&a).unwrap());
        // The same inputs give the same weights.
        let again = select(&[a, b, binary(&[0.4, 0.6, 0.4, 0.6])], 10, &brier).unwrap();
        assert_eq!(again.0, w);
    }

    #[test]
    fn a_single_best_model_stays_alone() {
        let good = binary(&[0.9, 0.1, 0.9, 0.1]);
        let bad = binary(&[0.2, 0.8, 0.2, 0.8]);
        let (w, _) = select(&[good, bad], 5, &brier).unwrap();
        assert_eq!(w, vec![1, 0]);
    }

    #[test]
    fn members_must_predict_the_same_classes() {
        let a = binary(&[0.5]);
        let mut b = binary(&[0.5]);
        b.task = Task::Binary {
            classes: vec!["no".into(), "yes".into()],
        };
        assert!(blend(&[&a, &b], &[1, 1]).is_err());
        // Numeric classes match by value.
        let mut c = binary(&[0.7]);
        c.task = Task::Binary {
            classes: vec!["0.0".into(), "1.0".into()],
        };
        let p = blend(&[&a, &c], &[1, 3]).unwrap();
        assert!((p.values[0] - 0.65).abs() < 1e-6);
    }
}
