//! The scaled unit coordinates every strategy works in.
//!
//! A numeric parameter maps to `[0, 1]` through its scaling `t` (identity,
//! `ln x`, or `-ln(1 - x)`): `u(x) = (t(x) - t(lo)) / (t(hi) - t(lo))`, with
//! `lo, hi` the range's bounds for a continuous parameter and
//! `min - 0.5, max + 0.5` for an integer one, so that rounding a uniform `u`
//! gives every integer the share of the scaled space its unit cell covers.

use super::{Range, Scaling, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    Linear,
    Log,
    ReverseLog,
}

impl Scale {
    /// `auto`: logarithmic when the range is positive and spans at least two
    /// orders of magnitude (`min > 0` and `max >= 100 * min`), else linear.
    pub(crate) fn resolve(scaling: Scaling, min: f64, max: f64) -> Scale {
        match scaling {
            Scaling::Linear => Scale::Linear,
            Scaling::Logarithmic => Scale::Log,
            Scaling::ReverseLogarithmic => Scale::ReverseLog,
            Scaling::Auto => {
                if min > 0.0 && max >= 100.0 * min {
                    Scale::Log
                } else {
                    Scale::Linear
                }
            }
        }
    }

    fn forward(self, x: f64) -> f64 {
        match self {
            Scale::Linear => x,
            Scale::Log => x.ln(),
            Scale::ReverseLog => -(-x).ln_1p(),
        }
    }

    fn inverse(self, y: f64) -> f64 {
        match self {
            Scale::Linear => y,
            Scale::Log => y.exp(),
            Scale::ReverseLog => -(-y).exp_m1(),
        }
    }
}

/// `x` within `[lo, hi]`; `lo` for NaN. Never panics (unlike `f64::clamp`).
fn clamp_f(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() || x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// One parameter, prepared: its resolved scaling and the offset `a = t(lo)`
/// and width `w = t(hi) - t(lo)` of its scaled interval.
#[derive(Clone, Debug)]
pub(crate) enum Dim {
    Int {
        min: i64,
        max: i64,
        scale: Scale,
        a: f64,
        w: f64,
    },
    Cont {
        min: f64,
        max: f64,
        scale: Scale,
        a: f64,
        w: f64,
    },
    Cat {
        k: usize,
    },
}

/// How a point's value of one parameter enters the Parzen estimators.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Coord {
    /// A continuous parameter's unit coordinate.
    Point(f64),
    /// An integer's unit cell `[a, b]`.
    Cell(f64, f64),
    Cat(usize),
    /// A parameter with one possible value: the same for every point.
    Fixed,
}

impl Dim {
    pub(crate) fn new(range: &Range) -> Dim {
        match *range {
            Range::Integer { min, max, scaling } => {
                let scale = Scale::resolve(scaling, min as f64, max as f64);
                let a = scale.forward(min as f64 - 0.5);
                let w = scale.forward(max as f64 + 0.5) - a;
                Dim::Int {
                    min,
                    max,
                    scale,
                    a,
                    w,
                }
            }
            Range::Continuous { min, max, scaling } => {
                let scale = Scale::resolve(scaling, min, max);
                let a = scale.forward(min);
                let w = scale.forward(max) - a;
                Dim::Cont {
                    min,
                    max,
                    scale,
                    a,
                    w,
                }
            }
            Range::Categorical { ref values } => Dim::Cat { k: values.len() },
        }
    }

    /// True when the parameter has at most one value (or an unusable range):
    /// strategies give it that value and models leave it out.
    pub(crate) fn is_fixed(&self) -> bool {
        match *self {
            Dim::Int { min, max, w, .. } => min >= max || !(w > 0.0 && w.is_finite()),
            Dim::Cont { w, .. } => !(w > 0.0 && w.is_finite()),
            Dim::Cat { k } => k <= 1,
        }
    }

    /// The value at unit coordinate `u` (a category index `floor(u k)` for a
    /// categorical). Total: always a value of the range's kind within it.
    pub(crate) fn value_at(&self, u: f64) -> Value {
        let u = clamp_f(u, 0.0, 1.0);
        match *self {
            Dim::Int {
                min,
                max,
                scale,
                a,
                w,
            } => {
                if self.is_fixed() {
                    return Value::Int(min.min(max));
                }
                let x = scale.inverse(a + u * w);
                // `as` saturates (NaN -> 0); the bounds then hold it.
                let k = (x + 0.5).floor() as i64;
                Value::Int(k.max(min).min(max))
            }
            Dim::Cont {
                min,
                max,
                scale,
                a,
                w,
            } => {
                if self.is_fixed() {
                    return Value::Float(min);
                }
                Value::Float(clamp_f(scale.inverse(a + u * w), min, max))
            }
            Dim::Cat { k } => Value::Cat(((u * k as f64) as usize).min(k.saturating_sub(1))),
        }
    }

