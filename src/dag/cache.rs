//! Step cache keys, and why a key changed.
//!
//! A key is the blake3 hash of canonical JSON holding everything that can
//! change what a step computes:
//!
//! - the resolved step (every field of [`Step`] and its kind, as serialized),
//!   minus [`STEP_FIELDS_NOT_IN_KEY`], the fields that cannot change a result;
//! - each input channel's content digest, and for a channel read as a data
//!   set, how it is read: every field of its [`InputDef`] minus
//!   [`INPUT_FIELDS_NOT_IN_KEY`] (so `target`, `header`, `format`, ... and
//!   any field added later are in the key without anyone deciding again);
//! - the program files and directories a user step's `run:` names inside the
//!   pipeline's directory, by content ([`program_paths`]);
//! - a user image by the image ID the Docker Engine reports, not its tag;
//! - the engine and built-ins versions.
//!
//! Never timestamps, never paths of work directories: the same work on the
//! same data has the same key on any machine.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::model::{Executor, InputDef, Step, StepKind};

/// The engine's version, part of every key.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Fields of a resolved step (JSON paths as serialized) that cannot change
/// what it computes, with the reason; every other field is in the key.
pub const STEP_FIELDS_NOT_IN_KEY: &[(&str, &str)] = &[
    ("after", "orders steps; it changes no data the step reads"),
    (
        "when",
        "decides whether the step runs, not what it computes when it runs",
    ),
    ("retry", "a successful attempt is the same whichever it was"),
    (
        "timeout",
        "a limit: a step that finishes in time computes the same",
    ),
    ("cache", "how results are reused, not what they are"),
    (
        "stop_timeout",
        "how long a stopped step has to end; a step that is not stopped computes the same",
    ),
    (
        "resources.memory",
        "a limit: a step that finishes under it computes the same",
    ),
    (
        "batch.job_queue",
        "where a batch step waits to run, not what it computes",
    ),
    ("batch.region", "where a batch step runs"),
    (
        "batch.job_role_arn",
        "what the job may reach in the account; a step it lets read data reads that data as a channel, whose digest is in the key",
    ),
    (
        "batch.execution_role_arn",
        "what lets AWS Batch pull the image and write logs",
    ),
    (
        "batch.runnable_timeout",
        "how long a job may wait for a place to run",
    ),
    (
        "batch.image_repository",
        "where the staged image is pulled from; the image's ID is in the key",
    ),
    ("description", "documentation"),
];

/// Fields of an input (as serialized) that do not enter the key: where the
/// data lives. Its content digest stands for it.
pub const INPUT_FIELDS_NOT_IN_KEY: &[(&str, &str)] = &[
    (
        "path",
        "where the data is; its content digest is in the key",
    ),
    (
        "resolved",
        "where the data is; its content digest is in the key",
    ),
];

/// Everything a key is made of, kept so a later plan can say what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyParts {
    pub engine: String,
    /// Two steps doing the same work are still two steps (a command may have side effects).
    #[serde(default)]
    pub step: String,
    pub spec: Value,
    /// Content digest of each input channel.
    pub inputs: BTreeMap<String, String>,
    /// How each channel read as a data set is read (target column, header, format...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reading: BTreeMap<String, Value>,
    /// Content digest of each program file or directory `run:` names, by its
    /// path relative to the pipeline's directory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code: BTreeMap<String, String>,
    /// The user image and the ID the Docker Engine gives it (`None`: not on the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageId>,
}

/// A user image: the tag written, the image ID it stands for now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageId {
    pub tag: String,
    pub id: Option<String>,
}

/// One input channel of a step, as the key sees it.
#[derive(Debug, Clone, Copy)]
pub struct ChannelIdentity<'a> {
    pub digest: &'a str,
    /// How the channel is read, when it is a data set (a pipeline input, or rows passed on from one).
    pub reading: Option<&'a InputDef>,
}

