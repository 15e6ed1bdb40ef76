//! `pipeline schedule`: the scheduler driven by its test clock (`--now`,
//! `--clock-rate`, `--until`) through firings, restarts, downtime,
//! concurrency, daylight-saving changes and input triggers; and `status`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Test;

/// A pipeline `name` with the given schedule body and one command step.
fn pipeline(name: &str, schedule: &str, step: &str) -> String {
    format!(
        "name: {name}\ndefaults: {{cache: false}}\ninputs:\n  data: {{path: data.txt}}\nschedule:\n{schedule}\nsteps:\n  a:\n    kind: command\n    inputs: {{d: inputs.data}}\n    run: \"{step}\"\n"
    )
}

/// `schedule status --json`: one entry a scheduled pipeline.
pub fn status(t: &Test) -> Vec<Value> {
    let out = t.exec(["schedule", "status", "--json"]).success();
    serde_json::from_str::<Vec<Value>>(out.stdout.trim()).expect("status is JSON")
}

/// Every firing of the one scheduled pipeline, oldest first: (time, status, run).
fn firings(t: &Test) -> Vec<(String, String, Option<String>)> {
    let s = status(t);
    assert_eq!(s.len(), 1, "{s:?}");
    let mut out: Vec<_> = s[0]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["at"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                f["run_id"].as_str().map(str::to_string),
            )
        })
        .collect();
    out.reverse();
    out
}

fn run_count(t: &Test) -> usize {
    let out = t.exec(["runs", "list"]).success();
    out.stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.starts_with("20"))
        })
        .count()
}

