//! The scheduler's part of `kind: tune` (see `spec/tune.rs` for the trials
//! a tune step expands into).
//!
//! - A bayesian trial's point is worked out when the trial is decided, from
//!   the results of the trials it reads (all finished: the plan makes it wait
//!   for them), in trial-index order, with the points of the trials between
//!   them and it as pending (the constant liar). Every point is a pure
//!   function of the seed, the trial index and those results, so a resumed
//!   run proposes again exactly what the killed one did.
//! - The tune step itself runs in the engine, not as a process: when every
//!   trial has ended it ranks them, and writes `leaderboard`, `metrics` and
//!   `report`; its `model` is the best trial's model, the same stored
//!   artifact. Its cache key is made of its spec and each trial's model digest
//!   (or its failure), so a re-run whose trials are all cached is cached too.

use std::collections::BTreeMap;
use std::time::Instant;

use builtins::tune::{Space, Value as Point};

use super::StepState;
use crate::error::{Error, Result};
use crate::runs::{OutputRecord, StepRecord, StepStatus};
use crate::spec::model::{Pipeline, Step, StepKind};
use crate::spec::tune::{Strategy, Trial, TuneStep, trial_name};

/// What a trial trains: which of its search's candidates (always 0 for a
/// tune step; an automl step's algorithm) at which point of its space.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub candidate: usize,
    pub point: Vec<Point>,
}

/// What the bayesian model reads of one trial: its point and its loss
/// (`None`: it failed).
type Observation = (Vec<Point>, Option<f64>);

/// Each trial's proposal, worked out once (tune step index, trial index).
#[derive(Debug, Default)]
pub struct Points {
    memo: BTreeMap<(usize, u32), Proposal>,
    /// When each tune step's first trial was decided (for `max_runtime`).
    started: BTreeMap<usize, Instant>,
    /// A warm-started search's observations from its parents, by tune step.
    warm: BTreeMap<usize, Vec<Observation>>,
}

impl Points {
    /// What trial `j` of the tune or automl step at `tune` trains. For a
    /// trial proposed from results, every trial it reads must have ended.
    pub(super) fn point(
        &mut self,
        p: &Pipeline,
        states: &[StepState],
        tune: usize,
        j: u32,
    ) -> Result<Proposal> {
        if let Some(pt) = self.memo.get(&(tune, j)) {
            return Ok(pt.clone());
        }
        let Some(t) = p.steps[tune].kind.search() else {
            return Err(Error::failed(format!(
                "step `{}` is not a tune step",
                p.steps[tune].name()
            )));
        };
        let settings = builtins::tune::TpeSettings::default();
        let proposal = match (&t.automl, t.strategy) {
            (None, Strategy::Grid) => Proposal {
                candidate: 0,
                point: builtins::tune::grid(&t.space(), u64::from(j)),
            },
            (None, Strategy::Random) => Proposal {
                candidate: 0,
                point: builtins::tune::random(&t.space(), t.seed, u64::from(j)),
            },
            (Some(a), _) if (j as usize) < a.candidates.len() => Proposal {
                candidate: j as usize,
                point: a.candidates[j as usize].default_point(),
            },
            (None, Strategy::Bayesian)
                if t.warm_start.is_none() && (sees(t, j) as usize) < settings.startup =>
            {
                Proposal {
                    candidate: 0,
                    point: builtins::tune::random(&t.space(), t.seed, u64::from(j)),
                }
            }
            (automl, _) => {
                let sees = sees(t, j);
                // The trials it reads, in index order: their proposals and losses.
                let mut done = Vec::with_capacity(sees as usize);
                for k in 0..sees {
                    let rec = trial_record(p, states, p.steps[tune].name(), k)?;
                    if !ended(rec.status) {
                        return Err(Error::failed(format!(
                            "trial `{}` is proposed from `{}`, which has not ended",
                            trial_name(p.steps[tune].name(), j),
                            rec.name
                        )));
                    }
                    let loss = (rec.status == StepStatus::Succeeded)
                        .then(|| t.objective.loss(&rec.metrics))
                        .flatten();
                    done.push((self.point(p, states, tune, k)?, loss));
                }
                let candidate = match automl {
                    Some(a) => {
                        let seen: Vec<(usize, Option<f64>)> =
                            done.iter().map(|(pr, l)| (pr.candidate, *l)).collect();
                        crate::spec::automl::choose(a.candidates.len(), j, &seen)
                    }
                    None => 0,
                };
                // A warm start's parents' trials come first, then this search's own.
                let mut mine: Vec<Observation> = match &t.warm_start {
                    Some(w) => self.warm(p, states, tune, t, w)?,
                    None => Vec::new(),
                };
                mine.extend(
                    done.into_iter()
                        .filter(|(pr, _)| pr.candidate == candidate)
                        .map(|(pr, l)| (pr.point, l)),
                );
                let mut pending = Vec::new();
                for k in sees..j {
                    let pr = self.point(p, states, tune, k)?;
                    if pr.candidate == candidate {
                        pending.push(pr.point);
                    }
                }
                let space = t.candidate_space(candidate);
                let seed = t.candidate_seed(candidate);
                let point = if mine.len() < settings.startup {
                    builtins::tune::random(&space, seed, u64::from(j))
                } else {
                    builtins::tune::tpe(&space, seed, u64::from(j), &mine, &pending, &settings)
                };
                Proposal { candidate, point }
            }
        };
        self.memo.insert((tune, j), proposal.clone());
        Ok(proposal)
    }
}

