//! A train step's final metrics, recorded with its outputs (and readable by
//! `when:`, as an evaluate step's are): a built-in's own figures, which it
//! writes to [`BUILTIN_FILE`] (`train_auc`, `validation_auc`, `rounds`, ...), and what the
//! step's `metric_definitions` find in the log of the attempt that succeeded
//! (the last value each regex matched, as SageMaker reports a job's final
//! metric).
//!
//! SageMaker applies metric regexes to CloudWatch's copy of the log, in
//! which a tab reads `#011`; a regex is tried on each line as written and
//! with its tabs written that way, so regexes copied from SageMaker match.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::spec::model::{MetricDefinition, Step, StepKind};

/// Where a step's metrics come from, besides a `metrics` output.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A built-in train step: it writes its figures to [`BUILTIN_FILE`].
    pub builtin_model: bool,
    pub definitions: Vec<MetricDefinition>,
    pub log: PathBuf,
}

impl Sources {
    pub fn of(step: &Step, log: &Path) -> Option<Sources> {
        let StepKind::Train(t) = &step.kind else {
            return None;
        };
        Some(Sources {
            builtin_model: t.algorithm.is_some(),
            definitions: t.metric_definitions.clone(),
            log: log.to_path_buf(),
        })
    }
}

/// Where, under the step's root, a built-in train step writes its figures
/// (beside `output/failure`; not an output of the step).
pub const BUILTIN_FILE: &str = "output/pipeline-metrics.json";

/// The numbers a built-in train step wrote to [`BUILTIN_FILE`] under `root`.
pub fn of_builtin(root: &Path) -> BTreeMap<String, Value> {
    let Ok(text) = std::fs::read(root.join(BUILTIN_FILE)) else {
        return BTreeMap::new();
    };
    serde_json::from_slice::<BTreeMap<String, Value>>(&text)
        .map(|m| m.into_iter().filter(|(_, v)| v.is_number()).collect())
        .unwrap_or_default()
}

/// Where, under the step's root, a user's code writes its metrics as JSON
/// lines (`$PIPELINE_METRICS_FILE`; `/opt/ml/output/metrics.jsonl` in a container).
pub const METRICS_FILE: &str = "output/metrics.jsonl";

/// The metrics `definitions` without a regex name, from the JSON lines the
/// step wrote to [`METRICS_FILE`] under `root`: each line an object whose
/// numbers are metric values by name; a metric's last value counts. A line
/// that is not such an object fails the step, naming the file and line.
pub fn of_file(root: &Path, definitions: &[MetricDefinition]) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let wanted: Vec<&str> = definitions
        .iter()
        .filter(|d| d.regex.is_none())
        .map(|d| d.name.as_str())
        .collect();
    if wanted.is_empty() {
        return Ok(out);
    }
    let path = root.join(METRICS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("read the metrics file", &path, e)),
    };
    let reader = std::io::BufReader::new(file);
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io("read the metrics file", &path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            Error::failed(format!(
                "{}:{}: {why}; write one JSON object a line, e.g. {{\"validation:auc\": 0.91, \"epoch\": 3}}",
                path.display(),
                n + 1
            ))
        };
        let v: Value = serde_json::from_str(&line).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let Value::Object(m) = v else {
            return Err(bad("not a JSON object"));
        };
        for (k, v) in m {
            if wanted.contains(&k.as_str()) {
                match v.as_f64() {
                    // As a regex's value is read: a number, whatever its JSON spelling.
                    Some(x) if x.is_finite() => {
                        out.insert(k, Value::from(x));
                    }
                    _ => return Err(bad(&format!("metric `{k}` is {v}, not a finite number"))),
                }
            }
        }
    }
    Ok(out)
}

