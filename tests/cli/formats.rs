//! The input formats SageMaker users have: RecordIO-protobuf as the
//! `sagemaker` Python package writes it, JSON Lines, Parquet with the label
//! first, and `content_type:` in SageMaker's names. Each format must train
//! the very model the same data gives as CSV.

use std::path::Path;

use crate::harness::{Test, output_digest};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// Runs `script` with python3 in the sandbox, once `imports` (Python
/// import statements) work; `false`, saying so, when python3 or a module is
/// missing, which fails the test under CI. A script that fails once its
/// modules are there fails the test.
fn python(t: &Test, needs: &str, imports: &str, script: &str) -> bool {
    let run = |file: &str, text: &str| {
        t.write(file, text);
        std::process::Command::new("python3")
            .arg(file)
            .current_dir(t.path())
            .env("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
            .output()
    };
    match run("imports.py", imports) {
        Ok(o) if o.status.success() => {}
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have python3 with {needs}:\n{why}"
            );
            eprintln!("SKIPPED: needs python3 with {needs}");
            return false;
        }
    }
    let out = run("write.py", script).expect("python3 runs");
    assert!(
        out.status.success(),
        "write.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Penguins' numeric measurements (rows with all four), an island
/// indicator that is mostly zero (so the sparse files are sparse), and
/// whether the bird is a Gentoo, as float32; the same values as headerless
/// CSV (label first) printed exactly, and as RecordIO-protobuf written by
/// the SDK: dense and sparse, with labels and without.
const WRITE_RECORDIO: &str = r#"
import csv
import numpy as np
import scipy.sparse
from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

rows, labels = [], []
with open("penguins.csv") as f:
    for r in csv.DictReader(f):
        cols = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
        if any(r[c] == "NA" for c in cols):
            continue
        rows.append([float(r[c]) for c in cols] + [1.0 if r["island"] == "Dream" else 0.0])
        labels.append(1.0 if r["species"] == "Gentoo" else 0.0)
x = np.array(rows, dtype=np.float32)
y = np.array(labels, dtype=np.float32)

def text(v):
    return repr(float(v))

with open("labelled.csv", "w") as f:
    for row, label in zip(x, y):
        f.write(",".join([text(label)] + [text(v) for v in row]) + "\n")
with open("unlabelled.csv", "w") as f:
    for row in x:
        f.write(",".join(text(v) for v in row) + "\n")
with open("dense.rec", "wb") as f:
    write_numpy_to_dense_tensor(f, x, y)
with open("dense_x.rec", "wb") as f:
    write_numpy_to_dense_tensor(f, x)
with open("sparse.bin", "wb") as f:
    write_spmatrix_to_sparse_tensor(f, scipy.sparse.csr_matrix(x), y)
with open("sparse_x.rec", "wb") as f:
    write_spmatrix_to_sparse_tensor(f, scipy.sparse.csr_matrix(x))
# The dense labelled data again, as two part files.
import os
os.makedirs("parts", exist_ok=True)
half = len(x) // 2
with open("parts/part-0.rec", "wb") as f:
    write_numpy_to_dense_tensor(f, x[:half], y[:half])
with open("parts/part-1.rec", "wb") as f:
    write_numpy_to_dense_tensor(f, x[half:], y[half:])
"#;

#[test]
fn recordio_protobuf_from_the_sagemaker_sdk_trains_the_models_csv_does() {
    let t = Test::new().file("penguins.csv", PENGUINS);
    let imports = "import numpy, scipy.sparse\nimport sagemaker.amazon.common\n";
    if !python(&t, "numpy, scipy and sagemaker<3", imports, WRITE_RECORDIO) {
        return;
    }
    // Both start with the RecordIO magic.
    let sparse = std::fs::read(t.path().join("sparse.bin")).unwrap();
    let dense = std::fs::read(t.path().join("dense.rec")).unwrap();
    assert!(sparse[..4] == [0x0a, 0x23, 0xd7, 0xce] && dense[..4] == sparse[..4]);
    let mut p = String::from(
        r#"name: recordio
inputs:
  csv: {path: labelled.csv, content_type: "text/csv; label_size=1"}
  dense: {path: dense.rec}
  sparse: {path: sparse.bin}
  csv_x: {path: unlabelled.csv, header: false}
  dense_x: {path: dense_x.rec, format: recordio-protobuf}
  sparse_x: {path: sparse_x.rec, content_type: application/x-recordio-protobuf}
  parts: {path: parts, format: recordio-protobuf}
steps:
  gbdt_parts:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.parts}
    hyperparameters: {objective: "binary:logistic", num_round: 20, max_depth: 3}
  gbdt_pipe:
    kind: train
    algorithm: gbdt
    input_mode: pipe
    channels: {train: inputs.parts}
    hyperparameters: {objective: "binary:logistic", num_round: 20, max_depth: 3}
"#,
    );
    let algorithms = [
        (
            "gbdt",
            "{objective: \"binary:logistic\", num_round: 20, max_depth: 3}",
            "",
        ),
        ("ll", "{predictor_type: binary_classifier}", ""),
        ("km", "{k: 3, seed: 7}", "_x"),
        ("pca", "{num_components: 2}", "_x"),
    ];
    for (short, hps, suffix) in algorithms {
        let algorithm = match short {
            "ll" => "linear-learner",
            "km" => "kmeans",
            other => other,
        };
        for data in ["csv", "dense", "sparse"] {
            // The sparse labelled file has no telling extension: its
            // channel says what it is, in SageMaker's words.
            let channel = if data == "sparse" && suffix.is_empty() {
                "{data: inputs.sparse, content_type: application/x-recordio-protobuf}".to_string()
            } else {
                format!("inputs.{data}{suffix}")
            };
            p.push_str(&format!(
                "  {short}_{data}:\n    kind: train\n    algorithm: {algorithm}\n    channels: {{train: {channel}}}\n    hyperparameters: {hps}\n"
            ));
        }
    }
    t.write("p.yaml", &p);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    // Each step is told its channel's content type, in SageMaker's name,
    // also when only the train channel says it.
    for (step, want) in [
        ("gbdt_csv", "text/csv"),
        ("gbdt_dense", "application/x-recordio-protobuf"),
        ("gbdt_sparse", "application/x-recordio-protobuf"),
    ] {
        let config = channel_config(&t, step);
        assert!(
            config.contains(&format!("\"ContentType\": \"{want}\"")),
            "{step}: {config}"
        );
    }
    // Part files, read from a directory or streamed one after another
    // through a pipe, are the whole file.
    for step in ["gbdt_parts", "gbdt_pipe"] {
        assert_eq!(
            output_digest(&s, step, "model"),
            output_digest(&s, "gbdt_csv", "model"),
            "{step}"
        );
    }
    for (short, _, _) in algorithms {
        let csv = output_digest(&s, &format!("{short}_csv"), "model");
        for data in ["dense", "sparse"] {
            assert_eq!(
                output_digest(&s, &format!("{short}_{data}"), "model"),
                csv,
                "{short} trained on {data} RecordIO-protobuf differs from the CSV model"
            );
        }
    }
}

