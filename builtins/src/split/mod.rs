//! Row assignment of the `split` step: which rows of the input(s) go to
//! `train`, `validation` and `test`.
//!
//! A split works on raw CSV lines: every output is a CSV file with the
//! input's header line followed by its rows exactly as they were written, in
//! input order. Strategies:
//! - [`Strategy::Shuffle`]: a seeded random cut by the fractions, optionally
//!   within each class of a `stratify` column;
//! - [`Strategy::Time`]: by a timestamp column, oldest rows first, cut by the
//!   fractions or at `cutoffs`, with an optional `gap` left out between sets;
//! - [`Strategy::Group`]: no value of a group column in two sets.
//!
//! Several inputs (`sources:`) each have their own fractions; what each
//! contributes to a set is concatenated in input order. Identical lines always
//! land in one set. After writing, [`leakage::check`] verifies the result
//! (no row or group in two sets, no time going backwards between sets); a
//! failure removes the outputs. The engine calls:
//!
//! ```no_run
//! # use builtins::split::*;
//! # use std::collections::BTreeMap;
//! # use std::path::PathBuf;
//! let spec = SplitSpec {
//!     strategy: Strategy::Group { column: "island".into() },
//!     fractions: vec![("train".into(), 0.7), ("validation".into(), 0.15), ("test".into(), 0.15)],
//!     seed: 42,
//! };
//! let inputs = [SourceInput { path: PathBuf::from("penguins.csv"), fractions: None }];
//! let dirs: BTreeMap<String, PathBuf> = ["train", "validation", "test"]
//!     .iter()
//!     .map(|s| (s.to_string(), PathBuf::from("out").join(s)))
//!     .collect();
//! let manifest = run(&inputs, &spec, &dirs)?; // writes out/train/train.csv, ...
//! # Ok::<(), builtins::BuiltinError>(())
//! ```

pub mod leakage;
pub mod manifest;
pub(crate) mod rng;
pub mod sets;
pub mod timestamp;

mod group;
mod shuffle;
mod table;
mod time;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

pub use manifest::Manifest;
pub use sets::SET_NAMES;

use crate::error::{BuiltinError, DataError};
use rng::Rng;
use sets::Fractions;
use table::Table;
use timestamp::Nanos;

/// How rows are assigned to sets.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    Shuffle {
        /// Split each class of this column by the fractions.
        stratify: Option<String>,
    },
    Time {
        column: String,
        /// Instants where the next set starts (one fewer than the sets); when
        /// empty, the fractions cut the rows in time order.
        cutoffs: Vec<String>,
        /// A duration (`7d`, `12h`) left out before each cut.
        gap: Option<String>,
    },
    Group {
        column: String,
    },
}

impl Strategy {
    fn name(&self) -> &'static str {
        match self {
            Strategy::Shuffle { .. } => "shuffle",
            Strategy::Time { .. } => "time",
            Strategy::Group { .. } => "group",
        }
    }
    fn column(&self) -> Option<&str> {
        match self {
            Strategy::Shuffle { stratify } => stratify.as_deref(),
            Strategy::Time { column, .. } | Strategy::Group { column } => Some(column),
        }
    }
}

/// What to split and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    pub strategy: Strategy,
    /// `(set, share)` pairs, any of `train`, `validation`, `test`, summing to 1.
    /// With time `cutoffs` the values are not used and may be left out
    /// entirely (the sets are then train/test or train/validation/test).
    pub fractions: Vec<(String, f64)>,
    pub seed: u64,
}

/// One input: a CSV file, or a directory of CSV files with one header.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInput {
    pub path: PathBuf,
    /// This input's own fractions (`sources:`); `None` uses the spec's.
    pub fractions: Option<Vec<(String, f64)>>,
}

