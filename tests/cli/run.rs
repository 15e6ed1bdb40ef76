//! `pipeline run`: outputs, the JSON summary, caching, failures, retries,
//! timeouts, fail-fast and `when:`.

use std::time::{Duration, Instant};

use crate::harness::{Test, step_cached, step_status};

/// Three command steps: `prep` writes a file, `train` reads it and depends on
/// a param, `report` reads `train`'s output. Each appends to `ran.log` so the
/// tests can count what really ran.
const CHAIN: &str = r#"
name: chain
params:
  depth: {type: int, default: 3}
steps:
  prep:
    kind: command
    run: echo prep >> ran.log && echo rows > $PIPELINE_OUTPUT_DATA/rows.txt
    outputs: [data]
  train:
    kind: command
    run: echo train >> ran.log && cat {{ inputs.rows }}/rows.txt > {{ outputs.model }}/model.txt && echo "depth={{ params.depth }}" >> {{ outputs.model }}/model.txt
    inputs: {rows: prep.data}
    outputs: [model]
  report:
    kind: command
    run: echo report >> ran.log && cp $SM_CHANNEL_MODEL/model.txt $PIPELINE_OUTPUT_SUMMARY/
    inputs: {model: train.model}
    outputs: [summary]
"#;

fn ran(t: &Test, step: &str) -> usize {
    t.read("ran.log").lines().filter(|l| *l == step).count()
}

#[test]
fn runs_every_step_and_prints_the_summary() {
    let t = Test::new().file("p.yaml", CHAIN);
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let events = out.json_lines();
    assert_eq!(events[0]["event"], "run_started", "{out}");
    let s = out.summary();
    let run_id = s["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(s["status"], "succeeded");
    for step in ["prep", "train", "report"] {
        assert_eq!(step_status(&s, step), "succeeded");
        assert!(!step_cached(&s, step));
        assert!(s["steps"][step]["duration_s"].as_f64().expect("duration_s") >= 0.0);
        assert_eq!(ran(&t, step), 1);
    }
    // Outputs are readable where the summary says, with a content digest.
    let summary = &s["steps"]["report"]["outputs"]["summary"];
    let path = summary["path"].as_str().expect("path");
    let text = std::fs::read_to_string(std::path::Path::new(path).join("model.txt"))
        .expect("the output is at its path");
    assert_eq!(text, "rows\ndepth=3\n");
    let digest = summary["digest"].as_str().expect("digest");
    assert!(
        digest.len() >= 32 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{digest}"
    );
    // The order of events respects the dependencies.
    let finished: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(finished, ["prep", "train", "report"]);
    // The run record agrees with the summary.
    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(v["summary"]["status"], "succeeded");
    assert_eq!(
        v["summary"]["steps"]["report"]["outputs"]["summary"]["digest"],
        digest
    );
}

#[test]
fn a_rerun_is_fully_cached() {
    let t = Test::new().file("p.yaml", CHAIN);
    t.exec(["run", "p.yaml"]).success();
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    for step in ["prep", "train", "report"] {
        assert_eq!(step_status(&s, step), "succeeded");
        assert!(step_cached(&s, step), "{step} ran again\n{out}");
        assert_eq!(ran(&t, step), 1, "{step} ran again");
    }
    // Cached outputs are still readable.
    let path = s["steps"]["report"]["outputs"]["summary"]["path"]
        .as_str()
        .unwrap();
    assert!(std::path::Path::new(path).join("model.txt").is_file());
    t.exec(["plan", "p.yaml"])
        .success()
        .stdout_contains("3 steps, 0 to run, 3 cached");
}

#[test]
fn a_changed_param_reruns_only_what_it_affects() {
    let t = Test::new().file("p.yaml", CHAIN);
    t.exec(["run", "p.yaml"]).success();
    // `plan` says what would run and which field changed.
    let plan = t.exec(["plan", "p.yaml", "--param", "depth=5"]).success();
    let line = |step: &str| {
        plan.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(step))
            .unwrap_or_else(|| panic!("no plan line for {step}\n{plan}"))
            .to_string()
    };
    assert!(line("prep").contains("cached"), "{plan}");
    assert!(line("train").contains(" run "), "{plan}");
    assert!(
        line("train").contains("field `run[2]` changed"),
        "the plan does not say which field of `train` changed\n{plan}"
    );
    assert!(line("report").contains(" run "), "{plan}");

    let out = t
        .exec(["run", "p.yaml", "--param", "depth=5", "--json"])
        .success();
    let s = out.summary();
    assert!(step_cached(&s, "prep"));
    assert!(!step_cached(&s, "train"));
    assert!(!step_cached(&s, "report"));
    assert_eq!(
        (ran(&t, "prep"), ran(&t, "train"), ran(&t, "report")),
        (1, 2, 2)
    );
}

