//! `kind: transform`: batch prediction of a model over a data set, written as CSV.

use std::io::Write;
use std::path::Path;

use builtins::{Column, ColumnKind, Predictions, Task};

use super::data::read_channel_with_ids;
use super::{Layout, StepConfig, StepError};
use crate::spec::model::TransformStep;

pub fn run(layout: &Layout, _t: &TransformStep, cfg: &StepConfig) -> Result<(), StepError> {
    let model = builtins::algorithm::load(&layout.channel("model"))?;
    let (data, ids) = read_channel_with_ids(layout, cfg, "data", &[])?;
    let preds = model.predict(&data)?;
    let dir = layout.output("predictions");
    let out = dir.join("predictions.csv");
    write_predictions(&out, &preds, &ids)?;
    // Which model made these predictions: a `registry://` reference says a
    // group and a selector, and this records the version it resolved to.
    let model_ref = cfg
        .extra
        .get("channel_refs")
        .and_then(|r| r.get("model"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let registry = cfg
        .extra
        .get("registry_versions")
        .and_then(|r| r.get("model"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let meta = serde_json::json!({
        "model": {"ref": model_ref, "registry": registry},
        "rows": preds.n_rows,
        "columns": output_columns(&preds, &ids),
    });
    let text = serde_json::to_string_pretty(&meta).expect("JSON values serialize");
    crate::store::write_atomic(&dir.join("metadata.json"), text.as_bytes())
        .map_err(|e| StepError::failed(format!("write the predictions' metadata: {e}")))?;
    println!("wrote {} predictions to {}", preds.n_rows, out.display());
    if let Some(v) = registry.get("version") {
        println!(
            "model: {} resolved to version {v}",
            model_ref.as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// The header of the predictions file: the ID columns, the model's columns,
/// and `predicted_label` for a classifier.
fn output_columns(p: &Predictions, ids: &[Column]) -> Vec<String> {
    let mut names: Vec<String> = ids.iter().map(|c| c.name.clone()).collect();
    names.extend(p.column_names.iter().cloned());
    if classes(p).is_some() {
        names.push("predicted_label".to_string());
    }
    names
}

fn classes(p: &Predictions) -> Option<&[String]> {
    match &p.task {
        Task::Binary { classes } | Task::Multiclass { classes } => Some(classes),
        _ => None,
    }
}

/// The class a classifier's row of probabilities picks (the first of equals).
fn predicted_class<'a>(p: &Predictions, classes: &'a [String], i: usize) -> &'a str {
    let row = p.row(i);
    let k = if p.width == 1 {
        usize::from(row[0] >= 0.5)
    } else {
        (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
    };
    classes.get(k).map_or("", String::as_str)
}

/// A CSV field: quoted when it holds the delimiter, a quote or a line break.
fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Writes predictions as CSV with a header, atomically: the ID columns as
/// read, the model's columns, and the predicted class of a classifier.
pub fn write_predictions(path: &Path, p: &Predictions, ids: &[Column]) -> Result<(), StepError> {
    let mut buf = Vec::with_capacity(p.n_rows * (p.width * 10 + 1) + 64);
    let header: Vec<String> = output_columns(p, ids);
    for (j, h) in header.iter().enumerate() {
        if j > 0 {
            buf.push(b',');
        }
        csv_field(&mut buf, h);
    }
    buf.push(b'\n');
    let classes = classes(p);
    for i in 0..p.n_rows {
        for c in ids {
            let v = c.values[i];
            match &c.kind {
                ColumnKind::Categorical { levels } if !v.is_nan() => {
                    csv_field(&mut buf, &levels[v as usize])
                }
                _ if v.is_nan() => {}
                _ => {
                    let _ = write!(buf, "{v}");
                }
            }
            buf.push(b',');
        }
        for (j, v) in p.row(i).iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            let _ = write!(buf, "{v}");
        }
        if let Some(cl) = classes {
            buf.push(b',');
            csv_field(&mut buf, predicted_class(p, cl, i));
        }
        buf.push(b'\n');
    }
    crate::store::write_atomic(path, &buf)
        .map_err(|e| StepError::failed(format!("write {}: {e}", path.display())))
}