/// Penguins as JSON Lines of named columns: numbers as numbers, text as
/// strings, `NA` as null.
fn penguins_jsonl() -> String {
    let mut lines = PENGUINS.lines();
    let names: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .split(',')
            .zip(&names)
            .map(|(c, n)| {
                let v = if c == "NA" {
                    "null".to_string()
                } else if c.parse::<f64>().is_ok() {
                    c.to_string()
                } else {
                    format!("\"{c}\"")
                };
                format!("\"{n}\": {v}")
            })
            .collect();
        out.push_str(&format!("{{{}}}\n", cells.join(", ")));
    }
    out
}

#[test]
fn json_lines_train_the_gbdt_model_csv_does() {
    // Named columns (with text levels and missing values) against CSV with
    // a header, and SageMaker's {"features": [...], "label": y} against
    // headerless CSV with the label first.
    let mut sm_csv = String::new();
    let mut sm_jsonl = String::new();
    for (i, line) in PENGUINS.lines().skip(1).enumerate() {
        let c: Vec<&str> = line.split(',').collect();
        if c[2..6].contains(&"NA") {
            continue;
        }
        let label = u8::from(c[0] == "Gentoo");
        sm_csv.push_str(&format!("{label},{}\n", c[2..6].join(",")));
        // Some lines put the label first.
        let features = format!("[{}]", c[2..6].join(", "));
        sm_jsonl.push_str(&if i % 2 == 0 {
            format!("{{\"features\": {features}, \"label\": {label}}}\n")
        } else {
            format!("{{\"label\": {label}, \"features\": {features}}}\n")
        });
    }
    let t = Test::new()
        .file("penguins.csv", PENGUINS)
        .file("penguins.jsonl", &penguins_jsonl())
        .file("sm.csv", &sm_csv)
        .file("sm.data", &sm_jsonl)
        .file(
            "p.yaml",
            r#"name: jsonl
inputs:
  csv: {path: penguins.csv, target: species}
  jsonl: {path: penguins.jsonl, target: species}
  sm_csv: {path: sm.csv, header: false, label_size: 1}
  sm_jsonl: {path: sm.data, content_type: application/jsonlines}
steps:
  named_csv:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.csv}
    hyperparameters: {objective: "multi:softprob", num_round: 20, max_depth: 3}
  named_jsonl:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.jsonl}
    hyperparameters: {objective: "multi:softprob", num_round: 20, max_depth: 3}
  sm_csv:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.sm_csv}
    hyperparameters: {objective: "binary:logistic", num_round: 20, max_depth: 3}
  sm_jsonl:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.sm_jsonl}
    hyperparameters: {objective: "binary:logistic", num_round: 20, max_depth: 3}