/// What `definitions` find in the last attempt's part of `log` (the text
/// after the last `--- attempt N of step S ---` line).
pub fn of_log(log: &Path, definitions: &[MetricDefinition]) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    if definitions.is_empty() {
        return Ok(out);
    }
    let regexes: Vec<(&str, regex::Regex)> = definitions
        .iter()
        .filter_map(|d| Some((d, d.regex.as_deref()?)))
        .map(|(d, re)| {
            regex::Regex::new(re)
                .map(|r| (d.name.as_str(), r))
                .map_err(|e| Error::failed(format!("the regex of metric `{}`: {e}", d.name)))
        })
        .collect::<Result<_>>()?;
    if regexes.is_empty() {
        return Ok(out);
    }
    let file = std::fs::File::open(log).map_err(|e| Error::io("read the log", log, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("read the log", log, e))?;
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if super::attempt_of_header(text).is_some() {
            // An earlier attempt's figures are not the result's.
            out.clear();
            continue;
        }
        let escaped = text.contains('\t').then(|| text.replace('\t', "#011"));
        for (name, re) in &regexes {
            let found = [Some(text), escaped.as_deref()]
                .into_iter()
                .flatten()
                .find_map(|t| re.captures(t))
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().trim().parse::<f64>().ok())
                .filter(|x| x.is_finite());
            if let Some(x) = found {
                out.insert(name.to_string(), Value::from(x));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, regex: &str) -> MetricDefinition {
        MetricDefinition {
            name: name.into(),
            regex: Some(regex.into()),
        }
    }

    fn from_file(name: &str) -> MetricDefinition {
        MetricDefinition {
            name: name.into(),
            regex: None,
        }
    }

    #[test]
    fn the_metrics_file_gives_the_last_value_of_each_declared_metric() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("output")).unwrap();
        std::fs::write(
            dir.path().join(METRICS_FILE),
            "{\"epoch\": 1, \"validation:auc\": 0.7}\n\n{\"epoch\": 2, \"validation:auc\": 0.8, \"note\": \"x\"}\n",
        )
        .unwrap();
        let defs = [from_file("validation:auc"), def("loss", "loss=([0-9.]+)")];
        let m = of_file(dir.path(), &defs).unwrap();
        // Only what is declared without a regex; undeclared keys are not metrics.
        assert_eq!(m.len(), 1);
        assert_eq!(m["validation:auc"], serde_json::json!(0.8));
        // No file: no metrics (the objective then is missing, as with a regex that never matched).
        let empty = tempfile::tempdir().unwrap();
        assert!(of_file(empty.path(), &defs).unwrap().is_empty());
    }

    #[test]
    fn a_bad_metrics_line_is_an_error_naming_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("output")).unwrap();
        for (text, says) in [
            ("{\"auc\": 0.5}\nnot json\n", ":2: not JSON"),
            ("[1, 2]\n", ":1: not a JSON object"),
            (
                "{\"auc\": \"high\"}\n",
                ":1: metric `auc` is \"high\", not a finite number",
            ),
        ] {
            std::fs::write(dir.path().join(METRICS_FILE), text).unwrap();
            let e = of_file(dir.path(), &[from_file("auc")])
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn attempt_headers_are_read_back_as_written() {
        let h = super::super::attempt_header(3, "train.2");
        assert_eq!(super::super::attempt_of_header(&h), Some(3));
        assert_eq!(
            super::super::attempt_of_header("--- attempt x of step t ---"),
            None
        );
        assert_eq!(
            super::super::attempt_of_header("[t] --- attempt 1 of step t ---"),
            None
        );
    }

    #[test]
    fn the_last_attempts_last_match_is_the_metric() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            "--- attempt 1 of step t ---\n\
             loss=9.0\n\
             --- attempt 2 of step t ---\n\
             epoch 1 loss=0.5 acc=0.7\n\
             [0]\tvalidation-auc:0.81\n\
             epoch 2 loss=0.25 acc=n/a\n\
             [1]\tvalidation-auc:0.875\n\
             [algo-2] loss=0.1\n",
        )
        .unwrap();
        let m = of_log(
            &log,
            &[
                def("loss", r"loss=([0-9.]+)"),
                def("acc", r"acc=(\S+)"),
                // As SageMaker's XGBoost image defines it, for CloudWatch's text.
                def(
                    "validation:auc",
                    r".*\[[0-9]+\].*#011validation-auc:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*",
                ),
                def("never", r"never=([0-9]+)"),
            ],
        )
        .unwrap();
        assert_eq!(m["loss"], 0.1);
        // `n/a` is no number: the last number stands.
        assert_eq!(m["acc"], 0.7);
        assert_eq!(m["validation:auc"], 0.875);
        assert!(!m.contains_key("never"));
    }
}
