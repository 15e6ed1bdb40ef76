//! The `group` strategy: every group (a user, a speaker, a patient) goes to
//! exactly one set, and the sets' row counts come as close to the fractions
//! as the group sizes allow.
//!
//! Groups are placed largest first (equal sizes in a seeded random order)
//! into the set furthest below its target, keeping enough groups back that no
//! set stays empty; then single-group moves that bring the counts closer to
//! the targets are made until none helps. Deterministic for a seed.

use std::collections::HashMap;

use super::rng::Rng;
use super::sets::Fractions;
use crate::error::BuiltinError;

/// Sets (indices into `SET_NAMES`) of the groups of one input.
///
/// `keys[r]` is the group of row `r`; `fixed` holds groups already placed by
/// an earlier input, which keep their set when this input has it.
pub(crate) fn assign(
    keys: &[&str],
    fractions: &Fractions,
    rng: &mut Rng,
    fixed: &HashMap<String, usize>,
    what: &str,
) -> Result<Vec<usize>, BuiltinError> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<(&str, usize)> = Vec::new();
    let mut group_of = Vec::with_capacity(keys.len());
    for &k in keys {
        let g = *index.entry(k).or_insert_with(|| {
            groups.push((k, 0));
            groups.len() - 1
        });
        groups[g].1 += 1;
        group_of.push(g);
    }
    let n_sets = fractions.sets.len();
    if groups.len() < n_sets {
        return Err(BuiltinError::hyperparameter(
            what,
            None,
            format!(
                "{} sets were asked for but the data holds only {} group{}",
                n_sets,
                groups.len(),
                if groups.len() == 1 { "" } else { "s" }
            ),
        )
        .with_hint("ask for fewer sets, or split by a column with more distinct values"));
    }
    let n: usize = keys.len();
    let target: Vec<f64> = fractions.shares.iter().map(|s| s * n as f64).collect();
    let slot_of = |set: usize| fractions.sets.iter().position(|&s| s == set);

    let mut order: Vec<usize> = (0..groups.len()).collect();
    rng.shuffle(&mut order);
    order.sort_by_key(|&g| std::cmp::Reverse(groups[g].1));

    let mut slot = vec![usize::MAX; groups.len()];
    let mut count = vec![0usize; n_sets];
    let mut pinned = vec![false; groups.len()];
    for (g, (key, size)) in groups.iter().enumerate() {
        if let Some(s) = fixed.get(*key).and_then(|&set| slot_of(set)) {
            slot[g] = s;
            count[s] += size;
            pinned[g] = true;
        }
    }
    let mut left = order.iter().filter(|&&g| !pinned[g]).count();
    for &g in &order {
        if pinned[g] {
            continue;
        }
        let empty: Vec<usize> = (0..n_sets).filter(|&s| count[s] == 0).collect();
        let candidates: Vec<usize> = if left <= empty.len() {
            empty
        } else {
            (0..n_sets).collect()
        };
        let s = candidates
            .iter()
            .copied()
            .max_by(|&a, &b| {
                let da = target[a] - count[a] as f64;
                let db = target[b] - count[b] as f64;
                // on equal deficits the earlier set wins
                da.total_cmp(&db).then(b.cmp(&a))
            })
            .unwrap_or(0);
        slot[g] = s;
        count[s] += groups[g].1;
        left -= 1;
    }

    let cost = |count: &[usize]| -> f64 {
        count
            .iter()
            .zip(&target)
            .map(|(&c, &t)| (c as f64 - t) * (c as f64 - t))
            .sum()
    };
    // Bounded: each accepted move strictly lowers the cost.
    for _ in 0..100 {
        let mut improved = false;
        for &g in &order {
            if pinned[g] {
                continue;
            }
            let from = slot[g];
            let size = groups[g].1;
            if count[from] == size {
                continue; // moving it would empty its set
            }
            let mut best: Option<(f64, usize)> = None;
            let now = cost(&count);
            for to in (0..n_sets).filter(|&t| t != from) {
                let mut c = count.clone();
                c[from] -= size;
                c[to] += size;
                let after = cost(&c);
                if after < now - 1e-9 && best.is_none_or(|(b, _)| after < b) {
                    best = Some((after, to));
                }
            }
            if let Some((_, to)) = best {
                count[from] -= size;
                count[to] += size;
                slot[g] = to;
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    Ok(group_of.iter().map(|&g| fractions.sets[slot[g]]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(shares: &[(&str, f64)]) -> Fractions {
        let pairs: Vec<(String, f64)> = shares.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        Fractions::parse(&pairs, "fractions").unwrap()
    }

    fn keys(sizes: &[(&'static str, usize)]) -> Vec<&'static str> {
        sizes
            .iter()
            .flat_map(|(k, n)| std::iter::repeat_n(*k, *n))
            .collect()
    }

    #[test]
    fn no_set_is_left_empty_and_groups_stay_whole() {
        // the penguins' islands: a greedy fill alone would give test nothing
        let k = keys(&[("Torgersen", 52), ("Biscoe", 168), ("Dream", 124)]);
        let f = fr(&[("train", 0.7), ("validation", 0.15), ("test", 0.15)]);
        let sets = assign(&k, &f, &mut Rng::new(1), &HashMap::new(), "strategy").unwrap();
        let mut per_set = [0; 3];
        for (key, s) in k.iter().zip(&sets) {
            per_set[*s] += 1;
            assert!(k.iter().zip(&sets).all(|(k2, s2)| k2 != key || s2 == s));
        }
        assert!(per_set.iter().all(|&c| c > 0), "{per_set:?}");
    }

    #[test]
    fn many_small_groups_meet_the_fractions_closely() {
        let owned: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
        let k: Vec<&str> = owned
            .iter()
            .flat_map(|u| std::iter::repeat_n(u.as_str(), 1 + u.len() % 3))
            .collect();
        let f = fr(&[("train", 0.8), ("test", 0.2)]);
        let a = assign(&k, &f, &mut Rng::new(5), &HashMap::new(), "strategy").unwrap();
        let test = a.iter().filter(|&&s| s == 2).count() as f64 / k.len() as f64;
        assert!((test - 0.2).abs() < 0.01, "{test}");
        assert_eq!(
            a,
            assign(&k, &f, &mut Rng::new(5), &HashMap::new(), "strategy").unwrap()
        );
        assert_ne!(
            a,
            assign(&k, &f, &mut Rng::new(6), &HashMap::new(), "strategy").unwrap()
        );
    }

    #[test]
    fn too_few_groups_is_an_error_and_fixed_groups_keep_their_set() {
        let k = keys(&[("a", 3), ("b", 2)]);
        let f = fr(&[("train", 0.5), ("validation", 0.25), ("test", 0.25)]);
        let e = assign(&k, &f, &mut Rng::new(0), &HashMap::new(), "strategy").unwrap_err();
        assert!(e.to_string().contains("only 2 groups"), "{e}");
        let fixed: HashMap<String, usize> = [("a".to_string(), 2)].into();
        let f2 = fr(&[("train", 0.5), ("test", 0.5)]);
        let a = assign(&k, &f2, &mut Rng::new(0), &fixed, "strategy").unwrap();
        assert_eq!(a, [2, 2, 2, 0, 0]);
    }
}