#[test]

fn plan_shows_the_part_of_a_field_that_changed() {
    let t = Test::new().file("p.yaml", CHAIN);
    t.exec(["run", "p.yaml"]).success();
    let plan = t.exec(["plan", "p.yaml", "--param", "depth=5"]).success();
    let train = plan
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("train"))
        .unwrap_or_default()
        .to_string();
    assert!(
        train.contains("depth=3") && train.contains("depth=5"),
        "the plan hides what changed in `train`\n{plan}"
    );
}

#[test]
fn unchanged_output_keeps_downstream_cached() {
    // `train`'s output does not depend on the text of its command's echo, so
    // when only that changes, `report` reads the same digest and stays cached.
    let t = Test::new().file("p.yaml", CHAIN);
    t.exec(["run", "p.yaml"]).success();
    t.write("p.yaml", &CHAIN.replace("echo train >>", "echo train  >>"));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(!step_cached(&s, "train"));
    assert!(step_cached(&s, "report"), "{s}");
}

#[test]
fn a_lost_artifact_is_made_again() {
    let t = Test::new().file("p.yaml", CHAIN);
    let first = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let path = first["steps"]["train"]["outputs"]["model"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    // Stored artifacts may be read-only; make them removable first.
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w", &path])
        .status();
    std::fs::remove_dir_all(&path).expect("remove the stored model");
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(step_cached(&s, "prep"));
    assert!(
        !step_cached(&s, "train"),
        "a missing artifact counted as cached"
    );
    // Same content, same digest: what reads it stays cached.
    assert!(step_cached(&s, "report"));
    assert_eq!(
        s["steps"]["train"]["outputs"]["model"]["path"],
        path.as_str()
    );
    assert!(std::path::Path::new(&path).join("model.txt").is_file());
}

#[test]
fn cache_false_and_no_cache_always_run() {
    let yaml = CHAIN.replace(
        "  report:\n    kind: command\n",
        "  report:\n    kind: command\n    cache: false\n",
    );
    let t = Test::new().file("p.yaml", &yaml);
    t.exec(["run", "p.yaml"]).success();
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(step_cached(&s, "train"));
    assert!(!step_cached(&s, "report"));
    assert_eq!(ran(&t, "report"), 2);
    t.exec(["plan", "p.yaml"])
        .success()
        .stdout_contains("cache: false");

    let s = t
        .exec(["run", "p.yaml", "--no-cache", "--json"])
        .success()
        .summary();
    for step in ["prep", "train", "report"] {
        assert!(
            !step_cached(&s, step),
            "{step} was cached despite --no-cache"
        );
    }
    assert_eq!(
        (ran(&t, "prep"), ran(&t, "train"), ran(&t, "report")),
        (2, 2, 3)
    );
}

const FAILING: &str = r#"
name: failing
steps:
  first:
    kind: command
    run: echo ok > $PIPELINE_OUTPUT_OUT/ok.txt
    outputs: [out]
  broken:
    kind: command
    run: echo 'the labels column is empty' > $SAGEMAKER_BASE_DIR/output/failure; echo some log line; exit 3
    inputs: {x: first.out}
  later:
    kind: command
    run: echo later >> ran.log
    after: [broken]
"#;

#[test]
fn a_failing_step_keeps_earlier_artifacts_and_the_record() {
    let t = Test::new().file("p.yaml", FAILING);
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let s = out.summary();
    let run_id = s["run_id"].as_str().unwrap().to_string();
    assert_eq!(s["status"], "failed");
    assert_eq!(step_status(&s, "first"), "succeeded");
    assert_eq!(step_status(&s, "broken"), "failed");
    assert_eq!(
        s["steps"]["broken"]["failure"].as_str().map(str::trim),
        Some("the labels column is empty"),
        "{out}"
    );
    assert_ne!(step_status(&s, "later"), "succeeded");
    assert_eq!(t.count_lines("ran.log"), 0, "a step after the failure ran");
    // The earlier artifact is still there, and so is the record.
    let path = s["steps"]["first"]["outputs"]["out"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(path).join("ok.txt")).unwrap(),
        "ok\n"
    );
    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["summary"]["status"], "failed");
    assert_eq!(v["summary"]["steps"]["first"]["status"], "succeeded");
    assert_eq!(
        v["summary"]["steps"]["first"]["outputs"]["out"]["path"],
        path
    );
    assert_eq!(v["summary"]["steps"]["broken"]["status"], "failed");

    // Without --json the person sees the reason and the log's tail.
    t.exec(["run", "p.yaml"])
        .code(1)
        .stderr_contains("the labels column is empty")
        .stderr_contains("some log line")
        .stderr_contains("pipeline resume");
}

