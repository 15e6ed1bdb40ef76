//! SageMaker training code runs unchanged: the real sagemaker-training
//! toolkit's `train` entry point with a `source_dir` script, on one node
//! and on three; the variables and config files SageMaker writes; a script
//! started by the engine as the toolkit starts it; `stop_timeout`.
//!
//! The toolkit tests need `pip install sagemaker-training`; without it they
//! say `SKIPPED` (and fail under CI, which installs it).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Test, step_status};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// Whether python3 can import `module`; says so when it cannot (and fails under CI).
fn python_with(test: &str, module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs python3 with {module}; CI must install it");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs python3 with {module} (pip install sagemaker-training)"
        );
    }
    ok
}

/// Runs a Python `script` with `args` in `dir`; its stdout, read as JSON.
fn python_json(dir: &std::path::Path, script: &str, args: &[&std::path::Path]) -> Value {
    let out = Command::new("python3")
        .args(["-c", script])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts two lists of predictions agree to 1e-5.
fn assert_agree(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5, "{what}: row {i}: {x} against {y}");
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// A script as SageMaker framework images run it: arguments from the
/// hyperparameters, data and model directories from `SM_*`. It records
/// what it saw into its model directory (the main node's is stored).
const SCRIPT: &str = r#"
import argparse, json, os, socket
p = argparse.ArgumentParser()
p.add_argument("--max-depth", type=int)
p.add_argument("--eta", type=float)
p.add_argument("--name")
args = p.parse_args()
hosts = json.loads(os.environ["SM_HOSTS"])
seen = {
    "args": vars(args),
    "cwd": os.getcwd(),
    "hostname": socket.gethostname(),
    "resolved": {h: socket.gethostbyname(h) for h in hosts},
    "files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])),
    "helper": open("lib/helper.txt").read().strip(),
    "env": {k: v for k, v in os.environ.items()
            if k.startswith(("SM_", "SAGEMAKER_", "TRAINING_JOB_NAME", "MY_"))},
    "config": sorted(os.listdir(os.environ["SM_INPUT_CONFIG_DIR"])),
}
if os.environ["SM_CURRENT_HOST"] == hosts[0]:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
        json.dump(seen, f, sort_keys=True)
print("trained on", socket.gethostname())
# A container's name resolves while it runs: every node stays a moment, so
# that the others' look-ups above (made as they start) find it.
if len(hosts) > 1:
    import time
    time.sleep(3)
"#;

fn pipeline(run: &str, nodes: u32) -> String {
    format!(
        r#"
name: toolkit
inputs:
  data: {{path: data.csv, format: csv, target: y}}
steps:
  train:
    kind: train
{run}    source_dir: src
    entry_point: train.py
    channels: {{train: inputs.data}}
    hyperparameters: {{max-depth: 3, eta: 0.1, name: '"x"'}}
    env: {{MY_SETTING: on}}
    resources: {{nodes: {nodes}}}
    timeout: 120s
"#
    )
}

fn with_code(t: Test) -> Test {
    t.file("data.csv", "x,y\n1,0\n2,1\n3,0\n")
        .file("src/train.py", SCRIPT)
        .file("src/lib/helper.txt", "helper v1\n")
}

/// The `seen.json` the main node wrote.
fn seen(t: &Test, summary: &Value) -> Value {
    let model = summary["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .expect("model path")
        .to_string();
    let text = std::fs::read_to_string(std::path::Path::new(&model).join("seen.json"))
        .unwrap_or_else(|e| panic!("seen.json in {model}: {e}\n{}", t.path().display()));
    serde_json::from_str(&text).expect("seen.json")
}

fn check_seen(seen: &Value, nodes: usize) {
    assert_eq!(seen["args"]["max_depth"], 3, "{seen}");
    assert_eq!(seen["args"]["eta"], 0.1, "{seen}");
    assert_eq!(seen["args"]["name"], "x", "{seen}");
    assert_eq!(seen["hostname"], "algo-1", "{seen}");
    assert_eq!(seen["helper"], "helper v1", "{seen}");
    assert!(seen["cwd"].as_str().unwrap().ends_with("/code"), "{seen}");
    let resolved = seen["resolved"].as_object().unwrap();
    assert_eq!(resolved.len(), nodes, "{seen}");
    let env = &seen["env"];
    assert_eq!(env["SM_HP_MAX-DEPTH"], "3", "{seen}");
    assert_eq!(
        env["SM_HPS"], r#"{"eta":0.1,"max-depth":3,"name":"x"}"#,
        "{seen}"
    );
    assert_eq!(env["SM_USER_ENTRY_POINT"], "train.py", "{seen}");
    assert_eq!(env["SAGEMAKER_PROGRAM"], "train.py", "{seen}");
    assert_eq!(env["MY_SETTING"], "on", "{seen}");
    assert!(
        env["TRAINING_JOB_NAME"]
            .as_str()
            .unwrap()
            .starts_with("toolkit-train-"),
        "{seen}"
    );
    let rc: Value = serde_json::from_str(env["SM_RESOURCE_CONFIG"].as_str().unwrap()).unwrap();
    assert_eq!(rc["current_instance_type"], "local", "{seen}");
    assert_eq!(
        rc["instance_groups"][0]["hosts"].as_array().unwrap().len(),
        nodes
    );
    let te: Value = serde_json::from_str(env["SM_TRAINING_ENV"].as_str().unwrap()).unwrap();
    assert_eq!(te["is_master"], true, "{seen}");
    assert_eq!(te["module_name"], "train", "{seen}");
    for f in [
        "checkpointconfig.json",
        "hyperparameters.json",
        "inputdataconfig.json",
        "resourceconfig.json",
    ] {
        assert!(
            seen["config"].as_array().unwrap().iter().any(|c| c == f),
            "{f}: {seen}"
        );
    }
}

#[test]
fn the_training_toolkit_runs_a_source_dir_script_locally() {
    let test = "the_training_toolkit_runs_a_source_dir_script_locally";
    if !python_with(test, "sagemaker_training") {
        return;
    }
    let t = with_code(Test::new()).file("p.yaml", &pipeline("    run: [train]\n", 1));
    let started = Instant::now();
    let out = t.exec(["run", "p.yaml", "--json"]);
    let s = out.summary();
    assert_eq!(step_status(&s, "train"), "succeeded", "{out}");
    // The toolkit waits up to 15 minutes for names it cannot resolve.
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
    check_seen(&seen(&t, &s), 1);
}

#[test]
fn the_training_toolkit_runs_on_three_local_nodes() {
    let test = "the_training_toolkit_runs_on_three_local_nodes";
    if !python_with(test, "sagemaker_training") {
        return;
    }
    let t = with_code(Test::new()).file("p.yaml", &pipeline("    run: [train]\n", 3));
    let out = t.exec(["run", "p.yaml", "--json"]);
    let s = out.summary();
    assert_eq!(step_status(&s, "train"), "succeeded", "{out}");
    check_seen(&seen(&t, &s), 3);
    let logs = t.exec(["logs", s["run_id"].as_str().unwrap(), "train"]);
    for h in ["algo-1", "algo-2", "algo-3"] {
        assert!(
            logs.stdout.contains(&format!("trained on {h}")),
            "{h}: {logs}"
        );
    }
}

#[test]
fn the_engine_starts_an_entry_point_as_the_toolkit_does() {
    if !python_with(
        "the_engine_starts_an_entry_point_as_the_toolkit_does",
        "json",
    ) {
        return;
    }
    let t = with_code(Test::new()).file("p.yaml", &pipeline("", 1));
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    check_seen(&seen(&t, &s), 1);

    // Unchanged code: cached. A change to any file of the source directory
    // (not only the entry point) runs the step again.
    let again = t.exec(["run", "p.yaml", "--json"]).success();
    assert!(crate::harness::step_cached(&again.summary(), "train"));
    t.write("src/lib/helper.txt", "helper v2\n");
    let changed = t.exec(["run", "p.yaml", "--json"]).success();
    let cs = changed.summary();
    assert!(!crate::harness::step_cached(&cs, "train"), "{changed}");
    assert_eq!(seen(&t, &cs)["helper"], "helper v2");
}

#[test]
fn code_that_is_not_there_is_refused_before_anything_runs() {
    let base = "name: c\nsteps:\n  s:\n    kind: command\n";
    let t = Test::new()
        .file("src/train.py", "print(1)\n")
        .file(
            "missing.yaml",
            &format!("{base}    source_dir: nowhere\n    entry_point: train.py\n"),
        )
        .file(
            "no_entry.yaml",
            &format!("{base}    source_dir: src\n    entry_point: other.py\n"),
        )
        .file(
            "outside.yaml",
            &format!("{base}    source_dir: src\n    entry_point: ../train.py\n"),
        )
        .file("alone.yaml", &format!("{base}    source_dir: src\n"))
        .file(
            "builtin.yaml",
            "name: c\ninputs:\n  d: {path: d.csv, target: y}\nsteps:\n  t:\n    kind: train\n    algorithm: gbdt\n    source_dir: src\n    entry_point: train.py\n    channels: {train: inputs.d}\n",
        )
        .file("d.csv", "x,y\n1,0\n");
    t.exec(["validate", "missing.yaml"])
        .invalid_at("missing.yaml:5:17")
        .stderr_contains("not a directory");
    t.exec(["validate", "no_entry.yaml"])
        .invalid_at("no_entry.yaml:6:18")
        .stderr_contains("not a file in `src`");
    t.exec(["validate", "outside.yaml"])
        .invalid_at("outside.yaml:6:18")
        .stderr_contains("not inside `source_dir`");
    t.exec(["validate", "alone.yaml"])
        .invalid_at("alone.yaml:5:17")
        .stderr_contains("needs `entry_point`");
    t.exec(["validate", "builtin.yaml"])
        .invalid_at("builtin.yaml:7:16")
        .stderr_contains("for your own code");
}

#[test]
fn a_stopped_step_has_its_stop_timeout_to_finish() {
    // The step catches SIGTERM and needs 6 s to save its work: more than
    // the old fixed grace of 5 s, less than the step's `stop_timeout`.
    let t = Test::new().file(
        "p.yaml",
        "name: g\nsteps:\n  s:\n    kind: command\n    run: [sh, -c, 'trap \"sleep 6; echo saved > saved.txt; exit 0\" TERM; echo started; while true; do sleep 0.1; done']\n    timeout: 1s\n    stop_timeout: 20s\n",
    );
    let started = Instant::now();
    let out = t.exec(["run", "p.yaml"]).code(1);
    assert!(
        out.stderr.contains("timed out") || out.stdout.contains("timed out"),
        "{out}"
    );
    assert_eq!(t.read("saved.txt").trim(), "saved", "{out}");
    assert!(started.elapsed() < Duration::from_secs(20), "{out}");
}

#[test]
fn train_steps_record_their_metrics_for_when_and_the_summary() {
    // A built-in reports its own figures; a script, what its
    // metric_definitions find in its log (a SageMaker XGBoost regex, written
    // for CloudWatch's `#011` tabs, matches the tab-separated line).
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file(
            "p.yaml",
            r##"
name: metrics
inputs:
  penguins: {path: penguins.csv, target: species}
steps:
  split:
    kind: split
    input: inputs.penguins
    fractions: {train: 0.7, validation: 0.3}
  gbdt:
    kind: train
    algorithm: gbdt
    channels: {train: split.train, validation: split.validation}
    hyperparameters: {objective: "multi:softprob", num_round: 5, eval_metric: mlogloss}
  script:
    kind: train
    run: [sh, -c, 'printf "[0]\tvalidation-auc:0.5\n[1]\tvalidation-auc:0.875\nloss = 0.25\n"; touch $SM_MODEL_DIR/m']
    channels: {train: split.train}
    metric_definitions:
      - {name: "validation:auc", regex: '.*\[[0-9]+\].*#011validation-auc:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*'}
      - {name: loss, regex: 'loss = ([0-9.]+)'}
  good:
    kind: command
    run: [sh, -c, 'echo ok']
    when: "gbdt.metrics.validation_mlogloss < 5 and script.metrics.loss < 0.5"
  bad:
    kind: command
    run: [sh, -c, 'echo ok']
    when: "script.metrics.loss > 0.5"
"##,
        );
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    let gm = &s["steps"]["gbdt"]["metrics"];
    assert!(gm["validation_mlogloss"].as_f64().is_some(), "{s}");
    assert_eq!(gm["rounds"].as_f64(), Some(5.0), "{s}");
    let sm = &s["steps"]["script"]["metrics"];
    assert_eq!(sm["validation:auc"], 0.875, "{s}");
    assert_eq!(sm["loss"], 0.25, "{s}");
    assert_eq!(step_status(&s, "good"), "succeeded", "{s}");
    assert_eq!(step_status(&s, "bad"), "skipped", "{s}");
    // The built-in's log has XGBoost's own line for each round.
    let logs = t
        .exec(["logs", s["run_id"].as_str().unwrap(), "gbdt"])
        .success();
    assert!(logs.stdout.contains("[4]\tvalidation-mlogloss:"), "{logs}");
    // A cached step keeps its metrics.
    let again = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(again["steps"]["script"]["metrics"]["loss"], 0.25, "{again}");

    // A metric no definition names is refused before anything runs.
    t.write(
        "q.yaml",
        &t.read("p.yaml")
            .replace("script.metrics.loss > 0.5", "script.metrics.accuracy > 0.5"),
    );
    t.exec(["validate", "q.yaml"])
        .code(2)
        .stderr_contains("reports no metric `accuracy`")
        .stderr_contains("metric_definitions");
    t.write(
        "r.yaml",
        &t.read("p.yaml")
            .replace("'loss = ([0-9.]+)'", "'loss = [0-9.]+'"),
    );
    t.exec(["validate", "r.yaml"])
        .code(2)
        .stderr_contains("captures nothing");
}

/// Rows of a binary task, label first and no header (SageMaker's CSV).
fn binary_rows(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let a = (i * 37 % 101) as f64 / 10.0;
        let b = (i * 53 % 97) as f64 / 9.0;
        let c = (i * 11 % 7) as f64;
        let y = u8::from(a + 0.5 * b - 0.2 * c > 6.0);
        s += &format!("{y},{a},{b},{c}\n");
    }
    s
}

#[test]
fn the_stock_xgboost_loads_our_model_tar_gz_and_predicts_on_a_plain_matrix() {
    let test = "the_stock_xgboost_loads_our_model_tar_gz_and_predicts_on_a_plain_matrix";
    if !python_with(test, "xgboost") {
        return;
    }
    let t = Test::new().file("train.csv", &binary_rows(300)).file(
        "p.yaml",
        r#"
name: servable
inputs:
  rows: {path: train.csv, format: csv, header: false, label_size: 1}
steps:
  train:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.rows}
    hyperparameters: {objective: "binary:logistic", num_round: 20, max_depth: 3}
"#,
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let model = s["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    t.exec([
        "predict",
        "--model",
        &model,
        "--data",
        "train.csv",
        "--header",
        "false",
        "--label-size",
        "1",
        "--out",
        "ours.csv",
    ])
    .success();
    // As SageMaker's XGBoost container serves it: every file of the
    // archive loaded with Booster().load_model, predicting on a headerless
    // matrix of the features.
    let script = r#"
import json, sys, tarfile, tempfile, os
import numpy as np, xgboost as xgb
d = tempfile.mkdtemp()
with tarfile.open(sys.argv[1]) as t:
    names = t.getnames()
    t.extractall(d)
preds = []
for n in names:
    b = xgb.Booster()
    b.load_model(os.path.join(d, n))
    x = np.loadtxt(sys.argv[2], delimiter=",")[:, 1:]
    preds.append(b.predict(xgb.DMatrix(x)).tolist())
print(json.dumps({"names": names, "preds": preds}))
"#;
    let v = python_json(
        t.path(),
        script,
        &[
            &std::path::Path::new(&model).join("model.tar.gz"),
            &t.path().join("train.csv"),
        ],
    );
    assert_eq!(v["names"], serde_json::json!(["xgboost-model"]), "{v}");
    let ours: Vec<f64> = t
        .read("ours.csv")
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_agree(
        "ours against the stock xgboost",
        &ours,
        &floats(&v["preds"][0]),
    );
}

