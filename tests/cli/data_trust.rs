//! The built-ins never silently ignore a hyperparameter or reinterpret data:
//! unsupported settings are refused where they are written, a stray text cell
//! in a numeric column is a located error unless declared, features are
//! chosen by the input, and a train channel can say its target.

use std::path::Path;

use serde_json::Value;

use crate::harness::{Test, step_cached, step_status};

/// 200 rows: `user_id`, two informative features, a noise column, a group
/// column and a binary label `y` that follows `a + b`.
fn events_csv() -> String {
    let mut s = String::from("user_id,a,b,noise,region,y\n");
    for i in 0..200u32 {
        let a = (i * 37 % 101) as f32 / 10.0;
        let b = (i * 53 % 89) as f32 / 10.0;
        let noise = (i * 7919 % 13) as f32;
        let y = u8::from(a + b > 9.5);
        s.push_str(&format!("u{i:04},{a},{b},{noise},r{},{y}\n", i % 10));
    }
    s
}

fn pipeline(input: &str, train_hps: &str) -> String {
    format!(
        r#"name: trust
inputs:
  events: {input}
steps:
  split:
    kind: split
    input: inputs.events
    strategy: {{type: shuffle}}
    fractions: {{train: 0.8, test: 0.2}}
  train:
    kind: train
    algorithm: gbdt
    channels: {{train: split.train}}
    hyperparameters: {train_hps}
"#
    )
}

const GBDT: &str = "{objective: \"binary:logistic\", num_round: 5}";

