//! The engine killed outright (SIGKILL, a lost machine): the record stays
//! consistent, and `resume` finishes the run without redoing finished steps.

use std::io::BufReader;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::Test;
use crate::signals::{alive, read_events_until, wait_for};

/// `a` and `b` are quick; `c` waits for 30 s unless the flag file `go` exists.
const PIPELINE: &str = r#"
name: killed
steps:
  a:
    kind: command
    run: echo a >> count.log; echo a > $PIPELINE_OUTPUT_OUT/a.txt
    outputs: [out]
  b:
    kind: command
    run: echo b >> count.log; cat $SM_CHANNEL_IN/a.txt > $PIPELINE_OUTPUT_OUT/b.txt
    inputs: {in: a.out}
    outputs: [out]
  c:
    kind: command
    run: echo c >> count.log; test -f go && exit 0; sleep 30 & echo $! > c.pid; wait $!
    inputs: {in: b.out}
"#;

fn count(t: &Test, step: &str) -> usize {
    t.read("count.log").lines().filter(|l| *l == step).count()
}

#[test]
fn resume_after_sigkill_runs_only_what_did_not_finish() {
    let t = Test::new().file("p.yaml", PIPELINE);
    let mut child = t
        .command(["run", "p.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the engine");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let events = read_events_until(&mut child, &mut reader, |e| {
        e["event"] == "step_finished" && e["step"] == "b"
    });
    let run_id = events[0]["run_id"]
        .as_str()
        .expect("run_started first")
        .to_string();
    // Let `c` get going so the kill lands mid-step.
    assert!(wait_for(Duration::from_secs(20), || !t
        .read("c.pid")
        .trim()
        .is_empty()));
    child.kill().expect("SIGKILL the engine");
    child.wait().unwrap();
    let orphan: i32 = t.read("c.pid").trim().parse().unwrap();

    // The record says what happened up to the kill.
    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["summary"]["status"], "interrupted", "{shown}");
    assert_eq!(v["summary"]["steps"]["a"]["status"], "succeeded");
    assert_eq!(v["summary"]["steps"]["b"]["status"], "succeeded");
    assert_ne!(v["summary"]["steps"]["c"]["status"], "succeeded");
    let b_output = v["summary"]["steps"]["b"]["outputs"]["out"]["path"].clone();

    t.write("go", "");
    let out = t.exec(["resume", &run_id, "--json"]).success();
    let s = out.summary();
    assert_eq!(s["run_id"], run_id.as_str());
    assert_eq!(s["status"], "succeeded", "{out}");
    for step in ["a", "b", "c"] {
        assert_eq!(s["steps"][step]["status"], "succeeded", "{out}");
    }
    assert_eq!(s["steps"]["b"]["outputs"]["out"]["path"], b_output);
    assert_eq!(
        (count(&t, "a"), count(&t, "b"), count(&t, "c")),
        (1, 1, 2),
        "{out}"
    );

    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["summary"]["status"], "succeeded");
    // A finished run has nothing left to resume.
    t.exec(["resume", &run_id]).success();
    assert_eq!(count(&t, "c"), 2);

    if alive(orphan) {
        // SAFETY: the orphaned sleep of the killed engine's step; ours to end.
        unsafe { libc::kill(orphan, libc::SIGKILL) };
    }
}

#[test]
fn resume_after_a_failure_runs_the_failed_step_and_what_follows() {
    // `b` reads a file outside the pipeline that the user fixes before resuming.
    let yaml = r#"
name: fixable
steps:
  a:
    kind: command
    run: echo a >> count.log; echo a > $PIPELINE_OUTPUT_OUT/a.txt
    outputs: [out]
  b:
    kind: command
    run: echo b >> count.log; test -f fixed
    inputs: {in: a.out}
  c:
    kind: command
    run: echo c >> count.log
    after: [b]
"#;
    let t = Test::new().file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).code(1).summary();
    let run_id = s["run_id"].as_str().unwrap().to_string();
    assert_eq!(s["steps"]["b"]["status"], "failed");
    assert_eq!((count(&t, "a"), count(&t, "b"), count(&t, "c")), (1, 1, 0));

    t.write("fixed", "");
    let s = t.exec(["resume", &run_id, "--json"]).success().summary();
    assert_eq!(s["run_id"], run_id.as_str());
    for step in ["a", "b", "c"] {
        assert_eq!(s["steps"][step]["status"], "succeeded", "{s}");
    }
    assert_eq!((count(&t, "a"), count(&t, "b"), count(&t, "c")), (1, 2, 1));
}

#[test]
fn resume_refuses_a_run_whose_engine_is_alive() {
    let t = Test::new().file("p.yaml", PIPELINE);
    let mut child = t
        .command(["run", "p.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the engine");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let events = read_events_until(&mut child, &mut reader, |e| {
        e["event"] == "step_started" && e["step"] == "c"
    });
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();
    // `step_started` comes as the step's process is being started: wait (a
    // bounded while) until it has really begun, so the count below means something.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&t, "c") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = t.exec(["resume", &run_id]);
    // Stop the engine before asserting, so a failure leaves nothing behind.
    // SAFETY: signalling the engine this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    out.code(1).stderr_contains("still running");
    // SIGTERM is handled like Ctrl-C.
    assert_eq!(status.code(), Some(130));
    assert_eq!(count(&t, "c"), 1, "resume started the step a second time");
}