impl KeyParts {
    /// The key parts of `step` given its channels, the digests of its program
    /// files and its image's ID.
    pub fn new(
        step: &Step,
        channels: &BTreeMap<String, ChannelIdentity<'_>>,
        code: BTreeMap<String, String>,
        image: Option<ImageId>,
    ) -> Self {
        KeyParts {
            engine: format!("pipeline {ENGINE_VERSION}"),
            step: step.name().to_string(),
            spec: step_spec(step),
            inputs: channels
                .iter()
                .map(|(c, i)| (c.clone(), i.digest.to_string()))
                .collect(),
            reading: channels
                .iter()
                .filter_map(|(c, i)| i.reading.map(|d| (c.clone(), input_reading(d))))
                .collect(),
            code,
            image,
        }
    }

    pub fn key(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("key parts serialize");
        blake3::hash(&canonical).to_hex().to_string()
    }

    /// What differs from `old`, one phrase a difference, most telling first.
    pub fn changes_since(&self, old: &KeyParts) -> Vec<String> {
        let mut out = Vec::new();
        for (ch, d) in &self.inputs {
            match old.inputs.get(ch) {
                Some(o) if o != d => out.push(format!(
                    "input `{ch}` changed ({} -> {})",
                    short(o),
                    short(d)
                )),
                None => out.push(format!("input `{ch}` is new")),
                _ => {}
            }
        }
        for ch in old.inputs.keys().filter(|c| !self.inputs.contains_key(*c)) {
            out.push(format!("input `{ch}` was removed"));
        }
        for (ch, r) in &self.reading {
            let mut fields = Vec::new();
            let none = Value::Object(Default::default());
            diff_values("", old.reading.get(ch).unwrap_or(&none), r, &mut fields);
            out.extend(
                fields
                    .into_iter()
                    .map(|f| format!("how input `{ch}` is read: {f}")),
            );
        }
        for (path, d) in &self.code {
            match old.code.get(path) {
                Some(o) if o != d => out.push(format!(
                    "program file `{path}` changed ({} -> {})",
                    short(o),
                    short(d)
                )),
                None => out.push(format!("program file `{path}` is new")),
                _ => {}
            }
        }
        for path in old.code.keys().filter(|p| !self.code.contains_key(*p)) {
            out.push(format!("program file `{path}` is no longer used"));
        }
        match (&old.image, &self.image) {
            (Some(o), Some(n)) if o.tag == n.tag && o.id != n.id => out.push(match &n.id {
                Some(id) => format!(
                    "image `{}` changed ({} -> {})",
                    n.tag,
                    o.id.as_deref().map_or("none", short_id),
                    short_id(id)
                ),
                None => format!("image `{}` is not on the Docker Engine", n.tag),
            }),
            (None, Some(n)) if n.id.is_none() => {
                out.push(format!("image `{}` is not on the Docker Engine", n.tag))
            }
            _ => {}
        }
        diff_values("", &old.spec, &self.spec, &mut out);
        if self.engine != old.engine {
            out.push(format!(
                "engine changed ({} -> {})",
                old.engine, self.engine
            ));
        }
        out
    }
}

/// The step as its key sees it: every serialized field but those on [`STEP_FIELDS_NOT_IN_KEY`].
pub fn step_spec(step: &Step) -> Value {
    let mut v = serde_json::to_value(step).expect("a step serializes");
    // The name is the key's `step` part.
    remove_path(&mut v, "name");
    for (path, _) in STEP_FIELDS_NOT_IN_KEY {
        remove_path(&mut v, path);
    }
    v
}

/// How an input is read: every serialized field but those on [`INPUT_FIELDS_NOT_IN_KEY`].
pub fn input_reading(def: &InputDef) -> Value {
    let mut v = serde_json::to_value(def).expect("an input serializes");
    for (path, _) in INPUT_FIELDS_NOT_IN_KEY {
        remove_path(&mut v, path);
    }
    v
}

fn remove_path(v: &mut Value, path: &str) {
    /// Removes `parts` under `v`; whether `v` is left an empty object.
    fn go(v: &mut Value, parts: &[&str]) -> bool {
        let Value::Object(m) = v else { return false };
        match parts {
            [] => {}
            [last] => {
                m.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(next) = m.get_mut(*first)
                    && go(next, rest)
                {
                    m.remove(*first);
                }
            }
        }
        m.is_empty()
    }
    // A section left empty goes too: a step that sets only fields out of
    // the key has the key of one that sets none.
    let parts: Vec<&str> = path.split('.').collect();
    go(v, &parts);
}