/// Splits `inputs` and writes each set `S` to `out_dirs[S]/S.csv`.
pub fn run(
    inputs: &[SourceInput],
    spec: &SplitSpec,
    out_dirs: &BTreeMap<String, PathBuf>,
) -> Result<Manifest, BuiltinError> {
    if inputs.is_empty() {
        return Err(BuiltinError::hyperparameter(
            "input",
            None,
            "a split needs an input",
        ));
    }
    let (cutoffs, gap) = time_settings(&spec.strategy)?;
    let fractions = inputs
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let what = if inputs.len() == 1 {
                "fractions".to_string()
            } else {
                format!("sources[{i}].fractions")
            };
            let pairs = src.fractions.as_ref().unwrap_or(&spec.fractions);
            source_fractions(pairs, cutoffs.as_deref(), &what)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tables = inputs
        .iter()
        .map(|s| Table::read(&s.path))
        .collect::<Result<Vec<_>, _>>()?;
    for t in &tables[1..] {
        if t.columns != tables[0].columns {
            return Err(DataError::new(
                t.files.first().unwrap_or(&t.path),
                format!(
                    "the header differs from the first input's ({})",
                    tables[0].path.display()
                ),
            )
            .at(1, None)
            .hint("inputs mixed by `sources:` must have the same columns in the same order")
            .into());
        }
    }
    let role = match spec.strategy {
        Strategy::Shuffle { .. } => "stratification",
        Strategy::Time { .. } => "time split",
        Strategy::Group { .. } => "groups",
    };
    let col = spec
        .strategy
        .column()
        .map(|c| tables[0].column(c, role))
        .transpose()?;

    // Per input: the set of each row (None: dropped by the gap), and the
    // per-row time or group the checks and the manifest need.
    let mut assigned: Vec<Vec<Option<usize>>> = Vec::new();
    let mut times: Vec<Vec<Nanos>> = Vec::new();
    let mut dropped: Vec<usize> = Vec::new();
    let mut fixed_groups: HashMap<String, usize> = HashMap::new();
    for (i, (t, fr)) in tables.iter().zip(&fractions).enumerate() {
        let mut rng = Rng::stream(spec.seed, i as u64);
        let mut gap_drops = 0;
        let sets = match (&spec.strategy, col) {
            (Strategy::Time { .. }, Some(c)) => {
                let ts = time::parse_times(t, c)?;
                let a = time::assign(&ts, fr, cutoffs.as_deref(), gap);
                times.push(ts);
                gap_drops = a.dropped_by_gap;
                a.sets
            }
            (Strategy::Group { .. }, Some(c)) => {
                let keys: Vec<&str> = t.rows.iter().map(|r| t.field(r, c)).collect();
                let what = if inputs.len() == 1 {
                    "strategy".to_string()
                } else {
                    format!("sources[{i}]")
                };
                let sets = group::assign(&keys, fr, &mut rng, &fixed_groups, &what)?;
                // Later inputs keep these groups in the same sets.
                if i + 1 < tables.len() {
                    for (k, s) in keys.iter().zip(&sets) {
                        if !fixed_groups.contains_key(*k) {
                            fixed_groups.insert(k.to_string(), *s);
                        }
                    }
                }
                sets.into_iter().map(Some).collect()
            }
            _ => shuffle::assign(t, fr, col, &mut rng),
        };
        assigned.push(sets);
        dropped.push(gap_drops);
    }

    let out_sets: Vec<usize> = (0..SET_NAMES.len())
        .filter(|k| fractions.iter().any(|f| f.sets.contains(k)))
        .collect();
    let mut counts = vec![0usize; SET_NAMES.len()];
    for a in &assigned {
        for s in a.iter().flatten() {
            counts[*s] += 1;
        }
    }
    for &k in &out_sets {
        if counts[k] == 0 {
            return Err(BuiltinError::hyperparameter(
                "fractions",
                None,
                format!("the `{}` set would be empty", SET_NAMES[k]),
            )
            .with_hint(match spec.strategy {
                Strategy::Time { .. } => {
                    "rows with equal timestamps stay in one set; move the cutoffs, shorten the gap or change the fractions so every set gets rows"
                }
                _ => "give it a larger fraction or split more rows",
            }));
        }
        if !out_dirs.contains_key(SET_NAMES[k]) {
            return Err(BuiltinError::failed(format!(
                "split: no output directory was given for `{}`",
                SET_NAMES[k]
            )));
        }
    }

    let mut written: BTreeMap<usize, (PathBuf, String)> = BTreeMap::new();
    for &k in &out_sets {
        let name = SET_NAMES[k];
        let lines = tables.iter().zip(&assigned).flat_map(|(t, a)| {
            t.rows
                .iter()
                .zip(a)
                .filter(move |(_, s)| **s == Some(k))
                .map(|(r, _)| t.line(r))
        });
        let result = write::write_lines(
            &out_dirs[name],
            &format!("{name}.csv"),
            &tables[0].header,
            lines,
        );
        match result {
            Ok(w) => {
                written.insert(k, w);
            }
            Err(e) => {
                remove_all(&written);
                return Err(e);
            }
        }
    }

    let placed = placed_rows(&tables, &assigned, &times, &spec.strategy, col);
    let set_names: Vec<&str> = SET_NAMES.to_vec();
    if let Err(e) = leakage::check(&set_names, &placed) {
        remove_all(&written);
        return Err(e);
    }

    Ok(build_manifest(
        spec,
        inputs,
        &tables,
        &fractions,
        &assigned,
        &placed,
        &dropped,
        &written,
        cutoffs.is_some(),
    ))
}

