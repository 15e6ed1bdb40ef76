//! Trust in the engine: cache keys that are never stale, bounded logs, big
//! DAGs, and output that survives a closed pipe.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Test, step_cached, step_status};

/// A split reading an input, and a command reading the split's rows and the input.
const READS_AN_INPUT: &str = r#"
name: reads
inputs:
  data: {path: data.csv, target: a}
steps:
  split:
    kind: split
    input: inputs.data
    strategy: {type: shuffle}
    fractions: {train: 0.5, test: 0.5}
  use:
    kind: command
    run: echo using > $PIPELINE_OUTPUT_OUT/x
    inputs: {rows: split.train, raw: inputs.data}
    outputs: [out]
"#;

const DATA: &str = "a,b\n1,2\n3,4\n5,6\n7,8\n";

fn run_summary(t: &Test, file: &str) -> serde_json::Value {
    t.exec(["run", file, "--json"]).success().summary()
}

#[test]
fn changing_an_inputs_target_reruns_every_step_that_reads_it() {
    let t = Test::new()
        .file("p.yaml", READS_AN_INPUT)
        .file("data.csv", DATA);
    run_summary(&t, "p.yaml");
    let s = run_summary(&t, "p.yaml");
    assert!(step_cached(&s, "split") && step_cached(&s, "use"), "{s}");

    t.write("p.yaml", &READS_AN_INPUT.replace("target: a", "target: b"));
    let plan = t.exec(["plan", "p.yaml"]).success();
    let line = |step: &str| {
        plan.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(step))
            .unwrap_or_else(|| panic!("no line for {step}\n{plan}"))
            .to_string()
    };
    let split = line("split");
    assert!(
        split.contains(" run ")
            && split.contains("how input `input` is read: field `target` changed (a -> b)"),
        "{split}"
    );
    assert!(line("use").contains(" run "), "{plan}");
    let s = run_summary(&t, "p.yaml");
    assert!(!step_cached(&s, "split") && !step_cached(&s, "use"), "{s}");
    // Every other field of how the input is read counts the same way.
    for reading in [
        "target: b, missing_values: [\"?\"]",
        "target: b, missing_values: [\"?\"], id_columns: [a]",
    ] {
        t.write("p.yaml", &READS_AN_INPUT.replace("target: a", reading));
        let s = run_summary(&t, "p.yaml");
        assert!(
            !step_cached(&s, "split") && !step_cached(&s, "use"),
            "{reading}: {s}"
        );
    }
}

#[test]
fn editing_a_program_file_beside_the_pipeline_reruns_its_step() {
    let pipeline = r#"
name: prog
steps:
  one:
    kind: command
    run: [sh, tools/make.sh, "{{ outputs.out }}"]
    outputs: [out]
  two:
    kind: command
    run: sh -c 'sh helper.sh'
  other:
    kind: command
    run: [echo, tools]
"#;
    let t = Test::new()
        .file("p.yaml", pipeline)
        .file("tools/make.sh", "echo one > \"$1/x\"\n")
        .file("helper.sh", "echo helper\n");
    run_summary(&t, "p.yaml");
    let s = run_summary(&t, "p.yaml");
    assert!(step_cached(&s, "one") && step_cached(&s, "two"), "{s}");

    t.write("tools/make.sh", "echo changed > \"$1/x\"\n");
    t.write("helper.sh", "echo helper changed\n");
    let plan = t.exec(["plan", "p.yaml"]).success();
    assert!(
        plan.stdout.contains("program file `tools/make.sh` changed"),
        "{plan}"
    );
    assert!(
        plan.stdout.contains("program file `helper.sh` changed"),
        "{plan}"
    );
    // `echo tools` names the directory: it is hashed whole, so it changed too.
    assert!(
        plan.stdout.contains("program file `tools` changed"),
        "{plan}"
    );
    let s = run_summary(&t, "p.yaml");
    for step in ["one", "two", "other"] {
        assert!(!step_cached(&s, step), "{step}: {s}");
    }
    let out = s["steps"]["one"]["outputs"]["out"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(out).join("x")).unwrap(),
        "changed\n"
    );
}