"#,
        );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(
        output_digest(&s, "named_jsonl", "model"),
        output_digest(&s, "named_csv", "model")
    );
    assert_eq!(
        output_digest(&s, "sm_jsonl", "model"),
        output_digest(&s, "sm_csv", "model")
    );
    // A text value in a numeric column is located at its line and column.
    let bad: Vec<String> = penguins_jsonl()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                l.replace("\"year\": 2007", "\"year\": \"MMVII\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    t.write("penguins.jsonl", &bad.join("\n"));
    let out = t.exec(["run", "p.yaml"]).code(2);
    assert!(
        out.stderr.contains("penguins.jsonl:2:") && out.stderr.contains("`MMVII` is not a number"),
        "{out}"
    );
}

#[test]
fn parquet_without_a_target_has_its_label_first_with_label_size_1() {
    let t = Test::new();
    let script = r#"
import pyarrow as pa, pyarrow.parquet as pq
rows = [(float(i % 2), i * 0.5, (i * 7) % 5) for i in range(60)]
pq.write_table(pa.table({"y": [r[0] for r in rows], "a": [r[1] for r in rows], "b": [r[2] for r in rows]}), "d.parquet")
with open("d.csv", "w") as f:
    for r in rows:
        f.write(f"{r[0]},{r[1]},{r[2]}\n")
"#;
    if !python(&t, "pyarrow", "import pyarrow.parquet\n", script) {
        return;
    }
    t.write(
        "p.yaml",
        r#"name: pq
inputs:
  pq: {path: d.parquet, label_size: 1}
  pq_ct: {path: d.parquet, content_type: application/x-parquet}
  csv: {path: d.csv, content_type: "text/csv; label_size=1"}
steps:
  on_parquet:
    kind: train
    algorithm: linear-learner
    channels: {train: inputs.pq}
    hyperparameters: {predictor_type: binary_classifier}
  on_parquet_channel:
    kind: train
    algorithm: linear-learner
    channels: {train: {data: inputs.pq_ct, label_size: 1}}
    hyperparameters: {predictor_type: binary_classifier}
  on_csv:
    kind: train
    algorithm: linear-learner
    channels: {train: inputs.csv}
    hyperparameters: {predictor_type: binary_classifier}
"#,
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    // Parquet names its columns (y, a, b), CSV does not (label, f0, f1): the
    // models hold the names, so compare what they predict, each over its own
    // file.
    let predict = |step: &str, data: &[&str]| {
        let model = s["steps"][step]["outputs"]["model"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        let out = format!("{step}.csv");
        let mut args = vec![
            "predict",
            "--model",
            &model,
            "--out",
            &out,
            "--label-size",
            "1",
        ];
        args.extend_from_slice(data);
        t.exec(args).success();
        t.read(&out)
    };
    let csv = predict("on_csv", &["--data", "d.csv", "--header", "false"]);
    assert_eq!(csv.lines().count(), 61, "{csv}");
    assert_eq!(predict("on_parquet", &["--data", "d.parquet"]), csv);
    assert_eq!(predict("on_parquet_channel", &["--data", "d.parquet"]), csv);
}

#[test]
fn content_type_and_format_must_agree() {
    let t = Test::new().file("d.csv", "1,2\n0,3\n");
    let pipeline = |input: &str, channel: &str| {
        format!(
            "name: ct\ninputs:\n  d: {input}\nsteps:\n  train:\n    kind: train\n    algorithm: gbdt\n    channels: {{train: {channel}}}\n    hyperparameters: {{num_round: 2}}\n"
        )
    };
    t.write(
        "p.yaml",
        &pipeline(
            "{path: d.csv, format: csv, content_type: application/jsonlines}",
            "inputs.d",
        ),
    );
    let out = t.exec(["validate", "p.yaml"]).invalid_at("p.yaml:3:47");
    assert!(
        out.stderr
            .contains("is jsonlines data, but `format: csv` says otherwise")
            && out.stderr.contains("give one of them"),
        "{out}"
    );
    t.write(
        "p.yaml",
        &pipeline(
            "{path: d.csv}",
            "{data: inputs.d, format: libsvm, content_type: text/csv}",
        ),
    );
    t.exec(["validate", "p.yaml"]).invalid_at("p.yaml:8:70");
    t.write(
        "p.yaml",
        &pipeline("{path: d.csv, content_type: text/cvs}", "inputs.d"),
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:3:34")
        .stderr_contains("did you mean `text/csv`?");
    t.write(
        "p.yaml",
        &pipeline(
            "{path: d.csv, content_type: \"text/csv; label_size=1\", label_size: 0}",
            "inputs.d",
        ),
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:3:72")
        .stderr_contains("disagrees");
    t.write(
        "p.yaml",
        &pipeline(
            "{path: d.csv, content_type: text/csv, target: y}",
            "inputs.d",
        ),
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:3:52")
        .stderr_contains("headerless");
    // A split writes CSV: other data is refused at its reference.
    t.write(
        "p.yaml",
        "name: ct\ninputs:\n  d: {path: d.csv, content_type: application/jsonlines}\nsteps:\n  split:\n    kind: split\n    input: inputs.d\n    fractions: {train: 0.5, test: 0.5}\n",
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:7:12")
        .stderr_contains("which is jsonlines data");
    // SageMaker's spellings are accepted, and its text/csv is headerless.
    t.write(
        "p.yaml",
        &pipeline(
            "{path: d.csv, content_type: \"Text/CSV;label_size=1\"}",
            "{data: inputs.d, content_type: \"text/csv; label_size=1\"}",
        ),
    );
    t.exec(["run", "p.yaml"]).success();
    let config = channel_config(&t, "train");
    assert!(config.contains("\"ContentType\": \"text/csv\""), "{config}");
}

/// The `inputdataconfig.json` laid out for step `step` in the sandbox's runs.
fn channel_config(t: &Test, step: &str) -> String {
    let mut found = Vec::new();
    find_all(&t.workspace(), "inputdataconfig.json", &mut found);
    let dir = format!("/steps/{step}/");
    let p = found
        .iter()
        .find(|p| p.to_string_lossy().contains(&dir))
        .unwrap_or_else(|| panic!("no inputdataconfig.json of step `{step}` in {found:?}"));
    std::fs::read_to_string(p).unwrap()
}

fn find_all(dir: &Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            find_all(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}