#[test]
fn gbdt_continues_from_a_model_xgboost_saved_in_a_sagemaker_artifact() {
    let test = "gbdt_continues_from_a_model_xgboost_saved_in_a_sagemaker_artifact";
    if !python_with(test, "xgboost") {
        return;
    }
    let t = Test::new().file("train.csv", &binary_rows(300));
    // XGBoost trains 10 rounds and hands the model over as SageMaker's
    // XGBoost container does: `xgboost-model` (JSON) in `model.tar.gz`.
    let make = r#"
import sys, tarfile, os, json
import numpy as np, xgboost as xgb
d = np.loadtxt(sys.argv[1], delimiter=",")
m = xgb.DMatrix(d[:, 1:], label=d[:, 0])
b = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3}, m, 10)
os.makedirs("prior", exist_ok=True)
b.save_model("xgboost-model.json")
with tarfile.open("prior/model.tar.gz", "w:gz") as t:
    t.add("xgboost-model.json", arcname="xgboost-model")
print(json.dumps(b.predict(m).tolist()))
"#;
    let before = floats(&python_json(t.path(), make, &[&t.path().join("train.csv")]));
    t.write(
        "p.yaml",
        r#"
name: incremental
inputs:
  rows: {path: train.csv, format: csv, header: false, label_size: 1}
  prior: {path: prior}
steps:
  train:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.rows, model: inputs.prior}
    hyperparameters: {objective: "binary:logistic", num_round: 3, max_depth: 3}
