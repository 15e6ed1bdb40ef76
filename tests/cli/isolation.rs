//! Nothing a step does can change what was stored: stored artifacts are
//! read-only and re-checked, a step's processes are all gone before its
//! outputs are stored, symlinks do not reach out of outputs, an engine killed
//! outright leaves nothing running once `resume` took over, and runs going on
//! at once in one workspace do not disturb each other.

use std::io::BufReader;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Test, step_status};
use crate::signals::{alive, read_events_until, wait_for};

fn output_path(s: &Value, step: &str, output: &str) -> PathBuf {
    PathBuf::from(
        s["steps"][step]["outputs"][output]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no output {step}.{output} in {s}")),
    )
}

fn digest(s: &Value, step: &str, output: &str) -> String {
    s["steps"][step]["outputs"][output]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no output {step}.{output} in {s}"))
        .to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every file and directory of a stored artifact, with its contents.
fn tree(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Option<String>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.push((rel, None));
                walk(root, &p, out);
            } else {
                assert!(t.is_file(), "{} is not a regular file", p.display());
                out.push((rel, Some(std::fs::read_to_string(&p).unwrap())));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

const WRITES_ITS_INPUT: &str = r#"
name: tamper
steps:
  make:
    kind: command
    run: echo make >> count.log; printf 'a,b\n1,2\n' > $PIPELINE_OUTPUT_TRAIN/train.csv
    outputs: [train]
  use:
    kind: command
    run: "{{ params.how }}"
    inputs: {train: make.train}
params:
  how: {type: string, default: "true"}
"#;

#[test]
fn stored_artifacts_are_read_only() {
    let t = Test::new().file("p.yaml", WRITES_ITS_INPUT);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let dir = output_path(&s, "make", "train");
    assert_eq!(mode(&dir), 0o555);
    assert_eq!(mode(&dir.join("train.csv")), 0o444);
}

/// A step appends to a stored file it was given (as root it can; otherwise
/// it is refused), or rewrites it and sets its mode and mtime back: the step
/// fails naming the channel and file, and the changed artifact is never served.
#[test]
fn a_step_that_changes_a_stored_input_fails_and_the_artifact_is_not_served() {
    let append = "echo x >> $SM_CHANNEL_TRAIN/train.csv";
    // Same size, same mtime, same mode: only the ctime tells.
    let disguised = "f=$SM_CHANNEL_TRAIN/train.csv; t=$(stat -c %y $f); chmod 644 $f; \
                     printf 'Z' | dd of=$f conv=notrunc status=none; touch -d \"$t\" $f; chmod 444 $f";
    for how in [append, disguised] {
        let t = Test::new().file("p.yaml", WRITES_ITS_INPUT);
        let param = format!("how={how}");
        let out = t
            .exec(["run", "p.yaml", "--json", "--param", &param])
            .code(1);
        let s = out.summary();
        assert_eq!(step_status(&s, "use"), "failed", "{out}");
        let reason = s["steps"]["use"]["failure"].as_str().unwrap_or_default();
        assert!(
            reason.contains("changed its input `train`") && reason.contains("train.csv"),
            "{how}: {out}"
        );
        // The next run makes the artifact again, with the right content.
        let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
        assert!(!s["steps"]["make"]["cached"].as_bool().unwrap(), "{s}");
        let text = std::fs::read_to_string(output_path(&s, "make", "train").join("train.csv"));
        assert_eq!(text.unwrap(), "a,b\n1,2\n", "{how}");
        assert_eq!(t.count_lines("count.log"), 2);
    }
}

#[test]
fn a_step_that_changes_a_pipeline_input_fails() {
    let yaml = r#"
name: tamper-input
inputs:
  data: {path: data.csv, format: csv}
steps:
  use:
    kind: command
    run: echo 3,4 >> $SM_CHANNEL_DATA/data.csv
    inputs: {data: inputs.data}
"#;
    let t = Test::new().file("p.yaml", yaml).file("data.csv", "1,2\n");
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let reason = out.summary()["steps"]["use"]["failure"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("changed its input `data`") && reason.contains("data.csv"),
        "{out}"
    );
}

/// Background writers, one that left the session and one double-forked,
/// write after the step exited successfully.
const LEAVES_WRITERS: &str = r#"
name: writers
steps:
  make:
    kind: command
    run: |
      out=$PIPELINE_OUTPUT_OUT
      echo first > $out/file
      setsid sh -c 'sleep 0.3; echo late >> "$0/file"; echo late > "$0/new"' "$out" &
      echo $! > setsid.pid
      (sh -c 'sleep 0.3; echo later >> "$0/file"; echo x > "$0/other"' "$out" &)
      exit 0
    outputs: [out]
"#;

#[test]
fn no_process_a_step_started_outlives_it() {
    let t = Test::new().file("p.yaml", LEAVES_WRITERS);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let writer: i32 = t.read("setsid.pid").trim().parse().unwrap();
    let gone = !alive(writer);
    if !gone {
        // SAFETY: the stray writer this test made; ours to end.
        unsafe { libc::kill(writer, libc::SIGKILL) };
    }
    assert!(gone, "the step's setsid'd process {writer} outlived it");
    std::thread::sleep(Duration::from_millis(800));
    let dir = output_path(&s, "make", "out");
    assert_eq!(tree(&dir), vec![("file".into(), Some("first\n".into()))]);
    // The stored artifact still has the content its digest names: storing
    // the same content again lands on it.
    let again = t
        .exec(["run", "p.yaml", "--json", "--no-cache"])
        .success()
        .summary();
    assert_eq!(digest(&again, "make", "out"), digest(&s, "make", "out"));
}

#[test]
fn a_symlink_inside_an_output_is_stored_as_a_copy() {
    let yaml = r#"
name: links
steps:
  make:
    kind: command
    run: |
      out=$PIPELINE_OUTPUT_OUT
      echo data > $out/real.txt
      ln -s real.txt $out/link.txt
      mkdir $out/d && echo inner > $out/d/f
      ln -s d $out/dlink
      ln outside.txt $out/hard.txt
    outputs: [out]
"#;
    let t = Test::new()
        .file("p.yaml", yaml)
        .file("outside.txt", "mine\n");
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let dir = output_path(&s, "make", "out");
    assert_eq!(
        tree(&dir),
        vec![
            ("d".into(), None),
            ("d/f".into(), Some("inner\n".into())),
            ("dlink".into(), None),
            ("dlink/f".into(), Some("inner\n".into())),
            ("hard.txt".into(), Some("mine\n".into())),
            ("link.txt".into(), Some("data\n".into())),
            ("real.txt".into(), Some("data\n".into())),
        ]
    );
    // The hard-linked file outside is neither shared with the store nor made read-only.
    let outside = t.path().join("outside.txt");
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    assert_eq!(mode(&outside) & 0o200, 0o200);
}

#[test]
fn a_symlink_out_of_an_output_or_to_nothing_is_refused() {
    for (link, target, why) in [
        ("escape", "/etc/hostname", "outside the output"),
        (
            "up",
            "../../../../../../../../../p.yaml",
            "outside the output",
        ),
        ("dangling", "nowhere.txt", "does not exist"),
    ] {
        let yaml = format!(
            "name: links\nsteps:\n  make:\n    kind: command\n    run: ln -s {target} $PIPELINE_OUTPUT_OUT/{link}\n    outputs: [out]\n"
        );
        let t = Test::new().file("p.yaml", &yaml);
        let out = t.exec(["run", "p.yaml", "--json"]).code(1);
        let reason = out.summary()["steps"]["make"]["failure"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            reason.contains(&format!("symlink `{link}` points to `{target}`"))
                && reason.contains(why),
            "{out}"
        );
    }
}

/// `make` starts a writer that leaves its session and appends to the output
/// until killed, then waits; with the file `go` it just writes its result.
const LEAVES_A_WRITER_WHEN_KILLED: &str = r#"
name: killed-writer
steps:
  make:
    kind: command
    run: |
      out=$PIPELINE_OUTPUT_OUT
      if [ ! -f go ]; then
        setsid sh -c 'while :; do echo tick >> "$0/ticks"; sleep 0.02; done' "$out" &
        echo $! > writer.pid
        sleep 30
      fi
      echo done > $out/result
    outputs: [out]
"#;

fn start(t: &Test, args: &[&str]) -> std::process::Child {
    t.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the engine")
}

/// Every live process whose environment names `run_id`'s attempts.
fn processes_of(run_id: &str) -> Vec<i32> {
    let needle = format!("PIPELINE_ATTEMPT_ID={run_id}/");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            alive(*pid)
                && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                    env.split(|&b| b == 0)
                        .any(|kv| kv.starts_with(needle.as_bytes()))
                })
        })
        .collect()
}

