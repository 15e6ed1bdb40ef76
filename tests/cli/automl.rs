//! `kind: automl`: every fitting built-in tried and ranked on a multiclass
//! and a binary task, a leaderboard scored on held-out data, the same search
//! whatever `max_parallel_jobs`, a re-run that is all cache hits, a time
//! budget that cuts the search (and says so), the best model registered and
//! used by `pipeline predict`, and the input errors found before anything runs.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{Test, output_digest, step_cached, step_status};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// An automl search over the penguins' species.
fn penguins_automl(trials: u32, parallel: u32, budget_extra: &str) -> String {
    format!(
        r#"name: automl-test
inputs:
  penguins: {{path: penguins.csv, format: csv, header: true, target: species}}
steps:
  split:
    kind: split
    input: inputs.penguins
    strategy: {{type: shuffle, stratify: species}}
    fractions: {{train: 0.7, validation: 0.15, test: 0.15}}
    seed: 3
  automl:
    kind: automl
    channels: {{train: split.train, validation: split.validation, test: split.test}}
    objective: {{metric: "validation:mlogloss", type: minimize}}
    budget: {{trials: {trials}{budget_extra}}}
    max_parallel_jobs: {parallel}
    seed: 5
"#
    )
}

/// Uniform numbers in [0, 1) from `seed` (a 64-bit LCG): the same rows every run.
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

/// Two noisy linear classes, 400 rows: a task linear-learner is good at.
fn binary_csv() -> String {
    let mut s = String::from("x1,x2,x3,label\n");
    let mut next = uniform(42);
    for _ in 0..400 {
        let (a, b, c) = (next(), next(), next());
        let noise = next() - 0.5;
        let label = u8::from(a + 0.5 * b - 0.8 * c + 0.3 * noise > 0.35);
        s.push_str(&format!("{a:.4},{b:.4},{c:.4},{label}\n"));
    }
    s
}

fn board_file(t: &Test, summary: &Value, file: &str) -> String {
    let dir = summary["steps"]["automl"]["outputs"]["leaderboard"]["path"]
        .as_str()
        .expect("a leaderboard output");
    std::fs::read_to_string(std::path::Path::new(dir).join(file))
        .unwrap_or_else(|e| panic!("read {file} in {dir}: {e} ({})", t.path().display()))
}

/// The leaderboard as (header, rows).
fn parse(board: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = board.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column `{name}` in {header:?}"))
}

#[test]
fn every_fitting_algorithm_is_tried_ranked_and_scored_on_held_out_rows() {
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &penguins_automl(6, 2, ""));
    let s = t
        .exec(["run", "p.yaml", "--json", "-j", "2"])
        .success()
        .summary();
    assert_eq!(step_status(&s, "automl"), "succeeded");
    let board = board_file(&t, &s, "leaderboard.csv");
    let (header, rows) = parse(&board);
    assert_eq!(rows.len(), 6, "{board}");
    for name in [
        "rank",
        "trial",
        "algorithm",
        "status",
        "objective",
        "test:mlogloss",
        "model_bytes",
        "eta",
        "wd",
    ] {
        col(&header, name);
    }
    let algos: BTreeSet<&str> = rows
        .iter()
        .map(|r| r[col(&header, "algorithm")].as_str())
        .collect();
    assert_eq!(
        algos,
        ["gbdt", "linear-learner"].into_iter().collect(),
        "{board}"
    );
    // Best first, by the validation objective; every model scored on the test rows.
    let objectives: Vec<f64> = rows
        .iter()
        .map(|r| r[col(&header, "objective")].parse().unwrap())
        .collect();
    assert!(objectives.windows(2).all(|w| w[0] <= w[1]), "{board}");
    for r in &rows {
        let test: f64 = r[col(&header, "test:mlogloss")].parse().unwrap();
        assert!(test.is_finite() && test > 0.0, "{board}");
        assert!(r[col(&header, "model_bytes")].parse::<u64>().unwrap() > 0);
    }
    // Trials 0 and 1 are the two algorithms' defaults.
    let first_two: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r[col(&header, "trial")] == "0" || r[col(&header, "trial")] == "1")
        .map(|r| r[col(&header, "algorithm")].as_str())
        .collect();
    assert_eq!(first_two.len(), 2, "{board}");
    // Times are beside the leaderboard, one row a trial.
    let timings = board_file(&t, &s, "timings.csv");
    let (th, trows) = parse(&timings);
    assert_eq!(trows.len(), 6, "{timings}");
    for r in &trows {
        assert!(
            r[col(&th, "fit_seconds")].parse::<f64>().unwrap() > 0.0,
            "{timings}"
        );
        assert!(
            r[col(&th, "predict_ms_per_1000_rows")]
                .parse::<f64>()
                .unwrap()
                > 0.0
        );
    }
    // The metrics are the best trial's, and the search was not cut short.
    let m = &s["steps"]["automl"]["metrics"];
    assert_eq!(m["best_trial"].as_u64().unwrap().to_string(), rows[0][1]);
    assert_eq!(m["complete"], Value::Bool(true));
    // A re-run is all cache hits with the same leaderboard.
    let again = t.exec(["run", "p.yaml", "--json"]).success().summary();
    for j in 0..6 {
        assert!(step_cached(&again, &format!("automl.{j}")), "trial {j}");
    }
    assert!(step_cached(&again, "automl"));
    assert_eq!(board_file(&t, &again, "leaderboard.csv"), board);
}