"#,
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let model = s["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s["steps"]["train"]["metrics"]["trees"].as_f64(),
        Some(13.0),
        "{s}"
    );
    // The first 10 trees of the result are XGBoost's own, read faithfully.
    let check = r#"
import sys, json
import numpy as np, xgboost as xgb
d = np.loadtxt(sys.argv[2], delimiter=",")
b = xgb.Booster()
b.load_model(sys.argv[1])
print(json.dumps(b.predict(xgb.DMatrix(d[:, 1:]), iteration_range=(0, 10)).tolist()))
"#;
    let again = floats(&python_json(
        t.path(),
        check,
        &[
            &std::path::Path::new(&model).join("xgboost-model"),
            &t.path().join("train.csv"),
        ],
    ));
    assert_agree("xgboost's trees after the round trip", &before, &again);
}

/// Writes the build context of a framework-like image: this machine's
/// Python, the sagemaker-training toolkit and what it imports, and the
/// shared libraries they load, at their own paths, from scratch (no image
/// can be pulled here). Prints the toolkit's `train` path.
const IMAGE_CONTEXT: &str = r#"
import os, shutil, subprocess, sys, sysconfig
import sagemaker_training.cli.train, sagemaker_training.trainer, sagemaker_training.entry_point
import sagemaker_training.runner, sagemaker_training.process, sagemaker_training.modules
import sagemaker_training.files, argparse, json, socket, tarfile, tempfile
ctx = os.path.join(sys.argv[1], "root")
site = sysconfig.get_paths()["purelib"]
stdlib = sysconfig.get_paths()["stdlib"]
def copy(path):
    dest = ctx + path
    if os.path.isdir(path):
        shutil.copytree(path, dest, symlinks=False, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "test", "tests", "site-packages", "idlelib", "tkinter", "ensurepip"))
    elif not os.path.exists(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(path, dest)
copy(stdlib)
tops = set()
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None) or ""
    if f.startswith(site + os.sep):
        tops.add(os.path.relpath(f, site).split(os.sep)[0])
