//! Snapshots of what `plan` and `graph` print for a small pipeline.

use crate::harness::Test;

const SMALL: &str = r#"
name: small
params:
  depth: {type: int, default: 3}
steps:
  prep:
    kind: command
    run: echo rows > $PIPELINE_OUTPUT_DATA/rows.txt
    outputs: [data]
  train:
    kind: command
    run: cp $SM_CHANNEL_ROWS/rows.txt $PIPELINE_OUTPUT_MODEL/ && echo {{ params.depth }}
    inputs: {rows: prep.data}
    outputs: [model]
  check:
    kind: command
    run: echo checked
    after: [train]
  publish:
    kind: command
    run: echo published
    inputs: {model: train.model}
    when: "params.depth > 2"
"#;

#[test]
fn plan_before_and_after_a_run() {
    let t = Test::new().file("p.yaml", SMALL);
    let before = t.exec(["plan", "p.yaml"]).success();
    insta::assert_snapshot!("plan_fresh", before.stdout);
    assert!(!t.workspace().exists(), "plan created .pipeline/");
    t.exec(["run", "p.yaml"]).success();
    let after = t
        .exec(["plan", "p.yaml", "--param", "depth=4"])
        .success()
        .stdout;
    // Cached lines name the run they come from; keep the snapshot stable.
    let run_id = t.exec(["runs", "list", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&run_id.stdout).unwrap();
    let id = v[0]["id"].as_str().unwrap();
    insta::assert_snapshot!("plan_param_changed", after.replace(id, "RUN_ID"));
}

#[test]
fn graph_mermaid() {
    let out = Test::new()
        .file("p.yaml", SMALL)
        .args(["graph", "p.yaml", "--format", "mermaid"])
        .run()
        .success();
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn graph_dot() {
    let out = Test::new()
        .file("p.yaml", SMALL)
        .args(["graph", "p.yaml", "--format", "dot"])
        .run()
        .success();
    insta::assert_snapshot!(out.stdout);
}
