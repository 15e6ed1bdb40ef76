//! `kind: tune`: every strategy on real data, the same trials whatever
//! `max_parallel_jobs`, a re-run that is all cache hits, failing trials,
//! resume after SIGKILL mid-search, a tuned model registered and used by
//! `pipeline predict`, and the input errors found before anything runs.

use std::io::BufReader;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Test, output_digest, step_cached, step_status};
use crate::signals::{read_events_until, wait_for};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// A gbdt search over the penguins, with `strategy`, `max_jobs` and `max_parallel_jobs`.
fn gbdt_search(strategy: &str, jobs: u32, parallel: u32) -> String {
    let ranges = if strategy == "grid" {
        "      max_depth: {type: integer, min: 2, max: 4}\n      grow_policy: {type: categorical, values: [depthwise, lossguide]}\n"
    } else {
        "      eta: {type: continuous, min: 0.02, max: 0.5, scaling: logarithmic}\n      max_depth: {type: integer, min: 2, max: 6}\n      subsample: {type: continuous, min: 0.5, max: 1}\n"
    };
    format!(
        r#"name: tune-test
inputs:
  penguins: {{path: penguins.csv, format: csv, header: true, target: species}}
steps:
  split:
    kind: split
    input: inputs.penguins
    strategy: {{type: shuffle, stratify: species}}
    fractions: {{train: 0.7, validation: 0.15, test: 0.15}}
    seed: 3
  tune:
    kind: tune
    algorithm: gbdt
    channels: {{train: split.train, validation: split.validation}}
    hyperparameters: {{objective: "multi:softprob", num_round: 8}}
    ranges:
{ranges}    objective: {{metric: "validation:mlogloss", type: minimize}}
    strategy: {strategy}
    max_jobs: {jobs}
    max_parallel_jobs: {parallel}
    seed: 11
"#
    )
}

fn leaderboard(t: &Test, summary: &Value) -> String {
    let dir = summary["steps"]["tune"]["outputs"]["leaderboard"]["path"]
        .as_str()
        .expect("a leaderboard output");
    std::fs::read_to_string(std::path::Path::new(dir).join("leaderboard.csv")).unwrap_or_else(|e| {
        panic!(
            "read the leaderboard in {dir}: {e} ({})",
            t.path().display()
        )
    })
}