# Package metadata too (importlib.metadata reads versions from it).
tops.update(n for n in os.listdir(site) if n.endswith(".dist-info"))
for t in sorted(tops):
    copy(os.path.join(site, t))
    libs = os.path.join(site, t + ".libs")
    if os.path.isdir(libs):
        copy(libs)
exe = os.path.realpath(sys.executable)
train = shutil.which("train", path=os.path.dirname(sys.executable)) or os.path.join(os.path.dirname(exe), "train")
for p in [exe, train, sysconfig.get_config_var("LIBDIR") + "/" + sysconfig.get_config_var("LDLIBRARY")]:
    copy(p)
os.symlink(os.path.basename(exe), ctx + os.path.join(os.path.dirname(exe), "python3")) if not os.path.exists(ctx + os.path.join(os.path.dirname(exe), "python3")) else None
# Every shared library an ELF file here loads.
elves = []
for d, _, files in os.walk(ctx):
    for f in files:
        p = os.path.join(d, f)
        with open(p, "rb") as h:
            if h.read(4) == b"\x7fELF":
                elves.append(p)
for e in elves:
    out = subprocess.run(["ldd", e], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        for w in parts:
            if w.startswith("/") and os.path.exists(w):
                copy(os.path.realpath(w))
                real = os.path.realpath(w)
                if real != w and not os.path.exists(ctx + w):
                    os.makedirs(os.path.dirname(ctx + w), exist_ok=True)
                    shutil.copy2(real, ctx + w)
os.makedirs(ctx + "/tmp", exist_ok=True)
os.chmod(ctx + "/tmp", 0o1777)
for d, dirs, _ in os.walk(ctx):
    os.chmod(d, 0o1777 if d.endswith("/tmp") else 0o755)
print(os.path.dirname(exe))
"#;

/// A framework-like image with the real toolkit, built once; `None` (and
/// a SKIPPED line) when the machine cannot build it.
fn toolkit_image(test: &str) -> Option<String> {
    static IMAGE: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("python3")
            .args(["-c", IMAGE_CONTEXT])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "the toolkit image's context: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::fs::copy("/bin/busybox", dir.path().join("root/busybox")).map_err(|e| e.to_string())?;
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM scratch\nCOPY root/ /\nRUN [\"/busybox\", \"mkdir\", \"-p\", \"/bin\"]\nRUN [\"/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH={bin}:/bin\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let tag = "pipeline-test/sagemaker-toolkit:1";
        let out = Command::new("docker")
            .args(["build", "-q", "-t", tag])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "docker build of the toolkit image: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(tag.to_string())
    });
    match built {
        Ok(tag) => Some(tag.clone()),
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{test} needs {why}; CI must provide it");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {why}");
            None
        }
    }
}

#[test]
fn the_training_toolkit_runs_in_a_container_with_and_without_a_network() {
    let test = "the_training_toolkit_runs_in_a_container_with_and_without_a_network";
    if !crate::docker::docker(test) || !python_with(test, "sagemaker_training") {
        return;
    }
    let Some(image) = toolkit_image(test) else {
        return;
    };
    // One node on the bridge, one with no network, three on their own network.
    for (network, nodes) in [("bridge", 1), ("none", 1), ("bridge", 3)] {
        let t = with_code(Test::new()).file(
            "p.yaml",
            &pipeline(
                &format!("    executor: docker\n    image: {image}\n    network: {network}\n"),
                nodes,
            ),
        );
        let started = Instant::now();
        let out = t.exec(["run", "p.yaml", "--json"]);
        let s = out.summary();
        assert_eq!(step_status(&s, "train"), "succeeded", "{network}: {out}");
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{network}: {out}"
        );
        let seen = seen(&t, &s);
        check_seen(&seen, nodes as usize);
        assert_eq!(seen["cwd"], "/opt/ml/code", "{network}: {seen}");
    }
}
