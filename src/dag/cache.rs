//! Step cache keys, and why a key changed.
//!
//! A key is the blake3 hash of canonical JSON holding the resolved step spec
//! (what the step does, as its kind sees it), the content digests of its
//! inputs by channel, and the engine and built-ins versions. Never
//! timestamps, never paths of work directories: the same work on the same
//! data has the same key on any machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::model::Step;

/// The engine's version, part of every key.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a key is made of, kept so a later plan can say what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyParts {
    pub engine: String,
    /// Two steps doing the same work are still two steps (a command may have side effects).
    #[serde(default)]
    pub step: String,
    pub spec: Value,
    pub inputs: BTreeMap<String, String>,
}

impl KeyParts {
    pub fn new(step: &Step, inputs: BTreeMap<String, String>) -> Self {
        let spec = serde_json::to_value(&step.kind).expect("a step spec serializes");
        KeyParts {
            engine: format!("pipeline {ENGINE_VERSION}"),
            step: step.name().to_string(),
            spec,
            inputs,
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

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
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
}
