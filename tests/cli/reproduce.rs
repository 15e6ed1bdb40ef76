//! Reproducibility: the lock every run writes, `run --locked`, and
//! `pipeline reproduce RUN [--verify]`; and the determinism promise they
//! rest on: the same lock gives byte-identical models and predictions across
//! reruns, `-j`, thread counts, executors and (gbdt) node counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Output, Test};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

fn penguins() -> Test {
    Test::new().file("data/penguins.csv", PENGUINS)
}

/// Every built-in kind on the penguins: a split, the four algorithms, a
/// holdout and a k-fold evaluation, predictions. `{resources}` is replaced
/// by each train step's `resources:` line (or nothing).
const FULL: &str = r#"
name: full
params:
  seed: {type: int, default: 11}
inputs:
  penguins: {path: data/penguins.csv, target: species}
steps:
  split:
    kind: split
    input: inputs.penguins
    strategy: {type: shuffle, stratify: species}
    fractions: {train: 0.6, validation: 0.2, test: 0.2}
    seed: "{{ params.seed }}"
  gbdt:
    kind: train
    algorithm: gbdt
    channels: {train: split.train, validation: split.validation}
    hyperparameters: {objective: "multi:softprob", num_round: 40, max_depth: 3, subsample: 0.8, colsample_bytree: 0.8, seed: 5}
{resources}
  linear:
    kind: train
    algorithm: linear-learner
    channels: {train: split.train}
    hyperparameters: {predictor_type: multiclass_classifier, num_classes: 3}
{resources}
  km:
    kind: train
    algorithm: kmeans
    channels: {train: split.train}
    hyperparameters: {k: 3, seed: 2}
{resources}
  pca:
    kind: train
    algorithm: pca
    channels: {train: split.train}
    hyperparameters: {num_components: 2}
{resources}
  evaluate:
    kind: evaluate
    model: gbdt.model
    data: split.test
    metrics: [accuracy, f1_macro, logloss]
  predict:
    kind: transform
    model: gbdt.model
    data: split.test
  cv:
    kind: evaluate
    method: kfold
    data: inputs.penguins
    folds: 4
    stratify: species
    algorithm: gbdt
    hyperparameters: {objective: "multi:softprob", num_round: 20}
    metrics: [accuracy, logloss]
{resources}
"#;

fn full(resources: &str) -> String {
    FULL.replace("{resources}\n", resources)
}

/// [`FULL`] with a register step that approves what it registers, and an
/// approval hook that says so in `hooks.log`.
fn full_registered(resources: &str) -> String {
    full(resources).replace(
        "steps:\n",
        "on_approved: [\"echo $PIPELINE_REGISTRY_REF >> hooks.log\"]\nsteps:\n",
    ) + "  register:\n    kind: register\n    model: gbdt.model\n    group: full\n    \
         metrics: evaluate.metrics\n    approval: {auto_approve_if: \"accuracy >= 0.5\"}\n"
}

