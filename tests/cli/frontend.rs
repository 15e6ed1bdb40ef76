//! The pipeline front end cannot be abused: YAML and template bombs fail
//! fast, templates see nothing of the machine, large files validate in
//! bounded time, secrets stay out of every record, and spec mistakes that
//! used to surface at run time are caught by `validate`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Output, Test, step_status};

const PENGUINS: &str = include_str!("../../pipelines/data/penguins.csv");

/// Runs the program with extra environment variables.
fn exec_env(t: &Test, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = t.command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("start the pipeline program");
    let out = Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!out.stderr.contains("panicked at"), "{out}");
    out
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                seen += 1;
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    assert!(seen > 0, "no files under {}", dir.display());
    hits
}

fn assert_nowhere(t: &Test, secret: &str, outputs: &[&Output]) {
    let hits = files_containing(&t.workspace(), secret);
    assert!(hits.is_empty(), "the secret is written in {hits:?}");
    for o in outputs {
        assert!(
            !o.stdout.contains(secret) && !o.stderr.contains(secret),
            "the secret is in the output\n{o}"
        );
    }
}

// ---- YAML and templates ------------------------------------------------

/// The classic: nine levels of nine aliases each, under 500 bytes.
fn billion_laughs() -> String {
    let mut s = String::from(
        "name: lol\nx0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..9 {
        let p = i - 1;
        s.push_str(&format!(
            "x{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    s.push_str("steps: *a8\n");
    s
}

#[test]
fn billion_laughs_fails_fast_at_the_alias() {
    let text = billion_laughs();
    assert!(text.len() < 500);
    let t = Test::new().file("p.yaml", &text);
    let started = Instant::now();
    let out = t.exec(["validate", "p.yaml"]);
    // Well under 100 ms in a release build; this bound only has to tell
    // "stopped at once" from "expanding 400 million nodes" (many seconds, GBs).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let out = out
        .invalid_at("p.yaml:6:10")
        .stderr_contains("aliases expand to more than");
    assert!(!t.workspace().exists(), "{out}");
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_crash() {
    let t = Test::new().file("p.yaml", &format!("{}x\n", "- ".repeat(100_000)));
    t.exec(["validate", "p.yaml"])
        .invalid_at("p.yaml:1:401")
        .stderr_contains("nest more than 200 deep");
}

#[test]
fn templates_cannot_read_the_environment() {
    let t = Test::new().file(
        "p.yaml",
        "name: t\nsteps:\n  a: {kind: command, run: [echo, \"{{ get_env(name='FRONTEND_TEST_TOKEN') }}\"]}\n",
    );
    let out = exec_env(
        &t,
        &["validate", "p.yaml"],
        &[("FRONTEND_TEST_TOKEN", "tok-5150-visible")],
    );
    let out = out
        .invalid_at("p.yaml:3:38")
        .stderr_contains("cannot fill in the template");
    assert!(!out.stderr.contains("tok-5150-visible"), "{out}");
}

#[test]
fn a_looping_template_is_stopped() {
    let t = Test::new().file(
        "p.yaml",
        "name: t\nsteps:\n  a:\n    kind: command\n    run: [echo, \"{% for a in range(99999) %}{% for b in range(99999) %}{{ a }}{% endfor %}{% endfor %}\"]\n",
    );
    let started = Instant::now();
    let out = t.exec(["validate", "p.yaml"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    insta::assert_snapshot!(out.invalid_at("p.yaml:5:17").stderr);
}

#[test]
fn template_syntax_users_write_still_works() {
    let t = Test::new().file(
        "p.yaml",
        "name: t\nparams:\n  n: {type: int, default: 3}\n  who: {type: string, default: world}\nsteps:\n  a:\n    kind: command\n    run: [sh, -c, \"echo {{ params.who | upper }} {{ params.n * 2 }} > {{ outputs.o }}/x\"]\n    outputs: [o]\n",
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let dir = s["steps"]["a"]["outputs"]["o"]["path"].as_str().unwrap();
    let text = std::fs::read_to_string(Path::new(dir).join("x")).unwrap();
    assert_eq!(text.trim(), "WORLD 6");
}

#[test]
fn forty_thousand_steps_validate_and_plan_in_bounded_time() {
    // A chain: each step reads the one before; the first runs on a condition,
    // so every later one "maybe" runs.
    let mut text = String::from("name: big\nparams: {go: true}\nsteps:\n");
    text.push_str("  s0: {kind: command, run: [\"true\"], outputs: [o], when: \"params.go\"}\n");
    for i in 1..40_000 {
        text.push_str(&format!(
            "  s{i}: {{kind: command, run: [\"true\"], inputs: {{i: s{}.o}}, outputs: [o]}}\n",
            i - 1
        ));
    }
    let t = Test::new().file("p.yaml", &text);
    // Quadratic validation took 100 s for 40,000 steps in a debug build, and
    // planning such a chain was quadratic again; linear takes a few seconds
    // (the bound is generous so a loaded machine cannot make it flaky).
    let bound = Duration::from_secs(60);
    let started = Instant::now();
    t.exec(["validate", "p.yaml"])
        .success()
        .stdout_contains("40000 steps");
    assert!(
        started.elapsed() < bound,
        "validate took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let plan = t.exec(["plan", "p.yaml"]).success();
    assert!(
        started.elapsed() < bound,
        "plan took {:?}",
        started.elapsed()
    );
    assert!(
        plan.stdout.contains("s39999  command  maybe"),
        "{}",
        &plan.stdout[..200]
    );
}

// ---- Secrets -----------------------------------------------------------

const SECRET: &str = "hunter2-c0ffee-secret";

fn secret_pipeline(source: &str) -> String {
    format!(
        "name: s
params:
  db_password: {source}
  region: {{type: string, default: eu}}
steps:
  use:
    kind: command
    run: [sh, -c, 'echo \"connecting with $DB_PASSWORD\"; printf %s \"$DB_PASSWORD\" | tr a-z A-Z > received.txt']
    env: {{DB_PASSWORD: \"{{{{ params.db_password }}}}\", REGION: \"{{{{ params.region }}}}\"}}
"
    )
}

#[test]
fn a_secret_from_the_environment_reaches_the_step_and_no_record() {
    let t = Test::new().file(
        "p.yaml",
        &secret_pipeline("{type: secret, env: FRONTEND_DB_PASSWORD}"),
    );
    let env = [("FRONTEND_DB_PASSWORD", SECRET)];
    let run = exec_env(&t, &["run", "p.yaml", "--json"], &env).success();
    assert_eq!(
        t.read("received.txt"),
        SECRET.to_uppercase(),
        "the step did not get the secret"
    );
    let run_id = run.summary()["run_id"].as_str().unwrap().to_string();
    let logs = t.exec(["logs", &run_id]).success();
    assert!(logs.stdout.contains("connecting with ***"), "{logs}");
    let show = t.exec(["runs", "show", &run_id, "--json"]).success();
    let show_text = t.exec(["runs", "show", &run_id]).success();
    let list = t.exec(["runs", "list"]).success();
    let plan = exec_env(&t, &["plan", "p.yaml"], &env).success();
    assert_nowhere(&t, SECRET, &[&run, &logs, &show, &show_text, &list, &plan]);
    // The run database is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    for f in ["runs.db", "runs.db-wal", "runs.db-shm"] {
        let p = t.workspace().join(f);
        if let Ok(m) = std::fs::metadata(&p) {
            assert_eq!(m.permissions().mode() & 0o077, 0, "{f} is open to others");
        }
    }
    // A changed secret does not re-run the step: secrets are not in cache keys.
    let again = exec_env(
        &t,
        &["run", "p.yaml", "--json"],
        &[("FRONTEND_DB_PASSWORD", "other")],
    )
    .success();
    assert!(crate::harness::step_cached(&again.summary(), "use"));
}

#[test]
fn a_secret_given_with_param_is_not_recorded_even_by_the_registry() {
    let t = Test::new().file("data/penguins.csv", PENGUINS).file(
        "p.yaml",
        "name: s
params:
  db_password: {type: secret, env: FRONTEND_UNSET_PASSWORD}
inputs:
  penguins: {path: data/penguins.csv, target: species}
on_approved: ['env > hook_env.txt']
steps:
  split:
    kind: split
    input: inputs.penguins
    fractions: {train: 0.7, test: 0.3}
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train}
    hyperparameters: {objective: 'multi:softprob', num_round: 5}
  evaluate:
    kind: evaluate
    model: train.model
    data: split.test
    metrics: [accuracy]
  register:
    kind: register
    model: train.model
    group: pg
    metrics: evaluate.metrics
    approval: {auto_approve_if: 'accuracy >= 0'}
  use:
    kind: command
    after: [register]
    run: [sh, -c, 'echo \"pw=$DB_PASSWORD\"; printf %s \"$DB_PASSWORD\" | tr a-z A-Z > received.txt']
    env: {DB_PASSWORD: '{{ params.db_password }}'}
",
    );
    let param = format!("db_password={SECRET}");
    let run = exec_env(&t, &["run", "p.yaml", "--param", &param, "--json"], &[]).success();
    let s = run.summary();
    assert_eq!(step_status(&s, "register"), "succeeded", "{s}");
    assert_eq!(
        t.read("received.txt"),
        SECRET.to_uppercase(),
        "the step did not get the secret"
    );
    let hook_env = t.read("hook_env.txt");
    assert!(
        hook_env.contains("PIPELINE_REGISTRY_"),
        "the hook did not run:\n{hook_env}"
    );
    assert!(
        !hook_env.contains(SECRET),
        "the hook's environment holds the secret"
    );
    let run_id = s["run_id"].as_str().unwrap().to_string();
    let outs = [
        t.exec(["runs", "show", &run_id, "--json"]).success(),
        t.exec(["logs", &run_id]).success(),
        t.exec(["registry", "show", "pg", "1"]).success(),
        t.exec(["registry", "show", "pg", "1", "--json"]).success(),
        t.exec(["registry", "list", "pg"]).success(),
    ];
    let mut all: Vec<&Output> = outs.iter().collect();
    all.push(&run);
    assert_nowhere(&t, SECRET, &all);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.workspace().join("registry.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "registry.db is open to others");
}

#[test]
fn a_secret_from_a_file_works_and_databases_are_made_private_again() {
    let t = Test::new()
        .file("p.yaml", &secret_pipeline("{type: secret, file: pw.txt}"))
        .file("pw.txt", &format!("{SECRET}\n"));
    t.exec(["run", "p.yaml"]).success();
    assert_eq!(t.read("received.txt"), SECRET.to_uppercase());
    use std::os::unix::fs::PermissionsExt;
    let db = t.workspace().join("runs.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    t.exec(["runs", "list"]).success();
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "runs.db was left open to others");
}

#[test]
fn a_missing_secret_is_an_error_before_anything_runs() {
    let t = Test::new().file(
        "p.yaml",
        &secret_pipeline("{type: secret, env: FRONTEND_NOT_SET}"),
    );
    let out = t.exec(["run", "p.yaml"]).invalid_at("p.yaml:3:36");
    assert!(!t.workspace().exists());
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_mistyped_param_name_does_not_echo_its_value() {
    let t = Test::new().file(
        "p.yaml",
        &secret_pipeline("{type: secret, env: FRONTEND_NOT_SET}"),
    );
    let param = format!("db_pasword={SECRET}");
    let out = t.exec(["validate", "p.yaml", "--param", &param]).code(2);
    let out = out.stderr_contains("unknown param `db_pasword`");
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
}

#[test]
fn a_secret_outside_env_is_refused() {
    let t = Test::new().file(
        "p.yaml",
        "name: s\nparams:\n  pw: {type: secret, env: FRONTEND_PW}\nsteps:\n  a:\n    kind: command\n    run: [echo, \"{{ params.pw }}\"]\n",
    );
    let out = exec_env(&t, &["validate", "p.yaml"], &[("FRONTEND_PW", SECRET)])
        .invalid_at("p.yaml:7:17")
        .stderr_contains("only in a step's `env:` values");
    assert!(!out.stderr.contains(SECRET));
    let t = Test::new().file(
        "p.yaml",
        "name: s\nparams:\n  pw: {type: secret, env: FRONTEND_PW, default: x}\nsteps:\n  a: {kind: command, run: [echo]}\n",
    );
    exec_env(&t, &["validate", "p.yaml"], &[("FRONTEND_PW", SECRET)])
        .invalid_at("p.yaml:3:40")
        .stderr_contains("cannot have `default`");
}

// ---- Spec-side defects ---------------------------------------------------

const EVAL: &str = "name: e
inputs:
  penguins: {path: data/penguins.csv, target: species}
steps:
  split:
    kind: split
    input: inputs.penguins
    fractions: {train: 0.7, test: 0.3}
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train}
    hyperparameters: {objective: 'multi:softprob', num_round: 5}
  evaluate:
    kind: evaluate
    model: train.model
    data: split.test
    metrics: [accuracy, f1_macro]
  register:
    kind: register
    model: train.model
    group: pg
    metrics: evaluate.metrics
    when: \"evaluate.metrics.accuracy >= 0.9\"
    approval: {auto_approve_if: \"accuracy >= 0.97\"}
";

fn eval_test(from: &str, to: &str) -> (Test, Output) {
    assert!(EVAL.contains(from), "{from}");
    let t = Test::new()
        .file("data/penguins.csv", PENGUINS)
        .file("p.yaml", &EVAL.replace(from, to));
    let out = t.exec(["validate", "p.yaml"]);
    (t, out)
}

#[test]
fn the_unchanged_metrics_pipeline_validates() {
    eval_test("", "").1.success();
}

#[test]
fn an_unknown_evaluate_metric_is_caught_at_validate() {
    let (_, out) = eval_test("[accuracy, f1_macro]", "[accuracy, f1_makro]");
    let out = out
        .invalid_at("p.yaml:18:25")
        .stderr_contains("did you mean `f1_macro`?");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn a_when_condition_reading_an_unknown_metric_is_caught_at_validate() {
    let (_, out) = eval_test("metrics.accuracy >=", "metrics.acuracy >=");
    let out = out
        .invalid_at("p.yaml:24:12")
        .stderr_contains("did you mean `accuracy`?");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn an_approval_condition_reading_an_unknown_metric_is_caught_at_validate() {
    let (_, out) = eval_test("\"accuracy >= 0.97\"", "\"accuracy >= 0.97 and f1 > 0.5\"");
    out.invalid_at("p.yaml:25:55")
        .stderr_contains("reports no metric `f1`");
    let (_, out) = eval_test(
        "{auto_approve_if: \"accuracy >= 0.97\"}",
        "{beat_champion: {metric: logloss}}",
    );
    out.invalid_at("p.yaml:25:40")
        .stderr_contains("reports no metric `logloss`");
}

#[test]
fn an_approval_condition_syntax_error_points_inside_the_condition() {
    let (_, out) = eval_test(
        "\"accuracy >= 0.97\"",
        "\"accuracy >= 0.97 & f1_macro > 0\"",
    );
    let out = out
        .invalid_at("p.yaml:25:51")
        .stderr_contains("unexpected `&`")
        .stderr_contains("write `and` or `&&`");
    insta::assert_snapshot!(out.stderr);
    // The same language and message in a when: condition.
    let (_, out) = eval_test(
        "\"evaluate.metrics.accuracy >= 0.9\"",
        "\"evaluate.metrics.accuracy >= 0.9 & true\"",
    );
    out.invalid_at("p.yaml:24:45")
        .stderr_contains("write `and` or `&&`");
}

#[test]
fn beat_champion_takes_higher_is_better_as_documented() {
    let (_, out) = eval_test(
        "{auto_approve_if: \"accuracy >= 0.97\"}",
        "{beat_champion: {metric: accuracy, by: 0.01, higher_is_better: true}}",
    );
    out.success();
}

#[test]
fn s3_uris_are_checked_at_validate_without_a_request() {
    let t = Test::new().file(
        "p.yaml",
        "name: s\ninputs:\n  raw: {path: \"s3://bucket/key.csv\"}\nsteps:\n  a: {kind: command, run: [echo], inputs: {raw: inputs.raw}}\n",
    );
    // Valid syntax: nothing is asked of S3 before a step reads the data.
    t.exec(["validate", "p.yaml"]).success();
    for (uri, needle) in [
        ("s3://Bad_Bucket/key.csv", "is not a valid bucket name"),
        ("s3:///key.csv", "names no bucket"),
        ("s3://bucket/a//b.csv", "empty path segment"),
        ("gs://bucket/key.csv", "`gs://` paths are not supported"),
    ] {
        t.write(
            "p.yaml",
            &format!("name: s\ninputs:\n  raw: {{path: \"{uri}\"}}\nsteps:\n  a: {{kind: command, run: [echo], inputs: {{raw: inputs.raw}}}}\n"),
        );
        t.exec(["validate", "p.yaml"])
            .invalid_at("p.yaml:3:15")
            .stderr_contains(needle);
    }
}

#[test]
fn env_keys_are_checked() {
    for (key, needle) in [
        ("1BAD", "not an environment variable name"),
        ("HAS-DASH", "not an environment variable name"),
        ("SM_MODEL_DIR", "set by the engine"),
        ("SAGEMAKER_PROGRAM", "set by the engine"),
    ] {
        let t = Test::new().file(
            "p.yaml",
            &format!(
                "name: s\nsteps:\n  a:\n    kind: command\n    run: [echo]\n    env: {{{key}: x}}\n"
            ),
        );
        t.exec(["validate", "p.yaml"])
            .invalid_at("p.yaml:6:11")
            .stderr_contains(needle);
    }
}

#[test]
fn a_command_step_takes_hyperparameters() {
    let t = Test::new().file(
        "p.yaml",
        "name: s\nsteps:\n  a:\n    kind: command\n    run: [sh, -c, 'echo \"$SM_HP_THRESHOLD $SM_HPS\" > hp.txt; cat $SM_INPUT_CONFIG_DIR/hyperparameters.json >> hp.txt']\n    hyperparameters: {threshold: 0.5}\n",
    );
    t.exec(["run", "p.yaml"]).success();
    let hp = t.read("hp.txt");
    // SM_HPS holds the values decoded, as SageMaker's training toolkit gives them.
    assert!(hp.starts_with("0.5 {\"threshold\":0.5}"), "{hp}");
    assert!(hp.contains("\"threshold\": \"0.5\""), "{hp}");
}

#[test]
fn a_step_naming_its_executor_keeps_it_over_the_command_line() {
    let t = Test::new().file(
        "p.yaml",
        "name: s\nsteps:\n  a:\n    kind: command\n    executor: local\n    run: [sh, -c, 'echo ran > ran.txt']\n",
    );
    // The docker executor would need an image for this step; the step says local.
    t.exec(["validate", "p.yaml"]).success();
    let out = t.exec(["run", "p.yaml", "--executor", "docker"]);
    let out = out.success();
    assert_eq!(t.read("ran.txt").trim(), "ran", "{out}");
}
