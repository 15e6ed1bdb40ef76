//! Hyperparameter search strategies of the `tune` step: [`random`], [`grid`]
//! and [`tpe`] (the bayesian strategy).
//!
//! Pure functions: a trial's point is a function of the search space, the
//! seed, the trial's index and (for TPE) what the engine knows of the other
//! trials, never of time, thread or call order. The engine validates each
//! range with [`Range::check`], then asks for trial `i`'s point and turns it
//! into training hyperparameters with [`Space::to_strings`]. The strategies
//! and their formulas are documented in `docs/tuning-strategies.md`.
//!
//! ```
//! use builtins::tune::*;
//! let space = Space {
//!     params: vec![
//!         ("eta".into(), Range::Continuous { min: 0.01, max: 0.3, scaling: Scaling::Logarithmic }),
//!         ("max_depth".into(), Range::Integer { min: 2, max: 10, scaling: Scaling::Auto }),
//!     ],
//! };
//! let point = random(&space, 42, 0);
//! let hp = space.to_strings(&point);
//! assert_eq!(hp[0].0, "eta");
//! assert_eq!(random(&space, 42, 0), point);
//! ```

mod grid;
mod random;
mod rng;
mod space;
mod tpe;

pub use grid::grid;
pub use random::random;
pub use tpe::{MAX_CANDIDATES, MAX_GOOD, TpeSettings, tpe};

/// How a numeric range is searched, as SageMaker's `ScalingType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// Logarithmic when `min > 0` and `max >= 100 * min` (the range spans at
    /// least two orders of magnitude), else linear.
    #[default]
    Auto,
    Linear,
    /// Uniform in `ln x`; needs `min > 0`.
    Logarithmic,
    /// Uniform in `ln(1 - x)`, for values close to 1; needs `0 <= min` and `max < 1`.
    ReverseLogarithmic,
}

/// The values one hyperparameter may take (serialized as a pipeline file
/// writes it: `{type: integer, min, max, scaling}`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Range {
    /// Every integer in `min..=max`.
    Integer {
        min: i64,
        max: i64,
        scaling: Scaling,
    },
    /// Every real in `min..=max`.
    Continuous {
        min: f64,
        max: f64,
        scaling: Scaling,
    },
    /// One of `values`.
    Categorical { values: Vec<String> },
}

fn scaling_check(scaling: Scaling, min: f64, max: f64) -> Result<(), String> {
    match scaling {
        Scaling::Logarithmic if min.is_nan() || min <= 0.0 => Err(format!(
            "logarithmic scaling needs min > 0, and min is {}",
            fmt_float(min)
        )),
        Scaling::ReverseLogarithmic if !(min >= 0.0 && max < 1.0) => Err(format!(
            "reverse_logarithmic scaling needs 0 <= min and max < 1, and the range is {} to {}",
            fmt_float(min),
            fmt_float(max)
        )),
        _ => Ok(()),
    }
}

impl Range {
    /// Why the range is unusable, for the engine's validation message: min >
    /// max, a logarithmic scaling over a range that includes 0 or negatives
    /// (log needs min > 0; reverse_logarithmic needs 0 <= min and max < 1, as
    /// SageMaker's), an empty categorical, NaN/inf bounds, duplicate
    /// categorical values.
    pub fn check(&self) -> Result<(), String> {
        match self {
            &Range::Integer { min, max, scaling } => {
                if min > max {
                    return Err(format!("min {min} is greater than max {max}"));
                }
                scaling_check(scaling, min as f64, max as f64)
            }
            &Range::Continuous { min, max, scaling } => {
                if !min.is_finite() || !max.is_finite() {
                    return Err(format!(
                        "min and max must be finite numbers, and the range is {} to {}",
                        fmt_float(min),
                        fmt_float(max)
                    ));
                }
                if min > max {
                    return Err(format!(
                        "min {} is greater than max {}",
                        fmt_float(min),
                        fmt_float(max)
                    ));
                }
                if !(max - min).is_finite() {
                    return Err(format!(
                        "the range {} to {} is wider than a number can hold",
                        fmt_float(min),
                        fmt_float(max)
                    ));
                }
                scaling_check(scaling, min, max)
            }
            Range::Categorical { values } => {
                if values.is_empty() {
                    return Err("a categorical range needs at least one value".into());
                }
                let mut seen = std::collections::BTreeSet::new();
                for v in values {
                    if !seen.insert(v.as_str()) {
                        return Err(format!("the value `{v}` is given twice"));
                    }
                }
                Ok(())
            }
        }
    }
}