#[test]
fn retry_succeeds_on_the_third_attempt() {
    let yaml = r#"
name: flaky
steps:
  flaky:
    kind: command
    run: echo try >> tries.log; test $(wc -l < tries.log) -ge 3
    retry: {attempts: 3, backoff: 10ms}
"#;
    let t = Test::new().file("p.yaml", yaml);
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    assert_eq!(t.count_lines("tries.log"), 3);
    let retries = out
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "step_retrying")
        .count();
    assert_eq!(retries, 2, "{out}");
    assert_eq!(step_status(&out.summary(), "flaky"), "succeeded");
    let run_id = out.summary()["run_id"].as_str().unwrap().to_string();
    t.exec(["runs", "show", &run_id])
        .success()
        .stdout_contains("3 attempts");
}

#[test]
fn retry_gives_up_after_its_attempts() {
    let yaml = r#"
name: flaky
steps:
  flaky:
    kind: command
    run: echo try >> tries.log; exit 1
    retry: {attempts: 2, backoff: 10ms}
"#;
    let t = Test::new().file("p.yaml", yaml);
    t.exec(["run", "p.yaml"]).code(1);
    assert_eq!(t.count_lines("tries.log"), 2);
}

#[test]
fn timeout_stops_a_step() {
    let yaml = r#"
name: slow
steps:
  slow:
    kind: command
    run: sleep 10
    timeout: 500ms
"#;
    let t = Test::new().file("p.yaml", yaml);
    let start = Instant::now();
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}\n{out}");
    let s = out.summary();
    assert_eq!(step_status(&s, "slow"), "failed");
    let reason = s["steps"]["slow"]["failure"].as_str().unwrap_or_default();
    assert!(
        reason.contains("time"),
        "no timeout reason: {reason}\n{out}"
    );
}

#[test]
fn fail_fast_stops_a_running_step() {
    let yaml = r#"
name: failfast
steps:
  long:
    kind: command
    run: sleep 20; echo long >> ran.log
  bad:
    kind: command
    run: sleep 0.3; exit 1
"#;
    let t = Test::new().file("p.yaml", yaml);
    let start = Instant::now();
    let out = t.exec(["run", "p.yaml", "-j", "2", "--json"]).code(1);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the run waited for the long step: {took:?}\n{out}"
    );
    let s = out.summary();
    assert_eq!(step_status(&s, "bad"), "failed");
    assert_eq!(step_status(&s, "long"), "cancelled", "{out}");
    assert_eq!(t.count_lines("ran.log"), 0);
}

#[test]
fn when_false_skips_the_step_and_its_readers() {
    let yaml = r#"
name: gated
params:
  publish: {type: bool, default: false}
steps:
  build:
    kind: command
    run: echo built > $PIPELINE_OUTPUT_OUT/x
    outputs: [out]
  publish:
    kind: command
    run: echo publish >> ran.log; cp $SM_CHANNEL_IN/x $PIPELINE_OUTPUT_OUT/
    inputs: {in: build.out}
    outputs: [out]
    when: "params.publish"
  announce:
    kind: command
    run: echo announce >> ran.log
    inputs: {p: publish.out}
  independent:
    kind: command
    run: echo independent >> ran.log
    after: [publish]
"#;
    let t = Test::new().file("p.yaml", yaml);
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    assert_eq!(step_status(&s, "build"), "succeeded");
    assert_eq!(step_status(&s, "publish"), "skipped", "{out}");
    assert_eq!(step_status(&s, "announce"), "skipped", "{out}");
    // `after:` only orders; no data flows from the skipped step.
    assert_eq!(step_status(&s, "independent"), "succeeded", "{out}");
    assert_eq!(t.read("ran.log"), "independent\n");

    let s = t
        .exec(["run", "p.yaml", "--param", "publish=true", "--json"])
        .success()
        .summary();
    for step in ["publish", "announce"] {
        assert_eq!(step_status(&s, step), "succeeded");
    }
}

/// Steps that each hold a "slot" for a while and record the most slots ever
/// held at once, so the test can see how many ran concurrently.
fn concurrency_pipeline(n: usize) -> String {
    let mut y = String::from("name: wide\nsteps:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  s{i}:\n    kind: command\n    run: touch slots/s{i}; ls slots | wc -l >> peaks.log; sleep 0.3; rm slots/s{i}\n"
        ));
    }
    y
}