impl Points {
    /// The observations a warm start gives the tune step at `tune`: each
    /// parent's succeeded trials, in the parents' order and each one's trial
    /// order, as points of this search's space (a row whose values do not
    /// fit it is left out) with their losses; read once a run.
    fn warm(
        &mut self,
        p: &Pipeline,
        states: &[StepState],
        tune: usize,
        t: &crate::spec::tune::TuneStep,
        w: &crate::spec::tune::WarmStart,
    ) -> Result<Vec<Observation>> {
        if let Some(obs) = self.warm.get(&tune) {
            return Ok(obs.clone());
        }
        let space = t.space();
        let mut obs = Vec::new();
        for parent in &w.parents {
            let i = p.step_index(&parent.value).ok_or_else(|| {
                Error::failed(format!("the plan has no tune step `{}`", parent.value))
            })?;
            let rec = &states[i].record;
            let Some(board) = rec.outputs.get("leaderboard") else {
                return Err(Error::failed(format!(
                    "`{}` warm-starts from `{}`, which has no leaderboard ({})",
                    p.steps[tune].name(),
                    parent.value,
                    rec.status.as_str()
                )));
            };
            let path = std::path::Path::new(&board.path).join(crate::spec::tune::LEADERBOARD_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
            obs.extend(
                warm_rows(&text, &space, t.objective.maximize)
                    .map_err(|e| Error::failed(format!("{}: {e}", path.display())))?,
            );
        }
        self.warm.insert(tune, obs.clone());
        Ok(obs)
    }
}

/// The observations in a parent's leaderboard text: its succeeded trials
/// in trial order, each as a point of `space` (by the columns named like its
/// ranges) and its loss (the `objective` column, negated when maximising).
fn warm_rows(
    text: &str,
    space: &builtins::tune::Space,
    maximize: bool,
) -> std::result::Result<Vec<Observation>, String> {
    let mut rdr = text.lines();
    let header = split_csv(rdr.next().ok_or("the leaderboard is empty")?);
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(trial), Some(status), Some(objective)) =
        (col("trial"), col("status"), col("objective"))
    else {
        return Err("not a leaderboard: it has no trial, status and objective columns".into());
    };
    let mut rows: Vec<(u64, Vec<Point>, f64)> = Vec::new();
    'rows: for line in rdr {
        let f = split_csv(line);
        if f.get(status).map(String::as_str) != Some("succeeded") {
            continue;
        }
        let Some(v) = f
            .get(objective)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        let index = f
            .get(trial)
            .and_then(|t| t.rsplit('.').next())
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let mut point = Vec::with_capacity(space.params.len());
        for (name, range) in &space.params {
            let Some(text) = col(name).and_then(|c| f.get(c)) else {
                continue 'rows;
            };
            let value = match range {
                builtins::tune::Range::Integer { .. } => text.parse::<i64>().ok().map(Point::Int),
                builtins::tune::Range::Continuous { .. } => {
                    text.parse::<f64>().ok().map(Point::Float)
                }
                builtins::tune::Range::Categorical { values } => {
                    values.iter().position(|v| v == text).map(Point::Cat)
                }
            };
            match value {
                Some(v) => point.push(v),
                None => continue 'rows,
            }
        }
        rows.push((index, point, if maximize { -v } else { v }));
    }
    rows.sort_by_key(|r| r.0);
    Ok(rows.into_iter().map(|(_, p, l)| (p, Some(l))).collect())
}