fn spawn(t: &Test, args: &[&str]) -> Child {
    t.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the scheduler")
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: a signal to a process this test started (or its run's engine).
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn firings_follow_the_test_clock_and_are_recorded_with_their_runs() {
    let t = Test::new().file("data.txt", "1\n").file(
        "p.yaml",
        &pipeline("tick", "  cron: \"*/10 * * * *\"", "true"),
    );
    let out = t
        .exec([
            "schedule",
            "p.yaml",
            "--now",
            "2026-05-01T00:05:00Z",
            "--clock-rate",
            "600",
            "--until",
            "2026-05-01T00:35:00Z",
        ])
        .success();
    let f = firings(&t);
    let times: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        times,
        [
            "2026-05-01T00:10:00+00:00",
            "2026-05-01T00:20:00+00:00",
            "2026-05-01T00:30:00+00:00"
        ],
        "{out}"
    );
    assert!(f.iter().all(|x| x.1 == "succeeded"), "{f:?}\n{out}");
    let mut runs: Vec<_> = f.iter().filter_map(|x| x.2.clone()).collect();
    runs.dedup();
    assert_eq!(runs.len(), 3);
    assert_eq!(run_count(&t), 3);
    let s = t
        .exec(["schedule", "status", "--now", "2026-05-01T00:35:00Z"])
        .success();
    assert!(s.stdout.contains("next  2026-05-01T00:40:00+00:00"), "{s}");
    assert!(s.stdout.contains("scheduler stopped"), "{s}");
    // The same firings again (a second scheduler over the same hour) run nothing twice.
    t.exec([
        "schedule",
        "p.yaml",
        "--now",
        "2026-05-01T00:05:00Z",
        "--clock-rate",
        "600",
        "--until",
        "2026-05-01T00:35:00Z",
    ])
    .success();
    assert_eq!(run_count(&t), 3);
}

#[test]
fn a_restart_mid_run_neither_repeats_nor_loses_the_firing() {
    for kill_the_run_too in [false, true] {
        let t = Test::new().file("data.txt", "1\n").file(
            "p.yaml",
            &pipeline("long", "  cron: \"0 * * * *\"", "sleep 3"),
        );
        let mut first = spawn(&t, &["schedule", "p.yaml", "--now", "2026-05-01T00:59:59Z"]);
        wait_until("the firing's run to start", Duration::from_secs(30), || {
            firings_if_any(&t).iter().any(|f| f.1 == "running")
        });
        kill(first.id(), libc::SIGKILL);
        let _ = first.wait();
        let run = firings(&t)[0].2.clone().expect("the firing has its run");
        if kill_the_run_too {
            let lock = t.workspace().join("runs").join(&run).join("engine.lock");
            wait_until("the run's engine", Duration::from_secs(20), || {
                std::fs::read_to_string(&lock).is_ok_and(|s| !s.trim().is_empty())
            });
            let pid: u32 = std::fs::read_to_string(&lock)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            kill(pid, libc::SIGKILL);
        }
        let out = t
            .exec([
                "schedule",
                "p.yaml",
                "--now",
                "2026-05-01T01:00:05Z",
                "--until",
                "2026-05-01T01:00:06Z",
            ])
            .success();
        let f = firings(&t);
        assert_eq!(f.len(), 1, "{f:?}\n{out}");
        assert_eq!(f[0].1, "succeeded", "{f:?}\n{out}");
        assert_eq!(f[0].2.as_deref(), Some(run.as_str()));
        assert_eq!(run_count(&t), 1, "{out}");
        if kill_the_run_too {
            assert!(out.stderr.contains("resuming it"), "{out}");
        }
    }
}

fn firings_if_any(t: &Test) -> Vec<(String, String, Option<String>)> {
    if status(t).is_empty() {
        vec![]
    } else {
        firings(t)
    }
}

#[test]
fn two_hours_of_downtime_under_each_catch_up_policy() {
    for (policy, expect) in [
        (
            "catch_up: none",
            vec![
                ("01:00", "succeeded"),
                ("02:00", "missed"),
                ("03:00", "missed"),
            ],
        ),
        (
            "catch_up: latest",
            vec![
                ("01:00", "succeeded"),
                ("02:00", "missed"),
                ("03:00", "succeeded"),
            ],
        ),
        (
            "catch_up: all\n  max_catch_up: 5",
            vec![
                ("01:00", "succeeded"),
                ("02:00", "succeeded"),
                ("03:00", "succeeded"),
            ],
        ),
        (
            "catch_up: all\n  max_catch_up: 5\n  starting_deadline: 45m",
            vec![
                ("01:00", "succeeded"),
                ("02:00", "missed"),
                ("03:00", "succeeded"),
            ],
        ),
    ] {
        let t = Test::new().file("data.txt", "1\n").file(
            "p.yaml",
            &pipeline(
                "down",
                &format!("  cron: \"0 * * * *\"\n  {policy}"),
                "true",
            ),
        );
        // Up until 01:00:30, down until 03:30.
        t.exec([
            "schedule",
            "p.yaml",
            "--now",
            "2026-05-01T00:59:58Z",
            "--until",
            "2026-05-01T01:00:30Z",
            "--clock-rate",
            "20",
        ])
        .success();
        let out = t
            .exec([
                "schedule",
                "p.yaml",
                "--now",
                "2026-05-01T03:30:00Z",
                "--until",
                "2026-05-01T03:30:01Z",
            ])
            .success();
        let got: Vec<(String, String)> = firings(&t)
            .into_iter()
            .map(|(at, st, _)| (at[11..16].to_string(), st))
            .collect();
        let want: Vec<(String, String)> = expect
            .iter()
            .map(|(a, s)| (a.to_string(), s.to_string()))
            .collect();
        assert_eq!(got, want, "{policy}\n{out}");
    }
}

/// Each run's (start, end) as recorded.
fn run_spans(t: &Test) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (_, st, run) in firings(t) {
        let Some(run) = run else { continue };
        if st == "skipped" {
            continue;
        }
        let show = t.exec(["runs", "show", &run, "--json"]).success();
        let v: Value = serde_json::from_str(&show.stdout).unwrap();
        out.push((
            v["run"]["started_at"].as_str().unwrap().to_string(),
            v["run"]["finished_at"].as_str().unwrap_or("").to_string(),
            st,
        ));
    }
    out
}

