//! SageMaker-style hyperparameters: a map of names to strings.
//!
//! Algorithms read typed values with defaults through [`Hyperparams`], which
//! remembers what was read so that [`Hyperparams::finish`] can reject names the
//! algorithm does not know, suggesting the closest known one.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::error::BuiltinError;

/// Hyperparameters as the container contract hands them over: every value a string.
#[derive(Debug, Clone, Default)]
pub struct Hyperparams {
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
    warnings: RefCell<Vec<String>>,
}

/// A SageMaker name that is accepted but has no counterpart here, with why.
pub type Irrelevant = (&'static str, &'static str);

/// A SageMaker name this implementation does not offer: `(name, why, how to fix)`.
pub type Unsupported = (&'static str, &'static str, &'static str);

impl Hyperparams {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Hyperparams {
            values,
            read: RefCell::default(),
            warnings: RefCell::default(),
        }
    }

    /// Builds from `(name, value)` pairs (handy in tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn raw(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The raw string of `name`, if given; marks it as known.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.read.borrow_mut().insert(name.to_string());
        self.values.get(name).map(|s| s.trim())
    }

    /// The value of `name` parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, BuiltinError> {
        Ok(self.opt(name)?.unwrap_or(default))
    }

    /// The value of `name` parsed as `T`, or `None` when absent.
    pub fn opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, BuiltinError> {
        match self.get_str(name) {
            None => Ok(None),
            Some(s) => parse_value::<T>(s).map(Some).ok_or_else(|| {
                BuiltinError::hyperparameter(
                    name,
                    Some(s),
                    format!("is not {}", type_phrase::<T>()),
                )
            }),
        }
    }

    /// Like [`get`](Self::get), and checks that the value lies in `lo..=hi`.
    pub fn get_in<T>(&self, name: &str, default: T, lo: T, hi: T) -> Result<T, BuiltinError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v = self.get(name, default)?;
        if v < lo || v > hi {
            return Err(BuiltinError::hyperparameter(
                name,
                self.values.get(name).map(String::as_str),
                format!("must be between {lo} and {hi}"),
            ));
        }
        Ok(v)
    }

    /// Which of `name` and its alias `alias` is given (`name` when neither
    /// is), so that values and errors use the name the user wrote; both
    /// given is an error, as they are one setting.
    pub fn alias<'a>(&self, name: &'a str, alias: &'a str) -> Result<&'a str, BuiltinError> {
        match (self.get_str(name), self.get_str(alias)) {
            (Some(_), Some(v)) => Err(BuiltinError::hyperparameter(
                alias,
                Some(v),
                format!("is another name for `{name}`, which is given too"),
            )
            .with_hint(format!("give one of `{name}` and `{alias}`"))),
            (None, Some(_)) => Ok(alias),
            _ => Ok(name),
        }
    }

    /// One of `choices`, or `default` when absent.
    pub fn choice(
        &self,
        name: &str,
        default: &str,
        choices: &[&str],
    ) -> Result<String, BuiltinError> {
        let v = self.get_str(name).unwrap_or(default);
        if choices.contains(&v) {
            return Ok(v.to_string());
        }
        let err = BuiltinError::hyperparameter(
            name,
            Some(v),
            format!(
                "must be one of {}",
                choices
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        Err(match closest(v, choices.iter().copied()) {
            Some(c) => err.with_hint(format!("did you mean `{c}`?")),
            None => err,
        })
    }

    /// Fails with "not supported" when `name` is given (the names of
    /// `unsupported` that the algorithm does not offer at all).
    pub fn reject_unsupported(&self, unsupported: &[Unsupported]) -> Result<(), BuiltinError> {
        for (name, why, hint) in unsupported {
            if let Some(v) = self.get_str(name) {
                return Err(BuiltinError::hyperparameter(
                    name,
                    Some(v),
                    format!("is not supported: {why}"),
                )
                .with_hint(*hint));
            }
        }
        Ok(())
    }

    /// Fails when `name` is given although `why` says it has no effect with the
    /// other settings (e.g. `epochs` with a solver that has no epochs).
    pub fn only_with(&self, name: &str, applies: bool, why: &str) -> Result<(), BuiltinError> {
        match self.get_str(name) {
            Some(v) if !applies => Err(BuiltinError::hyperparameter(
                name,
                Some(v),
                format!("has no effect here: {why}"),
            )
            .with_hint(format!(
                "remove `{name}`, or change the setting it depends on"
            ))),
            _ => Ok(()),
        }
    }

    /// Records a warning when `name` is given although it cannot change the
    /// model with the other settings (`why`).
    pub fn warn_unless(&self, name: &str, applies: bool, why: &str) {
        if !applies && self.get_str(name).is_some() {
            self.warnings.borrow_mut().push(format!(
                "hyperparameter `{name}` has no effect here ({why})"
            ));
        }
    }

    /// Fails on any given name that was never read, suggesting the closest read one.
    /// `irrelevant` lists names that are accepted but have no effect here; each
    /// one given is recorded as a warning (see [`warnings`](Self::warnings)).
    pub fn finish(&self, irrelevant: &[Irrelevant]) -> Result<(), BuiltinError> {
        let read = self.read.borrow();
        let mut warnings = Vec::new();
        for name in self.values.keys() {
            if read.contains(name) {
                continue;
            }
            if let Some((_, why)) = irrelevant.iter().find(|(n, _)| n == name) {
                warnings.push(format!(
                    "hyperparameter `{name}` has no effect here ({why}); it is accepted for SageMaker compatibility"
                ));
                continue;
            }
            let err = BuiltinError::hyperparameter(
                name,
                None,
                "is not a hyperparameter of this algorithm",
            );
            let known = read
                .iter()
                .map(String::as_str)
                .chain(irrelevant.iter().map(|(n, _)| *n));
            return Err(match closest(name, known) {
                Some(c) => err.with_hint(format!("did you mean `{c}`?")),
                None => err,
            });
        }
        self.warnings.borrow_mut().extend(warnings);
        Ok(())
    }

    /// The warnings recorded while reading (see [`finish`](Self::finish) and
    /// [`warn_unless`](Self::warn_unless)): one line for each given name that
    /// changes nothing here.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in self.warnings.borrow().iter() {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
        out
    }
}

