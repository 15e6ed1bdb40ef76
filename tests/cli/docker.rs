//! The docker executor against the real Docker Engine: built-in steps in the
//! runtime image, a user's image built here from a local context (busybox,
//! from Debian's busybox-static), limits, isolation, failures, out-of-memory,
//! multi-node steps, a node killed mid-job, and that nothing is left behind.
//!
//! Without a Docker Engine these tests say so and skip (they fail under CI,
//! which must have one).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Test, step_status};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");
/// The user image the tests build, tagged by its script.
pub(crate) fn user_image() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    USER_TRAIN.hash(&mut h);
    format!("pipeline-test/user-train:{:016x}", h.finish())
}

/// Whether the tests can use a Docker Engine (and busybox for the user
/// image); says so when they cannot, and fails under CI.
pub(crate) fn docker(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(prepare);
    match ready {
        Ok(()) => true,
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{test} needs {why}; CI must provide it");
            }
            // Straight to the terminal: the test harness would hide a print.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {why}");
            false
        }
    }
}

/// Checks the engine, then builds the runtime image and the user image once.
fn prepare() -> Result<(), String> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    if !info.is_ok_and(|o| o.status.success()) {
        return Err("a running Docker Engine (`docker info` fails)".into());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox (Debian's busybox-static) for the user image".into());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["image", "build"])
        .output()
        .map_err(|e| format!("pipeline image build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "a runtime image; `pipeline image build` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let ctx = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(busybox, ctx.path().join("busybox")).map_err(|e| e.to_string())?;
    std::fs::write(ctx.path().join("train"), USER_TRAIN).map_err(|e| e.to_string())?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY train /usr/local/bin/train\n\
         RUN [\"/bin/chmod\", \"755\", \"/usr/local/bin/train\"]\n\
         ENV PATH=/usr/local/bin:/bin\n",
    )
    .map_err(|e| e.to_string())?;
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &user_image()])
        .arg(ctx.path())
        .output()
        .map_err(|e| format!("docker build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the user image; docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The user's `train`: records what it sees of the contract into its model,
/// then does what `SM_HP_MODE` says.
const USER_TRAIN: &str = r#"#!/bin/sh
echo "user train on $(hostname) as uid $(id -u)"
m=/opt/ml/model
id -u > $m/uid.txt
ls /sys/class/net > $m/net.txt
grep -w "$(hostname)" /etc/hosts > $m/hosts.txt || true
cp /opt/ml/input/config/resourceconfig.json $m/
env | grep -E '^(SM_|AWS_BATCH|SAGEMAKER_PROGRAM|PIPELINE_COORD)' | sort > $m/env.txt
ls $SM_CHANNEL_TRAIN > $m/files.txt
cat $SM_CHANNEL_TRAIN/* | wc -l > $m/lines.txt
if touch $SM_CHANNEL_TRAIN/written 2>/dev/null; then echo yes; else echo no; fi > $m/channel_writable.txt
case "$SM_HP_MODE" in
  fail) echo "bad data: column x is empty" > /opt/ml/output/failure; exit 3 ;;
  oom) echo "eating memory"; set -o pipefail; cat /dev/zero | tail -n 1 || exit $? ;;
  sleep) echo "sleeping"; sleep 120 ;;
  pipe) d=/opt/ml/input/data; ls -l $d/train_0 > $m/pipes.txt; cat $d/train_0 > $m/epoch0; cat $d/train_1 > $m/epoch1 ;;
esac
echo done
"#;

fn user_step(extra: &str, mode: &str) -> String {
    format!(
        r#"
name: user-image
defaults: {{executor: docker}}
inputs:
  parts: {{path: parts, format: csv, header: false}}
steps:
  train:
    kind: train
    image: {image}
    program: train.py
    channels: {{train: inputs.parts}}
    hyperparameters: {{mode: {mode}}}
{extra}
"#,
        image = user_image()
    )
}

/// Three part files of 2, 3 and 4 lines.
fn with_parts(t: Test) -> Test {
    t.file("parts/part-0.csv", "1,2\n3,4\n")
        .file("parts/part-1.csv", "5,6\n7,8\n9,10\n")
        .file("parts/part-2.csv", "1,1\n2,2\n3,3\n4,4\n")
}

fn run_id(summary: &Value) -> String {
    summary["run_id"].as_str().unwrap_or_default().to_string()
}

/// Containers and networks of a run still on the engine.
fn leftovers(run_id: &str) -> Vec<String> {
    let filter = format!("name=pipeline-{run_id}");
    let mut left = Vec::new();
    for args in [
        vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        vec![
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}}",
        ],
    ] {
        let out = Command::new("docker").args(&args).output().unwrap();
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    left
}

/// Starts `pipeline run p.yaml --json` in the sandbox, its output piped.
fn spawn_run(t: &Test) -> std::process::Child {
    t.command(["run", "p.yaml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (at most `limit`) until the `train` step's log of the sandbox's run
/// satisfies `ready`; returns the run's id.
fn wait_for_log(t: &Test, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < limit, "the step never got going");
        let found = std::fs::read_dir(t.workspace().join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .find(|r| {
                std::fs::read_to_string(r.path().join("logs/train.log")).is_ok_and(|l| ready(&l))
            });
        if let Some(r) = found {
            return r.file_name().to_string_lossy().into_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Kills the container of the `train` step's node `host` from outside;
/// returns the run's output and how long it took to end after the kill.
fn kill_node(
    child: std::process::Child,
    run: &str,
    host: &str,
) -> (std::process::Output, Duration) {
    let victim = format!("pipeline-{run}-train-1-{host}");
    let killed_at = Instant::now();
    assert!(
        Command::new("docker")
            .args(["kill", &victim])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    (out, killed_at.elapsed())
}

fn model_file(t: &Test, summary: &Value, file: &str) -> String {
    let dir = summary["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap_or_default();
    std::fs::read_to_string(Path::new(dir).join(file))
        .unwrap_or_else(|e| panic!("{file} in {dir}: {e}\n{}", t.path().display()))
}

#[test]
fn builtin_steps_on_docker_give_the_same_model_as_local() {
    if !docker("builtin_steps_on_docker_give_the_same_model_as_local") {
        return;
    }
    let p = r#"
name: parity
inputs:
  penguins: {path: data/penguins.csv, format: csv, header: true, target: species}
steps:
  split:
    kind: split
    input: inputs.penguins
    strategy: {type: shuffle, stratify: species}
    fractions: {train: 0.7, validation: 0.3}
    seed: 7
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train, validation: split.validation}
    hyperparameters: {objective: "multi:softprob", num_round: 20, max_depth: 3}
    resources: {cpus: 1, memory: 512MiB}
  register:
    kind: register
    model: train.model
    group: parity
"#;
    let t = Test::new()
        .file("data/penguins.csv", PENGUINS)
        .file("p.yaml", p);
    let out = t
        .exec(["run", "p.yaml", "--executor", "docker", "--json"])
        .success();
    let on_docker = out.summary();
    assert!(
        out.stderr.is_empty() || !out.stderr.contains("panicked"),
        "{out}"
    );
    let logs = t.exec(["logs", &run_id(&on_docker), "train"]).success();
    assert!(logs.stdout.contains("trained gbdt"), "{logs}");
    let local = t
        .exec([
            "run",
            "p.yaml",
            "--executor",
            "local",
            "--no-cache",
            "--json",
        ])
        .success()
        .summary();
    for (step, output) in [
        ("split", "train"),
        ("split", "manifest"),
        ("train", "model"),
    ] {
        assert_eq!(
            on_docker["steps"][step]["outputs"][output]["digest"],
            local["steps"][step]["outputs"][output]["digest"],
            "{step}.{output} differs between docker and local"
        );
    }
    assert_eq!(leftovers(&run_id(&on_docker)), Vec::<String>::new());
    // The register step wrote to this workspace's registry, not a container's.
    let versions = t.exec(["registry", "list", "parity"]).success();
    assert!(
        versions.stdout.contains("PendingManualApproval"),
        "{versions}"
    );
}

#[test]
fn a_users_image_runs_under_the_container_contract() {
    if !docker("a_users_image_runs_under_the_container_contract") {
        return;
    }
    let extra = "    resources: {cpus: 1, memory: 128MiB}\n    network: none\n";
    let t = with_parts(Test::new()).file("p.yaml", &user_step(extra, "ok"));
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    assert_ne!(model_file(&t, &s, "uid.txt").trim(), "0", "runs as root");
    assert_eq!(model_file(&t, &s, "net.txt").trim(), "lo", "network: none");
    // With no network the node still finds its own name, as SageMaker code expects.
    assert!(
        model_file(&t, &s, "hosts.txt").contains("algo-1"),
        "algo-1 is not in the container's hosts file"
    );
    assert_eq!(model_file(&t, &s, "lines.txt").trim(), "9");
    assert_eq!(model_file(&t, &s, "channel_writable.txt").trim(), "no");
    let env = model_file(&t, &s, "env.txt");
    for needle in [
        "SM_CHANNEL_TRAIN=/opt/ml/input/data/train",
        "SM_MODEL_DIR=/opt/ml/model",
        "SM_HP_MODE=ok",
        "SM_CURRENT_HOST=algo-1",
        "SM_NUM_CPUS=1",
        "SAGEMAKER_PROGRAM=train.py",
    ] {
        assert!(env.contains(needle), "{needle} missing from\n{env}");
    }
    assert!(!env.contains("AWS_BATCH_JOB_NODE_INDEX"), "{env}");
    let lines: Vec<Value> = out
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "step_log")
        .collect();
    assert!(
        lines.iter().any(|e| e["line"]
            .as_str()
            .unwrap_or("")
            .contains("user train on algo-1")),
        "no live log line in {out}"
    );
    let logs = t.exec(["logs", &run_id(&s), "train"]).success();
    assert!(
        logs.stdout.contains("user train on algo-1 as uid"),
        "{logs}"
    );
    assert_eq!(leftovers(&run_id(&s)), Vec::<String>::new());
}

#[test]
fn a_failing_container_gives_its_failure_file_and_an_oom_kill_is_named() {
    if !docker("a_failing_container_gives_its_failure_file_and_an_oom_kill_is_named") {
        return;
    }
    let t = with_parts(Test::new()).file("p.yaml", &user_step("", "fail"));
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let s = out.summary();
    assert_eq!(step_status(&s, "train"), "failed");
    assert!(
        out.stdout.contains("bad data: column x is empty"),
        "the failure file is the reason: {out}"
    );
    assert_eq!(leftovers(&run_id(&s)), Vec::<String>::new());

    let extra =
        "    resources: {memory: 32MiB}\n    retry: {attempts: 2, backoff: 0s, on: [exit-code]}\n";
    let t = with_parts(Test::new()).file("p.yaml", &user_step(extra, "oom"));
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    assert!(out.stdout.contains("ran out of memory"), "{out}");
    assert!(out.stdout.contains("32 MiB"), "{out}");
    // Out of memory is not an exit-code failure: `on: [exit-code]` does not retry it.
    assert!(!out.stdout.contains("step_retrying"), "{out}");
    assert_eq!(leftovers(&run_id(&out.summary())), Vec::<String>::new());
}

#[test]
fn three_nodes_get_the_batch_variables_hosts_and_their_shards() {
    if !docker("three_nodes_get_the_batch_variables_hosts_and_their_shards") {
        return;
    }
    let p = user_step("    resources: {nodes: 3}\n", "ok").replace(
        "channels: {train: inputs.parts}",
        "channels: {train: {data: inputs.parts, distribution: sharded_by_key}}",
    );
    let t = with_parts(Test::new()).file("p.yaml", &p);
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    let main_env = model_file(&t, &s, "env.txt");
    for needle in [
        "AWS_BATCH_JOB_NODE_INDEX=0",
        "AWS_BATCH_JOB_NUM_NODES=3",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX=0",
        "SM_HOSTS=[\"algo-1\",\"algo-2\",\"algo-3\"]",
    ] {
        assert!(
            main_env.contains(needle),
            "{needle} missing from\n{main_env}"
        );
    }
    assert!(
        !main_env.contains("MAIN_NODE_PRIVATE_IPV4_ADDRESS"),
        "{main_env}"
    );
    assert_eq!(model_file(&t, &s, "files.txt").trim(), "part-0.csv");
    let run = t
        .workspace()
        .join("runs")
        .join(run_id(&s))
        .join("steps/train/1.nodes");
    for (i, (file, lines)) in [("part-1.csv", "3"), ("part-2.csv", "4")]
        .iter()
        .enumerate()
    {
        let host = format!("algo-{}", i + 2);
        let m = run.join(&host).join("model");
        let read = |f: &str| std::fs::read_to_string(m.join(f)).unwrap_or_default();
        assert_eq!(read("files.txt").trim(), *file, "{host}");
        assert_eq!(read("lines.txt").trim(), *lines, "{host}");
        let env = read("env.txt");
        assert!(
            env.contains(&format!("AWS_BATCH_JOB_NODE_INDEX={}", i + 1)),
            "{env}"
        );
        assert!(
            env.contains("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS="),
            "{env}"
        );
        let rc: Value = serde_json::from_str(&read("resourceconfig.json")).unwrap();
        assert_eq!(rc["current_host"], host.as_str());
        assert_eq!(rc["hosts"].as_array().map(Vec::len), Some(3));
    }
    let logs = t.exec(["logs", &run_id(&s), "train"]).success();
    assert!(
        logs.stdout.contains("[algo-3] user train on algo-3"),
        "{logs}"
    );
    assert_eq!(leftovers(&run_id(&s)), Vec::<String>::new());
}

#[test]
fn a_node_killed_mid_job_fails_the_step_within_30s_naming_it() {
    if !docker("a_node_killed_mid_job_fails_the_step_within_30s_naming_it") {
        return;
    }
    let t =
        with_parts(Test::new()).file("p.yaml", &user_step("    resources: {nodes: 3}\n", "sleep"));
    let child = spawn_run(&t);
    // Once every node is in its job, kill the second.
    let run = wait_for_log(&t, Duration::from_secs(60), |l| {
        (1..=3).all(|k| l.contains(&format!("[algo-{k}] sleeping")))
    });
    let (out, took) = kill_node(child, &run, "algo-2");
    assert!(
        took < Duration::from_secs(30),
        "the step took {took:?} to fail"
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(step_status(&summary, "train"), "failed");
    assert!(
        stdout.contains("node algo-2 (index 1): killed by SIGKILL"),
        "{stdout}"
    );
    assert_eq!(leftovers(&run_id(&summary)), Vec::<String>::new());
}

#[test]
fn a_timeout_or_ctrl_c_leaves_no_container_behind() {
    if !docker("a_timeout_or_ctrl_c_leaves_no_container_behind") {
        return;
    }
    let t = with_parts(Test::new()).file(
        "p.yaml",
        &user_step("    timeout: 2s\n    resources: {nodes: 2}\n", "sleep"),
    );
    let t0 = Instant::now();
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    assert!(out.stdout.contains("timed out after 2s"), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
    assert_eq!(leftovers(&run_id(&out.summary())), Vec::<String>::new());

    let t = with_parts(Test::new()).file("p.yaml", &user_step("", "sleep"));
    let child = spawn_run(&t);
    let run = wait_for_log(&t, Duration::from_secs(60), |l| l.contains("sleeping"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(leftovers(&run), Vec::<String>::new());
}

#[test]
fn a_missing_user_image_is_a_clear_error() {
    if !docker("a_missing_user_image_is_a_clear_error") {
        return;
    }
    let p = user_step("", "ok").replace(&user_image(), "no-such/image:1");
    let t = with_parts(Test::new()).file("p.yaml", &p);
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    assert!(
        out.stdout
            .contains("`no-such/image:1` is not on this Docker Engine"),
        "{out}"
    );
}

#[test]
fn three_docker_nodes_train_the_same_models_as_one() {
    if !docker("three_docker_nodes_train_the_same_models_as_one") {
        return;
    }
    crate::builtins::check_data_parallel("docker");
}

#[test]
fn a_builtin_node_killed_mid_training_fails_the_step_within_30s_naming_it() {
    if !docker("a_builtin_node_killed_mid_training_fails_the_step_within_30s_naming_it") {
        return;
    }
    let p = r#"
name: dp-kill
defaults: {executor: docker}
inputs:
  d: {path: data.csv, format: csv, header: true, target: y}
steps:
  train:
    kind: train
    algorithm: gbdt
    channels: {train: inputs.d, validation: inputs.d}
    hyperparameters: {objective: "binary:logistic", num_round: 100000, max_depth: 6, eta: 0.001}
    resources: {nodes: 3}
"#;
    let t = Test::new()
        .file("data.csv", &crate::builtins::dp_data(3000))
        .file("p.yaml", p);
    let child = spawn_run(&t);
    // Once the nodes are boosting, kill the second.
    let run = wait_for_log(&t, Duration::from_secs(90), |l| l.contains("[algo-1] [20]"));
    let (out, took) = kill_node(child, &run, "algo-2");
    assert!(
        took < Duration::from_secs(30),
        "the step took {took:?} to fail"
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("node algo-2 (index 1): killed by SIGKILL"),
        "{stdout}"
    );
    let log = std::fs::read_to_string(t.workspace().join("runs").join(&run).join("logs/train.log"))
        .unwrap();
    assert!(
        log.lines()
            .any(|l| !l.starts_with("[algo-2]") && l.contains("algo-2 (index 1)")),
        "the other nodes name the lost one:\n{log}"
    );
    assert_eq!(leftovers(&run), Vec::<String>::new());
}
