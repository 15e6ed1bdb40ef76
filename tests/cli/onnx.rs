//! `pipeline export ... --format onnx`: each built-in model trained through
//! the real program, exported, run with onnxruntime and compared with
//! `pipeline predict` on the same rows (with missing values and a text
//! feature). Needs python3 with onnxruntime, onnx and numpy: CI installs
//! them, elsewhere the test says `SKIPPED`.

use std::fmt::Write as _;

use crate::harness::Test;

/// Runs the ONNX file on the data and compares each output with the
/// predictions CSV; prints `max_diff NAME VALUE` lines, exits 1 on a mismatch.
const CHECK: &str = r#"
import csv, json, math, sys
import numpy as np
import onnx, onnxruntime as ort

model_path, data_path, preds_path = sys.argv[1:4]
tol = 1e-5
meta = {p.key: p.value for p in onnx.load(model_path).metadata_props}
features = json.loads(meta["features"])
levels = json.loads(meta.get("levels", "{}"))
rows = list(csv.DictReader(open(data_path)))
seen = {f: [] for f in features}

def value(f, v):
    if v == "" or v == "NA":
        return math.nan
    if f in levels:
        return float(levels[f].index(v)) if v in levels[f] else math.nan
    try:
        return float(v)
    except ValueError:
        # A text feature of a model without levels: codes by first appearance, as the reader numbers them.
        if v not in seen[f]:
            seen[f].append(v)
        return float(seen[f].index(v))

x = np.array([[value(f, r[f]) for f in features] for r in rows], dtype=np.float32)
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
preds = list(csv.DictReader(open(preds_path)))
cols = lambda prefix: [c for c in preds[0] if c.startswith(prefix)]
want = lambda names: np.array([[float(p[c]) for c in names] for p in preds])

def compare(name, a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    d = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
    print(f"max_diff {name} {d:.3g}")
    if not d <= tol:
        i = int(np.argmax(np.abs(a - b).reshape(len(a), -1).max(axis=1)))
        print(f"{name}: row {i}: onnx {a[i]} predict {b[i]}", file=sys.stderr)
        sys.exit(1)

algo = meta["algorithm"]
if "probabilities" in got:
    p = got["probabilities"]
    if "probability" in preds[0]:
        compare("probabilities", p[:, 1:], want(["probability"]))
    else:
        compare("probabilities", p, want(cols("prob")))
    # The class `label` names must be predict's, except where the two best are
    # too close to call in float (predict picks the positive class at exactly 0.5).
    classes = json.loads(meta["classes"])
    top2 = np.sort(p, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-5
    named = np.array([classes[i] for i in got["label"]])
    picked = np.array([r["predicted_label"] for r in preds])
    wrong = int(np.sum((named != picked) & clear))
    print(f"labels_differing {wrong}")
    if wrong:
        sys.exit(1)
elif algo == "kmeans":
    compare("closest_cluster", got["closest_cluster"], want(["closest_cluster"])[:, 0])
    compare("distance_to_cluster", got["distance_to_cluster"], want(["distance_to_cluster"])[:, 0])
    compare("distances", got["distances"].min(axis=1), got["distance_to_cluster"])
elif algo == "pca":
    compare("projection", got["projection"], want(cols("projection_")))
else:
    compare("prediction", got["prediction"], want(["prediction"]))
"#;

fn python_has_onnxruntime() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, onnx, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with onnxruntime, onnx and numpy"
        );
        eprintln!("SKIPPED: needs python3 with onnxruntime, onnx and numpy");
    }
    ok
}

