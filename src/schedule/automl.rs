//! The scheduler's part of `kind: automl` beyond a tune step's
//! (`schedule/tune.rs` proposes, runs and ranks its trials): what the
//! leaderboard measures of each model once the trials have ended, as
//! AutoGluon's does — its score on the held-out `test` channel, its size,
//! and how long it took to train and to predict.
//!
//! The scores and sizes are functions of the models and the data, so they
//! are in `leaderboard.csv` (byte-identical whatever the parallelism); the
//! times are not, so they are in `timings.csv` beside it, which `pipeline
//! reproduce` does not compare.

use std::path::Path;
use std::time::Instant;

use builtins::Dataset;
use builtins::Model;
use builtins::metrics::EvalInput;

use super::StepState;
use super::tune::TrialRow;
use crate::error::{Error, Result};
use crate::spec::model::{Step, StepKind};
use crate::spec::tune::TuneStep;

/// The file of a tune or automl leaderboard's wall-clock times.
pub const TIMINGS_FILE: &str = "timings.csv";

/// What is measured of one trial's model.
#[derive(Debug, Clone, Default)]
pub struct Scored {
    /// The objective's metric on the `test` channel.
    pub test: Option<f64>,
    /// Bytes of the model as deployed (`model.tar.gz`, else its files).
    pub model_bytes: Option<u64>,
    /// Milliseconds to predict 1,000 rows (measured on the test channel,
    /// else the validation channel).
    pub predict_ms_per_1000_rows: Option<f64>,
}

/// A greedy ensemble of the best trials' models that beat the best one on
/// validation.
pub struct Blend {
    pub model: builtins::ensemble::EnsembleModel,
    /// (trial index, weight) of each member, best trial first.
    pub members: Vec<(u32, u32)>,
    /// The objective's metric of the blend on the validation channel.
    pub validation: f64,
    /// The same, of the best trial's model as the engine computes it.
    pub best_single: f64,
    pub scored: Scored,
}