/// One line of a leaderboard CSV (RFC 4180 quoting, as `leaderboard_csv`
/// writes it): its fields, unquoted. The web UI reads leaderboards with it too.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

/// Why trial step `step` does not start: its search has ended (the trials
/// before it, all ended, met the completion criteria) or its `max_runtime`
/// has passed. `None`: it starts.
pub(super) fn cut_short(
    points: &mut Points,
    p: &Pipeline,
    states: &[StepState],
    step: &Step,
) -> Option<String> {
    let trial = step.trial.as_ref()?;
    let ti = p.step_index(&trial.tune)?;
    let t = p.steps[ti].kind.search()?;
    let start = *points.started.entry(ti).or_insert_with(Instant::now);
    let mut objectives = Vec::new();
    for k in 0..trial.index {
        let rec = trial_record(p, states, &trial.tune, k).ok()?;
        if !ended(rec.status) {
            break;
        }
        objectives.push(
            (rec.status == StepStatus::Succeeded)
                .then(|| t.objective.loss(&rec.metrics))
                .flatten()
                .map(|l| if t.objective.maximize { -l } else { l }),
        );
    }
    if let Some(s) = t
        .completion_criteria
        .stop_after(&objectives, t.objective.maximize)
    {
        return Some(format!(
            "the search ended with trial {s}, which met its completion criteria"
        ));
    }
    match t.max_runtime {
        Some(limit) if start.elapsed() >= limit => Some(format!(
            "the search's {} ({:?}) had passed before it could start",
            if t.automl.is_some() {
                "time budget"
            } else {
                "max_runtime"
            },
            limit
        )),
        _ => None,
    }
}

/// How many of the first trials bayesian trial `j` reads.
fn sees(t: &TuneStep, j: u32) -> u32 {
    (j + 1).saturating_sub(t.window())
}

/// A trial that will not run again in this run.
fn ended(s: StepStatus) -> bool {
    matches!(
        s,
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
    )
}

fn trial_record<'a>(
    p: &Pipeline,
    states: &'a [StepState],
    tune: &str,
    k: u32,
) -> Result<&'a StepRecord> {
    let name = trial_name(tune, k);
    let i = p
        .step_index(&name)
        .ok_or_else(|| Error::failed(format!("the plan has no trial `{name}`")))?;
    Ok(&states[i].record)
}

/// Trial step `step` with the hyperparameters of its point filled in, when
/// its point is proposed as it starts (`None`: it was known at planning).
pub(super) fn resolved_trial(
    points: &mut Points,
    p: &Pipeline,
    states: &[StepState],
    step: &Step,
) -> Result<Option<Step>> {
    let Some(Trial {
        tune,
        index,
        sees: Some(_),
        ..
    }) = &step.trial
    else {
        return Ok(None);
    };
    let ti = p
        .step_index(tune)
        .ok_or_else(|| Error::failed(format!("the plan has no tune step `{tune}`")))?;
    let Some(t) = p.steps[ti].kind.search() else {
        return Ok(None);
    };
    let pr = points.point(p, states, ti, *index)?;
    let mut resolved = step.clone();
    resolved.kind = StepKind::Train(t.trial_train(pr.candidate, &pr.point));
    Ok(Some(resolved))
}

/// One trial as the leaderboard shows it.
#[derive(Debug, Clone)]
pub struct TrialRow {
    pub index: u32,
    pub name: String,
    /// `succeeded`, `failed`, `stopped` (after the trial that met the
    /// completion criteria) or `not_run` (`max_runtime` had passed).
    pub status: &'static str,
    pub params: Vec<(String, String)>,
    /// The objective as reported (not negated).
    pub objective: Option<f64>,
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub failure: Option<String>,
    pub model: Option<OutputRecord>,
    /// The algorithm it trained (an automl step's rows; `None` for a tune step).
    pub algorithm: Option<String>,
    /// Seconds its training took, when this engine saw it run (its record,
    /// or the record of the run that made a cached model).
    pub fit_seconds: Option<f64>,
    /// What `schedule/automl.rs` measures of an automl step's models.
    pub scored: Option<super::automl::Scored>,
}

