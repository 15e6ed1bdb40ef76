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
}

impl Hyperparams {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Hyperparams {
            values,
            read: RefCell::default(),
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

    /// Fails on any given name that was never read, suggesting the closest read one.
    /// `ignored` lists names that are accepted but have no effect here.
    pub fn finish(&self, ignored: &[&str]) -> Result<(), BuiltinError> {
        let read = self.read.borrow();
        for name in self.values.keys() {
            if read.contains(name) || ignored.contains(&name.as_str()) {
                continue;
            }
            let err = BuiltinError::hyperparameter(
                name,
                None,
                "is not a hyperparameter of this algorithm",
            );
            return Err(match closest(name, read.iter().map(String::as_str)) {
                Some(c) => err.with_hint(format!("did you mean `{c}`?")),
                None => err,
            });
        }
        Ok(())
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
}
