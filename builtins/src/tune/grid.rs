//! Grid search: every combination of the parameters' values, once.

use super::space::Dim;
use super::{Range, Space, Value};

/// The number of values `range` takes on a grid; `None` for a continuous
/// range. An unusable range (min > max, no values) counts 0.
pub(crate) fn count(range: &Range) -> Option<u128> {
    match *range {
        Range::Integer { min, max, .. } => {
            Some(u128::try_from(i128::from(max) - i128::from(min) + 1).unwrap_or(0))
        }
        Range::Categorical { ref values } => Some(values.len() as u128),
        Range::Continuous { .. } => None,
    }
}

/// Grid point `index` (`0 <= index < grid_size`), in lexicographic order of
/// the parameters as given (the last parameter varies fastest); integers
/// take every integer in the range in increasing order, categoricals every
/// value in the order given.
///
/// Total: an index past the end wraps around (it is read modulo the grid
/// size); a continuous parameter, which [`Space::grid_size`] refuses, takes
/// the middle of its scaled range.
pub fn grid(space: &Space, index: u64) -> Vec<Value> {
    let mut rest = u128::from(index);
    let mut point: Vec<Value> = space
        .params
        .iter()
        .rev()
        .map(|(_, range)| {
            let n = count(range).unwrap_or(1).max(1);
            let digit = rest % n;
            rest /= n;
            match *range {
                Range::Integer { min, .. } => {
                    // digit < max - min + 1, so min + digit <= max fits.
                    Value::Int((i128::from(min) + digit as i128) as i64)
                }
                Range::Categorical { .. } => Value::Cat(digit as usize),
                Range::Continuous { .. } => Dim::new(range).value_at(0.5),
            }
        })
        .collect();
    point.reverse();
    point
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::Scaling;
    use std::collections::BTreeSet;

    #[test]
    fn enumerates_every_point_once_in_order() {
        let space = Space {
            params: vec![
                (
                    "a".into(),
                    Range::Integer {
                        min: -1,
                        max: 1,
                        scaling: Scaling::Linear,
                    },
                ),
                (
                    "b".into(),
                    Range::Categorical {
                        values: vec!["x".into(), "y".into()],
                    },
                ),
                (
                    "c".into(),
                    Range::Integer {
                        min: 10,
                        max: 13,
                        scaling: Scaling::Linear,
                    },
                ),
            ],
        };
        let size = space.grid_size().unwrap();
        assert_eq!(size, 24);
        let points: Vec<_> = (0..size).map(|i| grid(&space, i)).collect();
        let texts: BTreeSet<_> = points.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(texts.len(), 24);
        assert_eq!(points[0], [Value::Int(-1), Value::Cat(0), Value::Int(10)]);
        assert_eq!(points[1], [Value::Int(-1), Value::Cat(0), Value::Int(11)]);
        assert_eq!(points[4], [Value::Int(-1), Value::Cat(1), Value::Int(10)]);
        assert_eq!(points[23], [Value::Int(1), Value::Cat(1), Value::Int(13)]);
        // Lexicographic: each point sorts after the previous one.
        let key = |p: &[Value]| -> Vec<i64> {
            p.iter()
                .map(|v| match *v {
                    Value::Int(k) => k,
                    Value::Cat(c) => c as i64,
                    Value::Float(_) => unreachable!(),
                })
                .collect()
        };
        assert!(points.windows(2).all(|w| key(&w[0]) < key(&w[1])));
        assert_eq!(grid(&space, 24), points[0]);
    }

    #[test]
    fn extreme_and_degenerate_grids_are_total() {
        let space = Space {
            params: vec![
                (
                    "a".into(),
                    Range::Integer {
                        min: i64::MIN,
                        max: i64::MAX,
                        scaling: Scaling::Linear,
                    },
                ),
                ("b".into(), Range::Categorical { values: vec![] }),
                (
                    "c".into(),
                    Range::Continuous {
                        min: 1.0,
                        max: 100.0,
                        scaling: Scaling::Logarithmic,
                    },
                ),
                (
                    "d".into(),
                    Range::Integer {
                        min: 3,
                        max: 1,
                        scaling: Scaling::Linear,
                    },
                ),
            ],
        };
        let p = grid(&space, u64::MAX);
        // index u64::MAX < 2^64 points: the last integer, i64::MIN + 2^64 - 1.
        assert_eq!(p[0], Value::Int(i64::MAX));
        assert_eq!(p[1], Value::Cat(0));
        let Value::Float(x) = p[2] else { panic!() };
        assert!((x - 10.0).abs() < 1e-9);
        assert_eq!(p[3], Value::Int(3));
        assert!(grid(&Space::default(), 5).is_empty());
    }
}
