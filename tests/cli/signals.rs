//! Ctrl-C: the run is marked cancelled, the exit code is 130, and no step's
//! process outlives the engine.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Test;

/// Whether `pid` is still a live process (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.trim().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

/// Waits until `cond` holds, for at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Reads `--json` events from the engine's stdout until `stop` matches one;
/// returns the events read.
pub fn read_events_until(
    child: &mut Child,
    reader: &mut impl BufRead,
    mut stop: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read engine output");
        if n == 0 {
            let _ = child.kill();
            panic!("the engine ended before the expected event; events: {events:?}");
        }
        let v: serde_json::Value = serde_json::from_str(line.trim()).expect("a JSON event");
        let done = stop(&v);
        events.push(v);
        if done {
            return events;
        }
    }
}

#[test]
fn sigint_cancels_the_run_and_kills_the_steps() {
    let yaml = r#"
name: interrupted
steps:
  long:
    kind: command
    run: sleep 30 & echo $! > child.pid; wait $!
  after-long:
    kind: command
    run: echo after >> ran.log
    after: [long]
"#;
    let t = Test::new().file("p.yaml", yaml);
    let mut child = t
        .command(["run", "p.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the engine");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    read_events_until(&mut child, &mut reader, |e| {
        e["event"] == "step_started" && e["step"] == "long"
    });
    assert!(
        wait_for(Duration::from_secs(5), || !t
            .read("child.pid")
            .trim()
            .is_empty()),
        "the step never started its child"
    );
    let sleeper: i32 = t.read("child.pid").trim().parse().expect("a pid");
    assert!(alive(sleeper));

    let start = Instant::now();
    // SAFETY: sending a signal to the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait for the engine");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the engine took {:?} to stop",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(rest.lines().last().expect("a summary line")).expect("json");
    assert_eq!(summary["status"], "cancelled", "{rest}");
    assert_eq!(summary["steps"]["long"]["status"], "cancelled", "{rest}");
    assert_eq!(t.count_lines("ran.log"), 0, "a later step ran after Ctrl-C");

    let gone = wait_for(Duration::from_secs(5), || !alive(sleeper));
    if !gone {
        // SAFETY: clean up the stray process this test caused.
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
    }
    assert!(
        gone,
        "the step's child process {sleeper} outlived the engine"
    );

    let run_id = summary["run_id"].as_str().unwrap().to_string();
    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["summary"]["status"], "cancelled");
}