/// The key of each step, as `plan --json` shows it.
fn plan_keys(t: &Test, file: &str) -> Vec<(String, String)> {
    let out = t.exec(["plan", file, "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["step"].as_str().unwrap().to_string(),
                l["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_user_image_enters_the_key_by_its_id_not_its_tag() {
    let docker_ok = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_ok {
        if std::env::var_os("CI").is_some() {
            panic!(
                "a_user_image_enters_the_key_by_its_id_not_its_tag needs a Docker Engine; CI must provide it"
            );
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_user_image_enters_the_key_by_its_id_not_its_tag: needs a running Docker Engine"
        );
        return;
    }
    let tag = format!("pipeline-test/trust-image:{}", std::process::id());
    let build = |content: &str| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("v"), content).unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY v /v\n").unwrap();
        let out = std::process::Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(ctx.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let pipeline = format!(
        "name: img\nsteps:\n  c:\n    kind: command\n    executor: docker\n    image: {tag}\n    run: [/v]\n  local:\n    kind: command\n    run: [\"true\"]\n"
    );
    let t = Test::new().file("p.yaml", &pipeline);
    build("one");
    let first = plan_keys(&t, "p.yaml");
    assert_eq!(first, plan_keys(&t, "p.yaml"), "a key is stable");
    build("two");
    let second = plan_keys(&t, "p.yaml");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &tag])
        .output();
    let gone = plan_keys(&t, "p.yaml");
    assert_ne!(
        first[0], second[0],
        "the same tag on another image must change the key"
    );
    assert_ne!(
        second[0], gone[0],
        "a missing image must not match a stored key"
    );
    assert_eq!(first[1], second[1], "a local step has no image in its key");
}

/// Starts `pipeline ARGS` with its stdout closed before it prints anything,
/// as `| head -0` would, and returns its exit code and stderr.
fn with_closed_stdout(t: &Test, args: &[&str]) -> (Option<i32>, String) {
    let mut child = t
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn output_into_a_closed_pipe_never_panics() {
    let t = Test::new()
        .file("p.yaml", READS_AN_INPUT)
        .file("data.csv", DATA);
    run_summary(&t, "p.yaml");
    let id = t.exec(["runs", "list", "--json"]).success();
    let runs: serde_json::Value = serde_json::from_str(&id.stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["plan", "p.yaml", "--json"],
        vec!["plan", "p.yaml"],
        vec!["runs", "list"],
        vec!["runs", "list", "--json"],
        vec!["runs", "show", &id],
        vec!["logs", &id],
        vec!["inspect", "data.csv"],
        vec!["graph", "p.yaml"],
        vec!["validate", "p.yaml"],
    ] {
        let (code, err) = with_closed_stdout(&t, &args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn runs_list_with_no_runs_says_so_and_succeeds() {
    let t = Test::new();
    t.exec(["runs", "list"])
        .success()
        .stdout_contains("no runs yet");
    let out = t.exec(["runs", "list", "--json"]).success();
    assert_eq!(out.stdout.trim(), "[]");
}

#[test]
fn logs_come_in_run_order() {
    // File order and alphabetical order are both different from run order.
    let t = Test::new().file(
        "p.yaml",
        r#"
name: order
steps:
  alpha:
    kind: command
    run: echo from alpha
    after: [zulu]
  zulu:
    kind: command
    run: echo from zulu
    after: [mike]
  mike:
    kind: command
    run: echo from mike
"#,
    );
    let id = run_summary(&t, "p.yaml")["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = t.exec(["logs", &id]).success();
    let heads: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("==> "))
        .collect();
    assert_eq!(
        heads,
        ["==> mike <==", "==> zulu <==", "==> alpha <=="],
        "{out}"
    );
}

#[test]
fn a_manual_approval_runs_the_registering_pipelines_hook() {
    let t = Test::new().file(
        "data/penguins.csv",
        include_str!("../../pipelines/data/penguins.csv"),
    );
    let text = include_str!("../../pipelines/train.yaml")
        .replace(
            "approval: {auto_approve_if: \"accuracy >= 0.99\"}",
            "approval: manual",
        )
        .replace(
            "steps:\n",
            "on_approved: [\"echo $PIPELINE_REGISTRY_REF $PIPELINE_REGISTRY_STATUS >> hooks.log\"]\n\nsteps:\n",
        );
    t.write("train.yaml", &text);
    let s = run_summary(&t, "train.yaml");
    assert_eq!(step_status(&s, "register"), "succeeded", "{s}");
    assert!(
        !t.path().join("hooks.log").exists(),
        "nothing is approved yet"
    );
    t.exec(["registry", "approve", "penguins-species", "1"])
        .success();
    assert_eq!(
        t.read("hooks.log").trim(),
        "registry://penguins-species@1 Approved"
    );
}

/// The engine's peak resident memory in KiB, from `/proc/PID/status` as it runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `p.yaml` watching the engine's peak memory; returns (seconds, KiB).
fn run_measured(t: &Test) -> (f64, u64) {
    let start = Instant::now();
    let mut child = t
        .command(["run", "p.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(k) = peak_rss_kib(child.id()) {
            peak = peak.max(k);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the run failed: {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not finish in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (start.elapsed().as_secs_f64(), peak)
}

#[test]
fn a_200_mb_line_and_many_small_lines_take_bounded_time_and_memory() {
    let t = Test::new().file(
        "p.yaml",
        r#"
name: loud
steps:
  one_line:
    kind: command
    run: head -c 200000000 /dev/zero | tr '\0' x
  many_lines:
    kind: command
    run: yes 'a line of forty characters, more or less' | head -n 2000000
  progress:
    kind: command
    run: for i in 1 2 3; do printf ' %s0%%\r' $i; done; echo ' 100%'
"#,
    );
    let (secs, kib) = run_measured(&t);
    let _ = writeln!(
        std::io::stderr(),
        "a 200 MB line and 2,000,000 short lines: {secs:.1} s, engine peak RSS {} MiB",
        kib / 1024
    );
    assert!(kib < 100 * 1024, "the engine grew to {} MiB", kib / 1024);
    let log = |step: &str| {
        let dir = t.workspace().join("runs");
        let run = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::read_to_string(run.join("logs").join(format!("{step}.log")))
            .or_else(|_| std::fs::read_to_string(run.join(format!("{step}.log"))))
            .unwrap_or_else(|e| panic!("log of {step} in {}: {e}", run.display()))
    };
    let one = log("one_line");
    let line = one
        .lines()
        .find(|l| l.starts_with("xxx"))
        .expect("the cut line");
    assert!(
        line.ends_with(&format!(
            "[… line cut: {} more bytes dropped; lines are kept up to 64 KiB]",
            200_000_000 - 64 * 1024
        )),
        "{}",
        &line[line.len().saturating_sub(120)..]
    );
    assert_eq!(
        log("many_lines")
            .lines()
            .filter(|l| l.starts_with("a line"))
            .count(),
        2_000_000,
        "the log keeps every line"
    );
    // The log keeps a progress line as a terminal shows it: its last segment.
    let p = log("progress");
    assert!(p.lines().any(|l| l == " 100%"), "{p}");
    assert!(!p.contains("30%"), "{p}");
}
