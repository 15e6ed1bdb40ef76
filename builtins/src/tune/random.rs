//! Random search: every parameter uniform in its scaled space.

use super::rng::{Rng, name_key};
use super::space::{Dim, dims};
use super::{Space, Value};

/// Trial `index`'s point under random search: uniform in each parameter's
/// scaled space (integers by rounding a uniform draw on `[min - 0.5, max +
/// 0.5)` in that space, categoricals uniform over their values).
///
/// Each parameter draws from its own stream, keyed by `(seed, index, its
/// name)`: trial `index`'s point does not depend on other trials, and a
/// parameter's value does not change when another parameter is added to or
/// removed from the space.
pub fn random(space: &Space, seed: u64, index: u64) -> Vec<Value> {
    draw(space, &dims(&space.params), seed, index, 0)
}

/// [`random`] with the parameters' stream keys xored with `salt` (0 for
/// `random` itself): TPE's fallbacks are other uniform draws for the same trial.
pub(crate) fn draw(space: &Space, dims: &[Dim], seed: u64, index: u64, salt: u64) -> Vec<Value> {
    space
        .params
        .iter()
        .zip(dims)
        .map(|((name, _), dim)| {
            let mut rng = Rng::stream(seed, index, name_key(name) ^ salt);
            match *dim {
                Dim::Cat { k } => Value::Cat(rng.below(k)),
                _ => dim.value_at(rng.unit()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::{Range, Scaling};

    fn space() -> Space {
        Space {
            params: vec![
                (
                    "alpha".into(),
                    Range::Continuous {
                        min: 1e-3,
                        max: 10.0,
                        scaling: Scaling::Logarithmic,
                    },
                ),
                (
                    "booster".into(),
                    Range::Categorical {
                        values: vec!["gbtree".into(), "dart".into(), "gblinear".into()],
                    },
                ),
                (
                    "depth".into(),
                    Range::Integer {
                        min: 2,
                        max: 4,
                        scaling: Scaling::Linear,
                    },
                ),
                (
                    "momentum".into(),
                    Range::Continuous {
                        min: 0.9,
                        max: 0.9999,
                        scaling: Scaling::ReverseLogarithmic,
                    },
                ),
                (
                    "rounds".into(),
                    Range::Integer {
                        min: 1,
                        max: 1000,
                        scaling: Scaling::Auto,
                    },
                ),
            ],
        }
    }

    #[test]
    fn deterministic_and_independent_of_other_trials() {
        let s = space();
        let a: Vec<_> = (0..50).map(|i| random(&s, 3, i)).collect();
        let b: Vec<_> = (0..50).rev().map(|i| random(&s, 3, i)).collect();
        assert!(a.iter().zip(b.iter().rev()).all(|(x, y)| x == y));
        assert_ne!(random(&s, 3, 0), random(&s, 3, 1));
        assert_ne!(random(&s, 3, 0), random(&s, 4, 0));
        // Dropping a parameter leaves the others' values alone.
        let mut fewer = s.clone();
        fewer.params.remove(1);
        let full = random(&s, 3, 7);
        let part = random(&fewer, 3, 7);
        assert_eq!(part[0], full[0]);
        assert_eq!(part[1..], full[2..]);
    }

    #[test]
    fn values_lie_in_their_ranges() {
        let s = space();
        for i in 0..2000 {
            let p = random(&s, 11, i);
            let Value::Float(a) = p[0] else { panic!() };
            assert!((1e-3..=10.0).contains(&a));
            let Value::Cat(c) = p[1] else { panic!() };
            assert!(c < 3);
            let Value::Int(d) = p[2] else { panic!() };
            assert!((2..=4).contains(&d));
            let Value::Float(m) = p[3] else { panic!() };
            assert!((0.9..=0.9999).contains(&m));
            let Value::Int(r) = p[4] else { panic!() };
            assert!((1..=1000).contains(&r));
        }
    }

    #[test]
    fn every_integer_gets_its_share() {
        for (min, max) in [(2, 4), (-1, 1), (0, 0), (7, 8)] {
            let s = Space {
                params: vec![(
                    "k".into(),
                    Range::Integer {
                        min,
                        max,
                        scaling: Scaling::Linear,
                    },
                )],
            };
            let n = (max - min + 1) as usize;
            let mut seen = vec![0usize; n];
            let draws = 6000;
            for i in 0..draws {
                let Value::Int(k) = random(&s, 5, i)[0] else {
                    panic!()
                };
                seen[(k - min) as usize] += 1;
            }
            let expect = draws as f64 / n as f64;
            for c in &seen {
                // The end points too: 5 standard deviations.
                assert!(
                    (*c as f64 - expect).abs() < 5.0 * expect.sqrt(),
                    "{min}..{max}: {seen:?}"
                );
            }
        }
        // Logarithmic integers: k's share is ln((k + 0.5) / (k - 0.5)) / ln(10.5 / 0.5).
        let s = Space {
            params: vec![(
                "k".into(),
                Range::Integer {
                    min: 1,
                    max: 10,
                    scaling: Scaling::Logarithmic,
                },
            )],
        };
        let mut seen = [0usize; 10];
        let draws = 20_000u64;
        for i in 0..draws {
            let Value::Int(k) = random(&s, 6, i)[0] else {
                panic!()
            };
            seen[(k - 1) as usize] += 1;
        }
        for (j, c) in seen.iter().enumerate() {
            let k = j as f64 + 1.0;
            let p = ((k + 0.5) / (k - 0.5)).ln() / (10.5f64 / 0.5).ln();
            let expect = p * draws as f64;
            assert!((*c as f64 - expect).abs() < 5.0 * expect.sqrt(), "{seen:?}");
        }
    }

    #[test]
    fn log_scaling_spreads_evenly_per_decade() {
        let s = Space {
            params: vec![(
                "a".into(),
                Range::Continuous {
                    min: 1e-3,
                    max: 10.0,
                    scaling: Scaling::Logarithmic,
                },
            )],
        };
        let mut decades = [0usize; 4];
        let draws = 8000;
        for i in 0..draws {
            let Value::Float(x) = random(&s, 1, i)[0] else {
                panic!()
            };
            decades[((x.log10() + 3.0).floor() as usize).min(3)] += 1;
        }
        for c in decades {
            assert!(
                (c as f64 - 2000.0).abs() < 5.0 * 2000f64.sqrt(),
                "{decades:?}"
            );
        }
        // Reverse logarithmic: uniform in log(1 - x), so as many in 0.9..0.99
        // as in 0.99..0.999.
        let s = Space {
            params: vec![(
                "m".into(),
                Range::Continuous {
                    min: 0.9,
                    max: 0.999,
                    scaling: Scaling::ReverseLogarithmic,
                },
            )],
        };
        let near = (0..draws)
            .filter(|&i| matches!(random(&s, 1, i)[0], Value::Float(x) if x > 0.99))
            .count();
        assert!(
            (near as f64 - 4000.0).abs() < 5.0 * 4000f64.sqrt(),
            "{near}"
        );
    }

    #[test]
    fn degenerate_ranges() {
        let s = Space {
            params: vec![
                (
                    "a".into(),
                    Range::Integer {
                        min: 3,
                        max: 3,
                        scaling: Scaling::Logarithmic,
                    },
                ),
                (
                    "b".into(),
                    Range::Categorical {
                        values: vec!["only".into()],
                    },
                ),
                (
                    "c".into(),
                    Range::Continuous {
                        min: 0.5,
                        max: 0.5,
                        scaling: Scaling::Auto,
                    },
                ),
                ("d".into(), Range::Categorical { values: vec![] }),
                (
                    "e".into(),
                    Range::Integer {
                        min: 5,
                        max: 1,
                        scaling: Scaling::Linear,
                    },
                ),
            ],
        };
        let p = random(&s, 0, 0);
        assert_eq!(p[..3], [Value::Int(3), Value::Cat(0), Value::Float(0.5)]);
        assert_eq!(p[3], Value::Cat(0));
        assert!(random(&Space::default(), 0, 0).is_empty());
    }
}