#[test]
fn every_strategy_ranks_its_trials_and_hands_on_the_best_model() {
    for (strategy, jobs) in [("random", 6), ("grid", 6), ("bayesian", 14)] {
        let t = Test::new()
            .file("penguins.csv", PENGUINS)
            .file("p.yaml", &gbdt_search(strategy, jobs, 2));
        let s = t
            .exec(["run", "p.yaml", "--json", "-j", "2"])
            .success()
            .summary();
        assert_eq!(step_status(&s, "tune"), "succeeded", "{strategy}");
        let board = leaderboard(&t, &s);
        let lines: Vec<&str> = board.lines().collect();
        assert_eq!(lines.len(), jobs as usize + 1, "{strategy}: {board}");
        // The wall-clock times are beside it, one row a trial, in its order.
        let dir = s["steps"]["tune"]["outputs"]["leaderboard"]["path"]
            .as_str()
            .unwrap();
        let timings =
            std::fs::read_to_string(std::path::Path::new(dir).join("timings.csv")).unwrap();
        let trows: Vec<&str> = timings.lines().skip(1).collect();
        assert_eq!(trows.len(), jobs as usize, "{timings}");
        for (row, line) in trows.iter().zip(&lines[1..]) {
            let fit: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
            assert!(fit > 0.0, "{timings}");
            assert_eq!(
                row.split(',').next(),
                line.split(',').nth(1),
                "{timings}\n{board}"
            );
        }
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(
            &header[..4],
            ["rank", "trial", "status", "objective"],
            "{board}"
        );
        // Best first: objectives never get worse down the board.
        let col = |line: &str, k: usize| line.split(',').nth(k).unwrap().to_string();
        let objectives: Vec<f64> = lines[1..]
            .iter()
            .map(|l| col(l, 3).parse::<f64>().unwrap())
            .collect();
        assert!(
            objectives.windows(2).all(|w| w[0] <= w[1]),
            "{strategy}: {board}"
        );
        // The tune step's model is the best trial's, the same stored artifact.
        let best = col(lines[1], 1);
        assert_eq!(
            output_digest(&s, "tune", "model"),
            output_digest(&s, &format!("tune.{best}"), "model"),
            "{strategy}"
        );
        let m = &s["steps"]["tune"]["metrics"];
        assert_eq!(m["best_trial"].as_u64().unwrap().to_string(), best);
        assert!((m["objective"].as_f64().unwrap() - objectives[0]).abs() < 1e-12);
        assert!((m["validation_mlogloss"].as_f64().unwrap() - objectives[0]).abs() < 1e-12);
        if strategy == "grid" {
            // Every point of the 3 x 2 grid, once.
            let mut points: Vec<String> = lines[1..]
                .iter()
                .map(|l| format!("{} {}", col(l, 4), col(l, 5)))
                .collect();
            points.sort();
            points.dedup();
            assert_eq!(points.len(), 6, "{board}");
        }
        let report = s["steps"]["tune"]["outputs"]["report"]["path"]
            .as_str()
            .unwrap();
        let html =
            std::fs::read_to_string(std::path::Path::new(report).join("report.html")).unwrap();
        for part in [
            "objective by trial",
            "Parallel coordinates",
            "<svg",
            "tune.0",
        ] {
            assert!(html.contains(part), "{strategy}: the report lacks {part}");
        }
        assert!(!html.contains("<script"));
    }
}

#[test]
fn the_same_trials_and_leaderboard_whatever_max_parallel_jobs() {
    let mut boards = Vec::new();
    for parallel in [1, 3] {
        let t = Test::new()
            .file("penguins.csv", PENGUINS)
            .file("p.yaml", &gbdt_search("bayesian", 16, parallel));
        let s = t
            .exec(["run", "p.yaml", "--json", "-j", &parallel.to_string()])
            .success()
            .summary();
        boards.push(leaderboard(&t, &s));
    }
    assert_eq!(
        boards[0], boards[1],
        "1 and 3 parallel jobs gave different leaderboards"
    );
}

#[test]
fn a_rerun_is_all_cache_hits_and_a_changed_range_reruns() {
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &gbdt_search("random", 4, 2));
    let first = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let again = t.exec(["run", "p.yaml", "--json"]).success().summary();
    for step in ["tune", "tune.0", "tune.3"] {
        assert!(step_cached(&again, step), "{step} ran again");
    }
    assert_eq!(leaderboard(&t, &first), leaderboard(&t, &again));
    // Another seed is another search (a trial's key is its hyperparameters:
    // a changed range that gives a trial the same point keeps it cached).
    t.write(
        "p.yaml",
        &gbdt_search("random", 4, 2).replace("seed: 11", "seed: 12"),
    );
    let changed = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(!step_cached(&changed, "tune.0"));
    assert!(!step_cached(&changed, "tune"));
}

/// A user's script as a trial: fails when `mode` is `broken`, reports
/// `score` through metric_definitions otherwise; `sleep` seconds first.
fn script_search(modes: &str, sleep: &str, jobs: u32) -> String {
    format!(
        r#"name: tune-script
steps:
  tune:
    kind: tune
    run: [sh, -c, 'echo "$SM_HPS" >> trials.log; sleep {sleep}; test "$SM_HP_MODE" != broken || {{ echo "mode is broken" > $SM_OUTPUT_DIR/../output/failure 2>/dev/null; echo broken >&2; exit 3; }}; echo "score=$SM_HP_X"; echo done > $SM_MODEL_DIR/m.txt']
    channels: {{}}
    metric_definitions: [{{name: score, regex: "score=([0-9.]+)"}}]
    ranges:
      x: {{type: integer, min: 1, max: 9}}
      mode: {{type: categorical, values: [{modes}]}}
    objective: {{metric: score, type: maximize}}
    strategy: random
    max_jobs: {jobs}
    max_parallel_jobs: 2
    seed: 5
"#
    )
}