fn kill_all(pids: &[i32]) {
    for &p in pids {
        // SAFETY: leftovers of the run this test made.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
}

#[test]
fn resume_stops_what_a_killed_engine_left_and_runs_into_a_fresh_directory() {
    let t = Test::new().file("p.yaml", LEAVES_A_WRITER_WHEN_KILLED);
    let mut engine = start(&t, &["run", "p.yaml", "--json"]);
    let mut reader = BufReader::new(engine.stdout.take().unwrap());
    let events = read_events_until(&mut engine, &mut reader, |e| e["event"] == "step_started");
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();
    assert!(wait_for(Duration::from_secs(20), || {
        !t.read("writer.pid").trim().is_empty()
    }));
    let writer: i32 = t.read("writer.pid").trim().parse().unwrap();
    engine.kill().expect("SIGKILL the engine");
    engine.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_of(&run_id);
    assert!(alive(writer) && left.contains(&writer), "{left:?}");

    // A run whose engine is gone says so, and how to go on.
    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["summary"]["status"], "interrupted", "{shown}");
    assert_eq!(v["run"]["status"], "interrupted", "{shown}");
    t.exec(["runs", "show", &run_id])
        .success()
        .stdout_contains(&format!("`pipeline resume {run_id}` continues it"));
    let list = t.exec(["runs", "list"]).success();
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap();
    assert!(line.contains("interrupted"), "{list}");

    t.write("go", "");
    let resumed = t.exec(["resume", &run_id, "--json"]);
    let left = processes_of(&run_id);
    kill_all(&left);
    let s = resumed.success().summary();
    assert!(left.is_empty(), "left running after resume: {left:?}");
    assert!(!alive(writer));

    // The same as a run that was never interrupted.
    let fresh = Test::new()
        .file("p.yaml", LEAVES_A_WRITER_WHEN_KILLED)
        .file("go", "");
    let clean = fresh.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(
        tree(&output_path(&s, "make", "out")),
        vec![("result".into(), Some("done\n".into()))]
    );
    assert_eq!(digest(&s, "make", "out"), digest(&clean, "make", "out"));
    let shown = t.exec(["runs", "show", &run_id, "--json"]).success();
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["summary"]["status"], "succeeded");
}