/// 240 rows of three numeric features (one with missing values) and a text
/// one, with a label column for each task; `features.csv` has no label.
fn data(t: &Test) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let header = "x1,x2,colour,x3";
    let (mut bin, mut multi, mut reg, mut plain) = (
        format!("{header},y\n"),
        format!("{header},y\n"),
        format!("{header},y\n"),
        format!("{header}\n"),
    );
    for i in 0..240 {
        let x1 = uniform() * 4.0 - 2.0;
        let x2 = uniform() * 10.0;
        let colour = ["red", "green", "blue"][i % 3];
        let x3 = x1 * 0.5 + uniform();
        let noise = uniform() - 0.5;
        let x2_text = if i % 13 == 5 {
            String::new()
        } else {
            format!("{x2:.3}")
        };
        let row = format!("{x1:.3},{x2_text},{colour},{x3:.3}");
        let b = u8::from(x1 + 0.3 * x2 - 1.5 + noise + if i % 3 == 0 { 0.7 } else { 0.0 } > 0.0);
        let class = ["a", "b", "c"][((x1 + 2.0 + noise) * 0.75).clamp(0.0, 2.0) as usize];
        let y = (0.4 * x1 + 0.1 * x2 + noise).exp();
        let _ = writeln!(bin, "{row},{b}");
        let _ = writeln!(multi, "{row},{class}");
        let _ = writeln!(reg, "{row},{y:.4}");
        let _ = writeln!(plain, "{row}");
    }
    t.write("data/bin.csv", &bin);
    t.write("data/multi.csv", &multi);
    t.write("data/reg.csv", &reg);
    t.write("data/features.csv", &plain);
}

const PIPELINE: &str = r#"
name: onnx-export
inputs:
  bin: {path: data/bin.csv, target: y}
  multi: {path: data/multi.csv, target: y}
  reg: {path: data/reg.csv, target: y}
  plain: {path: data/features.csv}
steps:
  gbdt_binary:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.bin}
    hyperparameters: {objective: "binary:logistic", num_round: 30, max_depth: 4}
  gbdt_multi:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.multi}
    hyperparameters: {objective: "multi:softprob", num_round: 20, max_depth: 3}
  gbdt_poisson:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.reg}
    hyperparameters: {objective: "count:poisson", num_round: 30, max_depth: 3}
  gbdt_squared:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.reg}
    hyperparameters: {objective: "reg:squarederror", num_round: 30, max_depth: 3}
  linear_binary:
    kind: train
    algorithm: linear-learner
    channels: {train: inputs.bin}
    hyperparameters: {predictor_type: binary_classifier}
  linear_multi:
    kind: train
    algorithm: linear-learner
    channels: {train: inputs.multi}
    hyperparameters: {predictor_type: multiclass_classifier, num_classes: 3}
  linear_regressor:
    kind: train
    algorithm: linear-learner
    channels: {train: inputs.reg}
    hyperparameters: {predictor_type: regressor}
  kmeans:
    kind: train
    algorithm: kmeans
    channels: {train: inputs.plain}
    hyperparameters: {k: 4}
  pca:
    kind: train
    algorithm: pca
    channels: {train: inputs.plain}
    hyperparameters: {num_components: 2}
"#;

const STEPS: [&str; 9] = [
    "gbdt_binary",
    "gbdt_multi",
    "gbdt_poisson",
    "gbdt_squared",
    "linear_binary",
    "linear_multi",
    "linear_regressor",
    "kmeans",
    "pca",
];