#[test]
fn a_failing_trial_is_recorded_and_the_search_goes_on() {
    let t = Test::new().file("p.yaml", &script_search("ok, broken", "0", 8));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let board = leaderboard(&t, &s);
    let failed: Vec<&str> = board.lines().filter(|l| l.contains(",failed,")).collect();
    let ok: Vec<&str> = board
        .lines()
        .filter(|l| l.contains(",succeeded,"))
        .collect();
    assert!(!failed.is_empty() && !ok.is_empty(), "{board}");
    assert_eq!(failed.len() + ok.len(), 8, "{board}");
    // Failed trials come last, with their reason.
    let last_ok = board
        .lines()
        .position(|l| l.contains(",succeeded,"))
        .unwrap()
        + ok.len();
    assert!(
        board.lines().skip(last_ok).all(|l| l.contains(",failed,")),
        "{board}"
    );
    // The reason is the trial's own failure file.
    assert!(
        failed.iter().all(|l| l.ends_with(",mode is broken")),
        "{board}"
    );
    // The best has the highest score.
    let best_x: Vec<u64> = ok
        .iter()
        .map(|l| l.split(',').nth(3).unwrap().parse::<f64>().unwrap() as u64)
        .collect();
    assert!(best_x.windows(2).all(|w| w[0] >= w[1]), "{board}");

    // When every trial fails, the tune step fails (exit 1) and says why.
    let t = Test::new().file("p.yaml", &script_search("broken", "0", 3));
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let s = out.summary();
    assert_eq!(step_status(&s, "tune"), "failed");
    assert!(
        s["steps"]["tune"]["failure"]
            .as_str()
            .unwrap()
            .contains("every one of the 3 trials failed"),
        "{s}"
    );
}

#[test]
fn resume_after_sigkill_finishes_the_search_without_rerunning_finished_trials() {
    let pipeline = script_search("ok", "0.3", 8);
    let t = Test::new().file("p.yaml", &pipeline);
    let mut child = t
        .command(["run", "p.yaml", "--json", "-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the engine");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let events = read_events_until(&mut child, &mut reader, |e| {
        e["event"] == "step_finished" && e["step"] == "tune.2"
    });
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();
    child.kill().expect("SIGKILL the engine");
    child.wait().unwrap();
    let finished: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["status"] == "succeeded")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    let before = t.read("trials.log").lines().count();
    let s = t.exec(["resume", &run_id, "--json"]).success().summary();
    assert_eq!(step_status(&s, "tune"), "succeeded");
    // Each trial started once, but those the kill interrupted: at most the
    // two that were going.
    let after = t.read("trials.log").lines().count();
    assert!(
        after - before <= 8 - finished.len(),
        "{before} then {after}; finished {finished:?}"
    );
    assert!(after <= 8 + 2, "{after} trial starts for 8 trials");
    // The same leaderboard as a run never interrupted.
    let u = Test::new().file("p.yaml", &pipeline);
    let whole = u
        .exec(["run", "p.yaml", "--json", "-j", "2"])
        .success()
        .summary();
    assert_eq!(leaderboard(&t, &s), leaderboard(&u, &whole));
    assert!(wait_for(Duration::from_secs(1), || true));
}