#[test]
fn a_binary_task_ranks_both_algorithms_by_auc() {
    let p = r#"name: automl-binary
inputs:
  d: {path: d.csv, format: csv, header: true, target: label}
steps:
  split:
    kind: split
    input: inputs.d
    fractions: {train: 0.6, validation: 0.2, test: 0.2}
    seed: 1
  automl:
    kind: automl
    channels: {train: split.train, validation: split.validation, test: split.test}
    objective: {metric: "validation:auc", type: maximize}
    budget: {trials: 4}
"#;
    let t = Test::new().file("d.csv", &binary_csv()).file("p.yaml", p);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let board = board_file(&t, &s, "leaderboard.csv");
    let (header, rows) = parse(&board);
    let objectives: Vec<f64> = rows
        .iter()
        .map(|r| r[col(&header, "objective")].parse().unwrap())
        .collect();
    assert!(objectives.windows(2).all(|w| w[0] >= w[1]), "{board}");
    assert!(objectives[0] > 0.9, "{board}");
    for r in &rows {
        let auc: f64 = r[col(&header, "test:auc")].parse().unwrap();
        assert!((0.5..=1.0).contains(&auc), "{board}");
    }
    let algos: BTreeSet<&str> = rows
        .iter()
        .map(|r| r[col(&header, "algorithm")].as_str())
        .filter(|a| *a != "ensemble")
        .collect();
    assert_eq!(algos.len(), 2, "{board}");
}

#[test]
fn the_search_is_the_same_whatever_max_parallel_jobs() {
    let run = |parallel: u32| {
        let t = Test::new()
            .file("penguins.csv", PENGUINS)
            .file("p.yaml", &penguins_automl(9, parallel, ""));
        let s = t
            .exec(["run", "p.yaml", "--json", "-j", "3"])
            .success()
            .summary();
        (
            board_file(&t, &s, "leaderboard.csv"),
            output_digest(&s, "automl", "model"),
        )
    };
    let (one, m1) = run(1);
    let (three, m3) = run(3);
    assert_eq!(one, three);
    assert_eq!(m1, m3);
}

#[test]
fn a_time_budget_that_cuts_the_search_is_recorded() {
    // 1 ms: the first trials start (the budget is read before each one
    // starts, and the clock starts with the first), the rest do not.
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &penguins_automl(20, 1, ", time: 1ms"));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let m = &s["steps"]["automl"]["metrics"];
    assert_eq!(m["complete"], Value::Bool(false), "{m}");
    let board = board_file(&t, &s, "leaderboard.csv");
    assert!(board.contains("not_run"), "{board}");
    let report = std::fs::read_to_string(
        std::path::Path::new(
            s["steps"]["automl"]["outputs"]["report"]["path"]
                .as_str()
                .unwrap(),
        )
        .join("report.html"),
    )
    .unwrap();
    assert!(report.contains("not reproducible"), "the report says so");
}