/// Every trial of the tune step at `tune`, in index order.
pub(super) fn rows(
    points: &mut Points,
    p: &Pipeline,
    states: &[StepState],
    tune: usize,
) -> Result<Vec<TrialRow>> {
    let Some(t) = p.steps[tune].kind.search() else {
        return Ok(vec![]);
    };
    let mut out = Vec::with_capacity(t.trials.len());
    for j in 0..t.max_jobs {
        let rec = trial_record(p, states, p.steps[tune].name(), j)?;
        let pr = points.point(p, states, tune, j)?;
        let objective = if rec.status == StepStatus::Succeeded {
            t.objective
                .loss(&rec.metrics)
                .map(|l| if t.objective.maximize { -l } else { l })
        } else {
            None
        };
        let failure = match (rec.status, objective) {
            (StepStatus::Succeeded, None) => Some(format!(
                "the trial did not report the objective `{}`",
                t.objective.metric
            )),
            (StepStatus::Succeeded, Some(_)) => None,
            (s, _) => Some(
                rec.failure
                    .clone()
                    .unwrap_or_else(|| format!("the trial ended {}", s.as_str())),
            ),
        };
        let status = match (rec.status, objective) {
            (_, Some(_)) => "succeeded",
            (StepStatus::Skipped, _) => "not_run",
            _ => "failed",
        };
        out.push(TrialRow {
            index: j,
            name: rec.name.clone(),
            status,
            params: t.candidate_space(pr.candidate).to_strings(&pr.point),
            objective,
            metrics: rec.metrics.clone(),
            failure,
            model: rec.outputs.get("model").cloned(),
            algorithm: t
                .automl
                .as_ref()
                .map(|a| a.candidates[pr.candidate].algorithm.clone()),
            fit_seconds: None,
            scored: None,
        });
    }
    // Trials after the one that met the completion criteria are not the
    // search's, whether or not they ran: the same trials count whatever
    // finished first.
    let objectives: Vec<Option<f64>> = out.iter().map(|r| r.objective).collect();
    if let Some(s) = t
        .completion_criteria
        .stop_after(&objectives, t.objective.maximize)
    {
        for r in out.iter_mut().skip(s + 1) {
            r.status = "stopped";
            r.objective = None;
            r.metrics.clear();
            r.model = None;
            r.failure = Some(format!("the search ended with trial {s}"));
        }
    }
    Ok(out)
}

/// Trial indices ranked best first: those with an objective by it (ties by
/// index), then the failed ones by index.
pub fn ranking(t: &TuneStep, rows: &[TrialRow]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |r: &TrialRow| {
            r.objective
                .map(|v| if t.objective.maximize { -v } else { v })
        };
        match (key(&rows[a]), key(&rows[b])) {
            (Some(x), Some(y)) => x.total_cmp(&y).then(a.cmp(&b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(&b),
        }
    });
    order
}