impl Blend {
    /// `t3*2 + t7*1`: each member trial and its weight.
    pub fn describe(&self) -> String {
        self.members
            .iter()
            .map(|(j, w)| format!("trial {j} x{w}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

impl super::Run {
    /// How long each trial of search step `i` trained: its attempt in this
    /// run, or for a cached trial the attempt that made its result (when
    /// this workspace recorded it).
    pub(super) fn fit_times(
        &self,
        i: usize,
        states: &[StepState],
        rows: &mut [TrialRow],
    ) -> Result<()> {
        let p = &self.plan.pipeline;
        let name = p.steps[i].name();
        for r in rows.iter_mut() {
            let idx = p.step_index(&crate::spec::tune::trial_name(name, r.index));
            let Some(rec) = idx.map(|j| &states[j].record) else {
                continue;
            };
            r.fit_seconds = match (rec.status, rec.cached, &rec.cache_key) {
                (crate::runs::StepStatus::Skipped, _, _) => None,
                (_, false, _) => rec.duration_s,
                (_, true, Some(key)) => self.db.made_in(key)?,
                (_, true, None) => None,
            };
        }
        Ok(())
    }

    /// Measures the model of every trial of automl step `i` that gave one,
    /// and, when the step asks, selects a greedy ensemble of the best.
    pub(super) fn score_automl(
        &mut self,
        i: usize,
        t: &TuneStep,
        states: &[StepState],
        rows: &mut [TrialRow],
    ) -> Result<Option<Blend>> {
        let Some(a) = &t.automl else {
            return Ok(None);
        };
        let plan = self.plan.clone();
        let step = &plan.pipeline.steps[i];
        let channels = self.channels(step, states)?;
        // Read as the trials read them (a trial is a train step over these channels).
        let as_train = Step {
            kind: StepKind::Train(t.train.clone()),
            ..step.clone()
        };
        let read = |name: &str| -> Result<Option<Dataset>> {
            let Some((c, _)) = channels.iter().find(|(c, _)| c.name == name) else {
                return Ok(None);
            };
            let def = crate::exec::contract::channel_reading(&as_train, name, c.input.as_ref());
            crate::exec::builtin::read_def(&c.source, def.as_ref(), name)
                .map(Some)
                .map_err(|e| {
                    Error::failed(format!(
                        "automl step `{}`: read its `{name}` channel: {}",
                        step.name(),
                        e.message
                    ))
                })
        };
        let test = if a.test.is_some() {
            read("test")?
        } else {
            None
        };
        if let Some(ts) = &test
            && ts.target().is_none()
        {
            return Err(Error::failed(format!(
                "automl step `{}`: its `test` channel has no target column to score the models on; give its input `target: COLUMN`",
                step.name()
            )));
        }
        let validation = match &test {
            Some(_) => None,
            None => read("validation")?,
        };
        let timed = test.as_ref().or(validation.as_ref());
        let metric = crate::spec::automl::test_metric(&t.objective);
        let store = self.ws.store();
        let mut models: std::collections::BTreeMap<u32, Box<dyn Model>> = Default::default();
        for r in rows.iter_mut() {
            if r.objective.is_none() {
                continue;
            }
            let Some(m) = &r.model else { continue };
            let dir = store.local_path(&m.digest)?;
            let model = builtins::algorithm::load(&dir).map_err(|e| {
                Error::failed(format!("automl: load the model of trial {}: {e}", r.index))
            })?;
            let mut scored = Scored {
                model_bytes: Some(model_bytes(&dir)),
                ..Scored::default()
            };
            if let (Some(ts), Some((name, one_minus))) = (&test, metric) {
                let preds = model.predict(ts).map_err(|e| {
                    Error::failed(format!(
                        "automl: trial {}'s model on the test channel: {e}",
                        r.index
                    ))
                })?;
                let input = EvalInput::from_dataset(ts, preds)
                    .map_err(|e| Error::failed(format!("automl: score trial {}: {e}", r.index)))?;
                let v = builtins::metrics::compute(name, &input)
                    .map_err(|e| Error::failed(format!("automl: score trial {}: {e}", r.index)))?;
                scored.test = Some(if one_minus { 1.0 - v } else { v });
            }
            scored.predict_ms_per_1000_rows = timed.and_then(|d| predict_time(model.as_ref(), d));
            r.scored = Some(scored);
            models.insert(r.index, model);
        }
        if !a.ensemble {
            return Ok(None);
        }
        let Some((name, one_minus)) = metric else {
            return Ok(None);
        };
        let read_again;
        let validation = match &validation {
            Some(v) => v,
            None => match read("validation")? {
                Some(v) => {
                    read_again = v;
                    &read_again
                }
                None => return Ok(None),
            },
        };
        let order = super::tune::ranking(t, rows);
        let top: Vec<u32> = order
            .iter()
            .map(|&k| &rows[k])
            .filter(|r| r.objective.is_some() && models.contains_key(&r.index))
            .take(crate::spec::automl::ENSEMBLE_CANDIDATES)
            .map(|r| r.index)
            .collect();
        if top.len() < 2 {
            return Ok(None);
        }
        let info = builtins::metrics::info(name)
            .ok_or_else(|| Error::failed(format!("automl: no metric `{name}`")))?;
        let value =
            |p: &builtins::Predictions| -> std::result::Result<f64, builtins::BuiltinError> {
                let input = EvalInput::from_dataset(validation, p.clone())?;
                builtins::metrics::compute(name, &input)
            };
        let loss = |p: &builtins::Predictions| -> std::result::Result<f64, builtins::BuiltinError> {
            let v = value(p)?;
            Ok(if info.higher_is_better { -v } else { v })
        };
        let mut preds = Vec::with_capacity(top.len());
        for j in &top {
            preds.push(models[j].predict(validation).map_err(|e| {
                Error::failed(format!(
                    "automl: trial {j}'s model on the validation channel: {e}"
                ))
            })?);
        }
        let single = loss(&preds[0]).map_err(|e| Error::failed(format!("automl: {e}")))?;
        let (weights, blended) =
            builtins::ensemble::select(&preds, crate::spec::automl::ENSEMBLE_ROUNDS, &loss)
                .map_err(|e| Error::failed(format!("automl: ensemble selection: {e}")))?;
        let used = weights.iter().filter(|&&w| w > 0).count();
        // Only a blend of several models that does strictly better is handed on.
        if used < 2 || blended >= single {
            return Ok(None);
        }
        let as_metric = |l: f64| {
            let v = if info.higher_is_better { -l } else { l };
            if one_minus { 1.0 - v } else { v }
        };
        let mut members = Vec::new();
        let mut parts = Vec::new();
        for (j, w) in top.iter().zip(&weights) {
            if *w == 0 {
                continue;
            }
            let m = models.remove(j).expect("a model of the top trials");
            parts.push((m, *w, crate::spec::tune::trial_name(step.name(), *j)));
            members.push((*j, *w));
        }
        let model = builtins::ensemble::EnsembleModel::new(parts)
            .map_err(|e| Error::failed(format!("automl: {e}")))?;
        let mut scored = Scored::default();
        if let Some(ts) = &test {
            let preds = model.predict(ts).map_err(|e| {
                Error::failed(format!("automl: the ensemble on the test channel: {e}"))
            })?;
            let input = EvalInput::from_dataset(ts, preds)
                .map_err(|e| Error::failed(format!("automl: score the ensemble: {e}")))?;
            let v = builtins::metrics::compute(name, &input)
                .map_err(|e| Error::failed(format!("automl: score the ensemble: {e}")))?;
            scored.test = Some(if one_minus { 1.0 - v } else { v });
        }
        scored.predict_ms_per_1000_rows = timed
            .or(Some(validation))
            .and_then(|d| predict_time(&model, d));
        Ok(Some(Blend {
            model,
            members,
            validation: as_metric(blended),
            best_single: as_metric(single),
            scored,
        }))
    }
}

/// Saves `blend`'s model into `dir` and notes its size.
pub fn save_blend(blend: &mut Blend, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    blend
        .model
        .save(dir)
        .map_err(|e| Error::failed(format!("automl: save the ensemble: {e}")))?;
    blend.scored.model_bytes = Some(walk_bytes(dir));
    Ok(())
}

/// Milliseconds to predict 1,000 rows of `data`: predicting it whole
/// again until 50 ms have passed (at most 20 times), the mean of those.
fn predict_time(model: &dyn Model, data: &Dataset) -> Option<f64> {
    if data.n_rows() == 0 {
        return None;
    }
    let started = Instant::now();
    let mut reps = 0u32;
    while reps < 20 && (reps == 0 || started.elapsed().as_millis() < 50) {
        model.predict(data).ok()?;
        reps += 1;
    }
    let per_row = started.elapsed().as_secs_f64() / f64::from(reps) / data.n_rows() as f64;
    Some(per_row * 1000.0 * 1000.0)
}

/// The bytes of a stored model as it would be deployed.
fn model_bytes(dir: &Path) -> u64 {
    if let Ok(m) = std::fs::metadata(dir.join("model.tar.gz")) {
        return m.len();
    }
    walk_bytes(dir)
}

fn walk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(ft) if ft.is_dir() => walk_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// `timings.csv`: each trial's training (and for automl, prediction)
/// times, in the leaderboard's order (the ensemble first, when there is one).
pub fn timings_csv(
    t: &TuneStep,
    rows: &[TrialRow],
    order: &[usize],
    blend: Option<&Blend>,
) -> String {
    if t.automl.is_none() {
        let mut out = String::from("trial,status,fit_seconds\n");
        for &i in order {
            let r = &rows[i];
            let fit = r.fit_seconds.map(|x| format!("{x:.4}")).unwrap_or_default();
            out.push_str(&format!("{},{},{fit}\n", r.index, r.status));
        }
        return out;
    }
    let mut out = String::from("trial,algorithm,status,fit_seconds,predict_ms_per_1000_rows\n");
    let num = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    if let Some(b) = blend {
        out.push_str(&format!(
            "ensemble,ensemble,succeeded,,{}\n",
            num(b.scored.predict_ms_per_1000_rows)
        ));
    }
    for &i in order {
        let r = &rows[i];
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            r.index,
            r.algorithm.as_deref().unwrap_or(""),
            r.status,
            num(r.fit_seconds),
            num(r.scored.as_ref().and_then(|s| s.predict_ms_per_1000_rows)),
        ));
    }
    out
}