#[test]
fn each_concurrency_policy_with_runs_longer_than_the_interval() {
    for policy in ["forbid", "allow", "replace"] {
        let t = Test::new().file("data.txt", "1\n").file(
            "p.yaml",
            &pipeline(
                "busy",
                &format!("  cron: \"* * * * *\"\n  concurrency: {policy}"),
                "sleep 2.5",
            ),
        );
        // A minute a second: firings at 00:01, 00:02, 00:03, 00:04; each run takes 2.5 minutes.
        let out = t
            .exec([
                "schedule",
                "p.yaml",
                "--now",
                "2026-05-01T00:00:50Z",
                "--clock-rate",
                "60",
                "--until",
                "2026-05-01T00:04:10Z",
            ])
            .success();
        let f = firings(&t);
        let statuses: Vec<&str> = f.iter().map(|x| x.1.as_str()).collect();
        let spans = run_spans(&t);
        let overlapping = spans
            .windows(2)
            .any(|w| !w[0].1.is_empty() && w[1].0 < w[0].1);
        match policy {
            "forbid" => {
                assert!(statuses.contains(&"skipped"), "{f:?}\n{out}");
                assert!(!overlapping, "{spans:?}");
                assert!(
                    statuses
                        .iter()
                        .all(|s| ["succeeded", "skipped"].contains(s)),
                    "{f:?}"
                );
            }
            "allow" => {
                assert_eq!(statuses, ["succeeded"; 4], "{out}");
                assert!(overlapping, "{spans:?}");
            }
            _ => {
                assert!(statuses.contains(&"replaced"), "{f:?}\n{out}");
                assert_eq!(statuses.last(), Some(&"succeeded"), "{f:?}\n{out}");
                assert!(!overlapping, "{spans:?}");
            }
        }
    }
}

#[test]
fn both_daylight_saving_changes_in_berlin() {
    // Hourly plus a daily 02:30, which the spring night skips and the autumn night repeats.
    let sched =
        "  cron: [\"0 * * * *\", \"30 2 * * *\"]\n  timezone: Europe/Berlin\n  concurrency: allow";
    for (from, until, want) in [
        (
            "2026-03-29T00:30:00+01:00",
            "2026-03-29T04:10:00+02:00",
            vec![
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
            ],
        ),
        (
            "2026-10-25T00:30:00+02:00",
            "2026-10-25T04:10:00+01:00",
            vec![
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T04:00:00+01:00",
            ],
        ),
    ] {
        let t = Test::new()
            .file("data.txt", "1\n")
            .file("p.yaml", &pipeline("dst", sched, "true"));
        let out = t
            .exec([
                "schedule",
                "p.yaml",
                "--now",
                from,
                "--until",
                until,
                "--clock-rate",
                "1800",
            ])
            .success();
        let f = firings(&t);
        let times: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(times, want, "{out}");
        assert!(f.iter().all(|x| x.1 == "succeeded"), "{f:?}\n{out}");
    }
}

#[test]
fn only_if_inputs_changed_skips_firings_over_the_same_data() {
    let t = Test::new().file("data.txt", "1\n").file(
        "p.yaml",
        &pipeline(
            "changed",
            "  cron: \"*/10 * * * *\"\n  only_if_inputs_changed: true\n  catch_up: none",
            "true",
        ),
    );
    let at = |now: &str, until: &str| {
        t.exec([
            "schedule",
            "p.yaml",
            "--now",
            now,
            "--until",
            until,
            "--clock-rate",
            "600",
        ])
        .success()
    };
    let out = at("2026-05-01T00:05:00Z", "2026-05-01T00:25:00Z");
    assert!(out.stderr.contains("only_if_inputs_changed"), "{out}");
    t.write("data.txt", "2\n");
    at("2026-05-01T00:45:00Z", "2026-05-01T00:55:00Z");
    let got: Vec<(String, String)> = firings(&t)
        .into_iter()
        .map(|(a, s, _)| (a[11..16].to_string(), s))
        .collect();
    let want = [
        ("00:10", "succeeded"),
        ("00:20", "skipped"),
        ("00:30", "missed"),
        ("00:40", "missed"),
        ("00:50", "succeeded"),
    ];
    assert_eq!(
        got,
        want.map(|(a, s)| (a.to_string(), s.to_string())),
        "{out}"
    );
}

