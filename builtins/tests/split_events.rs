//! Splits of an events-like log (timestamp, user_id, label, features) that
//! each test writes itself: time splits with a gap, group splits by user,
//! inputs mixed by `sources:`, the input errors, and the leakage checks firing
//! on inputs crafted to leak.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use builtins::BuiltinError;
use builtins::split::{self, Manifest, SourceInput, SplitSpec, Strategy};

const HEADER: &str = "timestamp,user_id,label,f1,f2";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("split-events-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` events over January and February 2024 from 40 users (ids offset by
/// `user_offset`); several share a timestamp.
fn events(n: usize, user_offset: usize) -> String {
    let mut s = format!("{HEADER}\n");
    for i in 0..n {
        let minute = (i * 7919) % (59 * 24 * 60) / 5 * 5;
        let (day, hour, min) = (minute / (24 * 60), minute / 60 % 24, minute % 60);
        let date = if day < 31 {
            format!("2024-01-{:02}", day + 1)
        } else {
            format!("2024-02-{:02}", day - 30)
        };
        let user = (i * 31 + 7) % 40 + user_offset;
        writeln!(
            s,
            "{date}T{hour:02}:{min:02}:00Z,u{user},{},{:.3},{}",
            i % 2,
            i as f64 * 0.37 % 5.0,
            i % 11
        )
        .unwrap();
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn dirs(root: &Path) -> BTreeMap<String, PathBuf> {
    ["train", "validation", "test"]
        .iter()
        .map(|s| (s.to_string(), root.join("out").join(s)))
        .collect()
}

fn fr(p: &[(&str, f64)]) -> Vec<(String, f64)> {
    p.iter().map(|(n, f)| (n.to_string(), *f)).collect()
}

fn one(path: &Path) -> Vec<SourceInput> {
    vec![SourceInput {
        path: path.to_path_buf(),
        fractions: None,
    }]
}

fn spec(strategy: Strategy, fractions: &[(&str, f64)]) -> SplitSpec {
    SplitSpec {
        strategy,
        fractions: fr(fractions),
        seed: 3,
    }
}

fn time(column: &str, gap: Option<&str>) -> Strategy {
    Strategy::Time {
        column: column.into(),
        cutoffs: vec![],
        gap: gap.map(str::to_string),
    }
}

fn rows_of(m: &Manifest, set: &str) -> Vec<String> {
    let text = std::fs::read_to_string(&m.outputs[set].file).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    lines.map(str::to_string).collect()
}

fn err_text(r: Result<Manifest, BuiltinError>) -> (String, bool) {
    let e = r.expect_err("the split should fail");
    (e.to_string(), e.is_invalid_input())
}

#[test]
fn time_split_with_a_gap_leaves_the_gap_empty() {
    let root = scratch("gap");
    let input = write(&root, "events.csv", &events(600, 0));
    let m = split::run(
        &one(&input),
        &spec(
            time("timestamp", Some("2d")),
            &[("train", 0.7), ("validation", 0.15), ("test", 0.15)],
        ),
        &dirs(&root),
    )
    .unwrap();
    assert!(m.rows_dropped_by_gap > 0);
    assert_eq!(m.rows_out + m.rows_dropped_by_gap, 600);
    let ts = |set: &str| -> Vec<i128> {
        rows_of(&m, set)
            .iter()
            .map(|r| split::timestamp::parse(r.split(',').next().unwrap()).unwrap())
            .collect()
    };
    let two_days = split::timestamp::parse_duration("2d").unwrap();
    let (train, val, test) = (ts("train"), ts("validation"), ts("test"));
    assert!(train.iter().max().unwrap() + two_days < *val.iter().min().unwrap());
    assert!(val.iter().max().unwrap() + two_days < *test.iter().min().unwrap());
    let tr = m.outputs["test"].time_range.as_ref().unwrap();
    assert!(tr.oldest.starts_with("2024-") && tr.newest.starts_with("2024-02"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn group_split_by_user_keeps_users_whole_and_near_the_fractions() {
    let root = scratch("users");
    let input = write(&root, "events.csv", &events(800, 0));
    let m = split::run(
        &one(&input),
        &spec(
            Strategy::Group {
                column: "user_id".into(),
            },
            &[("train", 0.8), ("test", 0.2)],
        ),
        &dirs(&root),
    )
    .unwrap();
    let mut home: HashMap<String, &str> = HashMap::new();
    for set in ["train", "test"] {
        for r in rows_of(&m, set) {
            let user = r.split(',').nth(1).unwrap().to_string();
            assert_eq!(*home.entry(user).or_insert(set), set);
        }
    }
    let test = &m.outputs["test"];
    assert!((test.fraction - 0.2).abs() < 0.02, "{}", test.fraction);
    assert_eq!(
        test.groups.as_ref().unwrap().count + m.outputs["train"].groups.as_ref().unwrap().count,
        40
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn sources_mix_per_input_fractions() {
    let root = scratch("sources");
    let clean = write(&root, "clean.csv", &events(300, 0));
    let noisy = write(&root, "noisy.csv", &events(200, 100).replace("Z,u", "Z,n"));
    let inputs = vec![
        SourceInput {
            path: clean,
            fractions: Some(fr(&[("train", 1.0)])),
        },
        SourceInput {
            path: noisy,
            fractions: Some(fr(&[("validation", 0.5), ("test", 0.5)])),
        },
    ];
    let m = split::run(
        &inputs,
        &spec(
            Strategy::Shuffle {
                stratify: Some("label".into()),
            },
            &[],
        ),
        &dirs(&root),
    )
    .unwrap();
    assert_eq!(m.outputs["train"].rows, 300);
    assert!(rows_of(&m, "train").iter().all(|r| r.contains(",u")));
    assert!(rows_of(&m, "test").iter().all(|r| r.contains(",n")));
    assert_eq!(m.outputs["validation"].rows + m.outputs["test"].rows, 200);
    assert_eq!(m.sources[1].rows_per_output["validation"], 100);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn input_errors_say_where_and_how_to_fix() {
    let root = scratch("errors");
    let good = write(&root, "events.csv", &events(50, 0));
    let d = dirs(&root);
    let tf = [("train", 0.8), ("test", 0.2)];

    let (e, input) = err_text(split::run(
        &one(&good),
        &spec(time("timestmp", None), &tf),
        &d,
    ));
    assert!(
        input && e.contains("no column named `timestmp`") && e.contains("did you mean `timestamp`"),
        "{e}"
    );

    let mut lines: Vec<String> = events(10, 0).lines().map(str::to_string).collect();
    lines[4] = lines[4].replacen("2024-", "03/05/", 1);
    let bad = lines.join("\n");
    let bad_path = write(&root, "bad.csv", &bad);
    let (e, input) = err_text(split::run(
        &one(&bad_path),
        &spec(time("timestamp", None), &tf),
        &d,
    ));
    assert!(
        input && e.contains("bad.csv:5:1") && e.contains("`03/05/"),
        "{e}"
    );

    let (e, input) = err_text(split::run(
        &one(&good),
        &spec(time("timestamp", None), &[("train", 0.8), ("test", 0.3)]),
        &d,
    ));
    assert!(input && e.contains("sum to 1.1"), "{e}");

    let (e, _) = err_text(split::run(
        &one(&good),
        &spec(time("timestamp", None), &[("train", 0.8), ("tests", 0.2)]),
        &d,
    ));
    assert!(e.contains("did you mean `test`"), "{e}");

    let three = [("train", 0.4), ("validation", 0.3), ("test", 0.3)];
    let two_users = write(
        &root,
        "two.csv",
        &format!("{HEADER}\n2024-01-01,a,1,1,1\n2024-01-02,b,0,1,1\n2024-01-03,a,0,2,1\n"),
    );
    let (e, input) = err_text(split::run(
        &one(&two_users),
        &spec(
            Strategy::Group {
                column: "user_id".into(),
            },
            &three,
        ),
        &d,
    ));
    assert!(input && e.contains("only 2 groups"), "{e}");

    let late = Strategy::Time {
        column: "timestamp".into(),
        cutoffs: vec!["2030-01-01".into()],
        gap: None,
    };
    let (e, input) = err_text(split::run(&one(&good), &spec(late, &[]), &d));
    assert!(input && e.contains("`test` set would be empty"), "{e}");

    let (e, input) = err_text(split::run(
        &one(&good),
        &spec(time("timestamp", Some("2 days")), &tf),
        &d,
    ));
    assert!(input && e.contains("not a duration"), "{e}");

    let other_header = write(&root, "other.csv", "a,b\n1,2\n");
    let mixed = vec![
        SourceInput {
            path: good.clone(),
            fractions: Some(fr(&[("train", 1.0)])),
        },
        SourceInput {
            path: other_header,
            fractions: Some(fr(&[("test", 1.0)])),
        },
    ];
    let (e, _) = err_text(split::run(
        &mixed,
        &spec(Strategy::Shuffle { stratify: None }, &[]),
        &d,
    ));
    assert!(e.contains("header differs"), "{e}");

    let (e, _) = err_text(split::run(
        &one(&root.join("missing.csv")),
        &spec(Strategy::Shuffle { stratify: None }, &tf),
        &d,
    ));
    assert!(
        e.contains("missing.csv") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Two inputs whose per-input assignments are each fine but leak together.
fn leaky_run(name: &str, strategy: Strategy, a: &str, b: &str) -> (String, PathBuf) {
    let root = scratch(name);
    let inputs = vec![
        SourceInput {
            path: write(&root, "a.csv", a),
            fractions: Some(fr(&[("train", 1.0)])),
        },
        SourceInput {
            path: write(&root, "b.csv", b),
            fractions: Some(fr(&[("test", 1.0)])),
        },
    ];
    let (e, _) = err_text(split::run(&inputs, &spec(strategy, &[]), &dirs(&root)));
    // A failed check leaves no outputs behind.
    for set in ["train", "test"] {
        assert!(
            !root
                .join("out")
                .join(set)
                .join(format!("{set}.csv"))
                .exists(),
            "{set} left behind"
        );
    }
    (e, root)
}

#[test]
fn a_row_in_two_sets_fails_the_split() {
    let a = format!("{HEADER}\n2024-01-01,u1,1,0.5,1\n2024-01-02,u2,0,0.5,1\n");
    let b = format!("{HEADER}\n2024-02-01,u3,1,0.5,1\n2024-01-02,u2,0,0.5,1\n");
    let (e, root) = leaky_run("dup", Strategy::Shuffle { stratify: None }, &a, &b);
    assert!(
        e.contains("b.csv:3: leakage: this row is in `test`")
            && e.contains("a.csv:3 is in `train`"),
        "{e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_group_in_two_sets_fails_the_split() {
    let a = format!("{HEADER}\n2024-01-01,u1,1,0.5,1\n2024-01-02,u2,0,0.5,1\n");
    let b = format!("{HEADER}\n2024-02-01,u3,1,0.5,1\n2024-02-02,u2,0,0.7,1\n");
    let (e, root) = leaky_run(
        "group",
        Strategy::Group {
            column: "user_id".into(),
        },
        &a,
        &b,
    );
    assert!(
        e.contains("b.csv:3: leakage: group `u2` is in `test`")
            && e.contains("`train` (")
            && e.contains("a.csv:3"),
        "{e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_old_test_row_fails_a_time_split() {
    let a = format!("{HEADER}\n2024-01-01,u1,1,0.5,1\n2024-03-01,u2,0,0.5,1\n");
    let b = format!("{HEADER}\n2024-04-01,u3,1,0.5,1\n2024-02-01T10:00:00Z,u4,0,0.7,1\n");
    let (e, root) = leaky_run("time", time("timestamp", None), &a, &b);
    assert!(
        e.contains("b.csv:3: leakage: this row of `test` (2024-02-01T10:00:00Z) is older than row")
            && e.contains("a.csv:3 of the earlier set `train` (2024-03-01)"),
        "{e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn duplicate_lines_in_one_input_land_in_one_set() {
    let root = scratch("dups");
    let mut text = format!("{HEADER}\n");
    for i in 0..100 {
        // every line appears twice
        let line = format!("2024-01-{:02},u{},1,{i},0\n", 1 + i % 28, i % 9);
        text.push_str(&line);
        text.push_str(&line);
    }
    let input = write(&root, "events.csv", &text);
    let m = split::run(
        &one(&input),
        &spec(
            Strategy::Shuffle { stratify: None },
            &[("train", 0.5), ("test", 0.5)],
        ),
        &dirs(&root),
    )
    .unwrap();
    assert_eq!(m.rows_out, 200);
    assert_eq!(m.outputs["train"].rows % 2, 0);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_directory_input_is_read_in_name_order_with_one_header() {
    let root = scratch("dir");
    let input = root.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let all = events(120, 0);
    let lines: Vec<&str> = all.lines().skip(1).collect();
    write(
        &input,
        "part-1.csv",
        &format!("{HEADER}\n{}\n", lines[60..].join("\n")),
    );
    write(
        &input,
        "part-0.csv",
        &format!("{HEADER}\n{}\n", lines[..60].join("\n")),
    );
    write(&input, ".hidden", "not,data\n");
    let m = split::run(
        &one(&input),
        &spec(time("timestamp", None), &[("train", 0.5), ("test", 0.5)]),
        &dirs(&root),
    )
    .unwrap();
    assert_eq!(m.rows_in, 120);
    let mut out: Vec<String> = rows_of(&m, "train");
    out.extend(rows_of(&m, "test"));
    out.sort();
    let mut expected: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(out, expected);

    write(
        &input,
        "part-2.csv",
        "timestamp,user,label,f1,f2\n2024-01-01,u1,0,1,1\n",
    );
    let (e, input_error) = err_text(split::run(
        &one(&input),
        &spec(time("timestamp", None), &[("train", 0.5), ("test", 0.5)]),
        &dirs(&root),
    ));
    assert!(
        input_error && e.contains("part-2.csv:1: the header differs"),
        "{e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