#[test]
fn a_second_resume_of_a_run_at_once_is_refused() {
    let yaml = r#"
name: resumed-twice
steps:
  wait:
    kind: command
    run: echo ran >> count.log; test -f go || exit 1; while [ ! -f release ]; do sleep 0.02; done
"#;
    for _ in 0..3 {
        let t = Test::new().file("p.yaml", yaml);
        let s = t.exec(["run", "p.yaml", "--json"]).code(1).summary();
        let run_id = s["run_id"].as_str().unwrap().to_string();
        t.write("go", "");
        // Two resumes started together: one takes the run, the other is refused.
        let a = start(&t, &["resume", &run_id, "--json"]);
        let b = start(&t, &["resume", &run_id, "--json"]);
        assert!(wait_for(Duration::from_secs(20), || t
            .count_lines("count.log")
            >= 2));
        std::thread::sleep(Duration::from_millis(300));
        // A third, while the winner runs: refused at once (not left waiting).
        let mut third = t
            .command(["resume", &run_id])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let refused = wait_for(Duration::from_secs(10), || {
            third.try_wait().unwrap().is_some()
        });
        t.write("release", "");
        let third = third.wait_with_output().unwrap();
        let codes: Vec<Option<i32>> = [a, b]
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code())
            .collect();
        assert!(refused, "a third resume ran along");
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, vec![Some(0), Some(1)], "{codes:?}");
        assert_eq!(third.status.code(), Some(1));
        let err = String::from_utf8_lossy(&third.stderr);
        assert!(err.contains("still running"), "{err}");
        // The step ran once in the first run and once in the resume that won.
        assert_eq!(t.count_lines("count.log"), 2);
    }
}

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// A split and a train step that writes checkpoints.
const TRAINS: &str = r#"
name: concurrent
inputs:
  penguins: {path: data/penguins.csv, format: csv, header: true, target: species}
