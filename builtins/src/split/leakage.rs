//! Leakage checks, run on every split after its files are written.
//!
//! A split is wrong, whatever the strategy meant to do, when the same row
//! (identical line) is in two sets, when a group is in two sets, or, in a time
//! split, when a later set holds a row older than the newest row of an
//! earlier set. The strategies are built never to do this; the checks are
//! what make that a guarantee, and they catch what the strategies cannot see:
//! several inputs mixed by `sources:` that share rows, groups or time spans.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use super::table::hash_line;
use super::timestamp::Nanos;
use crate::error::{BuiltinError, DataError};

/// One row as placed by a split.
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    /// Index into the `sets` given to [`check`], which are in time order.
    pub set: usize,
    /// The line as written.
    pub content: &'a str,
    pub file: &'a Path,
    /// 1-based line in `file`.
    pub line: u64,
    pub group: Option<&'a str>,
    /// The timestamp and its text as written.
    pub time: Option<(Nanos, &'a str)>,
}

fn at(p: &Placed) -> String {
    format!("{}:{}", p.file.display(), p.line)
}

/// Fails on the first leak found, naming the rows or group and the sets.
pub fn check(sets: &[&str], rows: &[Placed]) -> Result<(), BuiltinError> {
    if let Some(p) = rows.iter().find(|p| p.set >= sets.len()) {
        return Err(BuiltinError::failed(format!(
            "check a split: row {}:{} is placed in set {} of {}",
            p.file.display(),
            p.line,
            p.set,
            sets.len()
        )));
    }
    let hashes: Vec<u64> = rows.par_iter().map(|p| hash_line(p.content)).collect();
    let mut first_of_hash: HashMap<u64, &Placed> = HashMap::with_capacity(rows.len());
    // Lines sharing a hash with a different earlier line, by content.
    let mut first_of_colliding: HashMap<&str, &Placed> = HashMap::new();
    let mut first_of_group: HashMap<&str, &Placed> = HashMap::new();
    for (p, &h) in rows.iter().zip(&hashes) {
        let earlier = match first_of_hash.get(&h) {
            None => {
                first_of_hash.insert(h, p);
                None
            }
            Some(q) if q.content == p.content => Some(*q),
            Some(_) => Some(*first_of_colliding.entry(p.content).or_insert(p)),
        };
        if let Some(q) = earlier
            && q.set != p.set
        {
            return Err(DataError::new(
                p.file,
                format!(
                    "leakage: this row is in `{}` and the identical row {} is in `{}`",
                    sets[p.set],
                    at(q),
                    sets[q.set]
                ),
            )
            .at(p.line, None)
            .hint("remove the duplicate rows, or make sure inputs mixed by `sources:` do not share rows")
            .into());
        }
        if let Some(g) = p.group {
            if let Some(q) = first_of_group.get(g)
                && q.set != p.set
            {
                return Err(DataError::new(
                    p.file,
                    format!(
                        "leakage: group `{g}` is in `{}` (this row) and in `{}` ({})",
                        sets[p.set],
                        sets[q.set],
                        at(q)
                    ),
                )
                .at(p.line, None)
                .hint("a group must stay in one set; with `sources:`, give a group's rows in every input the same set")
                .into());
            }
            first_of_group.entry(g).or_insert(p);
        }
    }
    check_time_order(sets, rows)
}

fn check_time_order(sets: &[&str], rows: &[Placed]) -> Result<(), BuiltinError> {
    let mut newest: Vec<Option<&Placed>> = vec![None; sets.len()];
    for p in rows {
        if let Some((t, _)) = p.time {
            let slot = &mut newest[p.set];
            if slot.is_none_or(|q| q.time.is_some_and(|(tq, _)| t > tq)) {
                *slot = Some(p);
            }
        }
    }
    // The newest row of all sets before set j, for each j.
    let mut before: Vec<Option<&Placed>> = vec![None; sets.len()];
    let mut running: Option<&Placed> = None;
    for j in 0..sets.len() {
        before[j] = running;
        if let Some(p) = newest[j]
            && running.is_none_or(|r| p.time > r.time)
        {
            running = Some(p);
        }
    }
    for p in rows {
        let (Some((t, text)), Some(q)) = (p.time, before[p.set]) else {
            continue;
        };
        let (tq, text_q) = q.time.unwrap_or((t, ""));
        if t < tq {
            return Err(DataError::new(
                p.file,
                format!(
                    "leakage: this row of `{}` ({text}) is older than row {} of the earlier set `{}` ({text_q})",
                    sets[p.set],
                    at(q),
                    sets[q.set]
                ),
            )
            .at(p.line, None)
            .hint("in a time split every set must be newer than the sets before it; with `sources:`, check the inputs' time spans")
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETS: [&str; 3] = ["train", "validation", "test"];

    fn row(set: usize, content: &str, line: u64) -> Placed<'_> {
        Placed {
            set,
            content,
            file: Path::new("data.csv"),
            line,
            group: None,
            time: None,
        }
    }

    #[test]
    fn a_clean_assignment_passes() {
        let mut rows = vec![row(0, "a", 2), row(0, "a", 3), row(2, "b", 4)];
        rows[0].time = Some((1, "1"));
        rows[1].time = Some((1, "1"));
        rows[2].time = Some((1, "1"));
        check(&SETS, &rows).unwrap();
    }

    #[test]
    fn the_same_row_in_two_sets_is_named() {
        let e = check(&SETS, &[row(0, "1,x", 2), row(2, "1,x", 9)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.csv:9: leakage"), "{e}");
        assert!(e.contains("row data.csv:2 is in `train`"), "{e}");
    }

    #[test]
    fn a_group_in_two_sets_is_named() {
        let mut rows = vec![row(0, "a", 2), row(1, "b", 3)];
        rows[0].group = Some("u7");
        rows[1].group = Some("u7");
        let e = check(&SETS, &rows).unwrap_err().to_string();
        assert!(e.contains("group `u7` is in `validation`"), "{e}");
    }

    #[test]
    fn an_old_row_in_a_later_set_is_named() {
        let mut rows = vec![row(0, "a", 2), row(1, "b", 3), row(2, "c", 4)];
        rows[0].time = Some((10, "2024-01-10"));
        rows[1].time = Some((20, "2024-01-20"));
        rows[2].time = Some((15, "2024-01-15"));
        let e = check(&SETS, &rows).unwrap_err().to_string();
        assert!(e.contains("data.csv:4: leakage: this row of `test` (2024-01-15) is older than row data.csv:3 of the earlier set `validation` (2024-01-20)"), "{e}");
    }
}
