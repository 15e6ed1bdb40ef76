//! Invalid input: every case exits with code 2, prints one located error
//! (`--> p.yaml:LINE:COL`) and leaves `.pipeline/` as it was.

use crate::harness::{Output, Test};

/// Runs `pipeline run p.yaml ARGS` on `yaml` and checks the common contract:
/// exit code 2 at `location`, no workspace created. Returns stderr.
fn run_invalid(yaml: &str, extra_args: &[&str], location: &str) -> String {
    run_invalid_with(yaml, extra_args, |out| out.invalid_at(location))
}

/// [`run_invalid`] for errors in command-line arguments, which have no place
/// in the file of their own: exit code 2, one short error, nothing created.
fn run_invalid_args(yaml: &str, extra_args: &[&str]) -> String {
    run_invalid_with(yaml, extra_args, |out| {
        let out = out.code(2);
        assert!(out.stderr.starts_with("error: "), "{out}");
        assert!(out.stderr.lines().count() <= 25, "{out}");
        out
    })
}

fn run_invalid_with(yaml: &str, extra_args: &[&str], check: impl Fn(Output) -> Output) -> String {
    let t = Test::new().file("p.yaml", yaml);
    let mut args = vec!["run", "p.yaml"];
    args.extend_from_slice(extra_args);
    let out = check(t.exec(&args));
    assert!(
        !t.workspace().exists(),
        "an invalid pipeline created .pipeline/\n{out}"
    );
    // `validate` and `plan` read the file the same way and agree.
    let again = check(t.exec(["validate", "p.yaml"].iter().chain(extra_args)));
    assert_eq!(again.stderr, out.stderr, "validate and run disagree");
    check(t.exec(["plan", "p.yaml"].iter().chain(extra_args)));
    assert!(!t.workspace().exists(), "plan created .pipeline/");
    out.stderr
}