#[test]
fn jobs_limit_how_many_steps_run_at_once() {
    let t = Test::new().file("p.yaml", &concurrency_pipeline(4));
    std::fs::create_dir(t.path().join("slots")).unwrap();
    t.exec(["run", "p.yaml", "-j", "1"]).success();
    let peaks: Vec<usize> = t
        .read("peaks.log")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(peaks.len(), 4);
    assert!(
        peaks.iter().all(|&p| p == 1),
        "-j 1 ran steps together: {peaks:?}"
    );

    let t = Test::new().file("p.yaml", &concurrency_pipeline(4));
    std::fs::create_dir(t.path().join("slots")).unwrap();
    t.exec(["run", "p.yaml", "-j", "4"]).success();
    let peaks: Vec<usize> = t
        .read("peaks.log")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(
        peaks.iter().any(|&p| p > 1),
        "-j 4 never ran steps together: {peaks:?}"
    );
    assert!(peaks.iter().all(|&p| p <= 4));
}

#[test]

fn two_steps_with_the_same_command_both_run() {
    let yaml = r#"
name: twins
steps:
  notify-a:
    kind: command
    run: echo sent >> sent.log
  notify-b:
    kind: command
    run: echo sent >> sent.log
    after: [notify-a]
"#;
    let t = Test::new().file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(!step_cached(&s, "notify-b"), "{s}");
    assert_eq!(t.count_lines("sent.log"), 2);
}

#[test]
fn when_reads_metrics_a_step_wrote() {
    let yaml = r#"
name: gated-on-metrics
steps:
  score:
    kind: command
    run: 'echo "{\"accuracy\": 0.95, \"f1_macro\": 0.9}" > $PIPELINE_OUTPUT_METRICS/metrics.json'
    outputs: [metrics]
  good-enough:
    kind: command
    run: echo good >> ran.log
    when: "score.metrics.accuracy >= 0.9"
  excellent:
    kind: command
    run: echo excellent >> ran.log
    when: "score.metrics.accuracy >= 0.99 and score.metrics.f1_macro > 0.5"
"#;
    let t = Test::new().file("p.yaml", yaml);
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    assert_eq!(s["steps"]["score"]["metrics"]["accuracy"], 0.95, "{out}");
    assert_eq!(step_status(&s, "good-enough"), "succeeded");
    assert_eq!(step_status(&s, "excellent"), "skipped");
    assert_eq!(t.read("ran.log"), "good\n");
    // A cached step still hands its metrics to the conditions.
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(step_cached(&s, "score"));
    assert_eq!(step_status(&s, "good-enough"), "succeeded");
    assert_eq!(step_status(&s, "excellent"), "skipped");
}

#[test]
fn a_condition_on_a_missing_metric_fails_the_run() {
    let yaml = r#"
name: missing-metric
steps:
  score:
    kind: command
    run: 'echo "{\"accuracy\": 0.95}" > $PIPELINE_OUTPUT_METRICS/metrics.json'
    outputs: [metrics]
  gated:
    kind: command
    run: echo gated >> ran.log
    when: "score.metrics.recall >= 0.9"
"#;
    let t = Test::new().file("p.yaml", yaml);
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let s = out.summary();
    assert_eq!(step_status(&s, "gated"), "failed");
    let reason = s["steps"]["gated"]["failure"].as_str().unwrap_or_default();
    assert!(
        reason.contains("recall") && reason.contains("accuracy"),
        "{out}"
    );
    assert_eq!(t.count_lines("ran.log"), 0);
}

#[test]
fn a_missing_output_fails_the_step() {
    let yaml = r#"
name: no-output
steps:
  a:
    kind: command
    run: rmdir $PIPELINE_OUTPUT_OUT
    outputs: [out]
"#;
    let t = Test::new().file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).code(1).summary();
    let reason = s["steps"]["a"]["failure"].as_str().unwrap_or_default();
    assert!(reason.contains("output `out` is missing"), "{s}");
}

