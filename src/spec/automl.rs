//! `kind: automl`: decoding, the checks made before anything runs, and which
//! built-in each trial trains.
//!
//! An automl step is a search over several built-in algorithms at once, each
//! with its own default search space. It is decoded into the same
//! [`TuneStep`] a tune step is (so its trials are expanded, cached, resumed
//! and ranked the same way, see `spec/tune.rs`), with an [`AutoMl`] part
//! saying what its candidates are. Trial `j < C` (C candidates) trains
//! candidate `j` at its default point; every later trial is chosen when it
//! starts, from the results of the trials it reads ([`choose`]), and its
//! point is proposed within that candidate's space from that candidate's
//! trials alone. Both are pure functions of the seed, the trial index and
//! those results, so the search is as deterministic as a tune step's.

use std::collections::BTreeMap;

use builtins::tune::{Range, Scaling, Space, Value};
use serde::{Deserialize, Serialize};

use super::decode::{Ctx, DResult, Fields};
use super::model::{Ref, TrainStep};
use super::tune::{Completion, Objective, Strategy, TuneStep};

/// The keys of an automl step besides the common ones.
pub const KEYS: &[&str] = &[
    "channels",
    "objective",
    "algorithms",
    "budget",
    "max_parallel_jobs",
    "seed",
    "strategy_config",
    "ensemble",
];

/// The channels an automl step reads: `train` and `validation` go to every
/// trial; `test`, when given, only scores the leaderboard.
pub const CHANNELS: &[&str] = &["train", "validation", "test"];

/// The most trials an automl step may have.
pub const MAX_TRIALS: u32 = 500;

/// The task, read off the objective's metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    BinaryClassification,
    MulticlassClassification,
    Regression,
}

/// The objectives an automl step can rank by: every candidate reports them
/// on the validation channel. (metric, problem, higher is better, the
/// evaluate metric the leaderboard's test column is computed with, and
/// whether that column is `1 - metric`).
const OBJECTIVES: &[(&str, Problem, bool, &str, bool)] = &[
    ("auc", Problem::BinaryClassification, true, "auc", false),
    (
        "logloss",
        Problem::BinaryClassification,
        false,
        "logloss",
        false,
    ),
    (
        "error",
        Problem::BinaryClassification,
        false,
        "accuracy",
        true,
    ),
    (
        "mlogloss",
        Problem::MulticlassClassification,
        false,
        "logloss",
        false,
    ),
    (
        "merror",
        Problem::MulticlassClassification,
        false,
        "accuracy",
        true,
    ),
    ("rmse", Problem::Regression, false, "rmse", false),
    ("mae", Problem::Regression, false, "mae", false),
];

/// How the leaderboard scores a model on the `test` channel: with this
/// evaluate metric, or one minus it (`error` is `1 - accuracy`).
pub fn test_metric(objective: &Objective) -> Option<(&'static str, bool)> {
    let name = objective.metric.strip_prefix("validation:")?;
    OBJECTIVES.iter().find(|o| o.0 == name).map(|o| (o.3, o.4))
}

/// The algorithms automl can try, in the order they are tried.
pub const ALGORITHMS: &[&str] = &["gbdt", "linear-learner"];

/// One algorithm of an automl search: what its trials fix and what they search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub algorithm: String,
    pub fixed: BTreeMap<String, String>,
    pub ranges: BTreeMap<String, Range>,
    /// The point its first trial trains at (a value for every range).
    pub default: BTreeMap<String, String>,
}

impl Candidate {
    pub fn space(&self) -> Space {
        Space {
            params: self
                .ranges
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
        }
    }

    /// The default point, as a point of [`Candidate::space`].
    pub fn default_point(&self) -> Vec<Value> {
        self.ranges
            .iter()
            .map(|(name, range)| {
                let text = self.default.get(name).map(String::as_str).unwrap_or("");
                match range {
                    Range::Integer { min, .. } => Value::Int(text.parse().unwrap_or(*min)),
                    Range::Continuous { min, .. } => Value::Float(text.parse().unwrap_or(*min)),
                    Range::Categorical { values } => {
                        Value::Cat(values.iter().position(|v| v == text).unwrap_or(0))
                    }
                }
            })
            .collect()
    }

