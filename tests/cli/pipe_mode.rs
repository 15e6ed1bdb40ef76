//! Pipe mode (`input_mode: pipe`): a channel streamed through named pipes,
//! epoch after epoch, with its data never in the step's directory; built-ins
//! train the same models as from files; data that cannot be one stream is
//! refused before the step starts; and on docker the pipes reach the
//! container's user.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::harness::{Test, step_status};

/// A deterministic CSV data set of `rows` rows: `label` (0 or 1) and five
/// features, with a header line when asked.
fn table(rows: usize, header: bool) -> String {
    let mut s = String::with_capacity(rows * 48);
    if header {
        s.push_str("label,x0,x1,x2,x3,x4\n");
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 10_000) as f64 / 10_000.0
    };
    for _ in 0..rows {
        let x: Vec<f64> = (0..5).map(|_| next()).collect();
        let label = u8::from(x[0] + 0.5 * x[1] > 0.8);
        s.push_str(&format!(
            "{label},{:.4},{:.4},{:.4},{:.4},{:.4}\n",
            x[0], x[1], x[2], x[3], x[4]
        ));
    }
    s
}

/// The same data as libsvm lines.
fn as_libsvm(csv: &str) -> String {
    csv.lines()
        .map(|l| {
            let mut f = l.split(',');
            let label = f.next().unwrap();
            let feats: Vec<String> = f
                .enumerate()
                .map(|(j, v)| format!("{}:{v}", j + 1))
                .collect();
            format!("{label} {}\n", feats.join(" "))
        })
        .collect()
}