#[test]
fn on_change_runs_when_a_watched_input_changes() {
    let t = Test::new().file("data.txt", "1\n").file(
        "p.yaml",
        &pipeline(
            "watch",
            "  on_change: [inputs.data]\n  poll_interval: 1m",
            "true",
        ),
    );
    let session = |now: &str, until: &str| {
        t.exec([
            "schedule",
            "p.yaml",
            "--now",
            now,
            "--until",
            until,
            "--clock-rate",
            "60",
        ])
        .success()
    };
    // The data as first seen is the baseline; unchanged data fires nothing.
    session("2026-05-01T00:00:00Z", "2026-05-01T00:02:30Z");
    assert!(firings_if_any(&t).is_empty());
    t.write("data.txt", "2\n");
    let out = session("2026-05-01T01:00:00Z", "2026-05-01T01:02:30Z");
    let f = firings(&t);
    assert_eq!(f.len(), 1, "{f:?}\n{out}");
    assert_eq!(f[0].1, "succeeded");
    assert!(out.stderr.contains("inputs changed: data"), "{out}");
    let s = status(&t);
    assert_eq!(s[0]["recent"][0]["trigger"], "change");
}

#[test]
fn sigterm_lets_the_running_run_finish_or_cancels_it() {
    for cancel in [false, true] {
        let t = Test::new().file("data.txt", "1\n").file(
            "p.yaml",
            &pipeline("term", "  cron: \"0 * * * *\"", "sleep 2"),
        );
        let mut args = vec!["schedule", "p.yaml", "--now", "2026-05-01T00:59:59Z"];
        if cancel {
            args.push("--cancel-on-exit");
        }
        let mut child = spawn(&t, &args);
        wait_until("the firing's run to start", Duration::from_secs(30), || {
            firings_if_any(&t).iter().any(|f| f.1 == "running")
        });
        kill(child.id(), libc::SIGTERM);
        let code = child.wait().unwrap();
        assert!(code.success(), "{code:?}");
        let f = firings(&t);
        assert_eq!(
            f[0].1,
            if cancel { "cancelled" } else { "succeeded" },
            "{f:?}"
        );
    }
}

#[test]
fn schedules_that_cannot_work_are_refused_before_anything_runs() {
    let t = Test::new().file("data.txt", "1\n");
    let case = |body: &str, at: &str| {
        t.write("p.yaml", &pipeline("bad", body, "true"));
        t.exec(["schedule", "p.yaml"]).invalid_at(at);
    };
    case("  cron: \"0 3 * * 1\"\n  catch_up: all", "p.yaml:7:13");
    case("  cron: \"0 3 * * 1\"\n  max_catch_up: 3", "p.yaml:7:17");
    case(
        "  cron: \"0 3 * * 1\"\n  timezone: Europe/Berlinn",
        "p.yaml:7:13",
    );
    case("  cron: \"0 3 * * 8\"", "p.yaml:6:9");
    case("  on_change: [inputs.dta]", "p.yaml:6:15");
    case(
        "  cron: \"0 3 * * 1\"\n  concurrency: sometimes",
        "p.yaml:7:16",
    );
    case("  timezone: UTC", "p.yaml:6:3");
    // A required param with no default: the schedule could never start a run.
    t.write(
        "q.yaml",
        "name: q\nparams:\n  day: {type: string}\nschedule: {cron: \"0 3 * * 1\"}\nsteps:\n  a: {kind: command, run: \"true\"}\n",
    );
    t.exec(["schedule", "q.yaml"])
        .code(2)
        .stderr_contains("has no default");
    t.exec([
        "schedule",
        "q.yaml",
        "--param",
        "day=mon",
        "--until",
        "2000-01-01T00:00:00Z",
    ])
    .success();
    // No schedule at all.
    t.write(
        "r.yaml",
        "name: r\nsteps:\n  a: {kind: command, run: \"true\"}\n",
    );
    t.exec(["schedule", "r.yaml"])
        .code(2)
        .stderr_contains("has no `schedule:`");
    assert_eq!(run_count(&t), 0);
}

#[test]
fn one_scheduler_per_pipeline_and_workspace() {
    let t = Test::new()
        .file("data.txt", "1\n")
        .file("p.yaml", &pipeline("solo", "  cron: \"0 3 * * 1\"", "true"));
    let mut first = spawn(&t, &["schedule", "p.yaml"]);
    wait_until("the first scheduler", Duration::from_secs(30), || {
        status(&t)
            .first()
            .is_some_and(|s| s["scheduler"].as_str().unwrap_or("").starts_with("running"))
    });
    t.exec(["schedule", "p.yaml", "--until", "2000-01-01T00:00:00Z"])
        .code(1)
        .stderr_contains("already scheduled by process");
    kill(first.id(), libc::SIGTERM);
    assert!(first.wait().unwrap().success());
}