/// The argv a user step runs (`kind: command`, or a train step's `run:`).
fn user_argv(step: &Step) -> &[String] {
    match &step.kind {
        StepKind::Command(c) => &c.run,
        StepKind::Train(t) if t.algorithm.is_none() => &t.run,
        _ => &[],
    }
}

/// The image a user step runs in, when it runs in a container.
pub fn user_image(step: &Step) -> Option<&str> {
    if step.executor != Executor::Docker {
        return None;
    }
    match &step.kind {
        StepKind::Command(c) => c.image.as_deref(),
        StepKind::Train(t) if t.algorithm.is_none() => t.image.as_deref(),
        _ => None,
    }
}

/// The words of a shell command that could name a file the command reads:
/// split at blanks and shell punctuation (so `python train.py` and
/// `--script=train.py` give `train.py`), leaving out the target of an output
/// redirection (`echo ran >> ran.log` writes `ran.log`, it does not run it).
fn shell_words(text: &str) -> Vec<&str> {
    let is_sep = |c: char| c.is_whitespace() || ";|&()<>'\"`=,".contains(c);
    let mut words = Vec::new();
    let mut redirected = false;
    let mut rest = text;
    while !rest.is_empty() {
        let sep_len = rest.find(|c: char| !is_sep(c)).unwrap_or(rest.len());
        if rest[..sep_len].contains('>') {
            redirected = true;
        }
        rest = &rest[sep_len..];
        let word_len = rest.find(is_sep).unwrap_or(rest.len());
        if word_len > 0 {
            let word = &rest[..word_len];
            // `2>err.log`: the `2` is part of the redirection, not a word.
            let fd_digit = word.len() == 1
                && word.chars().all(|c| c.is_ascii_digit())
                && rest[word_len..].starts_with('>');
            if !redirected && !fd_digit {
                words.push(word);
            }
            redirected = false;
        }
        rest = &rest[word_len..];
    }
    words
}

/// The files and directories inside `base_dir` that a user step's `run:`
/// names: each argv element, and each word of it ([`shell_words`]),
/// that is the path of an existing file or directory under `base_dir`,
/// relative to it or absolute. The pipeline's directory itself and the
/// workspace (`.pipeline/`) are never taken. Returns `(relative name, path)`,
/// sorted and without repeats.
pub fn program_paths(step: &Step, base_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    // The code a step names (`source_dir`, or an `entry_point` alone), by
    // its name as written: it may live anywhere, and is copied whole.
    if let Some(code) = step.code()
        && let Some(src) = code.source(base_dir, step.user_image().is_some())
        && let Ok(real) = src.canonicalize()
    {
        let name = code
            .source_dir
            .as_ref()
            .or(code.entry_point.as_ref())
            .map(|s| s.value.clone())
            .unwrap_or_default();
        out.insert(name, real);
    }
    let argv = user_argv(step);
    let Ok(base) = base_dir.canonicalize() else {
        return out.into_iter().collect();
    };
    for arg in argv {
        let words = std::iter::once(arg.as_str()).chain(shell_words(arg));
        for w in words {
            if w.is_empty() || w.contains("{{") || w.contains('$') || w.len() > 4096 {
                continue;
            }
            let candidate = base.join(w);
            // Most words name no file: one `lstat` says so, where resolving
            // the path would read every directory on the way.
            if std::fs::symlink_metadata(&candidate).is_err() {
                continue;
            }
            let Ok(real) = candidate.canonicalize() else {
                continue;
            };
            let Ok(rel) = real.strip_prefix(&base) else {
                continue;
            };
            if rel.as_os_str().is_empty()
                || rel
                    .components()
                    .any(|c| c == Component::Normal(".pipeline".as_ref()))
            {
                continue;
            }
            out.insert(rel.display().to_string(), real);
        }
    }
    out.into_iter().collect()
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

/// `sha256:0123456789ab`: an image ID shortened as `docker images` does.
fn short_id(id: &str) -> &str {
    &id[..id.len().min(19)]
}

/// Each difference between two JSON values, as `field `PATH` changed (OLD -> NEW)`.
pub fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&p, x, y, out),
                    (None, Some(y)) => out.push(format!("field `{p}` was added ({})", compact(y))),
                    (Some(x), None) => {
                        out.push(format!("field `{p}` was removed (was {})", compact(x)))
                    }
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (Value::String(a), Value::String(b)) if a != b => {
            let (x, y) = differing_parts(a, b);
            out.push(format!("field `{path}` changed ({x} -> {y})"));
        }
        (a, b) if a != b => out.push(format!(
            "field `{path}` changed ({} -> {})",
            compact(a),
            compact(b)
        )),
        _ => {}
    }
}

