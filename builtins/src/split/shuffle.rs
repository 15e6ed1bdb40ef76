//! The `shuffle` strategy: rows in a seeded random order, cut by the fractions,
//! optionally within each class of a `stratify` column.
//!
//! Identical lines move together (they are one unit of the shuffle): the same
//! example in train and test is leakage however it got into the file twice.

use std::collections::{BTreeMap, HashMap};

use super::rng::Rng;
use super::sets::Fractions;
use super::table::Table;

/// The set (index into `SET_NAMES`) of every row of `table`.
pub(crate) fn assign(
    table: &Table,
    fractions: &Fractions,
    stratify: Option<usize>,
    rng: &mut Rng,
) -> Vec<Option<usize>> {
    let hashes = table.line_hashes();
    let mut unit_of: HashMap<u64, usize> = HashMap::with_capacity(table.rows.len());
    // Lines whose hash another line already has: rare, so looked up by content.
    let mut unit_of_colliding: HashMap<&str, usize> = HashMap::new();
    let mut units: Vec<Vec<usize>> = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let line = table.line(row);
        let u = match unit_of.get(&hashes[i]) {
            Some(&u) if table.line(&table.rows[units[u][0]]) == line => u,
            Some(_) => *unit_of_colliding.entry(line).or_insert_with(|| {
                units.push(Vec::new());
                units.len() - 1
            }),
            None => {
                units.push(Vec::new());
                unit_of.insert(hashes[i], units.len() - 1);
                units.len() - 1
            }
        };
        units[u].push(i);
    }
    // Classes in sorted order so the draws do not depend on hash order.
    let mut classes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (u, rows) in units.iter().enumerate() {
        let class = stratify.map_or("", |c| table.field(&table.rows[rows[0]], c));
        classes.entry(class).or_default().push(u);
    }
    let mut out = vec![None; table.rows.len()];
    for class_units in classes.values_mut() {
        rng.shuffle(class_units);
        let n: usize = class_units.iter().map(|&u| units[u].len()).sum();
        let bounds = fractions.bounds(n);
        let mut placed = 0;
        let mut k = 0;
        for &u in class_units.iter() {
            while placed >= bounds[k] && k + 1 < bounds.len() {
                k += 1;
            }
            for &r in &units[u] {
                out[r] = Some(fractions.sets[k]);
            }
            placed += units[u].len();
        }
    }
    out
}