#[test]
fn onnx_exports_of_every_builtin_agree_with_predict() {
    if !python_has_onnxruntime() {
        return;
    }
    let t = Test::new().file("p.yaml", PIPELINE).file("check.py", CHECK);
    data(&t);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let run = s["run_id"].as_str().unwrap().to_string();
    for step in STEPS {
        let model = s["steps"][step]["outputs"]["model"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{step} has no model: {s}"))
            .to_string();
        let onnx = format!("out/{step}.onnx");
        t.exec([
            "export",
            &run,
            &format!("{step}.model"),
            &onnx,
            "--format",
            "onnx",
        ])
        .success()
        .stderr_contains("as ONNX");
        let preds = format!("{step}.csv");
        t.exec([
            "predict",
            "--model",
            &model,
            "--data",
            "data/features.csv",
            "--out",
            &preds,
        ])
        .success();
        let out = std::process::Command::new("python3")
            .current_dir(t.path())
            .args(["check.py", &onnx, "data/features.csv", &preds])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            eprintln!("{step}: {line}");
        }
        assert!(
            out.status.success(),
            "{step}: the ONNX model disagrees with predict\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // An existing file is never overwritten.
    t.exec([
        "export",
        &run,
        "pca.model",
        "out/pca.onnx",
        "--format",
        "onnx",
    ])
    .code(2)
    .stderr_contains("already exists");
}

#[test]
fn onnx_export_refuses_what_is_not_a_builtin_model() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\nsteps:\n  make:\n    kind: command\n    run: [sh, -c, \"echo hi > $PIPELINE_OUTPUT_OUT/a.txt\"]\n    outputs: [out]\n",
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let run = s["run_id"].as_str().unwrap().to_string();
    t.exec(["export", &run, "make.out", "x.onnx", "--format", "onnx"])
        .code(2)
        .stderr_contains("is not a built-in model")
        .stderr_contains("export other artifacts without --format");
    assert!(!t.path().join("x.onnx").exists());
    t.exec(["export", &run, "make.out", "x.onnx", "--format", "tflite"])
        .code(2)
        .stderr_contains("onnx");
    t.exec([
        "export",
        &run,
        "make.out",
        "s3://bucket/x.onnx",
        "--format",
        "onnx",
    ])
    .code(2)
    .stderr_contains("pipeline cp");
}

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

#[test]
fn a_train_step_with_onnx_true_writes_the_export_as_its_onnx_output() {
    let t = Test::new().file("penguins.csv", PENGUINS).file(
        "p.yaml",
        "name: p
inputs:
  penguins: {path: penguins.csv, target: species}
steps:
  train:
    kind: train
    algorithm: gbdt
    onnx: true
    channels: {train: inputs.penguins}
    hyperparameters: {objective: \"multi:softprob\", num_round: 5, seed: 1}
  ship:
    kind: command
    run: [sh, -c, \"cp $SM_CHANNEL_MODEL/model.onnx $PIPELINE_OUTPUT_OUT/\"]
    inputs: {model: train.onnx}
    outputs: [out]
",
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let run = s["run_id"].as_str().unwrap().to_string();
    t.exec([
        "export",
        &run,
        "train.model",
        "export.onnx",
        "--format",
        "onnx",
    ])
    .success();
    let exported = std::fs::read(t.path().join("export.onnx")).unwrap();
    t.exec(["export", &run, "ship.out", "shipped"]).success();
    let shipped = std::fs::read(t.path().join("shipped/model.onnx")).unwrap();
    assert!(exported.len() > 100);
    assert_eq!(
        shipped, exported,
        "the step's ONNX output is the export's bytes"
    );
    // `onnx` is part of what the step computes: turning it off is another key.
    let text = t.read("p.yaml").replace("    onnx: true\n", "").replace(
        "  ship:\n    kind: command\n    run: [sh, -c, \"cp $SM_CHANNEL_MODEL/model.onnx $PIPELINE_OUTPUT_OUT/\"]\n    inputs: {model: train.onnx}\n    outputs: [out]\n",
        "",
    );
    t.write("q.yaml", &text);
    let s = t.exec(["run", "q.yaml", "--json"]).success().summary();
    assert!(!crate::harness::step_cached(&s, "train"));
}

#[test]
fn onnx_true_is_refused_where_there_is_no_builtin_model_to_convert() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\nsteps:\n  train:\n    kind: train\n    run: [\"true\"]\n    onnx: true\n",
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:6:11")
        .stderr_contains("no such model");
    // A tune step's model is its best trial's; it has no `onnx` of its own.
    let t = Test::new().file("penguins.csv", PENGUINS).file(
        "p.yaml",
        "name: p\ninputs:\n  d: {path: penguins.csv, target: species}\nsteps:\n  t:\n    kind: tune\n    algorithm: gbdt\n    onnx: true\n    channels: {train: inputs.d, validation: inputs.d}\n    hyperparameters: {objective: \"multi:softprob\"}\n    ranges: {eta: {type: continuous, min: 0.1, max: 0.3}}\n    objective: {metric: \"validation:mlogloss\", type: minimize}\n    max_jobs: 2\n",
    );
    t.exec(["validate", "p.yaml"])
        .code(2)
        .stderr_contains("onnx");
    // A reference to `train.onnx` without it names the outputs there are.
    let t = Test::new().file("penguins.csv", PENGUINS).file(
        "p.yaml",
        "name: p\ninputs:\n  d: {path: penguins.csv, target: species}\nsteps:\n  train:\n    kind: train\n    algorithm: gbdt\n    channels: {train: inputs.d}\n    hyperparameters: {objective: \"multi:softprob\"}\n  use:\n    kind: command\n    run: [\"true\"]\n    inputs: {m: train.onnx}\n",
    );
    t.exec(["validate", "p.yaml"])
        .code(2)
        .stderr_contains("onnx");
}