#[test]
fn the_best_model_is_registered_and_predicts() {
    let mut p = penguins_automl(4, 1, "");
    p.push_str(
        r#"  register:
    kind: register
    model: automl.model
    group: auto
"#,
    );
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &p);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(step_status(&s, "register"), "succeeded");
    let board = board_file(&t, &s, "leaderboard.csv");
    let (header, rows) = parse(&board);
    let best_algo = rows[0][col(&header, "algorithm")].clone();
    let shown = t.exec(["registry", "show", "auto", "1"]).success().stdout;
    assert!(
        shown.contains(&format!("algorithm  {best_algo}")),
        "{shown}"
    );
    t.exec(["registry", "approve", "auto", "1", "--by", "test"])
        .success();
    let out = t
        .exec([
            "predict",
            "--model",
            "registry://auto@approved",
            "--data",
            "penguins.csv",
            "--target",
            "species",
            "--out",
            "p.csv",
        ])
        .success();
    assert!(out.stderr.contains("344 predictions"), "{}", out.stderr);
}

/// Bad input, each found before anything runs, at its line and column.
#[test]
fn bad_automl_steps_are_refused_before_anything_runs() {
    let base = penguins_automl(4, 1, "");
    let cases: &[(&str, &str, &str)] = &[
        ("validation:mlogloss", "validation:accuracy", "p.yaml:14:25"),
        ("type: minimize", "type: maximize", "p.yaml:14:54"),
        (
            "budget: {trials: 4}",
            "budget: {trials: 4}\n    algorithms: [gbdt, kmeans]",
            "p.yaml:16:24",
        ),
        ("budget: {trials: 4}", "budget: {trials: 0}", "p.yaml:15:22"),
        ("budget: {trials: 4}", "budget: {time: 1m}", "p.yaml:15:13"),
        (
            "max_parallel_jobs: 1",
            "max_parallel_jobs: 9",
            "p.yaml:16:24",
        ),
        (", validation: split.validation", "", "p.yaml:13:15"),
        ("test: split.test", "holdout: split.test", "p.yaml:13:15"),
    ];
    for (from, to, at) in cases {
        assert!(base.contains(from), "{from}");
        let t = Test::new()
            .file("penguins.csv", PENGUINS)
            .file("p.yaml", &base.replacen(from, to, 1));
        t.exec(["run", "p.yaml"]).invalid_at(at);
        assert!(
            !t.path().join(".pipeline").join("store").exists(),
            "{to}: something ran"
        );
    }
}

/// Five features: a linear part over all of them and a step in one, so that
/// gbdt and linear-learner each get some rows wrong that the other does not.
fn mixed_csv() -> String {
    let mut s = String::from("x1,x2,x3,x4,x5,label\n");
    let mut next = uniform(42);
    for _ in 0..600 {
        let v: Vec<f64> = (0..5).map(|_| next()).collect();
        let noise = next() - 0.5;
        let z = v[0] + v[1] - v[2] + 0.5 * v[3] - 0.5 * v[4]
            + if v[4] > 0.8 { 0.6 } else { 0.0 }
            + 0.6 * noise;
        s.push_str(&format!(
            "{:.4},{:.4},{:.4},{:.4},{:.4},{}\n",
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            u8::from(z > 0.75)
        ));
    }
    s
}

fn mixed_automl(ensemble: bool) -> String {
    format!(
        r#"name: automl-ensemble
inputs:
  d: {{path: d.csv, format: csv, header: true, target: label}}
steps:
  split:
    kind: split
    input: inputs.d
    fractions: {{train: 0.6, validation: 0.2, test: 0.2}}
    seed: 1
  automl:
    kind: automl
    channels: {{train: split.train, validation: split.validation, test: split.test}}
    objective: {{metric: "validation:logloss", type: minimize}}
    budget: {{trials: 6}}
    ensemble: {ensemble}
  evaluate:
    kind: evaluate
    model: automl.model
    data: split.test
    metrics: [logloss, auc]
  register:
    kind: register
    model: automl.model
    metrics: evaluate.metrics
    group: mixed
    approval: {{auto_approve_if: "auc >= 0.5"}}
"#
    )
}