/// Checks `feature_dim` (SageMaker's declared number of features), when
/// given, against the data's.
pub fn check_feature_dim(
    feature_dim: Option<usize>,
    n_features: usize,
) -> Result<(), BuiltinError> {
    match feature_dim {
        Some(d) if d != n_features => Err(BuiltinError::hyperparameter(
            "feature_dim",
            Some(&d.to_string()),
            format!("says {d} features, but the training data has {n_features}"),
        )
        .with_hint(format!(
            "set feature_dim to {n_features}, or leave it out (it is read from the data)"
        ))),
        _ => Ok(()),
    }
}

fn parse_value<T: FromStr>(s: &str) -> Option<T> {
    if let Ok(v) = s.parse::<T>() {
        return Some(v);
    }
    // Integers written as floats ("100.0") and booleans as words, as SageMaker accepts them.
    let lower = s.to_ascii_lowercase();
    let alt = match lower.as_str() {
        "true" | "yes" | "on" => "true".to_string(),
        "false" | "no" | "off" => "false".to_string(),
        _ => match s.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && f.is_finite() => format!("{}", f as i64),
            _ => return None,
        },
    };
    alt.parse::<T>().ok()
}

fn type_phrase<T>() -> &'static str {
    let n = std::any::type_name::<T>();
    if n.contains("f32") || n.contains("f64") {
        "a number"
    } else if n.contains("bool") {
        "true or false"
    } else if n.contains("u") && !n.contains("String") {
        "a whole number of at least 0"
    } else if n.contains('i') {
        "a whole number"
    } else {
        "valid"
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_and_defaults() {
        let hp =
            Hyperparams::from_pairs(&[("num_round", "100.0"), ("eta", "0.3"), ("flag", "True")]);
        assert_eq!(hp.get::<usize>("num_round", 1).unwrap(), 100);
        assert_eq!(hp.get::<f64>("eta", 1.0).unwrap(), 0.3);
        assert!(hp.get::<bool>("flag", false).unwrap());
        assert_eq!(hp.get::<u32>("max_depth", 6).unwrap(), 6);
        hp.finish(&[]).unwrap();
    }

    #[test]
    fn bad_value_and_unknown_name() {
        let hp = Hyperparams::from_pairs(&[("eta", "fast"), ("max_dept", "3")]);
        let e = hp.get::<f64>("eta", 0.3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hyperparameter `eta` = `fast`: is not a number"
        );
        hp.get::<u32>("max_depth", 6).unwrap();
        let e = hp.finish(&[]).unwrap_err();
        assert!(e.to_string().contains("did you mean `max_depth`?"), "{e}");
    }

    #[test]
    fn irrelevant_names_warn_and_unsupported_ones_fail() {
        let hp = Hyperparams::from_pairs(&[("nthread", "4"), ("eta", "0.1")]);
        hp.get::<f64>("eta", 0.3).unwrap();
        hp.reject_unsupported(&[("booster_x", "why", "hint")])
            .unwrap();
        hp.finish(&[("nthread", "threads come from the step's cpus")])
            .unwrap();
        assert_eq!(
            hp.warnings(),
            [
                "hyperparameter `nthread` has no effect here (threads come from the step's cpus); it is accepted for SageMaker compatibility"
            ]
        );
        let hp = Hyperparams::from_pairs(&[("num_models", "8")]);
        let e = hp
            .reject_unsupported(&[("num_models", "one model is trained", "remove it")])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "hyperparameter `num_models` = `8`: is not supported: one model is trained\n  help: remove it"
        );
        let hp = Hyperparams::from_pairs(&[("epochs", "3")]);
        assert!(hp.only_with("epochs", true, "x").is_ok());
        let e = hp
            .only_with("epochs", false, "the exact solver has no epochs")
            .unwrap_err();
        assert!(e.to_string().contains("has no effect here"), "{e}");
    }
}