/// The leaderboard CSV: a header and one row a trial, best first. Every
/// column is a function of the trials' points and results, so the file is
/// byte-identical whatever `max_parallel_jobs` (wall-clock times are in the
/// run's record of each trial step).
pub fn leaderboard_csv(
    t: &TuneStep,
    rows: &[TrialRow],
    order: &[usize],
    blend: Option<&super::automl::Blend>,
) -> String {
    let names = param_names(t);
    let params: Vec<&String> = names.iter().collect();
    let automl = t.automl.as_ref();
    let test_name = automl
        .filter(|a| a.test.is_some())
        .map(|_| t.objective.metric.replacen("validation:", "test:", 1));
    let mut metric_names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.metrics.iter())
        .filter(|(_, v)| v.is_number())
        .map(|(k, _)| k.clone())
        .collect();
    metric_names.sort();
    metric_names.dedup();
    let mut out = String::new();
    let mut header: Vec<String> = vec!["rank".into(), "trial".into()];
    if automl.is_some() {
        header.push("algorithm".into());
    }
    header.extend(["status".into(), "objective".into()]);
    if let Some(n) = &test_name {
        header.push(csv_field(n));
    }
    if automl.is_some() {
        header.push("model_bytes".into());
    }
    header.extend(params.iter().map(|p| csv_field(p)));
    // A metric named like a column of ours (linear-learner reports its
    // training `objective`) is `metric:NAME`, so that every column has one name.
    let metric_columns: Vec<String> = metric_names
        .iter()
        .map(|m| {
            if header.iter().any(|h| h == m) || params.contains(&m) || m == "failure" {
                csv_field(&format!("metric:{m}"))
            } else {
                csv_field(m)
            }
        })
        .collect();
    header.extend(metric_columns);
    header.push("failure".into());
    if automl.is_some() {
        header.push("members".into());
    }
    out.push_str(&header.join(","));
    out.push('\n');
    // The ensemble leads: it is handed on only when it beats the best trial.
    if let Some(b) = blend {
        let mut f: Vec<String> = vec![
            "1".into(),
            "ensemble".into(),
            "ensemble".into(),
            "succeeded".into(),
            format!("{}", b.validation),
        ];
        if test_name.is_some() {
            f.push(b.scored.test.map(|v| format!("{v}")).unwrap_or_default());
        }
        f.push(
            b.scored
                .model_bytes
                .map(|v| v.to_string())
                .unwrap_or_default(),
        );
        f.extend(params.iter().map(|_| String::new()));
        f.extend(metric_names.iter().map(|_| String::new()));
        f.push(String::new());
        f.push(csv_field(&b.describe()));
        out.push_str(&f.join(","));
        out.push('\n');
    }
    let shift = usize::from(blend.is_some());
    for (rank, &i) in order.iter().enumerate() {
        let r = &rows[i];
        let rank = rank + shift;
        let mut f: Vec<String> = vec![
            if r.objective.is_some() {
                (rank + 1).to_string()
            } else {
                String::new()
            },
            r.index.to_string(),
        ];
        if automl.is_some() {
            f.push(r.algorithm.clone().unwrap_or_default());
        }
        f.push(r.status.to_string());
        f.push(r.objective.map(|v| format!("{v}")).unwrap_or_default());
        if test_name.is_some() {
            f.push(
                r.scored
                    .as_ref()
                    .and_then(|s| s.test)
                    .map(|v| format!("{v}"))
                    .unwrap_or_default(),
            );
        }
        if automl.is_some() {
            f.push(
                r.scored
                    .as_ref()
                    .and_then(|s| s.model_bytes)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
        }
        let by_name: BTreeMap<&str, &str> = r
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f.extend(
            params
                .iter()
                .map(|p| csv_field(by_name.get(p.as_str()).copied().unwrap_or(""))),
        );
        f.extend(metric_names.iter().map(|m| {
            r.metrics
                .get(m)
                .and_then(serde_json::Value::as_f64)
                .map(|v| format!("{v}"))
                .unwrap_or_default()
        }));
        f.push(csv_field(r.failure.as_deref().unwrap_or("")));
        if automl.is_some() {
            f.push(String::new());
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    out
}

/// The tuned hyperparameters' names: a tune step's ranges, or every automl
/// candidate's, sorted.
pub fn param_names(t: &TuneStep) -> Vec<String> {
    let mut names: Vec<String> = match &t.automl {
        Some(a) => a
            .candidates
            .iter()
            .flat_map(|c| c.ranges.keys().cloned())
            .collect(),
        None => t.ranges.keys().cloned().collect(),
    };
    names.sort();
    names.dedup();
    names
}

/// A CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The best trial's metrics (the tune step's `metrics`), with the trial's
/// index and the objective under its own name.
pub fn best_metrics(rows: &[TrialRow], best: &TrialRow) -> BTreeMap<String, serde_json::Value> {
    let mut m: BTreeMap<String, serde_json::Value> = best
        .metrics
        .iter()
        .filter(|(_, v)| v.is_number())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(v) = best.objective {
        m.insert("objective".into(), serde_json::json!(v));
    }
    m.insert("best_trial".into(), serde_json::json!(best.index));
    // `max_runtime` kept trials from starting: another run may get further.
    let complete = rows.iter().all(|r| r.status != "not_run");
    m.insert("complete".into(), serde_json::json!(complete));
    m
}

/// The space as the report plots it: each parameter's value of a row as a
/// number (a categorical by its index), and whether its axis is logarithmic.
pub fn numeric_params(space: &Space, rows: &[TrialRow]) -> Vec<(String, bool, Vec<Option<f64>>)> {
    use builtins::tune::{Range, Scaling};
    space
        .params
        .iter()
        .map(|(name, range)| {
            let log = match range {
                Range::Integer { min, max, scaling } => {
                    matches!(scaling, Scaling::Logarithmic)
                        || (matches!(scaling, Scaling::Auto) && *min > 0 && *max >= 100 * *min)
                }
                Range::Continuous { min, max, scaling } => {
                    matches!(scaling, Scaling::Logarithmic)
                        || (matches!(scaling, Scaling::Auto) && *min > 0.0 && *max >= 100.0 * *min)
                }
                Range::Categorical { .. } => false,
            };
            let values = rows
                .iter()
                .map(|r| {
                    let text = r
                        .params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())?;
                    match range {
                        Range::Categorical { values } => {
                            values.iter().position(|v| v == text).map(|i| i as f64)
                        }
                        _ => text.parse::<f64>().ok(),
                    }
                })
                .collect();
            (name.clone(), log, values)
        })
        .collect()
}

impl super::Run {
    /// Settles tune step `i` once its trials have ended: from the cache when
    /// its trials are what they were, else by ranking them and storing the
    /// leaderboard, the best trial's metrics and the report.
    pub(super) fn settle_tune(
        &mut self,
        i: usize,
        t: &TuneStep,
        states: &mut [StepState],
        points: &mut Points,
        events: &mut dyn FnMut(super::Event),
    ) -> Result<super::Decision> {
        use crate::dag::cache::{ChannelIdentity, KeyParts};
        use crate::spec::model::CachePolicy;
        let plan = self.plan.clone();
        let p = &plan.pipeline;
        let step = &p.steps[i];
        let mut rows = rows(points, p, states, i)?;
        // What each trial gave, as the key sees it (and an automl step's test data).
        let mut given: BTreeMap<String, String> = rows
            .iter()
            .map(|r| {
                let v = match (&r.model, r.objective) {
                    (Some(m), Some(o)) => format!("{} {o}", m.digest),
                    _ => r.status.to_string(),
                };
                (format!("trial-{}", r.index), v)
            })
            .collect();
        if let Some(crate::spec::model::Ref {
            target: crate::spec::model::RefTarget::Output { step: s, output },
            ..
        }) = t.automl.as_ref().and_then(|a| a.test.as_ref())
            && let Some(o) = p
                .step_index(s)
                .and_then(|j| states[j].record.outputs.get(output))
        {
            given.insert("test".into(), o.digest.clone());
        } else if let Some(crate::spec::model::Ref {
            target: crate::spec::model::RefTarget::Input(n),
            ..
        }) = t.automl.as_ref().and_then(|a| a.test.as_ref())
        {
            let def = &p.inputs[n];
            given.insert(
                "test".into(),
                super::inputs::input_digest(&self.db, &self.ws, def)?,
            );
        }
        let identities = given
            .iter()
            .map(|(k, d)| {
                (
                    k.clone(),
                    ChannelIdentity {
                        digest: d,
                        reading: None,
                    },
                )
            })
            .collect();
        let parts = KeyParts::new(step, &identities, BTreeMap::new(), None);
        let key = parts.key();
        states[i].record.cache_key = Some(key.clone());
        states[i].parts = Some(parts);
        if step.cache != CachePolicy::Off
            && !self.no_cache
            && let Some((hit, _)) = crate::store::remote::cached(
                &self.db,
                &self.ws.store(),
                &key,
                super::shares_cache(step),
            )?
            && hit.is_fresh(step.cache)
        {
            return self.settle_cached(i, &hit, states, events);
        }
        let order = ranking(t, &rows);
        let Some(best) = order
            .first()
            .map(|&b| &rows[b])
            .filter(|r| r.objective.is_some())
        else {
            let first = rows
                .first()
                .and_then(|r| r.failure.clone())
                .unwrap_or_default();
            return Err(Error::failed(format!(
                "every one of the {} trials failed; trial 0: {first}",
                rows.len()
            )));
        };
        let Some(model) = best.model.clone() else {
            return Err(Error::failed(format!(
                "the best trial `{}` has no model",
                best.name
            )));
        };
        let started = std::time::Instant::now();
        let best_index = best.index;
        let mut blend = self.score_automl(i, t, states, &mut rows)?;
        self.fit_times(i, states, &mut rows)?;
        let best = &rows[best_index as usize];
        let mut metrics = best_metrics(&rows, best);
        if t.automl.is_some() {
            metrics.insert("ensemble".into(), serde_json::json!(blend.is_some()));
        }
        if let Some(b) = &blend {
            // The blend is what is handed on: its score is the step's objective.
            metrics.insert("objective".into(), serde_json::json!(b.validation));
            metrics.insert("ensemble_members".into(), serde_json::json!(b.describe()));
        }
        let root = super::new_attempt_dir(
            &self
                .ws
                .run_dir(&self.run_id)
                .join("steps")
                .join(step.name()),
        )?;
        let write = |output: &str, file: &str, bytes: &[u8]| -> Result<std::path::PathBuf> {
            let dir = crate::exec::contract::output_dir(&root, output);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
            let path = dir.join(file);
            crate::store::write_atomic(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
            Ok(dir)
        };
        let model = match &mut blend {
            Some(b) => {
                let dir = crate::exec::contract::output_dir(&root, "model");
                super::automl::save_blend(b, &dir)?;
                let (digest, path) = self.ws.store().ingest_dir(&dir)?;
                OutputRecord {
                    path: path.display().to_string(),
                    digest,
                }
            }
            None => model,
        };
        let csv = leaderboard_csv(t, &rows, &order, blend.as_ref());
        let mut dirs = vec![(
            "leaderboard",
            write(
                "leaderboard",
                crate::spec::tune::LEADERBOARD_FILE,
                csv.as_bytes(),
            )?,
        )];
        write(
            "leaderboard",
            super::automl::TIMINGS_FILE,
            super::automl::timings_csv(t, &rows, &order, blend.as_ref()).as_bytes(),
        )?;
        let metrics_json =
            serde_json::to_vec_pretty(&serde_json::json!({ "metrics": metrics })).expect("json");
        dirs.push(("metrics", write("metrics", "metrics.json", &metrics_json)?));
        let html = crate::report::tune::render(step.name(), t, &rows, &order, blend.as_ref())
            .map_err(Error::failed)?;
        dirs.push(("report", write("report", "report.html", html.as_bytes())?));
        let store = self.ws.store();
        let mut outputs = BTreeMap::new();
        outputs.insert("model".to_string(), model);
        for (name, dir) in dirs {
            let (digest, path) = store.ingest_dir(&dir)?;
            outputs.insert(
                name.to_string(),
                OutputRecord {
                    path: path.display().to_string(),
                    digest,
                },
            );
        }
        states[i].started = Some(started);
        states[i].record.started_at = Some(crate::runs::now_rfc3339());
        self.succeed(i, 1, (outputs, metrics), states, events)?;
        Ok(super::Decision::Settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use builtins::tune::{Range, Scaling, Space};

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\","),
            vec!["a", "b,c", "d\"e", ""]
        );
    }

    #[test]
    fn a_parents_leaderboard_becomes_observations_in_trial_order() {
        let space = Space {
            params: vec![
                (
                    "booster".into(),
                    Range::Categorical {
                        values: vec!["gbtree".into(), "dart".into()],
                    },
                ),
                (
                    "depth".into(),
                    Range::Integer {
                        min: 2,
                        max: 8,
                        scaling: Scaling::Linear,
                    },
                ),
                (
                    "eta".into(),
                    Range::Continuous {
                        min: 0.01,
                        max: 0.5,
                        scaling: Scaling::Logarithmic,
                    },
                ),
            ],
        };
        let board = "rank,trial,status,objective,booster,depth,eta,failure\n\
                     1,p.2,succeeded,0.9,dart,4,0.1,\n\
                     2,p.0,succeeded,0.8,gbtree,3,0.25,\n\
                     3,p.3,succeeded,0.7,\"gblinear\",3,0.2,\n\
                     4,p.1,failed,,gbtree,5,0.3,\"boom, it said\"\n";
        // Maximising: the loss is the objective negated; a value the space
        // does not have (gblinear) and a failed trial are left out.
        let obs = warm_rows(board, &space, true).unwrap();
        assert_eq!(
            obs,
            vec![
                (
                    vec![Point::Cat(0), Point::Int(3), Point::Float(0.25)],
                    Some(-0.8)
                ),
                (
                    vec![Point::Cat(1), Point::Int(4), Point::Float(0.1)],
                    Some(-0.9)
                ),
            ]
        );
        assert!(
            warm_rows("a,b\n", &space, true)
                .unwrap_err()
                .contains("not a leaderboard")
        );
        // A parent that did not tune `depth` gives nothing (transfer learning reads what fits).
        let no_depth = "rank,trial,status,objective,booster,eta\n1,p.0,succeeded,0.5,dart,0.1\n";
        assert!(warm_rows(no_depth, &space, false).unwrap().is_empty());
    }
}
