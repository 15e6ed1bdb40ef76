//! `kind: transform`: batch prediction of a model over a data set, written as CSV.

use std::io::Write;
use std::path::Path;

use builtins::Predictions;

use super::data::read_channel;
use super::{Layout, StepConfig, StepError};
use crate::spec::model::TransformStep;

pub fn run(layout: &Layout, _t: &TransformStep, cfg: &StepConfig) -> Result<(), StepError> {
    let model = builtins::algorithm::load(&layout.channel("model"))?;
    let data = read_channel(layout, cfg, "data")?;
    let preds = model.predict(&data)?;
    let out = layout.output("predictions").join("predictions.csv");
    write_predictions(&out, &preds)?;
    println!("wrote {} predictions to {}", preds.n_rows, out.display());
    Ok(())
}

/// Writes predictions as CSV with a header, atomically.
pub fn write_predictions(path: &Path, p: &Predictions) -> Result<(), StepError> {
    let mut buf = Vec::with_capacity(p.n_rows * (p.width * 10 + 1) + 64);
    let _ = writeln!(buf, "{}", p.column_names.join(","));
    for i in 0..p.n_rows {
        for (j, v) in p.row(i).iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            let _ = write!(buf, "{v}");
        }
        buf.push(b'\n');
    }
    crate::store::write_atomic(path, &buf)
        .map_err(|e| StepError::failed(format!("write {}: {e}", path.display())))
}