#[test]
fn an_ensemble_that_beats_the_best_trial_is_handed_on() {
    let t = Test::new()
        .file("d.csv", &mixed_csv())
        .file("p.yaml", &mixed_automl(true));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let m = &s["steps"]["automl"]["metrics"];
    assert_eq!(m["ensemble"], Value::Bool(true), "{m}");
    let board = board_file(&t, &s, "leaderboard.csv");
    let (header, rows) = parse(&board);
    // First, and better on validation than the best trial.
    assert_eq!(rows[0][col(&header, "trial")], "ensemble", "{board}");
    let ens: f64 = rows[0][col(&header, "objective")].parse().unwrap();
    let best: f64 = rows[1][col(&header, "objective")].parse().unwrap();
    assert!(ens < best, "{board}");
    assert_eq!(m["objective"].as_f64().unwrap(), ens);
    assert!(rows[0][col(&header, "members")].contains(" x"), "{board}");
    // The model is an ensemble that evaluate, the registry and predict all read.
    let model = s["steps"]["automl"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap();
    let json = std::fs::read_to_string(std::path::Path::new(model).join("model.json")).unwrap();
    assert!(json.contains(r#""algorithm":"ensemble""#), "{json}");
    let test_logloss = s["steps"]["evaluate"]["metrics"]["logloss"]
        .as_f64()
        .unwrap();
    let listed: f64 = rows[0][col(&header, "test:logloss")].parse().unwrap();
    assert!(
        (test_logloss - listed).abs() < 1e-9,
        "{test_logloss} {listed}"
    );
    let shown = t.exec(["registry", "show", "mixed", "1"]).success().stdout;
    assert!(shown.contains("algorithm  ensemble"), "{shown}");
    let out = t
        .exec([
            "predict", "--model", model, "--data", "d.csv", "--target", "label", "--out", "p.csv",
        ])
        .success();
    assert!(out.stderr.contains("600 predictions"), "{}", out.stderr);
    // Asked for no ensemble, the best trial's own model is handed on.
    let t2 = Test::new()
        .file("d.csv", &mixed_csv())
        .file("p.yaml", &mixed_automl(false));
    let s2 = t2.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(
        s2["steps"]["automl"]["metrics"]["ensemble"],
        Value::Bool(false)
    );
    let best_trial = s2["steps"]["automl"]["metrics"]["best_trial"]
        .as_u64()
        .unwrap();
    assert_eq!(
        output_digest(&s2, "automl", "model"),
        output_digest(&s2, &format!("automl.{best_trial}"), "model")
    );
}

#[test]
fn a_killed_automl_search_resumes_to_the_leaderboard_of_one_never_killed() {
    use std::io::BufReader;
    use std::process::Stdio;
    let pipeline = penguins_automl(10, 2, "");
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &pipeline);
    let mut child = t
        .command(["run", "p.yaml", "--json", "-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the engine");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let events = crate::signals::read_events_until(&mut child, &mut reader, |e| {
        e["event"] == "step_finished" && e["step"] == "automl.3"
    });
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();
    child.kill().expect("SIGKILL the engine");
    child.wait().unwrap();
    let finished: BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["status"] == "succeeded")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert!(finished.contains("automl.3"));
    let out = t.exec(["resume", &run_id, "--json"]).success();
    let s = out.summary();
    assert_eq!(step_status(&s, "automl"), "succeeded");
    // What finished before the kill is not trained again.
    let restarted: BTreeSet<String> = out
        .json_lines()
        .iter()
        .filter(|e| e["event"] == "step_started")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        restarted.is_disjoint(&finished),
        "{restarted:?} ran again of {finished:?}"
    );
    let u = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &pipeline);
    let whole = u
        .exec(["run", "p.yaml", "--json", "-j", "2"])
        .success()
        .summary();
    assert_eq!(
        board_file(&t, &s, "leaderboard.csv"),
        board_file(&u, &whole, "leaderboard.csv")
    );
    assert_eq!(
        output_digest(&s, "automl", "model"),
        output_digest(&whole, "automl", "model")
    );
}

#[test]
fn algorithms_restricts_the_candidates() {
    let t = Test::new().file("penguins.csv", PENGUINS).file(
        "p.yaml",
        &penguins_automl(4, 2, "").replace(
            "    seed: 5\n",
            "    seed: 5\n    algorithms: [linear-learner]\n    ensemble: false\n",
        ),
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let board = board_file(&t, &s, "leaderboard.csv");
    let (header, rows) = parse(&board);
    let a = col(&header, "algorithm");
    assert_eq!(rows.len(), 4, "{board}");
    assert!(rows.iter().all(|r| r[a] == "linear-learner"), "{board}");
    // A name that is not a fitting built-in is refused where it is written.
    t.write(
        "q.yaml",
        &penguins_automl(4, 2, "")
            .replace("    seed: 5\n", "    seed: 5\n    algorithms: [kmeans]\n"),
    );
    t.exec(["validate", "q.yaml"])
        .code(2)
        .stderr_contains("kmeans");
}