#[test]
fn a_tuned_model_is_registered_evaluated_and_predicts() {
    let mut p = gbdt_search("random", 4, 2);
    p.push_str(
        r#"  evaluate:
    kind: evaluate
    model: tune.model
    data: split.test
    metrics: [accuracy]
  register:
    kind: register
    model: tune.model
    metrics: evaluate.metrics
    group: tuned
    approval: {auto_approve_if: "accuracy >= 0.8"}
    when: "tune.metrics.validation_mlogloss < 1.0"
"#,
    );
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &p);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(step_status(&s, "register"), "succeeded");
    let out = t
        .exec([
            "predict",
            "--model",
            "registry://tuned@approved",
            "--data",
            "penguins.csv",
            "--target",
            "species",
            "--out",
            "p.csv",
        ])
        .success();
    assert!(out.stderr.contains("344 predictions"), "{}", out.stderr);
    // The version's lineage is the best trial's algorithm and hyperparameters.
    let board = leaderboard(&t, &s);
    let mut lines = board.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let best: Vec<&str> = lines.next().unwrap().split(',').collect();
    let eta = best[header.iter().position(|h| *h == "eta").unwrap()];
    let shown = t.exec(["registry", "show", "tuned", "1"]).success().stdout;
    assert!(shown.contains("algorithm  gbdt"), "{shown}");
    assert!(shown.contains(&format!("eta = {eta}")), "{shown}");
}