#[test]
fn concurrent_runs_share_one_workspace() {
    let t = Test::new().file("p.yaml", CHAIN);
    let children: Vec<_> = (0..3)
        .map(|_| {
            t.command(["run", "p.yaml", "--json", "--no-cache"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start the engine")
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(s["status"], "succeeded");
        ids.insert(s["run_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 3, "two runs got one id");
    assert_eq!(ran(&t, "train"), 3);
}

#[test]
fn an_executor_this_build_cannot_run_is_invalid_input() {
    let t = Test::new().file("p.yaml", CHAIN);
    t.exec(["run", "p.yaml", "--executor", "lokal"])
        .code(2)
        .stderr_contains("did you mean `local`?");
    assert!(!t.workspace().exists());
}

/// A train step on three local nodes: each a process with its own root, the
/// AWS Batch variables and the main node's loopback address.
const NODES: &str = r#"
name: nodes
steps:
  train:
    kind: train
    run: |
      echo "$AWS_BATCH_JOB_NODE_INDEX/$AWS_BATCH_JOB_NUM_NODES main=${AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS:-self} port=$PIPELINE_COORDINATOR_PORT host=$SM_CURRENT_HOST" > $SM_MODEL_DIR/node.txt
      echo "hello from $SM_CURRENT_HOST"
      if [ "$SM_CURRENT_HOST" = "$SM_HP_FAIL_ON" ]; then echo "disk full" > $SAGEMAKER_BASE_DIR/output/failure; exit 4; fi
    hyperparameters: {fail_on: "{{ params.fail_on }}"}
    resources: {nodes: 3}
params:
  fail_on: {type: string, default: none}
"#;

#[test]
fn a_step_on_three_local_nodes_gets_the_batch_variables_and_names_a_failing_node() {
    let t = Test::new().file("p.yaml", NODES);
    let out = t.exec(["run", "p.yaml", "--json"]).success();
    let s = out.summary();
    let run = s["run_id"].as_str().unwrap().to_string();
    let main = std::fs::read_to_string(
        std::path::Path::new(
            s["steps"]["train"]["outputs"]["model"]["path"]
                .as_str()
                .unwrap(),
        )
        .join("node.txt"),
    )
    .unwrap();
    assert!(main.starts_with("0/3 main=self port="), "{main}");
    assert!(main.trim_end().ends_with("host=algo-1"), "{main}");
    let nodes = t
        .workspace()
        .join("runs")
        .join(&run)
        .join("steps/train/1.nodes");
    for (i, host) in [(1, "algo-2"), (2, "algo-3")] {
        let txt = std::fs::read_to_string(nodes.join(host).join("model/node.txt")).unwrap();
        assert!(
            txt.starts_with(&format!("{i}/3 main=127.0.0.1 port=")),
            "{txt}"
        );
    }
    let logs = t.exec(["logs", &run, "train"]).success();
    assert!(logs.stdout.contains("[algo-3] hello from algo-3"), "{logs}");
    assert!(
        out.stderr.is_empty() || !out.stderr.contains("error"),
        "{out}"
    );

    let out = t
        .exec(["run", "p.yaml", "--json", "--param", "fail_on=algo-2"])
        .code(1);
    assert!(
        out.stdout.contains("node algo-2 (index 1): disk full"),
        "{out}"
    );
}

#[test]
fn schedule_preview_lists_firing_times_across_daylight_saving() {
    let t = Test::new().file(
        "p.yaml",
        "name: s\nschedule:\n  cron: [\"30 2 * * *\", \"0 12 29 3 *\"]\n  timezone: Europe/Berlin\nsteps:\n  a: {kind: command, run: \"true\"}\n",
    );
    let out = t
        .exec([
            "schedule",
            "--preview",
            "p.yaml",
            "--count",
            "4",
            "--from",
            "2026-03-28T00:00:00Z",
        ])
        .success();
    let firsts: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        firsts,
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T12:00:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ],
        "{out}"
    );
    t.exec(["schedule", "--preview", "p.yaml", "--from", "yesterday"])
        .code(2)
        .stderr_contains("is not an RFC 3339 time");
    t.write("p.yaml", "name: s\nschedule:\n  cron: [\"0 3 * * 1\", \"61 * * * *\"]\nsteps:\n  a: {kind: command, run: \"true\"}\n");
    t.exec(["schedule", "--preview", "p.yaml"])
        .invalid_at("p.yaml:3:23");
}

#[test]
fn quiet_prints_only_the_outcome() {
    let t = Test::new().file("chain.yaml", CHAIN);
    let out = t.exec(["run", "--quiet", "chain.yaml"]).success();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].contains("succeeded"), "{}", out.stderr);
    // A failure still says which step and why.
    t.write(
        "bad.yaml",
        "name: bad\nsteps:\n  boom:\n    kind: command\n    run: echo about to fail && exit 3\n",
    );
    let out = t.exec(["run", "-q", "bad.yaml"]).code(1);
    assert!(out.stderr.contains("step `boom` failed"), "{}", out.stderr);
    assert!(out.stderr.contains("about to fail"), "{}", out.stderr);
    assert!(!out.stderr.contains("started"), "{}", out.stderr);
    t.exec(["run", "--quiet", "--json", "chain.yaml"]).code(2);
}