fn output_path(summary: &Value, step: &str, output: &str) -> String {
    summary["steps"][step]["outputs"][output]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn feature_names(model_dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(model_dir).join("model.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let found = ["feature_names", "features"]
        .iter()
        .find_map(|k| v.get(k).or_else(|| v.get("model").and_then(|m| m.get(k))))
        .cloned()
        .unwrap_or_else(|| panic!("no feature names in {text}"));
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unsupported_booster_is_refused_at_its_value() {
    let yaml = pipeline(
        "{path: events.csv, target: y}",
        "{objective: \"binary:logistic\", booster: gblinear}",
    );
    let out = Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", &yaml)
        .args(["validate", "p.yaml"])
        .run()
        .invalid_at("p.yaml:14:62");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn unsupported_tree_methods_and_ignored_solver_settings_are_refused() {
    for (hps, needle) in [
        (
            "{objective: \"binary:logistic\", tree_method: exact}",
            "trees are always grown from feature histograms",
        ),
        (
            "{objective: \"binary:logistic\", num_parallel_tree: 2}",
            "is not supported",
        ),
    ] {
        Test::new()
            .file("events.csv", &events_csv())
            .file("p.yaml", &pipeline("{path: events.csv, target: y}", hps))
            .args(["validate", "p.yaml"])
            .run()
            .code(2)
            .stderr_contains(needle);
    }
    let yaml = pipeline("{path: events.csv, target: y}", GBDT)
        .replace("algorithm: gbdt", "algorithm: linear-learner");
    let yaml = yaml.replace(
        GBDT,
        "{predictor_type: binary_classifier, epochs: 30, num_models: 4}",
    );
    Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", &yaml)
        .args(["validate", "p.yaml"])
        .run()
        .code(2)
        .stderr_contains("`num_models` = `4`: is not supported");
    let yaml = yaml.replace(", num_models: 4", "");
    Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", &yaml)
        .args(["validate", "p.yaml"])
        .run()
        .code(2)
        .stderr_contains(
            "`epochs` = `30`: has no effect here: it applies to optimizer sgd or adam",
        );
}

#[test]
fn an_irrelevant_hyperparameter_is_accepted_with_a_warning() {
    let yaml = pipeline(
        "{path: events.csv, target: y}",
        "{objective: \"binary:logistic\", num_round: 3, nthread: 4}",
    );
    Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", &yaml)
        .args(["validate", "p.yaml"])
        .run()
        .success()
        .stderr_contains("warning: step `train`: hyperparameter `nthread` has no effect here");
}

#[test]
fn lossguide_growth_trains_other_trees_than_depthwise() {
    let mut models = Vec::new();
    for policy in ["depthwise", "lossguide"] {
        let hps = format!(
            "{{objective: \"binary:logistic\", num_round: 3, max_leaves: 4, grow_policy: {policy}}}"
        );
        let t = Test::new()
            .file("events.csv", &events_csv())
            .file("p.yaml", &pipeline("{path: events.csv, target: y}", &hps));
        let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
        let dir = output_path(&s, "train", "model");
        models.push(std::fs::read_to_string(Path::new(&dir).join("xgboost-model.json")).unwrap());
    }
    assert_ne!(models[0], models[1], "grow_policy made no difference");
}

#[test]
fn a_stray_text_cell_in_a_numeric_column_is_a_located_error() {
    // Line 6 of the file (data row 5), column 2 (`a`).
    let mut lines: Vec<String> = events_csv().lines().map(str::to_string).collect();
    let mut fields: Vec<String> = lines[5].split(',').map(str::to_string).collect();
    fields[1] = "n/a?".to_string();
    lines[5] = fields.join(",");
    let csv = lines.join("\n") + "\n";
    let t = Test::new()
        .file("events.csv", &csv)
        .file("p.yaml", &pipeline("{path: events.csv, target: y}", GBDT));
    let out = t.exec(["run", "p.yaml"]).code(2);
    out.stderr_contains(":6:2: column `a`: `n/a?` is not a number, but the column holds numbers")
        .stderr_contains("missing_values");
    // Declared missing, the cell is a gap and the column stays numeric.
    t.write(
        "p.yaml",
        &pipeline(
            "{path: events.csv, target: y, missing_values: [\"n/a?\", \"\"]}",
            GBDT,
        ),
    );
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(step_status(&s, "train"), "succeeded");
    // Declared categorical, every value is a level.
    t.write(
        "p.yaml",
        &pipeline("{path: events.csv, target: y, categorical: [a]}", GBDT),
    );
    t.exec(["run", "p.yaml"]).success();
}

#[test]
fn infinite_and_out_of_range_numbers_are_reported() {
    for cell in ["inf", "1e39"] {
        let csv = events_csv().replacen("\nu0003,", &format!("\nu0003,{cell},0,0,r3,1\nu9999,"), 1);
        let t = Test::new()
            .file("events.csv", &csv)
            .file("p.yaml", &pipeline("{path: events.csv, target: y}", GBDT));
        t.exec(["run", "p.yaml"]).code(2).stderr_contains(&format!(
            ":5:2: column `a`: `{cell}` is infinite or beyond the range"
        ));
    }
}

#[test]
fn excluded_id_and_group_columns_are_not_features_and_ids_reach_the_predictions() {
    let yaml = r#"name: trust
inputs:
  events: {path: events.csv, target: y, id_columns: [user_id], features: {exclude: [noise]}}
steps:
  split:
    kind: split
    input: inputs.events
    strategy: {type: group, column: region}
    fractions: {train: 0.7, test: 0.3}
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train}
    hyperparameters: {objective: "binary:logistic", num_round: 5}
  predict:
    kind: transform
    model: train.model
    data: split.test
"#;
    let t = Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    let model = output_path(&s, "train", "model");
    assert_eq!(feature_names(&model), ["a", "b"]);
    let preds = output_path(&s, "predict", "predictions");
    let text = std::fs::read_to_string(Path::new(&preds).join("predictions.csv")).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("user_id,"), "{header}");
    assert!(header.ends_with(",predicted_label"), "{header}");
    let first = text.lines().nth(1).unwrap();
    assert!(first.starts_with('u'), "{first}");
    assert!(first.ends_with(",0") || first.ends_with(",1"), "{first}");
    // Asked for, the group column is a feature again.
    t.write(
        "p.yaml",
        &yaml.replace(
            "features: {exclude: [noise]}",
            "features: {include: [a, region]}",
        ),
    );
    // Without --no-cache: how the input is read is part of the train step's key.
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert!(!step_cached(&s, "train"), "{s}");
    assert_eq!(
        feature_names(&output_path(&s, "train", "model")),
        ["a", "region"]
    );
}

#[test]
fn an_unknown_feature_column_is_located_at_validate() {
    let out = Test::new()
        .file("events.csv", &events_csv())
        .file(
            "p.yaml",
            &pipeline(
                "{path: events.csv, target: y, features: {exclude: [user_ids]}}",
                GBDT,
            ),
        )
        .args(["validate", "p.yaml"])
        .run()
        .invalid_at("p.yaml:3:62");
    out.stderr_contains("column `user_ids` is not a column of `events.csv`")
        .stderr_contains("did you mean `user_id`?");
}

#[test]
fn a_train_channel_declares_the_target_of_a_command_steps_output() {
    let yaml = r#"name: trust
steps:
  prep:
    kind: command
    run: cp events.csv $PIPELINE_OUTPUT_DATA/events.csv
    outputs: [data]
  train:
    kind: train
    algorithm: gbdt
    channels: {train: {data: prep.data, target: y}}
    hyperparameters: {objective: "binary:logistic", num_round: 3}
"#;
    let t = Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", yaml);
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(step_status(&s, "train"), "succeeded", "{s}");
    // Without the declaration the channel has no target, and says how to give one.
    t.write(
        "p.yaml",
        &yaml.replace("{data: prep.data, target: y}", "prep.data"),
    );
    t.exec(["run", "p.yaml"])
        .code(2)
        .stderr_contains("declare it on a train channel");
    t.write(
        "p.yaml",
        &yaml.replace("target: y}", "target: y, label_size: 1}"),
    );
    t.exec(["validate", "p.yaml"])
        .code(2)
        .stderr_contains("not both");
}

#[test]
fn a_split_reads_quoted_line_breaks_and_lone_cr_endings_as_inspect_does() {
    // Every line ends in a lone CR, and one quoted note spans two lines.
    let mut csv = String::from("note,a,b,y\r");
    for i in 0..120u32 {
        let note = if i == 3 {
            "\"two\nlines\"".to_string()
        } else {
            format!("n{}", i % 3)
        };
        let a = (i * 37 % 101) as f32 / 10.0;
        csv.push_str(&format!("{note},{a},{},{}\r", i % 7, u8::from(a > 5.0)));
    }
    let t = Test::new()
        .file("events.csv", &csv)
        .file("p.yaml", &pipeline("{path: events.csv, target: y}", GBDT));
    t.exec(["inspect", "events.csv", "--target", "y"])
        .success()
        .stdout_contains("120");
    let s = t.exec(["run", "p.yaml", "--json"]).success().summary();
    assert_eq!(step_status(&s, "train"), "succeeded", "{s}");
}

#[test]
fn invalid_utf8_is_reported_with_its_byte_offset() {
    let t = Test::new().file("p.yaml", &pipeline("{path: events.csv, target: y}", GBDT));
    let mut bytes = events_csv().into_bytes();
    // Byte 40 is inside the second data row.
    bytes[40] = 0xff;
    std::fs::write(t.path().join("events.csv"), &bytes).unwrap();
    t.exec(["run", "p.yaml"])
        .code(2)
        .stderr_contains("byte offset 40");
}

#[test]
fn a_transform_records_the_registry_version_its_model_resolved_to() {
    let yaml = r#"name: trust
inputs:
  events: {path: events.csv, target: y, id_columns: [user_id]}
steps:
  split:
    kind: split
    input: inputs.events
    strategy: {type: shuffle}
    fractions: {train: 0.8, test: 0.2}
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train}
    hyperparameters: {objective: "binary:logistic", num_round: 3}
  register:
    kind: register
    model: train.model
    group: trust-model
"#;
    let t = Test::new()
        .file("events.csv", &events_csv())
        .file("p.yaml", yaml);
    t.exec(["run", "p.yaml"]).success();
    let scoring = r#"name: scoring
inputs:
  events: {path: events.csv, target: y, id_columns: [user_id]}
steps:
  score:
    kind: transform
    model: "registry://trust-model@latest"
    data: inputs.events
"#;
    t.write("score.yaml", scoring);
    let s = t.exec(["run", "score.yaml", "--json"]).success().summary();
    let dir = output_path(&s, "score", "predictions");
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dir).join("metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["model"]["ref"], "registry://trust-model@latest",
        "{meta}"
    );
    assert_eq!(meta["model"]["registry"]["version"], 1, "{meta}");
    assert_eq!(meta["model"]["registry"]["group"], "trust-model", "{meta}");
    assert!(
        meta["model"]["registry"]["artifact_digest"].is_string(),
        "{meta}"
    );
    let text = std::fs::read_to_string(Path::new(&dir).join("predictions.csv")).unwrap();
    assert_eq!(text.lines().count(), 201);
    assert!(text.lines().nth(1).unwrap().starts_with("u0000,"), "{text}");
}
