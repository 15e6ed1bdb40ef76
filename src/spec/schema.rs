//! The JSON Schema of pipeline files, for editors (`# yaml-language-server: $schema=...`).
//!
//! Generated from the same key lists the decoder enforces, so the two cannot
//! drift apart silently: a test compares `schemas/pipeline.schema.json` with
//! [`pipeline_schema`], and `pipeline schema > schemas/pipeline.schema.json`
//! refreshes it.

use serde_json::{Map, Value, json};

use super::model::{
    CatchUp, Concurrency, ContentType, DataFormat, Distribution, Executor, InputMode, Network,
    RetryOn, StepKind,
};

fn reference() -> Value {
    json!({"type": "string", "pattern": "^(inputs\\.[A-Za-z_][A-Za-z0-9_-]*|[A-Za-z_][A-Za-z0-9_-]*\\.[A-Za-z_][A-Za-z0-9_-]*|registry://[A-Za-z_][A-Za-z0-9_-]*(@(approved|latest|[1-9][0-9]*))?)$",
        "description": "inputs.NAME, STEP.OUTPUT or registry://GROUP@approved|latest|N"})
}

fn scalar() -> Value {
    json!({"type": ["string", "number", "integer", "boolean"]})
}

fn duration() -> Value {
    json!({"type": ["string", "number"], "description": "a duration: 500ms, 30s, 10m, 2h, 7d"})
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": props, "required": required})
}

