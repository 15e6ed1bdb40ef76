//! `runs list`, `runs show` and `logs`: reading back what runs recorded.

use crate::harness::Test;

const TWO_STEPS: &str = r#"
name: logged
steps:
  hello:
    kind: command
    run: echo "hello from the step"; echo hi > $PIPELINE_OUTPUT_OUT/x
    outputs: [out]
  world:
    kind: command
    run: echo "world says $SM_CHANNEL_IN"
    inputs: {in: hello.out}
"#;

fn run_id(t: &Test) -> String {
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    s["run_id"].as_str().expect("run_id").to_string()
}

#[test]
fn runs_list_shows_each_run() {
    let t = Test::new().file("p.yaml", TWO_STEPS);
    t.exec(["runs", "list"])
        .success()
        .stdout_contains("pipeline run");
    let first = run_id(&t);
    let second = run_id(&t);
    assert_ne!(first, second);
    let out = t.exec(["runs", "list"]).success();
    for id in [&first, &second] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("run {id} not listed\n{out}"));
        assert!(
            line.contains("logged") && line.contains("succeeded"),
            "{line}"
        );
        assert!(line.ends_with("2/2"), "{line}");
    }
    let json = t.exec(["runs", "list", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{json}");
}

#[test]
fn runs_show_lists_outputs_with_paths() {
    let t = Test::new().file("p.yaml", TWO_STEPS);
    let id = run_id(&t);
    let out = t.exec(["runs", "show", &id]).success();
    assert!(out.stdout.contains(&format!("run {id}")), "{out}");
    let output_line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("output out: "))
        .unwrap_or_else(|| panic!("no output line\n{out}"));
    let path = output_line
        .trim_start()
        .trim_start_matches("output out: ")
        .split("  ")
        .next()
        .unwrap();
    assert!(
        std::path::Path::new(path).join("x").is_file(),
        "{output_line}"
    );
    // A unique prefix of the id is enough.
    t.exec(["runs", "show", &id[..id.len() - 2]])
        .success()
        .stdout_contains(&id);
    t.exec(["runs", "show", "no-such-run"])
        .code(2)
        .stderr_contains("no run `no-such-run`");
}

#[test]
fn logs_print_what_a_step_wrote() {
    let t = Test::new().file("p.yaml", TWO_STEPS);
    let id = run_id(&t);
    t.exec(["logs", &id, "hello"])
        .success()
        .stdout_contains("hello from the step");
    let all = t.exec(["logs", &id]).success();
    assert!(
        all.stdout.contains("hello from the step") && all.stdout.contains("world says"),
        "{all}"
    );
    // The step saw its channel as a directory inside its own work area.
    assert!(all.stdout.contains("input/data/in"), "{all}");
    t.exec(["logs", &id, "nope"])
        .code(2)
        .stderr_contains("no step `nope`");
}

#[test]
fn runs_watch_follows_a_run_another_engine_runs_until_it_ends() {
    let t = Test::new();
    let go = t.path().join("go");
    t.write(
        "live.yaml",
        &format!(
            "name: live\nsteps:\n  wait:\n    kind: command\n    run: [sh, -c, 'echo waiting; i=0; while [ ! -f {go} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo went']\n  then:\n    kind: command\n    run: [echo, then-ran]\n    after: [wait]\n",
            go = go.display()
        ),
    );
    let mut run = t
        .command(["run", "live.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = loop {
        if t.workspace().join("runs.db").exists() {
            let out = t.exec(["runs", "list", "--json"]).success();
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            if let Some(id) = v[0]["id"].as_str() {
                break id.to_string();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let watch = t
        .command(["runs", "watch", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(&go, "").unwrap();
    let out = watch.wait_with_output().unwrap();
    assert!(run.wait().unwrap().success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for needle in [
        "[wait] waiting",
        "[wait] went",
        "done      wait",
        "[then] then-ran",
        "done      then",
        "succeeded",
    ] {
        assert!(err.contains(needle), "no `{needle}` in:\n{err}");
    }
    // A finished run is replayed, and a failed one exits 1.
    t.exec(["runs", "watch", &id])
        .success()
        .stderr_contains("[wait] went");
    t.write("bad.yaml", "name: bad\nsteps:\n  boom:\n    kind: command\n    run: [sh, -c, 'echo about to fail; exit 3']\n");
    let s = t.exec(["run", "bad.yaml", "--json"]).code(1).summary();
    let bad = s["run_id"].as_str().unwrap().to_string();
    t.exec(["runs", "watch", &bad])
        .code(1)
        .stderr_contains("step `boom` failed");
}