fn remove_all(written: &BTreeMap<usize, (PathBuf, String)>) {
    for (path, _) in written.values() {
        let _ = std::fs::remove_file(path);
    }
}

fn time_settings(strategy: &Strategy) -> Result<(Option<Vec<Nanos>>, Nanos), BuiltinError> {
    let Strategy::Time { cutoffs, gap, .. } = strategy else {
        return Ok((None, 0));
    };
    let gap = match gap {
        None => 0,
        Some(g) => timestamp::parse_duration(g).ok_or_else(|| {
            BuiltinError::hyperparameter("gap", Some(g), "is not a duration")
                .with_hint("write a number and a unit: w, d, h, m or s (e.g. `7d`, `12h`, `1d12h`)")
        })?,
    };
    if cutoffs.is_empty() {
        return Ok((None, gap));
    }
    let mut parsed = Vec::with_capacity(cutoffs.len());
    for c in cutoffs {
        let t = timestamp::parse(c).ok_or_else(|| {
            BuiltinError::hyperparameter("cutoffs", Some(c), "is not a timestamp")
                .with_hint("write ISO 8601 dates or date-times (2024-03-01, 2024-03-01T12:00:00Z) or epoch seconds")
        })?;
        if parsed.last().is_some_and(|&p| t <= p) {
            return Err(BuiltinError::hyperparameter(
                "cutoffs",
                Some(c),
                "is not later than the cutoff before it; cutoffs go oldest first",
            ));
        }
        parsed.push(t);
    }
    if parsed.len() > 2 {
        return Err(BuiltinError::hyperparameter(
            "cutoffs",
            None,
            "a split has at most three sets, so at most two cutoffs",
        ));
    }
    Ok((Some(parsed), gap))
}

fn source_fractions(
    pairs: &[(String, f64)],
    cutoffs: Option<&[Nanos]>,
    what: &str,
) -> Result<Fractions, BuiltinError> {
    let Some(c) = cutoffs else {
        return Fractions::parse(pairs, what);
    };
    let fr = if pairs.is_empty() {
        let sets = if c.len() == 1 {
            vec![0, 2]
        } else {
            vec![0, 1, 2]
        };
        let share = 1.0 / sets.len() as f64;
        Fractions {
            shares: vec![share; sets.len()],
            sets,
        }
    } else {
        Fractions::parse(pairs, what)?
    };
    if fr.sets.len() != c.len() + 1 {
        return Err(BuiltinError::hyperparameter(
            "cutoffs",
            None,
            format!(
                "{} cutoff{} make{} {} sets, but {what} names {}",
                c.len(),
                if c.len() == 1 { "" } else { "s" },
                if c.len() == 1 { "s" } else { "" },
                c.len() + 1,
                fr.sets.len()
            ),
        ));
    }
    Ok(fr)
}

fn placed_rows<'a>(
    tables: &'a [Table],
    assigned: &[Vec<Option<usize>>],
    times: &[Vec<Nanos>],
    strategy: &Strategy,
    col: Option<usize>,
) -> Vec<leakage::Placed<'a>> {
    let mut out = Vec::new();
    for (i, (t, a)) in tables.iter().zip(assigned).enumerate() {
        for (r, (row, set)) in t.rows.iter().zip(a).enumerate() {
            let Some(set) = *set else { continue };
            let (group, time) = match (strategy, col) {
                (Strategy::Group { .. }, Some(c)) => (Some(t.field(row, c)), None),
                (Strategy::Time { .. }, Some(c)) => (None, Some((times[i][r], t.field(row, c)))),
                _ => (None, None),
            };
            out.push(leakage::Placed {
                set,
                content: t.line(row),
                file: t.file_of(row),
                line: row.line,
                group,
                time,
            });
        }
    }
    out
}