/// Every output of a run summary, `STEP.OUTPUT` to its digest.
fn digests(summary: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (step, s) in summary["steps"].as_object().unwrap() {
        for (name, o) in s["outputs"].as_object().unwrap() {
            out.insert(
                format!("{step}.{name}"),
                o["digest"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

fn run_id(summary: &Value) -> String {
    summary["run_id"].as_str().unwrap().to_string()
}

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The report of `reproduce --json`: its last line.
fn report(out: &Output) -> Value {
    out.summary()
}

fn step_verdict(report: &Value, step: &str) -> String {
    report["steps"][step]["verdict"]
        .as_str()
        .unwrap_or_else(|| panic!("no step `{step}` in {report}"))
        .to_string()
}

/// What a reproduction must leave alone: the runs, the cache index, the
/// registry's versions and the store's artifacts.
#[derive(Debug, PartialEq)]
struct WorkspaceState {
    runs: Vec<String>,
    cache: Vec<String>,
    versions: Vec<(String, i64, String)>,
    store: BTreeSet<String>,
}

fn state(t: &Test) -> WorkspaceState {
    let ws = t.workspace();
    let db = rusqlite::Connection::open(ws.join("runs.db")).unwrap();
    let strings = |sql: &str| -> Vec<String> {
        let mut st = db.prepare(sql).unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let runs = strings("SELECT id || ' ' || status FROM runs ORDER BY id");
    let cache = strings("SELECT key || ' ' || run_id FROM cache ORDER BY key");
    let versions = match rusqlite::Connection::open_with_flags(
        ws.join("registry.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) {
        Ok(reg) => {
            let mut st = reg
                .prepare(
                    "SELECT g.name, v.version, v.status FROM model_versions v
                     JOIN model_groups g ON g.id = v.group_id ORDER BY 1, 2",
                )
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        Err(_) => vec![],
    };
    let mut store = BTreeSet::new();
    for shard in std::fs::read_dir(ws.join("store")).unwrap().flatten() {
        for a in std::fs::read_dir(shard.path()).unwrap().flatten() {
            store.insert(a.file_name().to_string_lossy().into_owned());
        }
    }
    WorkspaceState {
        runs,
        cache,
        versions,
        store,
    }
}

/// Hides what differs from one test run to the next in a message.
fn redact(t: &Test, text: &str, run: &str) -> String {
    let sandbox = t.path().canonicalize().unwrap();
    text.replace(&sandbox.display().to_string(), "[SANDBOX]")
        .replace(&t.path().display().to_string(), "[SANDBOX]")
        .replace(run, "[RUN]")
}

#[test]
fn a_run_writes_its_lock_beside_the_file_and_into_its_run_directory() {
    let t = penguins()
        .file("p.yaml", &full("    resources: {cpus: 1}\n"))
        .file(
            "q.yaml",
            "name: q\nsteps:\n  hi: {kind: command, run: echo hi}\n",
        );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let beside = json_file(&t.path().join("pipeline.lock"));
    assert_eq!(beside["lock_version"], 1);
    let lock = &beside["pipelines"]["p.yaml"];
    assert_eq!(lock["pipeline"], "full");
    assert_eq!(lock["params"]["seed"], 11);
    assert_eq!(
        lock["inputs"]["penguins"]["digest"],
        blake3::hash(PENGUINS.as_bytes()).to_hex().as_str()
    );
    assert_eq!(lock["inputs"]["penguins"]["path"], "data/penguins.csv");
    assert_eq!(
        lock["engine"],
        format!("pipeline {}", env!("CARGO_PKG_VERSION"))
    );
    let gbdt = &lock["steps"]["gbdt"];
    assert_eq!(
        (&gbdt["executor"], &gbdt["nodes"]),
        (&Value::from("local"), &Value::from(1))
    );
    assert_eq!(gbdt["seeds"]["hyperparameters.seed"], 5);
    assert_eq!(gbdt["spec"]["hyperparameters"]["num_round"], "40");
    // A built-in's default seed is recorded too; the split's comes from the param.
    assert_eq!(lock["steps"]["km"]["seeds"]["hyperparameters.seed"], 2);
    assert_eq!(lock["steps"]["linear"]["seeds"]["hyperparameters.seed"], 0);
    assert_eq!(lock["steps"]["split"]["seeds"]["seed"], 11);
    // The run's own lock is the same, taken before it started, with what
    // belongs to this machine (which the lock beside the file leaves out).
    assert!(lock.get("run").is_none(), "{lock:#}");
    let own = json_file(
        &t.workspace()
            .join("runs")
            .join(run_id(&s))
            .join("pipeline.lock"),
    );
    assert_eq!(own["pipelines"].as_object().unwrap().len(), 1);
    let mut own = own["pipelines"]["p.yaml"].clone();
    let facts = own.as_object_mut().unwrap().remove("run").unwrap();
    assert_eq!(&own, lock);
    assert_eq!(facts["platform"]["os"], std::env::consts::OS);
    assert_eq!(facts["platform"]["arch"], std::env::consts::ARCH);
    assert_eq!(facts["threads"]["gbdt"], 1);
    assert_eq!(
        facts["threads"]["evaluate"],
        std::thread::available_parallelism().unwrap().get()
    );
    let source = std::fs::read_to_string(t.path().join("p.yaml")).unwrap();
    assert_eq!(
        facts["source_digest"],
        blake3::hash(source.as_bytes()).to_hex().as_str()
    );

    // Unchanged, the lock is not written again; a new param value is written.
    let modified = || {
        std::fs::metadata(t.path().join("pipeline.lock"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = modified();
    t.exec(["run", "p.yaml"]).success();
    assert_eq!(modified(), before, "an unchanged lock was rewritten");
    t.exec(["run", "p.yaml", "--param", "seed=12"]).success();
    let beside = json_file(&t.path().join("pipeline.lock"));
    assert_eq!(beside["pipelines"]["p.yaml"]["params"]["seed"], 12);
    // Each pipeline file of the directory has its entry.
    t.exec(["run", "q.yaml"]).success();
    let beside = json_file(&t.path().join("pipeline.lock"));
    assert_eq!(beside["pipelines"]["q.yaml"]["pipeline"], "q");
    assert_eq!(beside["pipelines"]["p.yaml"]["params"]["seed"], 12);
}

#[test]
fn run_locked_refuses_changed_inputs_and_params_naming_each() {
    let t = penguins().file("p.yaml", &full(""));
    t.exec(["run", "p.yaml"]).success();
    let lock = t.read("pipeline.lock");
    let runs = state(&t).runs;
    // Unchanged (even touched), a locked run runs.
    t.write("data/penguins.csv", PENGUINS);
    t.exec(["run", "p.yaml", "--locked"]).success();
    t.write(
        "data/penguins.csv",
        &format!("{PENGUINS}Adelie,Dream,40.0,18.0,190,3500,male,2009\n"),
    );
    let out = t
        .exec(["run", "p.yaml", "--locked", "--param", "seed=12"])
        .invalid_at("p.yaml:6:3");
    assert!(out.stderr.contains("--> p.yaml:4:3"), "{out}");
    insta::assert_snapshot!(out.stderr);
    assert_eq!(t.read("pipeline.lock"), lock, "--locked wrote the lock");
    assert_eq!(
        state(&t).runs.len(),
        runs.len() + 1,
        "a refused run was recorded"
    );
    // Without --locked the run goes ahead and the lock follows.
    t.exec(["run", "p.yaml", "--param", "seed=12"]).success();
    assert_ne!(t.read("pipeline.lock"), lock);
    t.exec(["run", "p.yaml", "--locked", "--param", "seed=12"])
        .success();
}

#[test]
fn run_locked_without_a_lock_is_refused_before_anything_is_made() {
    let t = penguins().file("p.yaml", &full(""));
    let out = t.exec(["run", "p.yaml", "--locked"]).invalid_at("p.yaml");
    insta::assert_snapshot!(out.stderr);
    assert!(!t.workspace().exists(), "a refused run made .pipeline/");
    assert!(!t.path().join("pipeline.lock").exists());
}

#[test]
fn reproduce_verify_gives_the_same_bytes_and_leaves_the_workspace_alone() {
    let t = penguins().file("p.yaml", &full_registered(""));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(t.count_lines("hooks.log"), 1);
    let run = run_id(&s);
    let before = state(&t);
    let out = t
        .exec(["reproduce", &run[..12], "--verify", "--json"])
        .success();
    let r = report(&out);
    assert_eq!(r["verdict"], "identical", "{r:#}");
    for step in s["steps"].as_object().unwrap().keys() {
        assert_eq!(step_verdict(&r, step), "identical", "{step}: {r:#}");
    }
    let reg = &r["steps"]["register"]["outputs"]["version"];
    assert!(
        reg["note"]
            .as_str()
            .unwrap()
            .contains("scratch copy of the registry"),
        "{reg}"
    );
    // Nothing registered, approved, cached, stored or recorded; no hook ran.
    assert_eq!(state(&t), before);
    assert_eq!(t.count_lines("hooks.log"), 1);
    let dir = t.workspace().join("runs").join(&run).join("reproductions");
    assert!(dir.join("1.json").is_file());
    assert!(
        !dir.join("1").exists(),
        "an identical reproduction was kept"
    );
    assert_eq!(json_file(&dir.join("1.json"))["verdict"], "identical");
    // A person's report says the same.
    let out = t.exec(["reproduce", &run]).success();
    assert!(
        out.stdout.contains(&format!(
            "run {run} reproduced: every output of its 9 steps is identical"
        )),
        "{out}"
    );
    assert!(out.stdout.contains("  gbdt      identical\n"), "{out}");
    assert_eq!(state(&t), before);
}

const NOISY: &str = r#"
name: noisy
steps:
  steady:
    kind: command
    run: "mkdir $PIPELINE_OUTPUT_OUT/sub && echo same > $PIPELINE_OUTPUT_OUT/sub/a.txt"
    outputs: [out]
  noise:
    kind: command
    run: "head -c 64 /dev/urandom > $PIPELINE_OUTPUT_OUT/random.bin && echo same > $PIPELINE_OUTPUT_OUT/fixed.txt"
    outputs: [out]
  after:
    kind: command
    run: "cat $SM_CHANNEL_IN/fixed.txt > $PIPELINE_OUTPUT_OUT/copy.txt"
    inputs: {in: noise.out}
    outputs: [out]
"#;

#[test]
fn a_step_writing_random_bytes_is_reported_different_naming_the_file() {
    let t = Test::new().file("p.yaml", NOISY);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let run = run_id(&s);
    let out = t.exec(["reproduce", &run, "--verify", "--json"]).code(1);
    let r = report(&out);
    assert_eq!(r["verdict"], "different");
    assert_eq!(step_verdict(&r, "steady"), "identical");
    assert_eq!(step_verdict(&r, "after"), "identical", "{r:#}");
    assert_eq!(step_verdict(&r, "noise"), "different");
    let files = &r["steps"]["noise"]["outputs"]["out"]["files"];
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    assert_eq!(files[0]["path"], "random.bin");
    assert_eq!(files[0]["change"], "changed");
    // Kept, for a look at what differs.
    let kept = PathBuf::from(r["kept"].as_str().unwrap());
    assert!(kept.join("store").is_dir(), "{kept:?}");
    // Without --verify the report is the result.
    let out = t.exec(["reproduce", &run]).success();
    assert!(
        out.stdout
            .contains(&format!("run {run} NOT reproduced: 1 of 3 steps differ")),
        "{out}"
    );
    assert!(out.stdout.contains("noise.out different"), "{out}");
    assert!(out.stdout.contains("random.bin changed"), "{out}");
}

#[test]
fn reproducing_a_run_whose_inputs_are_gone_or_changed_names_each() {
    let p = "name: two\ninputs:\n  a: {path: data/a.csv}\n  b: {path: data/b.csv}\nsteps:\n  both:\n    kind: command\n    run: cat $SM_CHANNEL_A/a.csv $SM_CHANNEL_B/b.csv\n    inputs: {a: inputs.a, b: inputs.b}\n";
    let t = Test::new()
        .file("data/a.csv", "x\n1\n")
        .file("data/b.csv", "y\n2\n")
        .file("p.yaml", p);
    let run = run_id(&t.exec(["run", "p.yaml", "--json"]).success().summary());
    std::fs::remove_file(t.path().join("data/a.csv")).unwrap();
    t.write("data/b.csv", "y\n3\n");
    let out = t.exec(["reproduce", &run]).invalid_at("p.yaml:3:3");
    assert!(out.stderr.contains("--> p.yaml:4:3"), "{out}");
    insta::assert_snapshot!(redact(&t, &out.stderr, &run));
    assert!(
        !t.workspace()
            .join("runs")
            .join(&run)
            .join("reproductions")
            .exists(),
        "a refused reproduction left a scratch workspace"
    );
}

#[test]
fn reproduce_refuses_runs_it_cannot_reproduce() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\nsteps:\n  bad: {kind: command, run: exit 3}\n",
    );
    let failed = run_id(&t.exec(["run", "p.yaml", "--json"]).code(1).summary());
    t.exec(["reproduce", &failed])
        .code(2)
        .stderr_contains("only a run that succeeded has every output to compare with");
    t.exec(["reproduce", "nope"])
        .code(2)
        .stderr_contains("no run `nope`");
    t.write(
        "p.yaml",
        "name: p\nsteps:\n  ok: {kind: command, run: exit 0}\n",
    );
    let ok = run_id(&t.exec(["run", "p.yaml", "--json"]).success().summary());
    t.exec(["--store", "s3://b/p", "reproduce", &ok])
        .code(2)
        .stderr_contains("does not apply to reproduce");
    std::fs::remove_file(t.workspace().join("runs").join(&ok).join("pipeline.lock")).unwrap();
    t.exec(["reproduce", &ok])
        .code(2)
        .stderr_contains("it has no lock");
}

/// The example pipeline files and their data, as in the repository.
fn examples(t: &Test) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            t.write(
                &format!("pipelines/{name}"),
                &std::fs::read_to_string(e.path()).unwrap(),
            );
            names.push(name);
        }
    }
    t.write("pipelines/data/penguins.csv", PENGUINS);
    t.write(
        "pipelines/pipeline.lock",
        &std::fs::read_to_string(dir.join("pipeline.lock")).unwrap(),
    );
    // train.yaml registers the champion that ab.yaml compares against.
    names.sort_by_key(|n| (n != "train.yaml", n.clone()));
    names
}

#[test]
fn reproduce_verify_passes_on_every_example_pipeline() {
    let t = Test::new();
    let names = examples(&t);
    assert!(names.len() >= 3, "{names:?}");
    let mut runs = Vec::new();
    for name in &names {
        // The examples' lock is kept current with them (rerun the
        // examples without --locked and commit pipelines/pipeline.lock).
        let out = t.exec(["run", &format!("pipelines/{name}"), "--locked", "--json"]);
        assert_eq!(
            out.code,
            Some(0),
            "pipelines/pipeline.lock is out of date for {name}:\n{out}"
        );
        let s = out.summary();
        if name == "train.yaml" {
            t.exec([
                "registry",
                "approve",
                "penguins-species",
                "1",
                "--by",
                "test",
            ])
            .success();
        }
        runs.push((name.clone(), run_id(&s)));
    }
    // A newer champion since: a reproduction still reads the one the run read.
    t.exec(["run", "pipelines/train.yaml", "--param", "max_depth=2"])
        .success();
    t.exec([
        "registry",
        "approve",
        "penguins-species",
        "2",
        "--by",
        "test",
    ])
    .success();
    let before = state(&t);
    for (name, run) in &runs {
        let out = t.exec(["reproduce", run, "--verify", "--json"]);
        assert_eq!(out.code, Some(0), "{name}:\n{out}");
        assert_eq!(report(&out)["verdict"], "identical", "{name}: {out}");
    }
    assert_eq!(state(&t), before);
    let ab = &runs.iter().find(|(n, _)| n == "ab.yaml").unwrap().1;
    let lock = json_file(&t.workspace().join("runs").join(ab).join("pipeline.lock"));
    assert_eq!(
        lock["pipelines"]["ab.yaml"]["models"]["registry://penguins-species@approved"]["version"],
        1
    );
}

#[test]
fn the_same_pipeline_stores_the_same_bytes_whatever_the_jobs_and_threads() {
    let t = penguins();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut seen: Option<BTreeMap<String, String>> = None;
    let mut first_run = String::new();
    for (cpus, jobs) in [(Some(1), "1"), (Some(2), "4"), (Some(4), "4"), (None, "2")] {
        let resources = cpus.map_or(String::new(), |c| format!("    resources: {{cpus: {c}}}\n"));
        t.write("p.yaml", &full(&resources));
        let s = t
            .exec(["run", "p.yaml", "-j", jobs, "--no-cache", "--json"])
            .success()
            .summary();
        let lock = json_file(
            &t.workspace()
                .join("runs")
                .join(run_id(&s))
                .join("pipeline.lock"),
        );
        // A step is given at most this machine's cores (so 4 may be fewer here).
        let threads = cpus.map_or(cores, |c| c.min(cores));
        assert_eq!(
            lock["pipelines"]["p.yaml"]["run"]["threads"]["gbdt"],
            threads
        );
        let d = digests(&s);
        assert_eq!(d.len(), 13, "{d:?}");
        match &seen {
            None => {
                seen = Some(d);
                first_run = run_id(&s);
            }
            Some(first) => assert_eq!(
                first, &d,
                "cpus {cpus:?}, -j {jobs}: outputs differ from cpus 1, -j 1"
            ),
        }
    }
    let out = t
        .exec(["reproduce", &first_run, "--verify", "-j", "4", "--json"])
        .success();
    assert_eq!(report(&out)["verdict"], "identical");
}

/// `parts/part-N.csv`: five part files of uneven sizes of [`crate::builtins::dp_data`], each with the header.
fn with_parts(mut t: Test) -> Test {
    let data = crate::builtins::dp_data(900);
    let lines: Vec<&str> = data.lines().collect();
    for (i, range) in [
        (0, 1..150),
        (1, 150..400),
        (2, 400..420),
        (3, 420..700),
        (4, 700..901),
    ] {
        let mut part = format!("{}\n", lines[0]);
        for l in &lines[range] {
            part.push_str(l);
            part.push('\n');
        }
        t = t.file(&format!("parts/part-{i}.csv"), &part);
    }
    t.file("data.csv", &data)
}

/// gbdt on one node and on three, in several settings, each model's predictions too.
fn gbdt_nodes_pipeline(executor: &str) -> String {
    let mut p = format!(
        "name: nodes\ndefaults: {{executor: {executor}}}\ninputs:\n  \
         penguins: {{path: data/penguins.csv, target: species}}\n  \
         parts: {{path: parts, target: y}}\n  \
         data: {{path: data.csv, target: y}}\nsteps:\n  \
         split:\n    kind: split\n    input: inputs.penguins\n    \
         strategy: {{type: shuffle, stratify: species}}\n    \
         fractions: {{train: 0.7, validation: 0.3}}\n    seed: 5\n"
    );
    let variants = [
        (
            "early",
            "{train: split.train, validation: split.validation}",
            "{objective: \"multi:softprob\", num_round: 200, early_stopping_rounds: 5, max_depth: 4}",
            "split.validation",
        ),
        (
            "sampled",
            "{train: split.train}",
            "{objective: \"multi:softprob\", num_round: 30, subsample: 0.7, colsample_bytree: 0.6, seed: 3}",
            "split.validation",
        ),
        (
            "lossguide",
            "{train: split.train}",
            "{objective: \"multi:softprob\", num_round: 20, grow_policy: lossguide, max_leaves: 6}",
            "split.validation",
        ),
        (
            "sharded",
            "{train: {data: inputs.parts, distribution: sharded_by_key}}",
            "{objective: \"binary:logistic\", num_round: 10, max_depth: 4}",
            "inputs.data",
        ),
    ];
    for (name, channels, hps, data) in variants {
        for nodes in [1, 3] {
            p.push_str(&format!(
                "  {name}-{nodes}:\n    kind: train\n    algorithm: gbdt\n    channels: {channels}\n    \
                 hyperparameters: {hps}\n    resources: {{nodes: {nodes}}}\n  \
                 {name}-{nodes}-predict:\n    kind: transform\n    model: {name}-{nodes}.model\n    data: {data}\n"
            ));
        }
    }
    p
}

/// Each 3-node model is the 1-node model's bytes, and so are its
/// predictions (`predictions.csv`: the output's `metadata.json` names the model).
fn check_gbdt_nodes(summary: &Value) {
    let d = digests(summary);
    let predictions = |step: &str| {
        let dir = summary["steps"][step]["outputs"]["predictions"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no predictions of {step}"));
        std::fs::read(Path::new(dir).join("predictions.csv")).unwrap()
    };
    for name in ["early", "sampled", "lossguide", "sharded"] {
        let (one, three) = (format!("{name}-1.model"), format!("{name}-3.model"));
        assert!(d.contains_key(&one), "{one} missing in {d:?}");
        assert_eq!(
            d.get(&one),
            d.get(&three),
            "{one} and {three} differ: gbdt on 3 nodes is not byte-identical to 1"
        );
        assert!(
            predictions(&format!("{name}-1-predict")) == predictions(&format!("{name}-3-predict")),
            "the predictions of {name}-1 and {name}-3 differ"
        );
    }
}

#[test]
fn gbdt_on_three_nodes_stores_the_same_bytes_as_on_one() {
    let t = with_parts(penguins()).file("p.yaml", &gbdt_nodes_pipeline("local"));
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    check_gbdt_nodes(&s);
    let out = t
        .exec(["reproduce", &run_id(&s), "--verify", "--json"])
        .success();
    let r = report(&out);
    assert_eq!(r["verdict"], "identical");
    // gbdt on several nodes is promised byte for byte: no tolerance.
    assert!(r["steps"]["early-3"].get("tolerance").is_none(), "{r:#}");
}

const KMEANS_NODES: &str = r#"
name: km
inputs:
  parts: {path: parts, format: csv, header: true}
  data: {path: data.csv, format: csv, header: true}
steps:
  km:
    kind: train
    algorithm: kmeans
    channels: {train: {data: inputs.parts, distribution: sharded_by_key}}
    hyperparameters: {k: 3, init_method: kmeans++}
    resources: {nodes: 3}
  assign:
    kind: transform
    model: km.model
    data: inputs.data
"#;

/// `text` with the first number after `key` changed by `change`.
fn nudge(text: &str, key: &str, change: impl Fn(&str) -> String) -> String {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        + key.len();
    let len = text[at..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap();
    format!(
        "{}{}{}",
        &text[..at],
        change(&text[at..at + len]),
        &text[at + len..]
    )
}

#[test]
fn multi_node_kmeans_is_compared_within_its_stated_tolerance() {
    use std::os::unix::fs::PermissionsExt;
    let t = with_parts(Test::new()).file("p.yaml", KMEANS_NODES);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let run = run_id(&s);
    let r = report(&t.exec(["reproduce", &run, "--verify", "--json"]).success());
    // The same nodes add in the same order: in practice the same bytes, but
    // the promise is the tolerance, and the report says so.
    assert_eq!(step_verdict(&r, "km"), "identical", "{r:#}");
    let why = r["steps"]["km"]["tolerance"].as_str().unwrap();
    assert!(
        why.contains("kmeans on 3 nodes") && why.contains("1e-6"),
        "{why}"
    );
    assert!(
        r["steps"]["assign"]["tolerance"]
            .as_str()
            .unwrap()
            .contains("`km`")
    );
    let out = t.exec(["reproduce", &run]).success();
    assert!(
        out.stdout
            .contains("not promised byte-identical: kmeans on 3 nodes"),
        "{out}"
    );

    // A recorded model that differs from the reproduction's by far less than
    // the tolerance, as one trained elsewhere might: the record is pointed
    // at a nudged copy of the model (under a digest of its own).
    let digest = s["steps"]["km"]["outputs"]["model"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let fake = "f".repeat(64);
    let store = t.workspace().join("store");
    let copy = store.join("ff").join(&fake);
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["model.json", "model.tar.gz"] {
        std::fs::copy(store.join(&digest[..2]).join(&digest).join(f), copy.join(f)).unwrap();
        std::fs::set_permissions(copy.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let db = rusqlite::Connection::open(t.workspace().join("runs.db")).unwrap();
    db.execute(
        "UPDATE steps SET outputs = replace(outputs, ?1, ?2) WHERE run_id = ?3 AND name = 'km'",
        [&digest, &fake, &run],
    )
    .unwrap();
    drop(db);
    let model = copy.join("model.json");
    let original = std::fs::read_to_string(&model).unwrap();
    let rewrite = |text: &str| std::fs::write(&model, text).unwrap();
    rewrite(&nudge(&original, "\"mean\":[", |n| {
        let last = n.chars().last().unwrap().to_digit(10).unwrap();
        format!("{}{}", &n[..n.len() - 1], (last + 1) % 10)
    }));
    let out = t.exec(["reproduce", &run, "--verify", "--json"]).success();
    let r = report(&out);
    assert_eq!(r["verdict"], "within-tolerance", "{r:#}");
    assert_eq!(step_verdict(&r, "km"), "within-tolerance");
    assert_eq!(step_verdict(&r, "assign"), "identical");
    let files = &r["steps"]["km"]["outputs"]["model"]["files"];
    assert_eq!(files[0]["path"], "model.json", "{files}");
    assert_eq!(files[0]["within_tolerance"], true);
    // And by more: different.
    rewrite(&nudge(&original, "\"centres\":[", |n| format!("1{n}")));
    let out = t.exec(["reproduce", &run, "--verify", "--json"]).code(1);
    let r = report(&out);
    assert_eq!(step_verdict(&r, "km"), "different", "{r:#}");
    assert_eq!(
        r["steps"]["km"]["outputs"]["model"]["files"][0]["within_tolerance"],
        false
    );
}

#[test]
fn docker_and_local_store_the_same_bytes_and_a_docker_run_reproduces() {
    if !crate::docker::docker("docker_and_local_store_the_same_bytes_and_a_docker_run_reproduces") {
        return;
    }
    let t = with_parts(penguins())
        .file("p.yaml", &full_registered("    resources: {cpus: 1}\n"))
        .file("nodes.yaml", &gbdt_nodes_pipeline("docker"));
    let local = t
        .exec(["run", "p.yaml", "--executor", "local", "--json"])
        .success()
        .summary();
    let docker = t
        .exec(["run", "p.yaml", "--executor", "docker", "--json"])
        .success()
        .summary();
    // Each run registers (the executor is part of the registration), so
    // the versions' records differ; everything computed is the same.
    let computed = |s: &Value| {
        let mut d = digests(s);
        d.remove("register.version").expect("registered");
        d
    };
    assert_eq!(
        computed(&local),
        computed(&docker),
        "docker and local outputs differ"
    );
    let r = report(
        &t.exec(["reproduce", &run_id(&docker), "--verify", "--json"])
            .success(),
    );
    assert_eq!(r["verdict"], "identical", "{r:#}");
    let lock = json_file(
        &t.workspace()
            .join("runs")
            .join(run_id(&docker))
            .join("pipeline.lock"),
    );
    let lock = &lock["pipelines"]["p.yaml"];
    assert_eq!(lock["steps"]["gbdt"]["executor"], "docker");
    // A register step runs beside the engine whatever the executor.
    assert_eq!(lock["steps"]["register"]["executor"], "local");
    let image = &lock["run"]["runtime_image"];
    assert!(
        image["tag"]
            .as_str()
            .unwrap()
            .starts_with("pipeline-runtime:"),
        "{image}"
    );
    assert!(
        image["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{lock:#}"
    );
    // Three docker nodes train the bytes one does.
    let s = t.exec(["run", "nodes.yaml", "--json"]).success().summary();
    check_gbdt_nodes(&s);
}

#[test]
fn a_step_does_not_read_an_input_changed_after_the_lock_was_taken() {
    // `touch` changes the data after the run's lock was taken, before `read` starts.
    let p = "name: late\ninputs:\n  x: {path: data/x.csv}\nsteps:\n  touch:\n    kind: command\n    run: echo 2 >> data/x.csv\n  read:\n    kind: command\n    run: cat $SM_CHANNEL_X/x.csv\n    inputs: {x: inputs.x}\n    after: [touch]\n";
    let t = Test::new().file("data/x.csv", "1\n").file("p.yaml", p);
    let out = t.exec(["run", "p.yaml", "--json"]).code(1);
    let s = out.summary();
    assert_eq!(s["steps"]["touch"]["status"], "succeeded");
    assert_eq!(s["steps"]["read"]["status"], "failed");
    let why = s["steps"]["read"]["failure"].as_str().unwrap();
    assert!(
        why.contains("input `x` (data/x.csv) changed since the run started"),
        "{why}"
    );
}

#[test]
fn a_user_image_is_locked_by_id_and_a_retagged_one_is_refused() {
    let test = "a_user_image_is_locked_by_id_and_a_retagged_one_is_refused";
    if !crate::docker::docker(test) {
        return;
    }
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let tag = format!("pipeline-test/retagged:{}", std::process::id());
    docker(&["tag", &crate::docker::user_image(), &tag]);
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    let p = format!(
        "name: img\ndefaults: {{executor: docker}}\nsteps:\n  hello:\n    kind: command\n    image: {tag}\n    \
         run: [sh, -c, \"echo hi > $PIPELINE_OUTPUT_OUT/x.txt\"]\n    outputs: [out]\n"
    );
    let t = Test::new().file("p.yaml", &p);
    let run = run_id(&t.exec(["run", "p.yaml", "--json"]).success().summary());
    let lock = json_file(&t.workspace().join("runs").join(&run).join("pipeline.lock"));
    assert_eq!(lock["pipelines"]["p.yaml"]["images"][&tag], id.as_str());
    assert_eq!(
        lock["pipelines"]["p.yaml"]["steps"]["hello"]["image"],
        tag.as_str()
    );
    t.exec(["reproduce", &run, "--verify"]).success();
    // The tag now names another image: neither a locked run nor a reproduction goes ahead.
    let other = docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "pipeline-runtime",
    ]);
    docker(&["tag", other.lines().next().unwrap(), &tag]);
    let refused = t.exec(["reproduce", &run]);
    let locked = t.exec(["run", "p.yaml", "--locked"]);
    docker(&["rmi", &tag]);
    let refused = refused.code(2);
    assert!(
        refused
            .stderr
            .contains(&format!("image `{tag}` differs from the run's lock")),
        "{refused}"
    );
    assert!(refused.stderr.contains(&id), "{refused}");
    locked
        .code(2)
        .stderr_contains(&format!("image `{tag}` differs from pipeline.lock"));
}
