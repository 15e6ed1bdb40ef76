//! Splits of the penguins data set (`pipelines/data/penguins.csv`) with each
//! strategy, checked from the written files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use builtins::split::{self, Manifest, SourceInput, SplitSpec, Strategy};

fn penguins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/data/penguins.csv")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("split-penguins-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dirs(root: &Path) -> BTreeMap<String, PathBuf> {
    ["train", "validation", "test"]
        .iter()
        .map(|s| (s.to_string(), root.join(s)))
        .collect()
}

fn fractions(p: &[(&str, f64)]) -> Vec<(String, f64)> {
    p.iter().map(|(n, f)| (n.to_string(), *f)).collect()
}

fn run(root: &Path, strategy: Strategy, fr: &[(&str, f64)], seed: u64) -> Manifest {
    let spec = SplitSpec {
        strategy,
        fractions: fractions(fr),
        seed,
    };
    let input = [SourceInput {
        path: penguins(),
        fractions: None,
    }];
    split::run(&input, &spec, &dirs(root)).unwrap()
}

/// The data lines of each written output, after checking the header and hash.
fn outputs(m: &Manifest) -> BTreeMap<String, Vec<String>> {
    let header = std::fs::read_to_string(penguins())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    m.outputs
        .iter()
        .map(|(set, o)| {
            let bytes = std::fs::read(&o.file).unwrap();
            assert_eq!(o.blake3, blake3::hash(&bytes).to_hex().to_string(), "{set}");
            let text = String::from_utf8(bytes).unwrap();
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some(header.as_str()),
                "{set} lacks the header"
            );
            let rows: Vec<String> = lines.map(str::to_string).collect();
            assert_eq!(rows.len(), o.rows, "{set}");
            (set.clone(), rows)
        })
        .collect()
}

fn input_rows() -> Vec<String> {
    let text = std::fs::read_to_string(penguins()).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Every input row is written exactly once, unchanged.
fn assert_partition(out: &BTreeMap<String, Vec<String>>) {
    let mut all: Vec<String> = out.values().flatten().cloned().collect();
    let mut input = input_rows();
    all.sort();
    input.sort();
    assert_eq!(all, input);
}

fn field(line: &str, i: usize) -> &str {
    line.split(',').nth(i).unwrap()
}

#[test]
fn group_by_island_keeps_each_island_in_one_set() {
    let root = scratch("group");
    let m = run(
        &root,
        Strategy::Group {
            column: "island".into(),
        },
        &[("train", 0.7), ("validation", 0.15), ("test", 0.15)],
        42,
    );
    let out = outputs(&m);
    assert_partition(&out);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (set, rows) in &out {
        assert!(!rows.is_empty(), "{set} is empty");
        for r in rows {
            let island = field(r, 1).to_string();
            let prev = seen.entry(island.clone()).or_insert_with(|| set.clone());
            assert_eq!(prev, set, "{island} is in two sets");
        }
        let listed = m.outputs[set]
            .groups
            .as_ref()
            .unwrap()
            .names
            .clone()
            .unwrap();
        let actual: BTreeSet<String> = rows.iter().map(|r| field(r, 1).to_string()).collect();
        assert_eq!(listed, actual.into_iter().collect::<Vec<_>>());
    }
    assert_eq!(seen.len(), 3);
    let total: f64 = m.outputs.values().map(|o| o.fraction).sum();
    assert!((total - 1.0).abs() < 1e-12);
    // Biscoe (168 rows) is the only island near 70%.
    assert_eq!(seen["Biscoe"], "train");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn time_by_year_puts_the_newest_years_last() {
    let root = scratch("time");
    let m = run(
        &root,
        Strategy::Time {
            column: "year".into(),
            cutoffs: vec![],
            gap: None,
        },
        &[("train", 0.6), ("test", 0.4)],
        0,
    );
    let out = outputs(&m);
    assert_partition(&out);
    let years = |set: &str| -> BTreeSet<u32> {
        out[set]
            .iter()
            .map(|r| field(r, 7).parse().unwrap())
            .collect()
    };
    // 2007 and 2008 hold 110 + 114 of 344 rows: the cut lands after 2008's tie.
    assert_eq!(years("train"), BTreeSet::from([2007, 2008]));
    assert_eq!(years("test"), BTreeSet::from([2009]));
    let range = m.outputs["train"].time_range.as_ref().unwrap();
    assert_eq!(
        (range.oldest.as_str(), range.newest.as_str()),
        ("2007", "2008")
    );

    let root2 = scratch("cutoffs");
    let m = run(
        &root2,
        Strategy::Time {
            column: "year".into(),
            cutoffs: vec!["2008".into(), "2009".into()],
            gap: None,
        },
        &[],
        0,
    );
    let out = outputs(&m);
    assert_partition(&out);
    for (set, year) in [("train", "2007"), ("validation", "2008"), ("test", "2009")] {
        assert!(out[set].iter().all(|r| field(r, 7) == year), "{set}");
    }
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&root2).unwrap();
}

#[test]
fn stratified_shuffle_splits_every_species_by_the_fractions() {
    let root = scratch("shuffle");
    let strategy = Strategy::Shuffle {
        stratify: Some("species".into()),
    };
    let fr = [("train", 0.6), ("validation", 0.2), ("test", 0.2)];
    let m = run(&root, strategy.clone(), &fr, 7);
    let out = outputs(&m);
    assert_partition(&out);
    let mut per_species: BTreeMap<String, usize> = BTreeMap::new();
    for r in input_rows() {
        *per_species.entry(field(&r, 0).to_string()).or_default() += 1;
    }
    for (set, share) in fr {
        let classes = m.outputs[set].classes.as_ref().unwrap();
        for (species, &n) in &per_species {
            let got = classes.get(species).copied().unwrap_or(0) as f64;
            assert!(
                (got - share * n as f64).abs() <= 1.0,
                "{set} {species}: {got} of {n}"
            );
        }
    }
    // The same seed gives the same files; another seed other files.
    let (again_root, other_root) = (scratch("shuffle-again"), scratch("shuffle-other"));
    let again = run(&again_root, strategy.clone(), &fr, 7);
    let other = run(&other_root, strategy, &fr, 8);
    for set in ["train", "validation", "test"] {
        assert_eq!(m.outputs[set].blake3, again.outputs[set].blake3);
    }
    assert_ne!(m.outputs["train"].blake3, other.outputs["train"].blake3);
    for r in [root, again_root, other_root] {
        std::fs::remove_dir_all(&r).unwrap();
    }
}

#[test]
fn the_manifest_serializes() {
    let root = scratch("manifest");
    let m = run(
        &root,
        Strategy::Shuffle { stratify: None },
        &[("train", 0.8), ("test", 0.2)],
        1,
    );
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["rows_in"], 344);
    assert_eq!(v["outputs"]["test"]["rows"], 69);
    assert_eq!(v["outputs"]["test"]["requested_fraction"], 0.2);
    assert_eq!(v["sources"][0]["rows_per_output"]["train"], 275);
    std::fs::remove_dir_all(&root).unwrap();
}