fn common_props() -> Map<String, Value> {
    let v = json!({
        "kind": {"enum": StepKind::NAMES},
        "description": {"type": "string"},
        "after": {"type": "array", "items": {"type": "string"}},
        "when": {"type": "string", "description": "e.g. evaluate.metrics.accuracy >= 0.9"},
        "executor": {"enum": Executor::NAMES},
        "retry": object(json!({
            "attempts": {"type": "integer", "minimum": 1, "maximum": 100},
            "backoff": duration(),
            "on": {"type": "array", "items": {"enum": RetryOn::NAMES}}
        }), &[]),
        "timeout": duration(),
        "stop_timeout": {"type": ["string", "number"], "description": "between SIGTERM and SIGKILL when the step is stopped (default 120s, as SageMaker)"},
        "env": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "additionalProperties": scalar()},
        "cache": {"oneOf": [{"type": "boolean"}, object(json!({"expire_after": duration()}), &["expire_after"])]},
        "resources": object(json!({
            "cpus": {"type": "number", "exclusiveMinimum": 0},
            "memory": {"type": ["string", "integer"], "description": "e.g. 4GiB"},
            "nodes": {"type": "integer", "minimum": 1, "maximum": 256},
            "instance_type": {"type": "string"}
        }), &[]),
        "network": {"enum": Network::NAMES, "description": "none: no network at all (container executors)"},
        "batch": object(json!({
            "job_queue": {"type": "string", "minLength": 1},
            "region": {"type": "string", "minLength": 1},
            "job_role_arn": {"type": "string", "pattern": "^arn:"},
            "execution_role_arn": {"type": "string", "pattern": "^arn:"},
            "runtime_image": {"type": "string", "minLength": 1},
            "image_repository": {"type": "string", "minLength": 1},
            "runnable_timeout": duration(),
            "job_environment": {"type": "object", "additionalProperties": scalar(),
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}
        }), &[])
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn step(kind: &str, extra: Value, required: &[&str]) -> Value {
    let mut props = common_props();
    props.insert("kind".into(), json!({"const": kind}));
    if let Value::Object(m) = extra {
        props.extend(m);
    }
    let mut req = vec!["kind"];
    req.extend_from_slice(required);
    json!({"type": "object", "additionalProperties": false, "properties": props, "required": req})
}

/// The whole schema.
pub fn pipeline_schema() -> Value {
    let fractions = json!({"type": "object", "additionalProperties": false,
        "properties": {"train": {"type": "number"}, "validation": {"type": "number"}, "test": {"type": "number"}}});
    let hps = json!({"type": "object", "additionalProperties": scalar()});
    let refs = json!({"type": "object", "additionalProperties": reference()});
    let run =
        json!({"oneOf": [{"type": "string"}, {"type": "array", "items": scalar(), "minItems": 1}]});
    let input_mode = json!({"enum": InputMode::NAMES,
        "description": "file: the channel's files under input/data/CHANNEL/; pipe: streamed through the named pipes input/data/CHANNEL_0, CHANNEL_1, ... (one an epoch)"});
    let content_type = json!({"type": "string", "examples": ContentType::NAMES,
        "description": "SageMaker's name for the data's format, instead of `format` (text/csv is headerless; `text/csv; label_size=1` has the label first)"});
    let train_props = json!({
        "algorithm": {"enum": crate::exec::builtin::ALGORITHMS},
        "image": {"type": "string"}, "run": run,
        "source_dir": {"type": "string", "description": "your code's directory, copied to /opt/ml/code"},
        "entry_point": {"type": "string", "description": "the script that runs (SAGEMAKER_PROGRAM), in source_dir"},
        "program": {"type": "string", "description": "older name of entry_point"},
        "metric_definitions": {"type": "array", "items": object(json!({
            "name": {"type": "string"},
            "regex": {"type": "string", "description": "the value is its first group; tabs also read as #011. Without it, the metric's last value in the JSON lines the code writes to $PIPELINE_METRICS_FILE"}
        }), &["name"])},
        "channels": {"type": "object", "additionalProperties": {"oneOf": [
            {"type": "string"},
            object(json!({
                "data": {"type": "string"},
                "distribution": {"enum": Distribution::NAMES},
                "target": {"type": "string"},
                "header": {"type": "boolean"},
                "label_size": {"type": "integer", "minimum": 0, "maximum": 1},
                "format": {"enum": DataFormat::NAMES},
                "content_type": content_type.clone(),
                "input_mode": input_mode.clone()
            }), &["data"])
        ]}},
        "hyperparameters": hps,
        "input_mode": input_mode
    });
    let steps = json!([
        step(
            "split",
            json!({
                "input": reference(),
                "sources": {"type": "array", "items": object(json!({"input": reference(), "fractions": fractions}), &["input", "fractions"])},
                "strategy": {"oneOf": [{"enum": ["shuffle"]}, object(json!({
                    "type": {"enum": ["shuffle", "time", "group"]},
                    "stratify": {"type": "string"}, "column": {"type": "string"},
                    "cutoffs": {"type": "array", "items": {"type": "string"}}, "gap": duration()}), &["type"])]},
                "fractions": fractions,
                "seed": {"type": ["integer", "string"]}
            }),
            &[]
        ),
        step(
            "train",
            {
                let mut p = train_props.clone();
                p["onnx"] = json!({"type": "boolean", "description": "also write the built-in's model as ONNX: the output `onnx` (model.onnx)"});
                p
            },
            &[]
        ),
        step("tune", tune_props(&train_props), &["ranges", "objective"]),
        step(
            "automl",
            automl_props(&train_props),
            &["channels", "objective", "budget"]
        ),
        step(
            "evaluate",
            json!({
                "method": {"enum": ["holdout", "kfold", "ab"]},
                "model": reference(), "data": reference(),
                "metrics": {"type": "array", "items": {"type": "string"}},
                "folds": {"type": "integer", "minimum": 2}, "stratify": {"type": "string"},
                "group_column": {"type": "string"}, "time_column": {"type": "string"},
                "algorithm": {"enum": crate::exec::builtin::ALGORITHMS}, "hyperparameters": hps,
                "variants": {"type": "array", "items": object(json!({"name": {"type": "string"}, "model": reference(), "weight": {"type": "number"}}), &["name", "model", "weight"])},
                "seed": {"type": ["integer", "string"]}
            }),
            &["data"]
        ),
        step(
            "register",
            json!({
                "model": reference(), "group": {"type": "string"}, "metrics": reference(),
                "approval": {"oneOf": [{"const": "manual"}, object(json!({
                    "auto_approve_if": {"type": "string"},
                    "beat_champion": object(json!({"metric": {"type": "string"}, "by": {"type": "number"}, "higher_is_better": {"type": "boolean"}}), &["metric"])}), &[])]},
                "tags": {"type": "object", "additionalProperties": scalar()}
            }),
            &["model", "group"]
        ),
        step(
            "transform",
            json!({"model": reference(), "data": reference()}),
            &["model", "data"]
        ),
        step(
            "command",
            json!({
                "run": run, "inputs": refs,
                "outputs": {"type": "array", "items": {"type": "string"}},
                "image": {"type": "string"},
                "source_dir": {"type": "string", "description": "your code's directory, copied to /opt/ml/code"},
                "entry_point": {"type": "string", "description": "the script that runs (SAGEMAKER_PROGRAM), in source_dir; without `run`, the engine starts it"},
                "hyperparameters": hps
            }),
            &[]
        ),
    ]);
    let mut defaults = common_props();
    for k in ["kind", "description", "after", "when", "env"] {
        defaults.remove(k);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pipeline",
        "description": "A declarative ML pipeline: inputs, and steps that split, train, evaluate and register models.",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]+$"},
            "description": {"type": "string"},
            "params": {"type": "object", "additionalProperties": {"oneOf": [scalar(), object(json!({
                "type": {"enum": ["int", "float", "string", "bool", "secret"]},
                "default": scalar(), "description": {"type": "string"},
                "env": {"type": "string"}, "file": {"type": "string"},
                "choices": {"type": "array", "items": scalar()}}), &["type"])]}},
            "defaults": {"type": "object", "additionalProperties": false, "properties": defaults},
            "schedule": object(json!({"cron": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}, "timezone": {"type": "string"}, "only_if_inputs_changed": {"type": "boolean"},
                "concurrency": {"enum": Concurrency::NAMES}, "catch_up": {"enum": CatchUp::NAMES},
                "max_catch_up": {"type": "integer", "minimum": 1, "maximum": crate::spec::schedule::MAX_CATCH_UP},
                "starting_deadline": duration(), "suspend": {"type": "boolean"},
                "on_change": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string", "pattern": "^inputs\\."}, "minItems": 1}]},
                "poll_interval": duration()}), &[]),
            "inputs": {"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, object(json!({
                "path": {"type": "string"}, "format": {"enum": DataFormat::NAMES},
                "content_type": content_type, "header": {"type": "boolean"},
                "target": {"type": "string"}, "label_size": {"type": "integer", "minimum": 0, "maximum": 1},
                "missing_values": {"type": "array", "items": {"type": "string"}},
                "categorical": {"type": "array", "items": {"type": "string"}},
                "id_columns": {"type": "array", "items": {"type": "string"}},
                "features": {"oneOf": [
                    object(json!({"include": {"type": "array", "items": {"type": "string"}, "minItems": 1}}), &["include"]),
                    object(json!({"exclude": {"type": "array", "items": {"type": "string"}}}), &["exclude"])
                ]},
                "description": {"type": "string"}}), &["path"])]}},
            "steps": {"type": "object", "minProperties": 1, "additionalProperties": {"oneOf": steps}},
            "on_approved": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        }
    })
}

