//! The output sets of a split and the fractions asked of each.
//!
//! The sets are `train`, `validation` and `test`, always kept in that order:
//! it is the time order of a time split and the order of every report.

use crate::error::BuiltinError;
use crate::hyperparams::closest;

/// The names a split may produce, in their fixed order.
pub const SET_NAMES: [&str; 3] = ["train", "validation", "test"];

/// Fractions are accepted when they sum to 1 within this.
pub const SUM_TOLERANCE: f64 = 1e-6;

/// Validated fractions: set indices (into [`SET_NAMES`]) in order, with their shares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fractions {
    pub sets: Vec<usize>,
    pub shares: Vec<f64>,
}

impl Fractions {
    /// Checks names and values; `what` names the setting in messages (`fractions`,
    /// `sources[1].fractions`).
    pub fn parse(pairs: &[(String, f64)], what: &str) -> Result<Fractions, BuiltinError> {
        if pairs.is_empty() {
            return Err(
                BuiltinError::hyperparameter(what, None, "names no output set")
                    .with_hint("write e.g. `{train: 0.8, test: 0.2}`"),
            );
        }
        let mut by_set: Vec<Option<f64>> = vec![None; SET_NAMES.len()];
        for (name, share) in pairs {
            let Some(k) = set_index(name) else {
                let err = BuiltinError::hyperparameter(
                    what,
                    Some(name),
                    "is not an output set of a split (train, validation, test)",
                );
                return Err(match closest(name, SET_NAMES.iter().copied()) {
                    Some(c) => err.with_hint(format!("did you mean `{c}`?")),
                    None => err,
                });
            };
            if by_set[k].is_some() {
                return Err(BuiltinError::hyperparameter(
                    what,
                    Some(name),
                    "is named twice",
                ));
            }
            if !(share.is_finite() && *share > 0.0 && *share <= 1.0) {
                return Err(BuiltinError::hyperparameter(
                    what,
                    Some(&format!("{name}: {share}")),
                    "each fraction must be above 0 and at most 1",
                ));
            }
            by_set[k] = Some(*share);
        }
        let sum: f64 = by_set.iter().flatten().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(BuiltinError::hyperparameter(
                what,
                None,
                format!("the fractions sum to {sum}, not 1"),
            )
            .with_hint("make the shares of train, validation and test add up to 1"));
        }
        let sets: Vec<usize> = (0..SET_NAMES.len())
            .filter(|&k| by_set[k].is_some())
            .collect();
        let shares = sets.iter().map(|&k| by_set[k].unwrap_or(0.0)).collect();
        Ok(Fractions { sets, shares })
    }

    /// Cumulative row targets: the first `bounds[i]` of `n` rows go to sets `..=i`.
    pub fn bounds(&self, n: usize) -> Vec<usize> {
        let mut acc = 0.0;
        let mut out: Vec<usize> = self
            .shares
            .iter()
            .map(|s| {
                acc += s;
                ((acc * n as f64).round() as usize).min(n)
            })
            .collect();
        if let Some(last) = out.last_mut() {
            // The shares sum to 1 only within the tolerance; every row is placed.
            *last = n;
        }
        out
    }
}

pub(crate) fn set_index(name: &str) -> Option<usize> {
    SET_NAMES.iter().position(|s| *s == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, f64)]) -> Vec<(String, f64)> {
        p.iter().map(|(n, f)| (n.to_string(), *f)).collect()
    }

    #[test]
    fn sets_come_in_fixed_order() {
        let f = Fractions::parse(&pairs(&[("test", 0.2), ("train", 0.8)]), "fractions").unwrap();
        assert_eq!(f.sets, [0, 2]);
        assert_eq!(f.shares, [0.8, 0.2]);
        assert_eq!(f.bounds(11), [9, 11]);
    }

    #[test]
    fn bad_fractions_are_explained() {
        let e = Fractions::parse(&pairs(&[("train", 0.8), ("tset", 0.2)]), "fractions")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `test`"), "{e}");
        let e = Fractions::parse(&pairs(&[("train", 0.8), ("test", 0.3)]), "fractions")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sum to 1.1"), "{e}");
        assert!(Fractions::parse(&pairs(&[("train", 1.0), ("test", 0.0)]), "f").is_err());
        assert!(Fractions::parse(&pairs(&[("train", 0.5), ("train", 0.5)]), "f").is_err());
        assert!(Fractions::parse(&[], "f").is_err());
        Fractions::parse(
            &pairs(&[("train", 0.7), ("validation", 0.15), ("test", 0.1500001)]),
            "f",
        )
        .unwrap();
    }
}