/// Bad input, each found before anything runs, at its line and column.
#[test]
fn bad_searches_are_refused_before_anything_runs() {
    let base = gbdt_search("random", 4, 2);
    let cases: &[(&str, &str, &str)] = &[
        ("max: 6}", "max: 1}", "p.yaml:18:39"),
        (
            "eta: {type: continuous, min: 0.02,",
            "eta: {type: continuous, min: 0,",
            "p.yaml:17:36",
        ),
        ("validation:mlogloss", "validation:nonsense", "p.yaml:20:25"),
        (
            "      eta:",
            "      colour: {type: integer, min: 1, max: 2}\n      eta:",
            "p.yaml:17:7",
        ),
        (
            "max_parallel_jobs: 2",
            "max_parallel_jobs: 5",
            "p.yaml:23:24",
        ),
        // The grid cannot hold a continuous range: the error names it.
        ("strategy: random", "strategy: grid", "p.yaml:17:7"),
        ("max_jobs: 4", "max_jobs: 0", "p.yaml:22:15"),
        ("strategy: random", "strategy: annealing", "p.yaml:21:15"),
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

#[test]
fn a_search_reproduces_byte_for_byte() {
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("p.yaml", &gbdt_search("bayesian", 12, 3));
    let s = t
        .exec(["run", "p.yaml", "--json", "-j", "3"])
        .success()
        .summary();
    let run_id = s["run_id"].as_str().unwrap().to_string();
    t.exec(["reproduce", &run_id, "--verify"]).success();
}

#[test]
fn completion_criteria_end_the_search_at_the_same_trial_whatever_the_parallelism() {
    let mut boards = Vec::new();
    for parallel in ["1", "2"] {
        let p = script_search("ok", "0", 12)
            .replace(
                "max_parallel_jobs: 2",
                &format!("max_parallel_jobs: {parallel}"),
            )
            .replace(
                "    seed: 5\n",
                "    seed: 5\n    completion_criteria: {target_objective_value: 8}\n",
            );
        let t = Test::new().file("p.yaml", &p);
        let s = t
            .exec(["run", "p.yaml", "--json", "-j", parallel])
            .success()
            .summary();
        let board = leaderboard(&t, &s);
        let stopped = board.lines().filter(|l| l.contains(",stopped,")).count();
        assert!(stopped > 0, "{board}");
        // The best is the trial that met the target, and nothing after it counts.
        let best: Vec<&str> = board.lines().nth(1).unwrap().split(',').collect();
        assert!(best[3].parse::<f64>().unwrap() >= 8.0, "{board}");
        boards.push(board);
    }
    assert_eq!(boards[0], boards[1]);
}

#[test]
fn max_runtime_cuts_the_search_and_says_so() {
    let p = script_search("ok", "0.6", 8)
        .replace("max_parallel_jobs: 2", "max_parallel_jobs: 1")
        .replace("    seed: 5\n", "    seed: 5\n    max_runtime: 1s\n");
    let t = Test::new().file("p.yaml", &p);
    let s = t
        .exec(["run", "p.yaml", "--json", "-j", "1"])
        .success()
        .summary();
    let board = leaderboard(&t, &s);
    let not_run = board.lines().filter(|l| l.contains(",not_run,")).count();
    assert!((5..=7).contains(&not_run), "{board}");
    assert_eq!(
        s["steps"]["tune"]["metrics"]["complete"],
        Value::Bool(false),
        "{s}"
    );
}

#[test]
fn a_users_code_reports_its_objective_in_the_metrics_file() {
    // Score 10 - |x - 6|, written as JSON lines (the last line counts).
    let t = Test::new().file(
        "p.yaml",
        r#"name: tune-file
steps:
  tune:
    kind: tune
    run: [sh, -c, 'echo "{\"validation:score\": 0, \"epoch\": 1}" >> $PIPELINE_METRICS_FILE; d=$((SM_HP_X - 6)); [ $d -lt 0 ] && d=$((-d)); echo "{\"validation:score\": $((10 - d)), \"epoch\": 2}" >> $PIPELINE_METRICS_FILE; echo x > $SM_MODEL_DIR/m.txt']
    channels: {}
    metric_definitions: [{name: "validation:score"}]
    ranges:
      x: {type: integer, min: 1, max: 9}
    objective: {metric: "validation:score", type: maximize}
    strategy: grid
    max_jobs: 9
    max_parallel_jobs: 2
"#,
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let best = &s["steps"]["tune"]["metrics"];
    assert_eq!(best["validation:score"], serde_json::json!(10.0), "{s}");
    assert_eq!(best["objective"], serde_json::json!(10.0), "{s}");
    let board = leaderboard(&t, &s);
    assert!(board.lines().nth(1).unwrap().contains(",6,"), "{board}");
    // An objective nothing declares is still refused before anything runs.
    let t = Test::new().file(
        "p.yaml",
        &t.read("p.yaml").replace(
            "metric_definitions: [{name: \"validation:score\"}]",
            "metric_definitions: [{name: other}]",
        ),
    );
    t.exec(["validate", "p.yaml"])
        .code(2)
        .stderr_contains("metric_definitions");
}

/// A parent search (random) and a child warm-started from it; the score
/// peaks at x = 37.
fn warm_search(warm: &str, child_parallel: u32) -> String {
    let trial = r#"    run: [sh, -c, 'echo "score=$(( 100 - (SM_HP_X - 37) * (SM_HP_X - 37) ))"; echo x > $SM_MODEL_DIR/m.txt']
    channels: {}
    metric_definitions: [{name: score, regex: "score=(-?[0-9]+)"}]
    objective: {metric: score, type: maximize}
"#;
    format!(
        r#"name: warm
steps:
  coarse:
    kind: tune
{trial}    ranges: {{x: {{type: integer, min: 1, max: 100}}}}
    strategy: random
    max_jobs: 12
    max_parallel_jobs: 2
    seed: 1
  fine:
    kind: tune
{trial}    ranges: {{x: {{type: integer, min: 1, max: 100}}}}
    strategy: bayesian
    max_jobs: 6
    max_parallel_jobs: {child_parallel}
    seed: 2
{warm}"#
    )
}

fn trial_score(s: &Value, trial: &str) -> i64 {
    s["steps"][trial]["metrics"]["score"]
        .as_f64()
        .map_or(i64::MIN, |v| v as i64)
}

#[test]
fn a_warm_started_search_proposes_from_its_parents_trials_the_same_whatever_the_parallelism() {
    let warm = "    warm_start: {parents: [coarse], type: identical_data_and_algorithm}\n";
    let run = |text: &str, j: &str| {
        let t = Test::new().file("p.yaml", text);
        let s = t
            .exec(["run", "p.yaml", "--json", "-j", j])
            .success()
            .summary();
        let dir = s["steps"]["fine"]["outputs"]["leaderboard"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        let board =
            std::fs::read_to_string(std::path::Path::new(&dir).join("leaderboard.csv")).unwrap();
        (board, s, t)
    };
    let (one, warm1, t) = run(&warm_search(warm, 1), "1");
    let (three, _, _) = run(&warm_search(warm, 3), "3");
    assert_eq!(one, three, "the same leaderboard whatever the parallelism");
    let (_, cold, _) = run(&warm_search("", 1), "1");
    // Without a warm start the first trials are random (the seed's); with
    // one, the first is already proposed from the parent's 12 trials.
    assert_ne!(trial_score(&warm1, "fine.0"), trial_score(&cold, "fine.0"));
    let best = |s: &Value| s["steps"]["fine"]["metrics"]["score"].as_f64().unwrap();
    let parent_best = warm1["steps"]["coarse"]["metrics"]["score"]
        .as_f64()
        .unwrap();
    // Its very first trial already improves on every trial of the parent,
    // where a cold start's first is a random draw that does not.
    let first = |s: &Value| trial_score(s, "fine.0") as f64;
    assert!(
        first(&warm1) > parent_best && first(&cold) < parent_best,
        "first trial: warm {} cold {}; parent's best {parent_best}",
        first(&warm1),
        first(&cold)
    );
    assert!(best(&warm1) >= best(&cold));
    // The plan says where its points come from; a re-run is all cache hits.
    t.exec(["plan", "p.yaml"])
        .success()
        .stdout_contains("from the trials of coarse");
    let again = t.exec(["run", "p.yaml", "--json"]).success().summary();
    for name in ["coarse", "fine", "fine.0", "fine.5"] {
        assert!(step_cached(&again, name), "{name}");
    }
}

#[test]
fn warm_starts_that_cannot_work_are_refused_before_anything_runs() {
    let cases = [
        (
            "    warm_start: {parents: [coarse]}\n",
            "strategy: bayesian",
            "strategy: random",
            "random and grid",
        ),
        (
            "    warm_start: {parents: [nowhere]}\n",
            "",
            "",
            "no step `nowhere`",
        ),
        ("    warm_start: {parents: [fine]}\n", "", "", "from itself"),
        (
            "    warm_start: {parents: [coarse], type: sideways}\n",
            "",
            "",
            "unknown warm start type",
        ),
    ];
    for (warm, from, to, says) in cases {
        let mut text = warm_search(warm, 1);
        if !from.is_empty() {
            text = text.replace(from, to);
        }
        let t = Test::new().file("p.yaml", &text);
        t.exec(["validate", "p.yaml"]).code(2).stderr_contains(says);
    }
    // Another objective; another range for an identical warm start.
    let text = warm_search("    warm_start: {parents: [coarse]}\n", 1);
    let other_objective = text.replacen("type: maximize", "type: minimize", 1);
    Test::new()
        .file("p.yaml", &other_objective)
        .exec(["validate", "p.yaml"])
        .code(2)
        .stderr_contains("the same objective");
    let parts: Vec<&str> = text.splitn(2, "  fine:").collect();
    let other_range = format!(
        "{}  fine:{}",
        parts[0],
        parts[1].replace(
            "ranges: {x: {type: integer, min: 1, max: 100}}",
            "ranges: {x: {type: integer, min: 1, max: 100}, y: {type: integer, min: 1, max: 3}}"
        )
    );
    Test::new()
        .file("p.yaml", &other_range)
        .exec(["validate", "p.yaml"])
        .code(2)
        .stderr_contains("does not tune `y`");
    // transfer_learning takes it, reading what fits.
    Test::new()
        .file(
            "p.yaml",
            &other_range.replace(
                "warm_start: {parents: [coarse]}",
                "warm_start: {parents: [coarse], type: transfer_learning}",
            ),
        )
        .exec(["validate", "p.yaml"])
        .success();
}