/// The schema as the committed file holds it.
pub fn pipeline_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&pipeline_schema()).expect("a JSON value serializes");
    s.push('\n');
    s
}

/// A tune step's keys: a train step's, and the search's own.
fn tune_props(train: &Value) -> Value {
    let mut props = train.as_object().cloned().unwrap_or_default();
    let scaling = json!({"enum": super::tune::SCALING_NAMES});
    let tuned = json!({
        "ranges": {"type": "object", "additionalProperties": {"oneOf": [
            object(json!({"type": {"const": "integer"}, "min": {"type": "integer"}, "max": {"type": "integer"}, "scaling": scaling.clone()}), &["type", "min", "max"]),
            object(json!({"type": {"const": "continuous"}, "min": {"type": "number"}, "max": {"type": "number"}, "scaling": scaling}), &["type", "min", "max"]),
            object(json!({"type": {"const": "categorical"}, "values": {"type": "array", "items": scalar(), "minItems": 1}}), &["type", "values"])
        ]}},
        "objective": object(json!({
            "metric": {"type": "string", "description": "e.g. validation:auc (a built-in's CHANNEL:METRIC, or a metric_definitions name)"},
            "type": {"enum": ["maximize", "minimize"]}
        }), &["metric", "type"]),
        "strategy": {"enum": super::tune::Strategy::NAMES},
        "max_jobs": {"type": "integer", "minimum": 1},
        "max_parallel_jobs": {"type": "integer", "minimum": 1},
        "completion_criteria": object(json!({
            "target_objective_value": {"type": "number"},
            "max_number_of_training_jobs_not_improving": {"type": "integer", "minimum": 1}
        }), &[]),
        "max_runtime": duration(),
        "warm_start": object(json!({
            "parents": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5,
                "description": "tune steps of this pipeline whose trials the bayesian model starts from"},
            "type": {"enum": ["identical_data_and_algorithm", "transfer_learning"]}
        }), &["parents"]),
        "strategy_config": object(json!({"window": {"type": "integer", "minimum": 1,
            "description": "bayesian: trial j is proposed from trials 0..j+1-window (default 4); the same trials for every max_parallel_jobs up to the window"}}), &[]),
        "seed": {"type": ["integer", "string"]}
    });
    if let Value::Object(t) = tuned {
        props.extend(t);
    }
    Value::Object(props)
}

/// An automl step's keys.
fn automl_props(train: &Value) -> Value {
    json!({
        "channels": train.get("channels").cloned().unwrap_or(json!({"type": "object"})),
        "objective": object(json!({
            "metric": {"enum": ["validation:auc", "validation:logloss", "validation:error", "validation:mlogloss", "validation:merror", "validation:rmse", "validation:mae"],
                "description": "decides the task: auc, logloss, error for binary classification; mlogloss, merror for multiclass; rmse, mae for regression"},
            "type": {"enum": ["maximize", "minimize"]}
        }), &["metric", "type"]),
        "algorithms": {"type": "array", "items": {"enum": super::automl::ALGORITHMS}, "minItems": 1, "uniqueItems": true},
        "budget": object(json!({
            "trials": {"type": "integer", "minimum": 1, "maximum": super::automl::MAX_TRIALS},
            "time": duration()
        }), &["trials"]),
        "max_parallel_jobs": {"type": "integer", "minimum": 1},
        "ensemble": {"type": "boolean", "description": "try a greedy ensemble of the best models (default true)"},
        "strategy_config": object(json!({"window": {"type": "integer", "minimum": 1}}), &[]),
        "seed": {"type": ["integer", "string"]}
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_schema_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/pipeline.schema.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == super::pipeline_schema_text(),
            "schemas/pipeline.schema.json is stale: run `cargo run -- schema > schemas/pipeline.schema.json`"
        );
    }
}