/// Writes the headerless CSV `csv` as a Parquet file of `label` and `x0..x4`.
fn write_parquet(path: &Path, csv: &str) {
    use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 6];
    for l in csv.lines() {
        for (j, v) in l.split(',').enumerate() {
            cols[j].push(v.parse().unwrap());
        }
    }
    let mut fields = vec![Field::new("label", DataType::Int32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(
        cols[0].iter().map(|v| *v as i32).collect::<Vec<_>>(),
    ))];
    for (j, c) in cols.iter().enumerate().skip(1) {
        fields.push(Field::new(format!("x{}", j - 1), DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(c.clone())));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

const HPS: &str = r#"{objective: "binary:logistic", num_round: 5, max_depth: 3}"#;

/// Two gbdt steps on the same channel, one reading files and one a pipe.
fn file_and_pipe(inputs: &str, channel: &str, extra: &str) -> String {
    format!(
        r#"
name: pipe-mode
inputs:
{inputs}
steps:
  by_file:
    kind: train
    algorithm: gbdt
    channels: {{train: {channel}}}
    hyperparameters: {HPS}
{extra}
  by_pipe:
    kind: train
    algorithm: gbdt
    input_mode: pipe
    channels: {{train: {channel}}}
    hyperparameters: {HPS}
{extra}
"#
    )
}

fn run_id(s: &Value) -> String {
    s["run_id"].as_str().unwrap().to_string()
}

/// The model digest of `step`, as `runs show --json` records it.
fn model_digest(t: &Test, run: &str, step: &str) -> String {
    let shown: Value =
        serde_json::from_str(&t.exec(["runs", "show", run, "--json"]).success().stdout).unwrap();
    shown["summary"]["steps"][step]["outputs"]["model"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no model digest for `{step}` in {shown}"))
        .to_string()
}

/// Runs `p.yaml`; both steps succeed and train the same model.
fn same_model_both_ways(t: &Test) -> Value {
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    for step in ["by_file", "by_pipe"] {
        assert_eq!(step_status(&s, step), "succeeded", "{step}: {s}");
    }
    let run = run_id(&s);
    assert_eq!(
        model_digest(t, &run, "by_file"),
        model_digest(t, &run, "by_pipe"),
        "pipe mode trained another model"
    );
    s
}

/// The first attempt directory of `step` in `run`.
fn attempt_dir(t: &Test, run: &str, step: &str) -> PathBuf {
    t.workspace()
        .join("runs")
        .join(run)
        .join("steps")
        .join(step)
        .join("1")
}

/// Bytes of the regular files under `dir`, links not followed.
fn size_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            total += size_on_disk(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

fn input_mode_in_config(root: &Path, channel: &str) -> String {
    let text = std::fs::read_to_string(root.join("input/config/inputdataconfig.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v[channel]["TrainingInputMode"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn gbdt_in_pipe_mode_trains_the_model_file_mode_trains_and_nothing_lands_on_disk() {
    let data = table(40_000, true);
    let t = Test::new().file("data.csv", &data).file(
        "p.yaml",
        &file_and_pipe("  data: {path: data.csv, target: label}", "inputs.data", ""),
    );
    let s = same_model_both_ways(&t);
    let run = run_id(&s);
    let root = attempt_dir(&t, &run, "by_pipe");
    assert_eq!(input_mode_in_config(&root, "train"), "Pipe");
    assert_eq!(
        input_mode_in_config(&attempt_dir(&t, &run, "by_file"), "train"),
        "File"
    );
    assert!(
        !root.join("input/data/train").exists(),
        "a pipe-mode channel has no directory"
    );
    let entries: Vec<String> = std::fs::read_dir(root.join("input/data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.is_empty(), "the pipes are removed: {entries:?}");
    let used = size_on_disk(&root);
    assert!(
        used * 20 < data.len() as u64,
        "the attempt holds {used} bytes of a {}-byte input",
        data.len()
    );
    // The pipe was read, into memory, by the built-in.
    let log = t.exec(["logs", &run, "by_pipe"]).success();
    assert!(
        log.stdout.contains("read channel train: 40000 rows"),
        "{log}"
    );
    // Another input mode is another step: not the cached one.
    t.write(
        "p.yaml",
        &file_and_pipe("  data: {path: data.csv, target: label}", "inputs.data", "")
            .replace("input_mode: pipe", "input_mode: file"),
    );
    let plan = t.exec(["plan", "p.yaml"]).success();
    assert!(plan.stdout.contains("input_mode"), "{plan}");
}

/// A user step that reads `train_0` to its end and then `train_1`, and
/// records what it saw.
const EPOCHS_PY: &str = r#"
import hashlib, json, os, stat, sys
base = os.environ["SAGEMAKER_BASE_DIR"]
data = os.path.join(base, "input", "data")
seen = {"channel_dir": os.path.exists(os.path.join(data, "train")), "epochs": []}
for epoch in (0, 1):
    p = os.path.join(data, "train_%d" % epoch)
    mode = os.stat(p).st_mode
    with open(p, "rb") as f:
        b = f.read()
    seen["epochs"].append({"fifo": stat.S_ISFIFO(mode), "len": len(b),
                           "sha256": hashlib.sha256(b).hexdigest()})
with open(os.path.join(base, "input", "config", "inputdataconfig.json")) as f:
    seen["mode"] = json.load(f)["train"]["TrainingInputMode"]
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
print("read two epochs")
"#;

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_user_script_reads_the_same_bytes_in_every_epoch() {
    let data = table(5_000, true);
    let t = Test::new()
        .file("data.csv", &data)
        .file("epochs.py", EPOCHS_PY)
        .file(
            "p.yaml",
            r#"
name: epochs
inputs:
  data: {path: data.csv, target: label}
steps:
  train:
    kind: train
    run: [python3, epochs.py]
    input_mode: pipe
    channels: {train: inputs.data}
"#,
        );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let model = s["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap();
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(model).join("seen.json")).unwrap())
            .unwrap();
    assert_eq!(seen["mode"], "Pipe", "{seen}");
    assert_eq!(seen["channel_dir"], false, "{seen}");
    let want = sha256_hex(data.as_bytes());
    for e in seen["epochs"].as_array().unwrap() {
        assert_eq!(e["fifo"], true, "{seen}");
        assert_eq!(e["len"], data.len(), "{seen}");
        assert_eq!(e["sha256"], want.as_str(), "{seen}");
    }
}

#[test]
fn a_step_that_never_opens_its_pipe_ends_when_its_process_does() {
    let t = Test::new().file("data.csv", &table(100, true)).file(
        "p.yaml",
        r#"
name: never-reads
inputs:
  data: {path: data.csv, target: label}
steps:
  train:
    kind: train
    run: echo not reading > $SM_MODEL_DIR/note.txt
    input_mode: pipe
    channels: {train: inputs.data}
"#,
    );
    let started = std::time::Instant::now();
    t.exec(["run", "p.yaml"]).success();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn libsvm_and_parquet_in_pipe_mode_train_the_models_files_do() {
    let data = table(3_000, false);
    let t = Test::new().file("data.libsvm", &as_libsvm(&data)).file(
        "p.yaml",
        &file_and_pipe(
            "  data: {path: data.libsvm, format: libsvm}",
            "inputs.data",
            "",
        ),
    );
    same_model_both_ways(&t);

    let t = Test::new().file(
        "p.yaml",
        &file_and_pipe(
            "  data: {path: data.parquet, target: label}",
            "inputs.data",
            "",
        ),
    );
    write_parquet(&t.path().join("data.parquet"), &data);
    same_model_both_ways(&t);
}

#[test]
fn headerless_csv_parts_stream_as_one_data_set() {
    let data = table(3_000, false);
    let lines: Vec<&str> = data.lines().collect();
    // The middle part does not end with a line break: the stream gets one.
    let t = Test::new()
        .file("parts/part-0.csv", &(lines[..1000].join("\n") + "\n"))
        .file("parts/part-1.csv", &lines[1000..2000].join("\n"))
        .file("parts/part-2.csv", &(lines[2000..].join("\n") + "\n"))
        .file("parts/_SUCCESS", "")
        .file(
            "p.yaml",
            &file_and_pipe(
                "  data: {path: parts, format: csv, header: false, label_size: 1}",
                "inputs.data",
                "",
            ),
        );
    same_model_both_ways(&t);
}

#[test]
fn csv_parts_with_headers_cannot_be_one_stream() {
    let data = table(200, false);
    let lines: Vec<&str> = data.lines().collect();
    let header = "label,x0,x1,x2,x3,x4\n";
    let t = Test::new()
        .file(
            "parts/a.csv",
            &format!("{header}{}\n", lines[..100].join("\n")),
        )
        .file(
            "parts/b.csv",
            &format!("{header}{}\n", lines[100..].join("\n")),
        )
        .file(
            "p.yaml",
            r#"
name: headers
inputs:
  data: {path: parts, target: label}
steps:
  train:
    kind: train
    algorithm: gbdt
    input_mode: pipe
    channels: {train: inputs.data}
"#,
        );
    let out = t.exec(["run", "p.yaml"]).code(2);
    for needle in [
        "channel `train` of step `train` is in pipe mode but has 2 parts (a.csv, b.csv)",
        "CSV with a header line",
        "input_mode: file",
    ] {
        assert!(out.stderr.contains(needle), "no {needle:?}:\n{out}");
    }
    // The same data as files is fine.
    t.write(
        "p.yaml",
        &t.read("p.yaml")
            .replace("input_mode: pipe", "input_mode: file"),
    );
    t.exec(["run", "p.yaml"]).success();
}

#[test]
fn a_bad_cell_in_a_stream_is_located() {
    let mut data = table(50, true);
    data.push_str("1,0.5,n/a?,0.1,0.2,0.3\n");
    let t = Test::new().file("data.csv", &data).file(
        "p.yaml",
        r#"
name: bad-cell
inputs:
  data: {path: data.csv, target: label}
steps:
  train:
    kind: train
    algorithm: gbdt
    input_mode: pipe
    channels: {train: inputs.data}
"#,
    );
    let out = t.exec(["run", "p.yaml"]).code(2);
    assert!(
        out.stderr.contains(
            "channel `train` in pipe mode: train_0:52:3: column `x1`: `n/a?` is not a number"
        ),
        "{out}"
    );
}

#[test]
fn input_modes_are_checked_where_they_are_written() {
    let t = Test::new().file("data.csv", "label,x\n1,2\n").file(
        "p.yaml",
        r#"
name: bad-mode
inputs:
  data: {path: data.csv, target: label}
steps:
  train:
    kind: train
    algorithm: gbdt
    channels: {train: {data: inputs.data, input_mode: pipes}}
"#,
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:9:55")
        .stderr_contains("unknown input mode `pipes`")
        .stderr_contains("`file`")
        .stderr_contains("`pipe`");
    t.write(
        "p.yaml",
        r#"
name: bad-mode
inputs:
  data: {path: data.csv, target: label}
steps:
  train:
    kind: train
    run: [python3, t.py]
    input_mode: pipe
    channels: {train: inputs.data, train_1: inputs.data}
"#,
    );
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:9:17")
        .stderr_contains("they would take the place of channel `train_1`");
    t.write(
        "p.yaml",
        r#"
name: bad-mode
inputs:
  data: {path: data.csv, target: label}
steps:
  train:
    kind: command
    run: [python3, t.py]
    input_mode: pipe
    inputs: {train: inputs.data}
"#,
    );
    t.exec(["validate", "p.yaml"]).invalid_at("p.yaml:9:5");
}

#[test]
fn each_node_streams_its_own_share() {
    let data = table(4_000, false);
    let lines: Vec<&str> = data.lines().collect();
    let mut t = Test::new();
    for (i, chunk) in lines.chunks(1000).enumerate() {
        t = t.file(&format!("parts/part-{i}.csv"), &(chunk.join("\n") + "\n"));
    }
    let t = t.file(
        "p.yaml",
        &file_and_pipe(
            "  data: {path: parts, format: csv, header: false, label_size: 1}",
            "{data: inputs.data, distribution: sharded_by_key}",
            "    resources: {nodes: 2}",
        ),
    );
    let s = same_model_both_ways(&t);
    let run = run_id(&s);
    let worker = t
        .workspace()
        .join("runs")
        .join(&run)
        .join("steps/by_pipe/1.nodes/algo-2");
    assert_eq!(input_mode_in_config(&worker, "train"), "Pipe");
    let log = t.exec(["logs", &run, "by_pipe"]).success();
    assert!(
        log.stdout
            .contains("[algo-2] read channel train: 2000 rows"),
        "{log}"
    );
}

#[test]
fn docker_feeds_pipes_to_the_containers_user() {
    if !crate::docker::docker("docker_feeds_pipes_to_the_containers_user") {
        return;
    }
    let data = table(2_000, true);
    // A built-in in the runtime image trains what a local process trains from files.
    let t = Test::new().file("data.csv", &data).file(
        "p.yaml",
        &file_and_pipe("  data: {path: data.csv, target: label}", "inputs.data", "").replacen(
            "    input_mode: pipe\n",
            "    input_mode: pipe\n    executor: docker\n",
            1,
        ),
    );
    same_model_both_ways(&t);

    // The user's own image reads two epochs as its (non-root) user.
    let t = Test::new()
        .file("parts/part-0.csv", "1,2\n3,4\n")
        .file("parts/part-1.csv", "5,6\n")
        .file(
            "p.yaml",
            &format!(
                r#"
name: user-pipe
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    image: {image}
    executor: docker
    input_mode: pipe
    channels: {{train: inputs.parts}}
    hyperparameters: {{mode: pipe}}
"#,
                image = crate::docker::user_image()
            ),
        );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let model = PathBuf::from(
        s["steps"]["train"]["outputs"]["model"]["path"]
            .as_str()
            .unwrap(),
    );
    for e in ["epoch0", "epoch1"] {
        assert_eq!(
            std::fs::read_to_string(model.join(e)).unwrap(),
            "1,2\n3,4\n5,6\n",
            "{e}"
        );
    }
    let listing = std::fs::read_to_string(model.join("pipes.txt")).unwrap();
    assert!(
        listing.contains("train_0") && listing.starts_with('p'),
        "{listing}"
    );
}