    fn unit(&self, x: f64) -> f64 {
        match *self {
            Dim::Int { scale, a, w, .. } | Dim::Cont { scale, a, w, .. } => {
                (scale.forward(x) - a) / w
            }
            Dim::Cat { .. } => f64::NAN,
        }
    }

    /// How `value` enters a model, or `None` when it is no value of this
    /// parameter (another kind, out of the range, NaN).
    pub(crate) fn coord(&self, value: &Value) -> Option<Coord> {
        if self.is_fixed() {
            return Some(Coord::Fixed);
        }
        match (self, value) {
            (&Dim::Int { min, max, .. }, &Value::Int(k)) => {
                if k < min || k > max {
                    return None;
                }
                let lo = clamp_f(self.unit(k as f64 - 0.5), 0.0, 1.0);
                let hi = clamp_f(self.unit(k as f64 + 0.5), 0.0, 1.0);
                Some(Coord::Cell(lo, hi))
            }
            (&Dim::Cont { min, max, .. }, &Value::Float(x)) => {
                if !(x >= min && x <= max) {
                    return None;
                }
                Some(Coord::Point(clamp_f(self.unit(x), 0.0, 1.0)))
            }
            (&Dim::Cat { k }, &Value::Cat(c)) if c < k => Some(Coord::Cat(c)),
            _ => None,
        }
    }

    /// The unit coordinate an observed value's kernel is centred on: the
    /// point itself, or an integer's own position `u(k)` (not its cell's middle).
    pub(crate) fn centre(&self, value: &Value) -> Option<f64> {
        match (self, value) {
            (Dim::Int { .. }, &Value::Int(k)) => Some(clamp_f(self.unit(k as f64), 0.0, 1.0)),
            (Dim::Cont { .. }, &Value::Float(x)) => Some(clamp_f(self.unit(x), 0.0, 1.0)),
            _ => None,
        }
    }
}

pub(crate) fn dims(params: &[(String, Range)]) -> Vec<Dim> {
    params.iter().map(|(_, r)| Dim::new(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_rule() {
        assert_eq!(Scale::resolve(Scaling::Auto, 0.01, 1.0), Scale::Log);
        assert_eq!(Scale::resolve(Scaling::Auto, 0.01, 0.99), Scale::Linear);
        assert_eq!(Scale::resolve(Scaling::Auto, 0.0, 100.0), Scale::Linear);
        assert_eq!(Scale::resolve(Scaling::Auto, 1.0, 100.0), Scale::Log);
        assert_eq!(Scale::resolve(Scaling::Auto, -1.0, 100.0), Scale::Linear);
    }

    #[test]
    fn unit_coordinates_round_trip() {
        for r in [
            Range::Continuous {
                min: 1e-3,
                max: 10.0,
                scaling: Scaling::Logarithmic,
            },
            Range::Continuous {
                min: 0.9,
                max: 0.9999,
                scaling: Scaling::ReverseLogarithmic,
            },
            Range::Continuous {
                min: -2.0,
                max: 3.0,
                scaling: Scaling::Linear,
            },
        ] {
            let d = Dim::new(&r);
            for i in 0..=10 {
                let u = i as f64 / 10.0;
                let v = d.value_at(u);
                let Some(Coord::Point(back)) = d.coord(&v) else {
                    panic!("{v:?}")
                };
                assert!((back - u).abs() < 1e-9, "{r:?} {u} {back}");
            }
        }
    }

    #[test]
    fn integer_cells_tile_the_unit_interval() {
        let d = Dim::new(&Range::Integer {
            min: 1,
            max: 5,
            scaling: Scaling::Logarithmic,
        });
        let mut end = 0.0;
        for k in 1..=5 {
            let Some(Coord::Cell(a, b)) = d.coord(&Value::Int(k)) else {
                panic!()
            };
            assert!((a - end).abs() < 1e-12 && b > a);
            end = b;
        }
        assert!((end - 1.0).abs() < 1e-12);
        assert_eq!(d.coord(&Value::Int(6)), None);
        assert_eq!(d.coord(&Value::Float(2.0)), None);
    }

    #[test]
    fn extreme_and_degenerate_ranges_are_total() {
        let whole = Dim::new(&Range::Integer {
            min: i64::MIN,
            max: i64::MAX,
            scaling: Scaling::Linear,
        });
        assert_eq!(whole.value_at(0.0), Value::Int(i64::MIN));
        assert_eq!(whole.value_at(1.0), Value::Int(i64::MAX));
        let one = Dim::new(&Range::Integer {
            min: 4,
            max: 4,
            scaling: Scaling::Logarithmic,
        });
        assert!(one.is_fixed());
        assert_eq!(one.value_at(0.7), Value::Int(4));
        let bad = Dim::new(&Range::Continuous {
            min: f64::NAN,
            max: 1.0,
            scaling: Scaling::Auto,
        });
        assert!(bad.is_fixed());
        let _ = bad.value_at(f64::NAN);
        let empty = Dim::new(&Range::Categorical { values: vec![] });
        assert_eq!(empty.value_at(0.5), Value::Cat(0));
    }
}
