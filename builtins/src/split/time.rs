//! The `time` strategy: the oldest rows train, the newest test.
//!
//! Sets are cut either at `cutoffs` (a row at a cutoff belongs to the later
//! set) or by the fractions in time order; rows with equal timestamps always
//! stay in one set, so a cut never separates them. With a `gap`, the rows of
//! an earlier set closer than the gap to the start of the next set are
//! dropped, so no feature window computed over the gap straddles the cut.

use rayon::prelude::*;

use super::sets::Fractions;
use super::timestamp::{self, Nanos};
use crate::error::{BuiltinError, DataError};

use super::table::Table;

/// The timestamp of every row, or an error naming the first row that has none.
pub(crate) fn parse_times(table: &Table, col: usize) -> Result<Vec<Nanos>, BuiltinError> {
    let parsed: Vec<Option<Nanos>> = table
        .rows
        .par_iter()
        .map(|row| timestamp::parse(table.field(row, col)))
        .collect();
    // Searched in order, so the error names the first bad row whatever the threads.
    if let Some(i) = parsed.iter().position(Option::is_none) {
        let row = &table.rows[i];
        let v = table.field(row, col);
        let what = if v.is_empty() {
            "has no timestamp".to_string()
        } else {
            format!("has `{v}`, which is not a timestamp")
        };
        return Err(DataError::new(
            table.file_of(row),
            format!("column `{}` {what}", table.columns[col]),
        )
        .at(row.line, Some(col as u64 + 1))
        .hint("write ISO 8601 dates or date-times (2024-03-01, 2024-03-01T12:00:00Z) or epoch seconds")
        .into());
    }
    Ok(parsed.into_iter().flatten().collect())
}

/// What a time assignment produced besides the sets.
pub(crate) struct TimeAssignment {
    pub sets: Vec<Option<usize>>,
    pub dropped_by_gap: usize,
}

/// The set of every row; `None` for a row dropped by the gap.
pub(crate) fn assign(
    times: &[Nanos],
    fractions: &Fractions,
    cutoffs: Option<&[Nanos]>,
    gap: Nanos,
) -> TimeAssignment {
    let n = times.len();
    // Position of each row among the sets (0 = oldest set) and the instants the later sets start.
    let (positions, starts): (Vec<usize>, Vec<Option<Nanos>>) = match cutoffs {
        Some(c) => (
            times
                .iter()
                .map(|t| c.iter().filter(|&&cut| cut <= *t).count())
                .collect(),
            c.iter().map(|&cut| Some(cut)).collect(),
        ),
        None => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| (times[i], i));
            let mut bounds = fractions.bounds(n);
            for b in bounds.iter_mut() {
                while *b > 0 && *b < n && times[order[*b]] == times[order[*b - 1]] {
                    *b += 1;
                }
            }
            let mut positions = vec![0; n];
            let mut p = 0;
            for (rank, &i) in order.iter().enumerate() {
                while rank >= bounds[p] && p + 1 < bounds.len() {
                    p += 1;
                }
                positions[i] = p;
            }
            let starts = bounds[..bounds.len() - 1]
                .iter()
                .map(|&b| (b < n).then(|| times[order[b]]))
                .collect();
            (positions, starts)
        }
    };
    let mut dropped_by_gap = 0;
    let sets = times
        .iter()
        .zip(&positions)
        .map(|(&t, &p)| {
            let next_start = starts.get(p).copied().flatten();
            if let Some(start) = next_start
                && gap > 0
                && t >= start - gap
            {
                dropped_by_gap += 1;
                return None;
            }
            Some(fractions.sets[p])
        })
        .collect();
    TimeAssignment {
        sets,
        dropped_by_gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(shares: &[(&str, f64)]) -> Fractions {
        let pairs: Vec<(String, f64)> = shares.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        Fractions::parse(&pairs, "fractions").unwrap()
    }

    #[test]
    fn ties_stay_together_and_gaps_drop_the_earlier_tail() {
        let times = [5, 1, 2, 3, 3, 3, 4, 6, 7, 8];
        let f = fr(&[("train", 0.4), ("test", 0.6)]);
        let a = assign(&times, &f, None, 0);
        // the cut after 4 rows falls inside the tie at 3, so all three 3s train
        let train: Vec<i128> = (0..10)
            .filter(|&i| a.sets[i] == Some(0))
            .map(|i| times[i])
            .collect();
        assert_eq!(train, [1, 2, 3, 3, 3]);
        let g = assign(&times, &f, None, 2);
        // test starts at 4; rows at 2 and 3 are within 2 of it
        assert_eq!(g.dropped_by_gap, 4);
        assert_eq!(g.sets[1], Some(0));
        let c = assign(
            &times,
            &fr(&[("train", 0.5), ("validation", 0.25), ("test", 0.25)]),
            Some(&[4, 7]),
            0,
        );
        assert_eq!(c.sets[6], Some(1));
        assert_eq!(c.sets[8], Some(2));
        assert_eq!(c.sets[5], Some(0));
    }
}