steps:
  split:
    kind: split
    input: inputs.penguins
    strategy: {type: shuffle, stratify: species}
    fractions: {train: 0.8, validation: 0.2}
    seed: 7
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train, validation: split.validation}
    hyperparameters:
      objective: "multi:softprob"
      num_round: 30
      max_depth: 3
      checkpoint_frequency: 2
      seed: 7
"#;

#[test]
fn eight_identical_runs_at_once_never_fail_and_agree() {
    let t = Test::new()
        .file("p.yaml", TRAINS)
        .file("data/penguins.csv", PENGUINS);
    for round in 0..3 {
        let children: Vec<_> = (0..8)
            .map(|_| start(&t, &["run", "p.yaml", "--json", "--no-cache"]))
            .collect();
        let mut digests = Vec::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out.status.code(), Some(0), "round {round}: {text}");
            let s: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
            digests.push((digest(&s, "split", "train"), digest(&s, "train", "model")));
        }
        digests.dedup();
        assert_eq!(digests.len(), 1, "round {round}: {digests:?}");
    }
}

#[test]
fn a_retry_starts_in_a_fresh_directory() {
    // The first attempt leaves a partial file in its output and fails.
    let yaml = r#"
name: retried
steps:
  make:
    kind: command
    run: |
      echo try >> count.log
      if [ "$(wc -l < count.log)" -lt 2 ]; then echo partial > $PIPELINE_OUTPUT_OUT/partial; exit 3; fi
      echo done > $PIPELINE_OUTPUT_OUT/result
    outputs: [out]
    retry: {attempts: 2, backoff: 0s, on: [exit-code]}
"#;
    let t = Test::new().file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(t.count_lines("count.log"), 2);
    assert_eq!(
        tree(&output_path(&s, "make", "out")),
        vec![("result".into(), Some("done\n".into()))]
    );
}

#[test]
fn a_program_that_cannot_start_is_named() {
    let yaml = "name: missing\nsteps:\n  a:\n    kind: command\n    run: [no-such-program-here, x]\n    retry: {attempts: 3, backoff: 0s, on: [exit-code]}\n";
    let t = Test::new().file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).code(1).summary();
    assert_eq!(
        s["steps"]["a"]["failure"],
        "cannot start `no-such-program-here`: no such program (is it installed and on PATH?)"
    );
    // Not retried: a program that is not there will not be there next time.
    let shown = t
        .exec(["runs", "show", s["run_id"].as_str().unwrap()])
        .success();
    assert!(!shown.stdout.contains("attempts"), "{shown}");
}

const SLEEPS: &str = r#"
name: sleeper
steps:
  wait:
    kind: command
    run: echo $$ > step.pid; exec sleep 30
"#;