/// The parts of two strings that differ, with a little context, so a change
/// deep inside a long command is visible.
fn differing_parts(a: &str, b: &str) -> (String, String) {
    let (ac, bc): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if ac.len() <= 40 && bc.len() <= 40 {
        return (a.to_string(), b.to_string());
    }
    let prefix = ac.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let suffix = ac[prefix..]
        .iter()
        .rev()
        .zip(bc[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let start = prefix.saturating_sub(12);
    let show = |c: &[char]| {
        let end = (c.len() - suffix + 12).min(c.len());
        let mut s = String::new();
        if start > 0 {
            s.push('…');
        }
        s.extend(&c[start..end]);
        if end < c.len() {
            s.push('…');
        }
        s
    };
    (show(&ac), show(&bc))
}

fn compact(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(spec: Value, input: &str) -> KeyParts {
        KeyParts {
            engine: "pipeline 0".into(),
            step: "train".into(),
            spec,
            inputs: [("train".to_string(), input.to_string())].into(),
            reading: BTreeMap::new(),
            code: BTreeMap::new(),
            image: None,
        }
    }

    #[test]
    fn key_depends_on_spec_and_inputs_only() {
        let a = parts(json!({"hyperparameters": {"max_depth": "4"}}), "aaa");
        let b = parts(json!({"hyperparameters": {"max_depth": "4"}}), "aaa");
        assert_eq!(a.key(), b.key());
        assert_ne!(
            a.key(),
            parts(json!({"hyperparameters": {"max_depth": "6"}}), "aaa").key()
        );
        assert_ne!(
            a.key(),
            parts(json!({"hyperparameters": {"max_depth": "4"}}), "bbb").key()
        );
    }

    #[test]
    fn explains_changes() {
        let old = parts(json!({"hyperparameters": {"max_depth": "4"}}), "aaa");
        let new = parts(json!({"hyperparameters": {"max_depth": "6"}}), "bbb");
        assert_eq!(
            new.changes_since(&old),
            [
                "input `train` changed (aaa -> bbb)",
                "field `hyperparameters.max_depth` changed (4 -> 6)"
            ]
        );
    }

    #[test]
    fn explains_reading_code_and_image_changes() {
        let mut old = parts(json!({}), "aaa");
        old.reading
            .insert("train".into(), json!({"target": "species", "header": true}));
        old.code.insert("train.py".into(), "1111".into());
        old.image = Some(ImageId {
            tag: "mine:1".into(),
            id: Some("sha256:aaaa".into()),
        });
        let mut new = old.clone();
        new.reading
            .insert("train".into(), json!({"target": "island", "header": true}));
        new.code.insert("train.py".into(), "2222".into());
        new.image = Some(ImageId {
            tag: "mine:1".into(),
            id: Some("sha256:bbbb".into()),
        });
        assert_ne!(old.key(), new.key());
        assert_eq!(
            new.changes_since(&old),
            [
                "how input `train` is read: field `target` changed (species -> island)",
                "program file `train.py` changed (1111 -> 2222)",
                "image `mine:1` changed (sha256:aaaa -> sha256:bbbb)",
            ]
        );
    }

    /// A pipeline using every kind of step and, between them, every field.
    const SAMPLE: &str = r#"
name: sample
inputs:
  events: {path: events.csv, format: csv, header: true, target: label, label_size: 1,
           missing_values: ["n/a"], categorical: [g], features: {exclude: [ts]}, id_columns: [uid]}
  other: {path: other.csv, header: false}
steps:
  split:
    kind: split
    input: inputs.events
    strategy: {type: shuffle, stratify: label}
    fractions: {train: 0.8, test: 0.2}
    seed: 7
    description: splits
  tsplit:
    kind: split
    sources: [{input: inputs.events, fractions: {train: 0.5, test: 0.5}}]
    strategy: {type: time, column: ts, cutoffs: ["2024-01-01"], gap: 1d}
  train:
    kind: train
    algorithm: gbdt
    channels: {train: split.train, validation: {data: split.test, target: label}}
    hyperparameters: {max_depth: 4, eta: 0.3}
    resources: {cpus: 1, memory: 1GiB, nodes: 1}
    retry: {attempts: 2, backoff: 1s, on: [exit-code, timeout]}
    timeout: 1h
    cache: {expire_after: 7d}
    executor: batch
    batch: {job_queue: q, region: eu-west-1, job_role_arn: "arn:aws:iam::1:role/j",
            execution_role_arn: "arn:aws:iam::1:role/e", job_environment: {EXTRA: v},
            runtime_image: "1.dkr.ecr.eu-west-1.amazonaws.com/pipeline:1", runnable_timeout: 10m,
            image_repository: 1.dkr.ecr.eu-west-1.amazonaws.com/staged}
  mine:
    kind: train
    image: my-trainer:3
    program: train.py
    channels: {train: {data: split.train, distribution: sharded_by_key, input_mode: file}}
    input_mode: pipe
    hyperparameters: {epochs: 3}
    executor: docker
    network: none
    resources: {nodes: 2}
  evaluate:
    kind: evaluate
    method: holdout
    model: train.model
    data: split.test
    metrics: [accuracy]
    when: "params.go == true"
  kfold:
    kind: evaluate
    method: kfold
    algorithm: gbdt
    data: split.train
    folds: 3
    stratify: label
    group_column: g
    time_column: ts
    hyperparameters: {max_depth: 2}
    seed: 3
  ab:
    kind: evaluate
    method: ab
    data: split.test
    variants: [{name: a, model: train.model, weight: 0.5}, {name: b, model: mine.model, weight: 0.5}]
  register:
    kind: register
    model: train.model
    group: g
    metrics: evaluate.metrics
    approval: {beat_champion: {metric: accuracy, by: 0.01, higher_is_better: true}}
    description: best
    tags: {team: a}
  transform:
    kind: transform
    model: train.model
    data: inputs.other
    after: [register]
  cmd:
    kind: command
    run: [python3, prep.py, "{{ outputs.out }}"]
    inputs: {raw: inputs.events}
    outputs: [out]
    hyperparameters: {n: 1}
    env: {LEVEL: debug}
    image: python:3
    executor: docker
params:
  go: true
"#;

    fn sample() -> (tempfile::TempDir, crate::spec::model::Pipeline) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("events.csv"),
            "label,ts,g,uid\n1,2024-01-01,a,u1\n",
        )
        .unwrap();
        std::fs::write(t.path().join("other.csv"), "1,2\n").unwrap();
        let source = std::sync::Arc::new(crate::spec::source::Source {
            name: "sample.yaml".into(),
            text: SAMPLE.into(),
        });
        let loaded = crate::spec::load_source(source, t.path(), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        (t, loaded.pipeline)
    }

    /// Every leaf of `v` (and every array and object, for appending or
    /// renaming), as JSON pointers.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                out.push(at.clone());
                for (k, x) in m {
                    pointers(x, format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                out.push(at.clone());
                for (i, x) in a.iter().enumerate() {
                    pointers(x, format!("{at}/{i}"), out);
                }
            }
            _ => out.push(at),
        }
    }

    /// Values to put at a pointer instead of `v`.
    fn replacements(v: &Value, word: &str, delta: u32) -> Vec<Value> {
        const WORDS: &[&str] = &[
            "local",
            "docker",
            "bridge",
            "none",
            "csv",
            "parquet",
            "libsvm",
            "off",
            "on",
            "signal",
            "oom",
            "3s",
            "9m",
            "holdout",
            "kfold",
            "ab",
            "fully_replicated",
            "sharded_by_key",
            "file",
            "pipe",
            "inputs.other",
            "split.test",
            "train.model",
        ];
        match v {
            Value::String(s) => std::iter::once(format!("{s}{word}"))
                .chain(WORDS.iter().map(|w| w.to_string()))
                .map(Value::String)
                .collect(),
            Value::Bool(b) => vec![Value::Bool(!b)],
            Value::Number(n) => match n.as_u64() {
                Some(u) => vec![json!(u + u64::from(delta)), json!(u.saturating_sub(1))],
                None => vec![json!(
                    n.as_f64().unwrap_or(0.0) + 1.0 + f64::from(delta) / 1000.0
                )],
            },
            Value::Array(a) => {
                let mut longer = a.clone();
                if let Some(last) = a.last() {
                    longer.push(last.clone());
                }
                vec![Value::Array(longer), Value::Array(vec![])]
            }
            Value::Object(m) => {
                // Rename each key (adds one, drops one).
                m.keys()
                    .map(|k| {
                        let mut n = m.clone();
                        let x = n.remove(k).unwrap();
                        n.insert(format!("{k}{word}"), x);
                        Value::Object(n)
                    })
                    .collect()
            }
            Value::Null => vec![],
        }
    }

    /// The fields (dotted, without array positions) that differ between two values.
    fn changed_fields(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys()) {
                    let p = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match (x.get(k), y.get(k)) {
                        (Some(u), Some(v)) => changed_fields(u, v, &p, out),
                        _ => out.push(p),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (u, v) in x.iter().zip(y) {
                    changed_fields(u, v, at, out);
                }
            }
            (u, v) if u != v => out.push(at.to_string()),
            _ => {}
        }
    }

    /// Whether a dotted field is on `list` (or inside one that is).
    fn listed(field: &str, list: &[(&str, &str)]) -> bool {
        let dotted: Vec<&str> = field.split('.').collect();
        list.iter().any(|(l, _)| {
            let f: Vec<&str> = l.split('.').collect();
            dotted.len() >= f.len() && dotted[..f.len()] == f[..]
        })
    }

    /// Changes every field of `value` in every way `replacements` offers
    /// that still deserializes as `T` and is a real change; `check` gets the
    /// pointer, the fields that changed and the changed value. Returns the
    /// leaves nothing could change (serde's enum tags are expected there only).
    fn walk<T: serde::de::DeserializeOwned + Serialize>(
        value: &Value,
        word: &str,
        delta: u32,
        check: &mut dyn FnMut(&str, &[String], &T),
    ) -> Vec<String> {
        let mut ptrs = Vec::new();
        pointers(value, String::new(), &mut ptrs);
        let mut stuck = Vec::new();
        for ptr in ptrs.iter().filter(|p| !p.is_empty()) {
            let old = value.pointer(ptr).unwrap();
            let mut changed = false;
            for new in replacements(old, word, delta) {
                let mut v = value.clone();
                *v.pointer_mut(ptr).unwrap() = new;
                let Ok(t) = serde_json::from_value::<T>(v) else {
                    continue;
                };
                let mut fields = Vec::new();
                changed_fields(value, &serde_json::to_value(&t).unwrap(), "", &mut fields);
                if fields.is_empty() {
                    continue;
                }
                changed = true;
                check(ptr, &fields, &t);
            }
            // Every leaf must be changeable; growing, emptying or renaming
            // inside a container is tried but may not fit its type (a pair).
            if !changed && !old.is_object() && !old.is_array() {
                stuck.push(ptr.clone());
            }
        }
        stuck
    }

    fn is_tag(ptr: &str) -> bool {
        ptr.ends_with("/kind") || ptr.ends_with("/type")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

        /// Changing any field of a resolved step changes its key, unless the
        /// field is on `STEP_FIELDS_NOT_IN_KEY`, in which case it does not.
        #[test]
        fn every_step_field_is_in_the_key_or_listed(word in "[a-z]{1,6}", delta in 1u32..500) {
            let (t, p) = sample();
            let ch = BTreeMap::from([(
                "train".to_string(),
                ChannelIdentity { digest: "d", reading: Some(&p.inputs["events"]) },
            )]);
            for step in &p.steps {
                let base = KeyParts::new(step, &ch, BTreeMap::new(), None).key();
                let value = serde_json::to_value(step).unwrap();
                let stuck = walk::<Step>(&value, &word, delta, &mut |ptr, fields, changed| {
                    let key = KeyParts::new(changed, &ch, BTreeMap::new(), None).key();
                    if fields.iter().all(|f| listed(f, STEP_FIELDS_NOT_IN_KEY)) {
                        assert_eq!(key, base, "step `{}`: changing `{ptr}` ({fields:?}, listed as not in the key) changes it", step.name());
                    } else {
                        assert_ne!(key, base, "step `{}`: changing `{ptr}` ({fields:?}) leaves the key as it was", step.name());
                    }
                });
                let stuck: Vec<_> = stuck.into_iter().filter(|p| !is_tag(p)).collect();
                assert!(stuck.is_empty(), "step `{}`: no test value changes {stuck:?}; add one to `replacements`", step.name());
            }
            drop(t);
        }

        /// Changing any field of how an input is read changes the key of a
        /// step reading it, unless it is on `INPUT_FIELDS_NOT_IN_KEY`.
        #[test]
        fn every_input_field_is_in_the_key_or_listed(word in "[a-z]{1,6}", delta in 1u32..500) {
            let (t, p) = sample();
            let step = p.step("train").unwrap();
            let key_with = |def: &InputDef| {
                let ch = BTreeMap::from([(
                    "train".to_string(),
                    ChannelIdentity { digest: "d", reading: Some(def) },
                )]);
                KeyParts::new(step, &ch, BTreeMap::new(), None).key()
            };
            for def in p.inputs.values() {
                let base = key_with(def);
                let value = serde_json::to_value(def).unwrap();
                let stuck = walk::<InputDef>(&value, &word, delta, &mut |ptr, fields, changed| {
                    let key = key_with(changed);
                    if fields.iter().all(|f| listed(f, INPUT_FIELDS_NOT_IN_KEY)) {
                        assert_eq!(key, base, "changing `{ptr}` ({fields:?}, listed as not in the key) changes it");
                    } else {
                        assert_ne!(key, base, "changing the input's `{ptr}` ({fields:?}) leaves the key as it was");
                    }
                });
                assert!(stuck.is_empty(), "no test value changes {stuck:?}; add one to `replacements`");
            }
            drop(t);
        }
    }

    /// The fields a step has, each with its decision. The destructuring has
    /// no `..`: a field added to `Step`, `Resources` or `InputDef` does not
    /// compile here until someone decides whether it can change a result.
    fn step_decisions(step: &Step) -> Vec<(&'static str, bool)> {
        let Step {
            name: _,
            kind: _,
            after: _,
            when: _,
            when_expr: _,
            executor: _,
            retry: _,
            timeout: _,
            stop_timeout: _,
            cache: _,
            resources,
            network: _,
            batch,
            description: _,
            env: _,
            trial: _,
        } = step;
        let crate::spec::model::BatchSettings {
            job_queue: _,
            region: _,
            job_role_arn: _,
            execution_role_arn: _,
            job_environment: _,
            runtime_image: _,
            image_repository: _,
            runnable_timeout: _,
        } = batch;
        let crate::spec::model::Resources {
            cpus: _,
            memory: _,
            nodes: _,
        } = resources;
        // (field, in the key); `when_expr` is `when` parsed, never serialized.
        vec![
            ("name", true),
            ("kind", true),
            ("after", false),
            ("when", false),
            ("executor", true),
            ("retry", false),
            ("timeout", false),
            ("cache", false),
            ("stop_timeout", false),
            ("resources.cpus", true),
            ("resources.memory", false),
            ("resources.nodes", true),
            ("network", true),
            ("batch.job_queue", false),
            ("batch.region", false),
            ("batch.job_role_arn", false),
            ("batch.execution_role_arn", false),
            ("batch.job_environment", true),
            ("batch.runtime_image", true),
            ("batch.runnable_timeout", false),
            ("batch.image_repository", false),
            ("description", false),
            ("env", true),
            ("trial", true),
        ]
    }

    fn input_decisions(def: &InputDef) -> Vec<(&'static str, bool)> {
        let InputDef {
            path: _,
            resolved: _,
            format: _,
            header: _,
            target: _,
            label_size: _,
            missing_values: _,
            categorical: _,
            features: _,
            id_columns: _,
            split_columns: _,
            span: _,
        } = def;
        // `span` is where the input was written, never serialized.
        vec![
            ("path", false),
            ("resolved", false),
            ("format", true),
            ("header", true),
            ("target", true),
            ("label_size", true),
            ("missing_values", true),
            ("categorical", true),
            ("features", true),
            ("id_columns", true),
            ("split_columns", true),
        ]
    }

    #[test]
    fn the_lists_match_the_decisions() {
        let (_t, p) = sample();
        let out_of_key = |d: Vec<(&'static str, bool)>| -> Vec<&'static str> {
            d.into_iter().filter(|(_, k)| !k).map(|(f, _)| f).collect()
        };
        let listed = |l: &[(&'static str, &str)]| l.iter().map(|(f, _)| *f).collect::<Vec<_>>();
        assert_eq!(
            out_of_key(step_decisions(&p.steps[0])),
            listed(STEP_FIELDS_NOT_IN_KEY)
        );
        assert_eq!(
            out_of_key(input_decisions(&p.inputs["events"])),
            listed(INPUT_FIELDS_NOT_IN_KEY)
        );
        // Every field a step serializes has a decision (kind fields are all in).
        for step in &p.steps {
            let decided: Vec<&str> = step_decisions(step).iter().map(|(f, _)| *f).collect();
            let kind_fields = serde_json::to_value(&step.kind).unwrap();
            let Value::Object(fields) = serde_json::to_value(step).unwrap() else {
                panic!("a step serializes as an object")
            };
            for f in fields.keys() {
                assert!(
                    kind_fields.get(f).is_some()
                        || decided
                            .iter()
                            .any(|d| d.split('.').next() == Some(f.as_str())),
                    "step `{}` serializes `{f}`, which has no decision",
                    step.name()
                );
            }
        }
    }

    #[test]
    fn shell_words_leave_out_what_is_written() {
        assert_eq!(
            shell_words("echo ran >> ran.log && python3 t.py --c=c.yaml 2>err.log <in.csv|tee x"),
            [
                "echo", "ran", "python3", "t.py", "--c", "c.yaml", "in.csv", "tee", "x"
            ]
        );
    }

    #[test]
    fn program_paths_are_files_beside_the_pipeline() {
        let (t, p) = sample();
        std::fs::write(t.path().join("prep.py"), "print(1)").unwrap();
        std::fs::create_dir_all(t.path().join("lib/.pipeline")).unwrap();
        std::fs::create_dir_all(t.path().join(".pipeline")).unwrap();
        let mut step = p.step("cmd").unwrap().clone();
        let names = |s: &Step| -> Vec<String> {
            program_paths(s, t.path())
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names(&step), ["prep.py"]);
        if let StepKind::Command(c) = &mut step.kind {
            c.run = vec![
                "sh".into(),
                "-c".into(),
                "python3 prep.py --lib=lib . .pipeline /etc/passwd ../x $HOME >> prep.py 2>lib"
                    .into(),
            ];
        }
        assert_eq!(names(&step), ["lib", "prep.py"]);
        // Built-in steps run the engine itself: no program files.
        assert!(names(p.step("train").unwrap()).is_empty());
    }
}