    /// The seed its points are drawn with: the search's, apart for each candidate.
    pub fn seed(seed: u64, candidate: usize) -> u64 {
        seed ^ (candidate as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// What makes a tune step an automl step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoMl {
    pub problem: Problem,
    pub candidates: Vec<Candidate>,
    /// The held-out data each model is scored on for the leaderboard (never
    /// given to a trial, so it cannot steer the search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Ref>,
    /// The budget in trials, as written (`max_jobs` of the search).
    pub trials: u32,
    /// Whether to try a greedy ensemble of the best models (`ensemble:`,
    /// default true), handed on when it beats the best one on validation.
    pub ensemble: bool,
}

/// How many of the best models greedy ensemble selection chooses from.
pub const ENSEMBLE_CANDIDATES: usize = 10;
/// How many times it adds a model (with replacement).
pub const ENSEMBLE_ROUNDS: usize = 25;

fn cont(min: f64, max: f64, log: bool) -> Range {
    Range::Continuous {
        min,
        max,
        scaling: if log {
            Scaling::Logarithmic
        } else {
            Scaling::Linear
        },
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The default search of `algorithm` for `problem` ranked by `metric` (its
/// name on the validation channel). Documented in docs/automl.md.
pub fn candidate(algorithm: &str, problem: Problem, metric: &str) -> Candidate {
    match algorithm {
        "gbdt" => {
            let objective = match problem {
                Problem::BinaryClassification => "binary:logistic",
                Problem::MulticlassClassification => "multi:softprob",
                Problem::Regression => "reg:squarederror",
            };
            let mut ranges = BTreeMap::new();
            ranges.insert("eta".into(), cont(0.01, 0.3, true));
            ranges.insert(
                "max_depth".into(),
                Range::Integer {
                    min: 2,
                    max: 10,
                    scaling: Scaling::Linear,
                },
            );
            ranges.insert("min_child_weight".into(), cont(0.5, 20.0, true));
            ranges.insert("subsample".into(), cont(0.5, 1.0, false));
            ranges.insert("colsample_bytree".into(), cont(0.5, 1.0, false));
            ranges.insert("lambda".into(), cont(1e-3, 10.0, true));
            ranges.insert("alpha".into(), cont(1e-3, 10.0, true));
            Candidate {
                algorithm: algorithm.into(),
                fixed: map(&[
                    ("objective", objective),
                    ("eval_metric", metric),
                    ("num_round", "1000"),
                    ("early_stopping_rounds", "30"),
                    ("seed", "0"),
                ]),
                ranges,
                default: map(&[
                    ("eta", "0.1"),
                    ("max_depth", "6"),
                    ("min_child_weight", "1"),
                    ("subsample", "1"),
                    ("colsample_bytree", "1"),
                    ("lambda", "1"),
                    ("alpha", "0.001"),
                ]),
            }
        }
        _ => {
            let predictor = match problem {
                Problem::BinaryClassification => "binary_classifier",
                Problem::MulticlassClassification => "multiclass_classifier",
                Problem::Regression => "regressor",
            };
            let mut ranges = BTreeMap::new();
            ranges.insert("wd".into(), cont(1e-7, 10.0, true));
            Candidate {
                algorithm: algorithm.into(),
                fixed: map(&[("predictor_type", predictor), ("normalize_data", "true")]),
                ranges,
                default: map(&[("wd", "0.0001")]),
            }
        }
    }
}

/// Which candidate trial `j` trains, given what the trials it reads gave:
/// `seen[k]` is trial `k`'s candidate and its loss (lower is better; `None`:
/// failed). Trials `0..C` train each candidate once; after that the
/// candidate with the best loss so far (ties to the earlier) trains three
/// trials in four, and the others take the fourth in turn. Before any
/// candidate has a result, they take turns.
pub fn choose(candidates: usize, j: u32, seen: &[(usize, Option<f64>)]) -> usize {
    let c = candidates.max(1);
    let j = j as usize;
    if j < c {
        return j;
    }
    let k = j - c;
    let mut best: Option<(f64, usize)> = None;
    for &(cand, loss) in seen {
        if let Some(l) = loss
            && best.is_none_or(|(b, bc)| l < b || (l == b && cand < bc))
        {
            best = Some((l, cand));
        }
    }
    match best {
        None => k % c,
        Some((_, leader)) if c == 1 || k % 4 != 3 => leader,
        Some((_, leader)) => {
            let others: Vec<usize> = (0..c).filter(|&x| x != leader).collect();
            others[(k / 4) % others.len()]
        }
    }
}

/// Decodes an automl step's own keys; `train` holds its channels (all of
/// them, `test` included), decoded as a train step's.
pub fn decode(ctx: &Ctx, f: &Fields, mut train: TrainStep) -> DResult<TuneStep> {
    let channels_node = f.req(ctx, "channels")?;
    for name in train.channels.keys() {
        if !CHANNELS.contains(&name.as_str()) {
            return Err(ctx
                .err(
                    channels_node,
                    format!("an automl step has no channel `{name}`"),
                )
                .suggest(name, CHANNELS.iter().copied())
                .help("give `train` and `validation` (every trial reads them) and optionally `test` (the leaderboard's held-out score)"));
        }
    }
    for name in ["train", "validation"] {
        if !train.channels.contains_key(name) {
            return Err(ctx
                .err(channels_node, format!("an automl step needs a `{name}` channel"))
                .help("e.g. `channels: {train: split.train, validation: split.validation, test: split.test}`: the search ranks models by their validation score"));
        }
    }
    let test = train.channels.remove("test");
    train.distribution.remove("test");
    train.channel_formats.remove("test");
    train.channel_modes.remove("test");

    // The objective decides the task.
    let node = f.req(ctx, "objective")?;
    let of = ctx.fields(node, "`objective`", &["metric", "type"])?;
    let metric_n = of.req(ctx, "metric")?;
    let metric = ctx.string(metric_n, "metric")?;
    let names: Vec<String> = OBJECTIVES
        .iter()
        .map(|o| format!("validation:{}", o.0))
        .collect();
    let Some(&(name, problem, higher, _, _)) = metric
        .strip_prefix("validation:")
        .and_then(|n| OBJECTIVES.iter().find(|o| o.0 == n))
    else {
        return Err(ctx
            .err(
                metric_n,
                format!(
                    "`{}` is not an objective every automl candidate reports",
                    metric.value
                ),
            )
            .suggest(&metric.value, names.iter().map(String::as_str))
            .help(format!("use one of: {}", names.join(", "))));
    };
    let type_n = of.req(ctx, "type")?;
    let ty = ctx.string(type_n, "type")?;
    let maximize = match ty.as_str() {
        "maximize" => true,
        "minimize" => false,
        other => {
            return Err(ctx
                .err(type_n, format!("unknown objective type `{other}`"))
                .suggest(other, ["maximize", "minimize"])
                .help("use `maximize` or `minimize`"));
        }
    };
    if maximize != higher {
        let want = if higher { "maximize" } else { "minimize" };
        return Err(ctx
            .err(
                type_n,
                format!(
                    "`{name}` is better when {}: a search that {ty}s it looks for the worst model",
                    if higher { "higher" } else { "lower" },
                    ty = ty.value.trim_end_matches('e')
                ),
            )
            .help(format!("write `type: {want}`")));
    }
    let objective = Objective {
        metric: metric.value.clone(),
        key: format!("validation_{name}"),
        maximize,
    };

    let algorithms: Vec<String> = match f.get("algorithms") {
        None => ALGORITHMS.iter().map(|a| a.to_string()).collect(),
        Some(n) => {
            let list = ctx.string_list(n, "algorithms")?;
            if list.is_empty() {
                return Err(ctx
                    .err(n, "`algorithms` is empty: there is nothing to try")
                    .help(format!("list some of: {}", ALGORITHMS.join(", "))));
            }
            let mut out: Vec<String> = Vec::new();
            for a in list {
                if !ALGORITHMS.contains(&a.as_str()) {
                    let why = if crate::exec::builtin::ALGORITHMS.contains(&a.as_str()) {
                        format!(
                            "{} learns no target, so it cannot be ranked by `{}`",
                            a.value, metric.value
                        )
                    } else {
                        format!("unknown algorithm `{}`", a.value)
                    };
                    return Err(super::source::Diagnostic::at(&ctx.source, a.span, why)
                        .suggest(&a.value, ALGORITHMS.iter().copied())
                        .help(format!("use some of: {}", ALGORITHMS.join(", "))));
                }
                if out.contains(&a.value) {
                    return Err(super::source::Diagnostic::at(
                        &ctx.source,
                        a.span,
                        format!("`{}` is listed twice", a.value),
                    )
                    .help("list each algorithm once"));
                }
                out.push(a.value);
            }
            out
        }
    };
    let candidates: Vec<Candidate> = algorithms
        .iter()
        .map(|a| candidate(a, problem, name))
        .collect();

    let budget_n = f.req(ctx, "budget")?;
    let bf = ctx.fields(budget_n, "`budget`", &["trials", "time"])?;
    let trials_n = bf.req(ctx, "trials")?;
    let trials = ctx.uint(trials_n, "trials")?;
    let max_jobs = match u32::try_from(trials.value) {
        Ok(n) if (1..=MAX_TRIALS).contains(&n) => n,
        _ => {
            return Err(ctx
                .err(
                    trials_n,
                    format!("`trials` must be a whole number from 1 to {MAX_TRIALS}"),
                )
                .help("for example `budget: {trials: 40, time: 10m}`"));
        }
    };
    let time = bf
        .get("time")
        .map(|n| super::load::decode_duration(ctx, n, "time"))
        .transpose()?;
    let max_parallel_jobs = match f.get("max_parallel_jobs") {
        None => 1,
        Some(n) => {
            let v = ctx.uint(n, "max_parallel_jobs")?;
            match u32::try_from(v.value) {
                Ok(x) if x >= 1 && x <= max_jobs => x,
                _ => {
                    return Err(ctx
                        .err(
                            n,
                            format!(
                                "`max_parallel_jobs` must be from 1 to the budget's {max_jobs} trials"
                            ),
                        )
                        .help(format!("set `max_parallel_jobs` to at most {max_jobs}")));
                }
            }
        }
    };
    let seed = match f.get("seed") {
        Some(n) => ctx.uint(n, "seed")?.value,
        None => 0,
    };
    let window = match f.get("strategy_config") {
        None => None,
        Some(n) => {
            let sf = ctx.fields(n, "`strategy_config`", &["window"])?;
            match sf.get("window") {
                None => None,
                Some(w) => {
                    let v = ctx.uint(w, "window")?;
                    match u32::try_from(v.value) {
                        Ok(x) if (1..=MAX_TRIALS).contains(&x) => Some(x),
                        _ => {
                            return Err(ctx
                                .err(w, format!("`window` must be from 1 to {MAX_TRIALS}"))
                                .help(
                                    "e.g. `strategy_config: {window: 1}` for a sequential search",
                                ));
                        }
                    }
                }
            }
        }
    };
    let ensemble = match f.get("ensemble") {
        Some(n) => ctx.bool(n, "ensemble")?.value,
        None => true,
    };
    let first = &candidates[0];
    train.algorithm = Some(first.algorithm.clone());
    train.hyperparameters = first.fixed.clone();
    train.hyperparameters.extend(first.default.clone());
    Ok(TuneStep {
        train,
        ranges: BTreeMap::new(),
        objective,
        strategy: Strategy::Bayesian,
        max_jobs,
        max_parallel_jobs,
        seed,
        window,
        completion_criteria: Completion::default(),
        max_runtime: time,
        trials: Vec::new(),
        automl: Some(AutoMl {
            problem,
            candidates,
            test,
            trials: max_jobs,
            ensemble,
        }),
        warm_start: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_trains_first_then_the_leader_most() {
        assert_eq!(choose(2, 0, &[]), 0);
        assert_eq!(choose(2, 1, &[]), 1);
        // No result yet: turns.
        assert_eq!(choose(2, 2, &[]), 0);
        assert_eq!(choose(2, 3, &[]), 1);
        // Candidate 1 leads: three in four, the fourth to candidate 0.
        let seen = [(0, Some(0.5)), (1, Some(0.2))];
        let picks: Vec<usize> = (2..10).map(|j| choose(2, j, &seen)).collect();
        assert_eq!(picks, vec![1, 1, 1, 0, 1, 1, 1, 0]);
        // Failures do not lead; a tie goes to the earlier candidate.
        assert_eq!(choose(2, 2, &[(0, None), (1, Some(1.0))]), 1);
        assert_eq!(choose(2, 2, &[(0, Some(1.0)), (1, Some(1.0))]), 0);
        // Three candidates: the others take the fourth trial in turn.
        let seen = [(0, Some(0.1)), (1, Some(0.5)), (2, Some(0.9))];
        let fourth: Vec<usize> = [6, 10, 14].iter().map(|&j| choose(3, j, &seen)).collect();
        assert_eq!(fourth, vec![1, 2, 1]);
    }

    #[test]
    fn default_points_are_inside_their_spaces() {
        for problem in [
            Problem::BinaryClassification,
            Problem::MulticlassClassification,
            Problem::Regression,
        ] {
            for a in ALGORITHMS {
                let c = candidate(a, problem, "auc");
                let point = c.default_point();
                let text: BTreeMap<String, String> =
                    c.space().to_strings(&point).into_iter().collect();
                assert_eq!(text.len(), c.ranges.len(), "{a}");
                for (name, range) in &c.ranges {
                    let v: f64 = text[name].parse().unwrap();
                    let (lo, hi) = match range {
                        Range::Integer { min, max, .. } => (*min as f64, *max as f64),
                        Range::Continuous { min, max, .. } => (*min, *max),
                        Range::Categorical { .. } => continue,
                    };
                    assert!(lo <= v && v <= hi, "{a} {name} = {v}");
                    assert_eq!(text[name].parse::<f64>().ok(), c.default[name].parse().ok());
                }
            }
        }
    }
}