const MALFORMED: &str = "\
name: demo
steps:
  a:
    kind: command
    run: [echo, hi
  b:
    kind: command
    run: echo
";

#[test]
fn malformed_yaml() {
    let err = run_invalid(MALFORMED, &[], "p.yaml:6:4");
    insta::assert_snapshot!(err);
}

const MISSING_INPUT: &str = "\
name: demo
inputs:
  table: {path: data/missing.csv, format: csv}
steps:
  a:
    kind: command
    run: cat $SM_CHANNEL_DATA/*
    inputs: {data: inputs.table}
";

#[test]
fn missing_input_file() {
    let err = run_invalid(MISSING_INPUT, &[], "p.yaml:3:17");
    assert!(err.contains("data/missing.csv"), "{err}");
}

const UNKNOWN_REFERENCE: &str = "\
name: demo
steps:
  split:
    kind: command
    run: \"true\"
    outputs: [train, test]
  train:
    kind: command
    run: \"true\"
    inputs: {train: split.trian}
";

#[test]
fn unknown_reference_suggests_the_output() {
    let err = run_invalid(UNKNOWN_REFERENCE, &[], "p.yaml:10:21");
    assert!(
        err.contains("did you mean `split.train`?") || err.contains("`train`"),
        "{err}"
    );
    insta::assert_snapshot!(err);
}

const CYCLE: &str = "\
name: demo
steps:
  a:
    kind: command
    run: \"true\"
    after: [b]
  b:
    kind: command
    run: \"true\"
    after: [a]
";

#[test]
fn cycle_prints_the_path() {
    let err = run_invalid(CYCLE, &[], "p.yaml:6:13");
    assert!(err.contains("a -> b -> a"), "{err}");
    insta::assert_snapshot!(err);
}

const DUPLICATE_STEP: &str = "\
name: demo
steps:
  a:
    kind: command
    run: \"true\"
  a:
    kind: command
    run: \"false\"
";

#[test]
fn two_steps_with_one_name() {
    let err = run_invalid(DUPLICATE_STEP, &[], "p.yaml:6:3");
    assert!(err.contains("`a`"), "{err}");
    insta::assert_snapshot!(err);
}

const PARAM_WRONG_DEFAULT: &str = "\
name: demo
params:
  max_depth: {type: int, default: abc}
steps:
  a:
    kind: command
    run: echo {{ params.max_depth }}
";

#[test]
fn param_default_of_the_wrong_type() {
    let err = run_invalid(PARAM_WRONG_DEFAULT, &[], "p.yaml:3:35");
    assert!(err.contains("abc"), "{err}");
    insta::assert_snapshot!(err);
}

const PARAMS: &str = "\
name: demo
params:
  max_depth: {type: int, default: 4}
steps:
  a:
    kind: command
    run: echo {{ params.max_depth }}
";

#[test]
fn param_override_of_the_wrong_type() {
    // The value comes from the command line; the error names the declaration.
    let err = run_invalid_args(PARAMS, &["--param", "max_depth=abc"]);
    assert!(err.contains("--param max_depth=abc"), "{err}");
    assert!(
        err.contains("`max_depth` is declared as `type: int` at p.yaml:3:3"),
        "{err}"
    );
}

#[test]
fn unknown_param_on_the_command_line() {
    let err = run_invalid_args(PARAMS, &["--param", "max_dept=5"]);
    assert!(
        err.contains("--param max_dept=…") && !err.contains("=5"),
        "{err}"
    );
    assert!(err.contains("did you mean `max_depth`?"), "{err}");
    insta::assert_snapshot!(err);
}

const UNKNOWN_KIND: &str = "\
name: demo
steps:
  a:
    kind: comand
    run: \"true\"
";

#[test]
fn unknown_step_kind() {
    let err = run_invalid(UNKNOWN_KIND, &[], "p.yaml:4:11");
    assert!(err.contains("did you mean `command`?"), "{err}");
    insta::assert_snapshot!(err);
}

const UNKNOWN_KEY: &str = "\
name: demo
steps:
  a:
    kind: command
    run: \"true\"
    retyr: {attempts: 2}
";

#[test]
fn unknown_step_key() {
    let err = run_invalid(UNKNOWN_KEY, &[], "p.yaml:6:5");
    assert!(err.contains("did you mean `retry`?"), "{err}");
    insta::assert_snapshot!(err);
}

#[test]
fn unknown_top_level_key() {
    let yaml = "name: demo\nstpes:\n  a: {kind: command, run: \"true\"}\n";
    let err = run_invalid(yaml, &[], "p.yaml:2:1");
    assert!(err.contains("did you mean `steps`?"), "{err}");
}

const BAD_WHEN: &str = "\
name: demo
steps:
  a:
    kind: command
    run: \"true\"
    outputs: [metrics]
  b:
    kind: command
    run: \"true\"
    when: \"a.metrics.accuracy >= \"
";

#[test]
fn bad_when_expression() {
    // The caret points where the expression ends too early.
    let err = run_invalid(BAD_WHEN, &[], "p.yaml:10:34");
    insta::assert_snapshot!(err);
}

const TEMPLATE_UNKNOWN_PARAM: &str = "\
name: demo
params:
  max_depth: {type: int, default: 4}
steps:
  a:
    kind: command
    run: echo {{ params.max_dept }}
";

#[test]
fn template_names_an_unknown_param() {
    let err = run_invalid(TEMPLATE_UNKNOWN_PARAM, &[], "p.yaml:7:18");
    assert!(err.contains("did you mean `params.max_depth`?"), "{err}");
    insta::assert_snapshot!(err);
}

#[test]
fn missing_pipeline_file_is_invalid_input() {
    let t = Test::new();
    t.exec(["run", "nope.yaml"])
        .code(2)
        .stderr_contains("nope.yaml");
    assert!(!t.workspace().exists());
}

/// After a successful run, an invalid edit must not touch the workspace.
#[test]
fn invalid_input_leaves_an_existing_workspace_unchanged() {
    let good = "\
name: demo
steps:
  a:
    kind: command
    run: echo hi > $PIPELINE_OUTPUT_OUT/x
    outputs: [out]
";
    let t = Test::new().file("p.yaml", good);
    t.exec(["run", "p.yaml"]).success();
    let before = t.workspace_fingerprint();
    assert!(!before.is_empty());
    for (i, bad) in [
        MALFORMED,
        CYCLE,
        UNKNOWN_KIND,
        UNKNOWN_REFERENCE,
        MISSING_INPUT,
    ]
    .iter()
    .enumerate()
    {
        t.write("p.yaml", bad);
        let out = t.exec(["run", "p.yaml"]).code(2);
        assert_eq!(
            t.workspace_fingerprint(),
            before,
            "bad input #{i} changed .pipeline/\n{out}"
        );
    }
    t.write("p.yaml", PARAMS);
    t.exec(["run", "p.yaml", "--param", "max_dept=1"]).code(2);
    t.exec(["resume", "no-such-run"]).code(2);
    assert_eq!(t.workspace_fingerprint(), before);
}

#[test]

fn a_huge_duration_is_an_error_not_a_panic() {
    let yaml = "\
name: demo
steps:
  a:
    kind: command
    run: \"true\"
    timeout: 99999999999999999999s
";
    let err = run_invalid(yaml, &[], "p.yaml:6:14");
    assert!(err.contains("99999999999999999999s"), "{err}");
}

#[test]

fn an_out_of_range_attempts_says_the_range() {
    let yaml = "\
name: demo
steps:
  a:
    kind: command
    run: \"true\"
    retry: {attempts: 99999999999999999999}
";
    let err = run_invalid(yaml, &[], "p.yaml:6:23");
    assert!(!err.contains("found a whole number"), "{err}");
    assert!(err.contains("1 to 100"), "{err}");
}

#[test]
fn a_cycle_through_data_names_every_step() {
    let yaml = "\
name: demo
steps:
  a: {kind: command, run: \"true\", outputs: [o], inputs: {x: c.o}}
  b: {kind: command, run: \"true\", outputs: [o], inputs: {x: a.o}}
  c: {kind: command, run: \"true\", outputs: [o], inputs: {x: b.o}}
";
    let err = run_invalid(yaml, &[], "p.yaml:3:61");
    assert!(err.contains("a -> b -> c -> a"), "{err}");
}

#[test]
fn after_names_an_unknown_step() {
    let yaml = "\
name: demo
steps:
  train: {kind: command, run: \"true\"}
  check: {kind: command, run: \"true\", after: [trian]}
";
    let err = run_invalid(yaml, &[], "p.yaml:4:47");
    assert!(err.contains("did you mean `train`?"), "{err}");
}

/// What a step asks of where it runs is checked against its executor before
/// anything runs.
#[test]
fn placement_errors_point_at_the_key() {
    let isolated = "name: p\nsteps:\n  a:\n    kind: command\n    run: [true]\n    network: none\n";
    let err = run_invalid(isolated, &[], "p.yaml:6:14");
    assert!(err.contains("`network: none` needs a container"), "{err}");
    assert!(err.contains("executor: docker"), "{err}");

    let nodes =
        "name: p\nsteps:\n  a:\n    kind: command\n    run: [true]\n    resources: {nodes: 2}\n";
    let err = run_invalid(nodes, &[], "p.yaml:6:16");
    assert!(err.contains("`nodes: 2` is for train steps"), "{err}");

    let no_image =
        "name: p\ndefaults: {executor: docker}\nsteps:\n  a:\n    kind: command\n    run: [true]\n";
    let err = run_invalid(no_image, &[], "p.yaml:6:10");
    assert!(err.contains("needs the image to run it in"), "{err}");

    let dist = "name: p\nsteps:\n  s:\n    kind: command\n    run: [true]\n    outputs: [out]\n  t:\n    kind: train\n    algorithm: kmeans\n    channels: {train: {data: s.out, distribution: sharded}}\n    hyperparameters: {k: 2}\n";
    let err = run_invalid(dist, &[], "p.yaml:10:51");
    assert!(err.contains("unknown distribution `sharded`"), "{err}");
    assert!(err.contains("sharded_by_key"), "{err}");
}

#[test]
fn a_sharded_channel_with_fewer_files_than_nodes_is_invalid_input() {
    let p = "name: p\ninputs:\n  d: {path: d.csv, format: csv, header: false}\nsteps:\n  t:\n    kind: train\n    run: [true]\n    channels: {train: {data: inputs.d, distribution: sharded_by_key}}\n    resources: {nodes: 2}\n";
    let t = Test::new().file("p.yaml", p).file("d.csv", "1,2\n");
    let out = t.exec(["run", "p.yaml"]).code(2);
    assert!(
        out.stderr
            .contains("is `sharded_by_key` over 2 nodes but has 1 file"),
        "{out}"
    );
}