/// Oldest and newest timestamp of `rows`, as written.
fn time_range(rows: &[&leakage::Placed]) -> Option<manifest::TimeRange> {
    let mut times = rows.iter().filter_map(|p| p.time);
    let first = times.next()?;
    let (mut lo, mut hi) = (first, first);
    for t in times {
        if t.0 < lo.0 {
            lo = t;
        }
        if t.0 > hi.0 {
            hi = t;
        }
    }
    Some(manifest::TimeRange {
        oldest: lo.1.to_string(),
        newest: hi.1.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
fn build_manifest(
    spec: &SplitSpec,
    inputs: &[SourceInput],
    tables: &[Table],
    fractions: &[Fractions],
    assigned: &[Vec<Option<usize>>],
    placed: &[leakage::Placed],
    dropped: &[usize],
    written: &BTreeMap<usize, (PathBuf, String)>,
    by_cutoffs: bool,
) -> Manifest {
    let rows_out = placed.len();
    let mut outputs = BTreeMap::new();
    for (&k, (file, hash)) in written {
        let rows: Vec<&leakage::Placed> = placed.iter().filter(|p| p.set == k).collect();
        let time_range = time_range(&rows);
        let groups = matches!(spec.strategy, Strategy::Group { .. }).then(|| {
            let names: BTreeSet<&str> = rows.iter().filter_map(|p| p.group).collect();
            manifest::Groups {
                count: names.len(),
                names: (names.len() <= manifest::MAX_LISTED_GROUPS)
                    .then(|| names.iter().map(|s| s.to_string()).collect()),
            }
        });
        let classes = match (&spec.strategy, spec.strategy.column()) {
            (Strategy::Shuffle { .. }, Some(c)) => {
                let idx = tables[0].columns.iter().position(|n| n == c);
                let mut m: BTreeMap<String, usize> = BTreeMap::new();
                if let Some(idx) = idx {
                    for p in &rows {
                        let v = table::split_fields(p.content)
                            .get(idx)
                            .map_or("", |f| f.trim().trim_matches('"'));
                        *m.entry(v.to_string()).or_default() += 1;
                    }
                }
                Some(m)
            }
            _ => None,
        };
        let requested_fraction = (inputs.len() == 1 && !by_cutoffs)
            .then(|| {
                fractions[0]
                    .sets
                    .iter()
                    .position(|&s| s == k)
                    .map(|i| fractions[0].shares[i])
            })
            .flatten();
        outputs.insert(
            SET_NAMES[k].to_string(),
            manifest::Output {
                file: file.clone(),
                rows: rows.len(),
                fraction: rows.len() as f64 / rows_out.max(1) as f64,
                requested_fraction,
                blake3: hash.clone(),
                time_range,
                groups,
                classes,
            },
        );
    }
    let sources = tables
        .iter()
        .zip(fractions)
        .zip(assigned)
        .zip(dropped)
        .map(|(((t, fr), a), &d)| {
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for s in a.iter().flatten() {
                *per.entry(SET_NAMES[*s].to_string()).or_default() += 1;
            }
            let n = t.rows.len().max(1) as f64;
            manifest::Source {
                path: t.path.clone(),
                rows: t.rows.len(),
                requested: if by_cutoffs {
                    BTreeMap::new()
                } else {
                    fr.sets
                        .iter()
                        .zip(&fr.shares)
                        .map(|(&s, &f)| (SET_NAMES[s].to_string(), f))
                        .collect()
                },
                achieved: per
                    .iter()
                    .map(|(k, &v)| (k.clone(), v as f64 / n))
                    .collect(),
                rows_per_output: per,
                rows_dropped_by_gap: d,
            }
        })
        .collect();
    Manifest {
        strategy: spec.strategy.name().to_string(),
        column: spec.strategy.column().map(str::to_string),
        seed: spec.seed,
        rows_in: tables.iter().map(|t| t.rows.len()).sum(),
        rows_out,
        rows_dropped_by_gap: dropped.iter().sum(),
        outputs,
        sources,
    }
}