/// The engine starts supervisors without code of its own in the child (so
/// with `posix_spawn`, not `fork`): the supervisor itself asks to die with
/// the engine, and its step's process dies with it.
#[test]
fn a_step_and_its_supervisor_die_with_an_engine_killed_outright() {
    let t = Test::new().file("p.yaml", SLEEPS);
    let mut engine = start(&t, &["run", "p.yaml", "--json"]);
    let mut reader = BufReader::new(engine.stdout.take().unwrap());
    let events = read_events_until(&mut engine, &mut reader, |e| e["event"] == "step_started");
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();
    assert!(wait_for(Duration::from_secs(20), || {
        !t.read("step.pid").trim().is_empty()
    }));
    let step: i32 = t.read("step.pid").trim().parse().unwrap();
    let before = processes_of(&run_id);
    // The step's process and its supervisor.
    assert!(before.len() >= 2 && before.contains(&step), "{before:?}");
    engine.kill().expect("SIGKILL the engine");
    engine.wait().unwrap();
    let gone = wait_for(Duration::from_secs(5), || processes_of(&run_id).is_empty());
    let left = processes_of(&run_id);
    kill_all(&left);
    assert!(gone, "outlived the engine: {left:?}");
}

/// A supervisor whose parent is not the one it was told to die with (the
/// parent ended before it could ask) runs nothing.
#[test]
fn a_supervisor_orphaned_before_it_started_runs_nothing() {
    let t = Test::new();
    let out = t
        .exec([
            "supervise",
            "--die-with",
            "1",
            "--",
            "sh",
            "-c",
            "echo ran > ran.txt",
        ])
        .code(1);
    assert!(!t.path().join("ran.txt").exists(), "{out}");
    // Told its real parent, it runs the command.
    let parent = std::process::id().to_string();
    t.exec([
        "supervise",
        "--die-with",
        &parent,
        "--",
        "sh",
        "-c",
        "echo ran > ran.txt",
    ])
    .success();
    assert_eq!(t.read("ran.txt"), "ran\n");
}

#[test]
fn the_supervisor_subcommand_leaves_nothing_and_exits_like_its_command() {
    let t = Test::new();
    let out = t
        .exec([
            "supervise",
            "--",
            "sh",
            "-c",
            "setsid sleep 30 & echo $! > bg.pid; exit 7",
        ])
        .code(7);
    let bg: i32 = t.read("bg.pid").trim().parse().unwrap();
    let gone = !alive(bg);
    if !gone {
        // SAFETY: the stray sleep this test made.
        unsafe { libc::kill(bg, libc::SIGKILL) };
    }
    assert!(
        gone,
        "the background sleep {bg} outlived its supervisor\n{out}"
    );
    // A command killed by a signal: the supervisor ends by the same signal.
    let status = t
        .command(["supervise", "--", "sh", "-c", "kill -TERM $$"])
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

#[test]
fn a_cancelled_step_leaves_no_setsid_process() {
    let yaml = r#"
name: cancelled
steps:
  long:
    kind: command
    run: setsid sleep 30 & echo $! > bg.pid; sleep 30
"#;
    let t = Test::new().file("p.yaml", yaml);
    let mut engine = start(&t, &["run", "p.yaml", "--json"]);
    assert!(wait_for(Duration::from_secs(20), || {
        !t.read("bg.pid").trim().is_empty()
    }));
    let bg: i32 = t.read("bg.pid").trim().parse().unwrap();
    // SAFETY: signalling the engine this test started.
    unsafe { libc::kill(engine.id() as i32, libc::SIGINT) };
    assert_eq!(engine.wait().unwrap().code(), Some(130));
    let gone = wait_for(Duration::from_secs(2), || !alive(bg));
    if !gone {
        // SAFETY: the stray sleep this test made.
        unsafe { libc::kill(bg, libc::SIGKILL) };
    }
    assert!(
        gone,
        "the step's setsid'd sleep {bg} outlived the cancelled run"
    );
}
