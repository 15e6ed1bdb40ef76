//! Built-in steps end to end: the example pipelines, every split strategy,
//! k-fold and A/B evaluation, leakage checks, the registry round trip and
//! `predict`, on the bundled penguins data and on generated events.

use std::path::Path;

use serde_json::Value;

use crate::harness::{Test, step_status};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

fn penguins() -> Test {
    Test::new().file("data/penguins.csv", PENGUINS)
}

fn metrics(summary: &Value, step: &str) -> serde_json::Map<String, Value> {
    summary["steps"][step]["metrics"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn output_path(summary: &Value, step: &str, output: &str) -> String {
    summary["steps"][step]["outputs"][output]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The example pipeline, with its data beside it as in the repository.
fn example(t: &Test, name: &str) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pipelines")
            .join(name),
    )
    .unwrap();
    t.write(name, &text);
}

#[test]
fn the_main_example_trains_evaluates_and_registers() {
    let t = penguins();
    example(&t, "train.yaml");
    let s = t.exec(["run", "train.yaml", "--json"]).success().summary();
    for step in ["split", "train", "evaluate", "register"] {
        assert_eq!(step_status(&s, step), "succeeded", "{step}: {s}");
    }
    let m = metrics(&s, "evaluate");
    assert!(m["accuracy"].as_f64().unwrap() >= 0.9, "{m:?}");
    let report = Path::new(&output_path(&s, "evaluate", "report")).join("report.html");
    let html = std::fs::read_to_string(report).unwrap();
    assert!(
        html.contains("Confusion matrix") && html.contains("<svg"),
        "the report lacks its plots"
    );
    let model = output_path(&s, "train", "model");
    assert!(Path::new(&model).join("model.json").is_file());
    assert!(Path::new(&model).join("xgboost-model.json").is_file());
}

#[test]
fn two_runs_with_a_changed_param_register_two_versions_and_the_approved_one_resolves() {
    let t = penguins();
    example(&t, "train.yaml");
    t.exec(["run", "train.yaml"]).success();
    t.exec(["run", "train.yaml", "--param", "max_depth=3"])
        .success();
    let list = t
        .exec(["registry", "list", "penguins-species", "--json"])
        .success();
    let versions: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    t.exec([
        "registry",
        "approve",
        "penguins-species",
        "2",
        "--by",
        "alice",
    ])
    .success()
    .stdout_contains("-> Approved");
    t.exec([
        "registry",
        "approve",
        "penguins-species",
        "2",
        "--by",
        "alice",
    ])
    .success()
    .stdout_contains("already Approved");
    t.exec([
        "registry",
        "approve",
        "penguins-species",
        "9",
        "--by",
        "alice",
    ])
    .code(2)
    .stderr_contains("1, 2");
    let shown: Value = serde_json::from_str(
        &t.exec(["registry", "show", "penguins-species", "2", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(shown["version"]["params"]["max_depth"], 3);
    assert_eq!(
        shown["history"].as_array().unwrap().last().unwrap()["by"],
        "alice"
    );

    // A second pipeline reads the approved model through a registry reference.
    t.write(
        "use.yaml",
        "name: use-champion\nsteps:\n  peek:\n    kind: command\n    run: [sh, -c, \"test -f $SM_CHANNEL_MODEL/model.json\"]\n    inputs: {model: \"registry://penguins-species@approved\"}\n",
    );
    let s = t.exec(["run", "use.yaml", "--json"]).success().summary();
    let digest = s["steps"]["peek"]["outputs"]
        .as_object()
        .map(|_| ())
        .and(Some(()));
    assert!(digest.is_some());
    let out = t
        .exec([
            "predict",
            "--model",
            "registry://penguins-species@approved",
            "--data",
            "data/penguins.csv",
            "--target",
            "species",
            "--out",
            "p.csv",
        ])
        .success();
    assert!(out.stderr.contains("344 predictions"), "{}", out.stderr);
    assert_eq!(t.count_lines("p.csv"), 345);
}

#[test]
fn a_cached_rerun_registers_no_duplicate() {
    let t = penguins();
    example(&t, "train.yaml");
    t.exec(["run", "train.yaml"]).success();
    t.exec(["run", "train.yaml"]).success();
    let versions: Value = serde_json::from_str(
        &t.exec(["registry", "list", "penguins-species", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1);
}

const SPLITS: &str = r#"
name: splits
inputs:
  penguins: {path: data/penguins.csv, target: species}
steps:
  by_island:
    kind: split
    input: inputs.penguins
    strategy: {type: group, column: island}
    fractions: {train: 0.6, validation: 0.2, test: 0.2}
  by_year:
    kind: split
    input: inputs.penguins
    strategy: {type: time, column: year}
    fractions: {train: 0.6, test: 0.4}
  stratified:
    kind: split
    input: inputs.penguins
    strategy: {type: shuffle, stratify: species}
    fractions: {train: 0.8, test: 0.2}
    seed: 3
"#;

fn rows(path: &str, file: &str) -> Vec<String> {
    std::fs::read_to_string(Path::new(path).join(file))
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_split_strategy_keeps_its_promise_on_penguins() {
    let t = penguins().file("s.yaml", SPLITS);
    let s = t.exec(["run", "s.yaml", "--json"]).success().summary();
    // Group: no island in two sets.
    let island = |line: &String| line.split(',').nth(1).unwrap().to_string();
    let sets: Vec<std::collections::BTreeSet<String>> = ["train", "validation", "test"]
        .iter()
        .map(|o| {
            rows(&output_path(&s, "by_island", o), &format!("{o}.csv"))
                .iter()
                .map(island)
                .collect()
        })
        .collect();
    for i in 0..3 {
        for j in i + 1..3 {
            assert!(
                sets[i].is_disjoint(&sets[j]),
                "an island is in two sets: {sets:?}"
            );
        }
    }
    // Time: every test row is at least as new as every train row.
    let year = |line: &String| line.rsplit(',').next().unwrap().parse::<i32>().unwrap();
    let train_max = rows(&output_path(&s, "by_year", "train"), "train.csv")
        .iter()
        .map(year)
        .max()
        .unwrap();
    let test_min = rows(&output_path(&s, "by_year", "test"), "test.csv")
        .iter()
        .map(year)
        .min()
        .unwrap();
    assert!(train_max <= test_min, "{train_max} > {test_min}");
    // Shuffle: rows unchanged, all of them, none twice.
    let mut all: Vec<String> = ["train", "test"]
        .iter()
        .flat_map(|o| rows(&output_path(&s, "stratified", o), &format!("{o}.csv")))
        .collect();
    all.sort();
    let mut original: Vec<String> = PENGUINS.lines().skip(1).map(str::to_string).collect();
    original.sort();
    assert_eq!(all, original);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(&output_path(&s, "by_island", "manifest")).join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        manifest["outputs"]["train"]["groups"]["count"]
            .as_u64()
            .unwrap()
            >= 1,
        "{manifest}"
    );
}

#[test]
fn a_split_column_that_does_not_exist_fails_with_exit_2_naming_the_file() {
    let t = penguins().file(
        "s.yaml",
        "name: s\ninputs:\n  p: {path: data/penguins.csv, target: species}\nsteps:\n  s:\n    kind: split\n    input: inputs.p\n    strategy: {type: group, column: islnd}\n    fractions: {train: 0.5, test: 0.5}\n",
    );
    let out = t.exec(["run", "s.yaml"]).code(2);
    assert!(
        out.stderr.contains("data/penguins.csv:1") && out.stderr.contains("did you mean `island`"),
        "{}",
        out.stderr
    );
}

#[test]
fn leakage_checks_fail_a_split_whose_sources_share_a_group() {
    // The same speaker in both sources, each sent to a different set: a group in two sets.
    let a = "speaker,x\nann,1\nbob,2\n";
    let b = "speaker,x\nann,3\ncid,4\n";
    let t = Test::new().file("a.csv", a).file("b.csv", b).file(
        "s.yaml",
        "name: s\ninputs:\n  a: a.csv\n  b: b.csv\nsteps:\n  s:\n    kind: split\n    sources:\n      - {input: inputs.a, fractions: {train: 1.0}}\n      - {input: inputs.b, fractions: {test: 1.0}}\n    strategy: {type: group, column: speaker}\n",
    );
    let out = t.exec(["run", "s.yaml"]);
    assert_ne!(
        out.code,
        Some(0),
        "a leaky split succeeded:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ann"),
        "the error does not name the shared group:\n{}",
        out.stderr
    );
}

#[test]
fn kfold_reports_each_fold_and_ab_picks_a_winner() {
    let t = penguins();
    example(&t, "train.yaml");
    example(&t, "kfold.yaml");
    example(&t, "ab.yaml");
    let s = t.exec(["run", "kfold.yaml", "--json"]).success().summary();
    let m = metrics(&s, "stratified");
    assert!(
        m["accuracy"].as_f64().unwrap() > 0.9 && m.contains_key("accuracy_std"),
        "{m:?}"
    );
    // The champion must exist and be approved before the A/B pipeline can use it.
    t.exec(["run", "ab.yaml"])
        .code(1)
        .stderr_contains("no model registry");
    t.exec(["run", "train.yaml"]).success();
    t.exec(["run", "ab.yaml"])
        .code(1)
        .stderr_contains("approve");
    t.exec(["registry", "approve", "penguins-species", "1"])
        .success();
    let s = t.exec(["run", "ab.yaml", "--json"]).success().summary();
    let m = metrics(&s, "compare");
    let winner = m["winner"].as_str().unwrap();
    assert!(winner == "champion" || winner == "challenger", "{m:?}");
    assert!(
        m.contains_key("champion_accuracy") && m.contains_key("challenger_accuracy"),
        "{m:?}"
    );
    let expected = if winner == "challenger" {
        "succeeded"
    } else {
        "skipped"
    };
    assert_eq!(step_status(&s, "register"), expected);
}

#[test]
fn a_bad_hyperparameter_is_an_error_at_its_line() {
    let t = penguins().file(
        "p.yaml",
        "name: p\ninputs:\n  p: {path: data/penguins.csv, target: species}\nsteps:\n  t:\n    kind: train\n    algorithm: gbdt\n    channels: {train: inputs.p}\n    hyperparameters: {objective: \"multi:softprob\", max_dept: 3}\n",
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:9:52")
        .stderr_contains("did you mean `max_depth`?");
    let t = penguins().file(
        "p.yaml",
        "name: p\ninputs:\n  p: {path: data/penguins.csv, target: species}\nsteps:\n  t:\n    kind: train\n    algorithm: gbdt\n    channels: {train: inputs.p}\n    hyperparameters: {eta: fast}\n",
    );
    t.exec(["validate", "p.yaml"]).invalid_at("p.yaml:9:28");
}

#[test]
fn an_approval_by_policy_runs_the_on_approved_hook_once() {
    let t = penguins();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/train.yaml"))
            .unwrap();
    let text = text
        .replace("accuracy >= 0.99", "accuracy >= 0.5")
        .replace("steps:\n", "on_approved: [\"echo $PIPELINE_REGISTRY_REF $PIPELINE_REGISTRY_STATUS >> hooks.log\"]\n\nsteps:\n");
    t.write("train.yaml", &text);
    t.exec(["run", "train.yaml"]).success();
    assert_eq!(
        t.read("hooks.log").trim(),
        "registry://penguins-species@1 Approved"
    );
    // A cached re-run registers nothing and runs no hook.
    t.exec(["run", "train.yaml"]).success();
    assert_eq!(t.count_lines("hooks.log"), 1);
}

/// `events.csv` from the shared generator, when Python with numpy and
/// scikit-learn is there; CI installs them, elsewhere the test says so.
fn generated_events(t: &Test) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_data.py");
    let ok = script.is_file()
        && std::process::Command::new("python3")
            .arg(&script)
            .arg(t.path().join("gen"))
            .args(["--scale", "0.002"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with numpy and scikit-learn and ../shared/bench"
        );
        eprintln!(
            "SKIPPED: needs ../shared/bench/gen_data.py and python3 with numpy and scikit-learn"
        );
    }
    ok
}

#[test]
fn generated_events_split_by_time_with_a_gap_and_by_user() {
    let t = Test::new();
    if !generated_events(&t) {
        return;
    }
    t.write(
        "e.yaml",
        r#"
name: events
inputs:
  events: {path: gen/events.csv, target: label}
steps:
  by_time:
    kind: split
    input: inputs.events
    strategy: {type: time, column: timestamp, gap: 7d}
    fractions: {train: 0.7, validation: 0.15, test: 0.15}
  by_user:
    kind: split
    input: inputs.events
    strategy: {type: group, column: user_id}
    fractions: {train: 0.8, test: 0.2}
  train:
    kind: train
    algorithm: gbdt
    channels: {train: by_time.train, validation: by_time.validation}
    hyperparameters: {objective: "binary:logistic", num_round: 30, early_stopping_rounds: 5}
  score:
    kind: evaluate
    model: train.model
    data: by_time.test
    metrics: [auc, logloss]
"#,
    );
    let s = t.exec(["run", "e.yaml", "--json"]).success().summary();
    let ts = |o: &str| -> Vec<String> {
        rows(&output_path(&s, "by_time", o), &format!("{o}.csv"))
            .iter()
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    let (train, valid, test) = (ts("train"), ts("validation"), ts("test"));
    // ISO 8601 in one zone sorts as text: every set is newer than the one before.
    assert!(train.iter().max() < valid.iter().min() && valid.iter().max() < test.iter().min());
    let users = |o: &str| -> std::collections::BTreeSet<String> {
        rows(&output_path(&s, "by_user", o), &format!("{o}.csv"))
            .iter()
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    assert!(users("train").is_disjoint(&users("test")));
    let auc = metrics(&s, "score")["auc"].as_f64().unwrap();
    assert!(auc > 0.6, "auc {auc}");
}

/// Rows for the data-parallel tests: four numeric features from a fixed
/// recurrence, a label that depends on them (with noise), and no randomness.
pub fn dp_data(rows: usize) -> String {
    let mut s = String::from("a,b,c,d,y\n");
    let mut x: u64 = 12345;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) % 10_000) as f64 / 1000.0
    };
    for _ in 0..rows {
        let (a, b, c, d) = (next(), next(), next(), next());
        let noise = next();
        let y = u8::from(a + 0.5 * b - c + noise * 0.3 > 3.0);
        s.push_str(&format!("{a},{b},{c},{d},{y}\n"));
    }
    s
}

/// The same built-in training on one node and on three, with the train data
/// fully replicated (gbdt) or sharded by file (kmeans, pca, linear-learner).
pub fn dp_pipeline(executor: &str) -> String {
    let mut p = format!(
        "name: dp\ndefaults: {{executor: {executor}}}\ninputs:\n  \
         labelled: {{path: data.csv, format: csv, header: true, target: y}}\n  \
         parts: {{path: parts, format: csv, header: true}}\n  \
         labelled_parts: {{path: parts, format: csv, header: true, target: y}}\nsteps:\n"
    );
    let algos = [
        (
            "gbdt",
            "labelled",
            "fully_replicated",
            "{objective: \"binary:logistic\", num_round: 8, max_depth: 4, eta: 0.3}",
        ),
        (
            "kmeans",
            "parts",
            "sharded_by_key",
            "{k: 3, init_method: kmeans++}",
        ),
        ("pca", "parts", "sharded_by_key", "{num_components: 2}"),
        (
            "linear-learner",
            "labelled_parts",
            "sharded_by_key",
            "{predictor_type: binary_classifier}",
        ),
    ];
    for (algo, input, dist, hps) in algos {
        for nodes in [1, 3] {
            p.push_str(&format!(
                "  {algo}-{nodes}:\n    kind: train\n    algorithm: {algo}\n    \
                 channels: {{train: {{data: inputs.{input}, distribution: {dist}}}}}\n    \
                 hyperparameters: {hps}\n    resources: {{nodes: {nodes}}}\n"
            ));
        }
    }
    p
}

/// Numbers equal to `tol` (relative), everything else equal.
pub fn assert_json_close(a: &Value, b: &Value, tol: f64, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0),
                "{at}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_json_close(u, v, tol, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}: keys"
            );
            for (k, u) in x {
                assert_json_close(u, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Runs [`dp_pipeline`] and checks each 3-node model against its 1-node twin.
pub fn check_data_parallel(executor: &str) {
    let data = dp_data(900);
    let lines: Vec<&str> = data.lines().collect();
    let mut t = Test::new()
        .file("data.csv", &data)
        .file("p.yaml", &dp_pipeline(executor));
    // Five part files of uneven sizes, each with the header.
    for (i, range) in [
        (0, 1..150),
        (1, 150..400),
        (2, 400..420),
        (3, 420..700),
        (4, 700..901),
    ] {
        let mut part = String::from(lines[0]);
        part.push('\n');
        for l in &lines[range] {
            part.push_str(l);
            part.push('\n');
        }
        t = t.file(&format!("parts/part-{i}.csv"), &part);
    }
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    let model = |step: &str| -> Value {
        let dir = output_path(&s, step, "model");
        let text = std::fs::read_to_string(Path::new(&dir).join("model.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    // gbdt trains the same trees on any number of nodes: the same bytes.
    assert_eq!(
        s["steps"]["gbdt-1"]["outputs"]["model"]["digest"],
        s["steps"]["gbdt-3"]["outputs"]["model"]["digest"],
        "gbdt on 3 nodes saved other bytes than on 1"
    );
    // The others add the nodes' partial sums in floating point.
    for (algo, tol) in [("kmeans", 1e-5), ("pca", 1e-5), ("linear-learner", 1e-6)] {
        let one = model(&format!("{algo}-1"));
        let three = model(&format!("{algo}-3"));
        assert_json_close(&one, &three, tol, algo);
    }
    let logs = t
        .exec(["logs", s["run_id"].as_str().unwrap(), "kmeans-3"])
        .success();
    assert!(logs.stdout.contains("[algo-3]"), "{logs}");
}

#[test]
fn three_local_nodes_train_the_same_models_as_one() {
    check_data_parallel("local");
}