/// The search space: parameters in the order given (the engine passes them
/// sorted by name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    pub params: Vec<(String, Range)>,
}

/// One value of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    /// An index into the categorical range's `values`.
    Cat(usize),
}

/// The shortest text that parses back to the same `f64` (Rust's and
/// Python's `float()` both read it): plain decimals for magnitudes in
/// `1e-4..1e16`, `1e-5`-style exponents outside.
pub(crate) fn fmt_float(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() || (1e-4..1e16).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

impl Space {
    /// The hyperparameter strings a trial passes to training, name -> text:
    /// floats as the shortest text that round-trips, integers as decimal,
    /// categoricals as the value itself. Pairs the parameters with the point's
    /// values in order (a point shorter than the space gives fewer pairs); a
    /// value of another kind than its range is written as that kind would be,
    /// and a category index out of range as an empty string.
    pub fn to_strings(&self, point: &[Value]) -> Vec<(String, String)> {
        self.params
            .iter()
            .zip(point)
            .map(|((name, range), value)| {
                let text = match (range, value) {
                    (Range::Categorical { values }, Value::Cat(i)) => {
                        values.get(*i).cloned().unwrap_or_default()
                    }
                    (_, Value::Int(k)) => k.to_string(),
                    (_, Value::Float(x)) => fmt_float(*x),
                    (_, Value::Cat(i)) => i.to_string(),
                };
                (name.clone(), text)
            })
            .collect()
    }

    /// The number of grid points (the product of the parameters' value
    /// counts), or Err naming the parameter that makes a grid impossible: a
    /// continuous one, an unusable range, or more than `u64::MAX` points.
    pub fn grid_size(&self) -> Result<u64, String> {
        let mut size: u128 = 1;
        for (name, range) in &self.params {
            range
                .check()
                .map_err(|e| format!("parameter `{name}`: {e}"))?;
            let count = grid::count(range).ok_or_else(|| {
                format!(
                    "parameter `{name}` is continuous, and a grid search takes integer and \
                     categorical parameters only: give it as a list of values, or use random \
                     or bayesian search"
                )
            })?;
            size = size.saturating_mul(count);
        }
        u64::try_from(size).map_err(|_| "the grid has more than 2^64 - 1 points".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cont(min: f64, max: f64, scaling: Scaling) -> Range {
        Range::Continuous { min, max, scaling }
    }

    #[test]
    fn range_checks() {
        use Scaling::*;
        let int = |min, max, scaling| Range::Integer { min, max, scaling };
        assert!(int(3, 3, Logarithmic).check().is_ok());
        assert!(int(0, 0, ReverseLogarithmic).check().is_ok());
        assert!(int(5, 3, Linear).check().unwrap_err().contains("greater"));
        assert!(
            int(0, 10, Logarithmic)
                .check()
                .unwrap_err()
                .contains("min > 0")
        );
        assert!(int(0, 10, Auto).check().is_ok());
        assert!(int(0, 1, ReverseLogarithmic).check().is_err());
        assert!(cont(1e-3, 10.0, Logarithmic).check().is_ok());
        assert!(cont(-1.0, 10.0, Logarithmic).check().is_err());
        assert!(cont(0.0, 10.0, Logarithmic).check().is_err());
        assert!(cont(0.0, 0.999, ReverseLogarithmic).check().is_ok());
        assert!(cont(0.5, 1.0, ReverseLogarithmic).check().is_err());
        assert!(cont(-0.1, 0.5, ReverseLogarithmic).check().is_err());
        assert!(
            cont(f64::NAN, 1.0, Linear)
                .check()
                .unwrap_err()
                .contains("finite")
        );
        assert!(cont(0.0, f64::INFINITY, Linear).check().is_err());
        assert!(
            cont(-f64::MAX, f64::MAX, Linear)
                .check()
                .unwrap_err()
                .contains("wider")
        );
        assert!(cont(2.0, 1.0, Linear).check().is_err());
        assert!(cont(1.0, 1.0, Linear).check().is_ok());
        let cat = |v: &[&str]| Range::Categorical {
            values: v.iter().map(|s| s.to_string()).collect(),
        };
        assert!(cat(&[]).check().unwrap_err().contains("at least one"));
        assert!(cat(&["a"]).check().is_ok());
        assert!(cat(&["a", "b", "a"]).check().unwrap_err().contains("`a`"));
    }

    #[test]
    fn to_strings_round_trip_floats() {
        let space = Space {
            params: vec![
                ("a".into(), cont(1e-12, 1e12, Scaling::Logarithmic)),
                (
                    "b".into(),
                    Range::Integer {
                        min: -5,
                        max: 5,
                        scaling: Scaling::Linear,
                    },
                ),
                (
                    "c".into(),
                    Range::Categorical {
                        values: vec!["gbtree".into(), "dart".into()],
                    },
                ),
            ],
        };
        let s = space.to_strings(&[Value::Float(0.1), Value::Int(-3), Value::Cat(1)]);
        assert_eq!(
            s,
            vec![
                ("a".to_string(), "0.1".to_string()),
                ("b".to_string(), "-3".to_string()),
                ("c".to_string(), "dart".to_string())
            ]
        );
        assert_eq!(space.to_strings(&[Value::Float(1e-5)])[0].1, "1e-5");
        assert_eq!(space.to_strings(&[Value::Float(2.5e20)])[0].1, "2.5e20");
        assert_eq!(space.to_strings(&[Value::Float(1.0)])[0].1, "1");
        for i in 0..2000 {
            let p = random(&space, 9, i);
            let Value::Float(x) = p[0] else { panic!() };
            let text = &space.to_strings(&p)[0].1;
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
            assert!(text.len() <= 24, "{text}");
        }
        for x in [
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            -0.0,
            123456789.125,
            1e16,
            9.999e-5,
        ] {
            assert_eq!(
                fmt_float(x).parse::<f64>().unwrap().to_bits(),
                x.to_bits(),
                "{x}"
            );
        }
        // Total on points that do not fit the space.
        let odd = space.to_strings(&[Value::Cat(3), Value::Float(2.0), Value::Cat(7)]);
        assert_eq!(odd[0].1, "3");
        assert_eq!(odd[1].1, "2");
        assert_eq!(odd[2].1, "");
    }

    #[test]
    fn grid_size_counts_and_refuses() {
        let mut space = Space {
            params: vec![
                (
                    "a".into(),
                    Range::Integer {
                        min: -1,
                        max: 1,
                        scaling: Scaling::Auto,
                    },
                ),
                (
                    "b".into(),
                    Range::Categorical {
                        values: vec!["x".into(), "y".into()],
                    },
                ),
            ],
        };
        assert_eq!(space.grid_size(), Ok(6));
        assert_eq!(Space::default().grid_size(), Ok(1));
        space
            .params
            .push(("eta".into(), cont(0.1, 0.2, Scaling::Auto)));
        assert!(
            space
                .grid_size()
                .unwrap_err()
                .contains("`eta` is continuous")
        );
        let huge = Space {
            params: vec![
                (
                    "a".into(),
                    Range::Integer {
                        min: i64::MIN,
                        max: i64::MAX,
                        scaling: Scaling::Linear,
                    },
                ),
                (
                    "b".into(),
                    Range::Integer {
                        min: 0,
                        max: 1,
                        scaling: Scaling::Linear,
                    },
                ),
            ],
        };
        assert!(huge.grid_size().unwrap_err().contains("2^64"));
        let bad = Space {
            params: vec![("c".into(), Range::Categorical { values: vec![] })],
        };
        assert!(bad.grid_size().unwrap_err().contains("`c`"));
    }
}
