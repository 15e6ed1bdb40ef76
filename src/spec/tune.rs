//! `kind: tune`: decoding, the checks made before anything runs, and the
//! expansion of a tune step into its trials.
//!
//! A tune step wraps a train step (`algorithm` or the user's own code, its
//! channels and fixed `hyperparameters`) with `ranges`, an `objective`, a
//! `strategy` and a budget. After validation, [`expand`] puts one train step
//! a trial before it, named `TUNE.N` (a name no user step can have), and
//! the tune step itself becomes the step that reads the trials' results and
//! writes `model`, `leaderboard`, `metrics` and `report`
//! (`schedule/tune.rs`).
//!
//! Which trial sees which results is fixed here, by the trial's index alone:
//! a `random` or `grid` trial's point is known now; a `bayesian` trial `j`
//! is proposed from the results of trials `0..j+1-window` (in index order),
//! so the trials and the leaderboard are the same whatever
//! `max_parallel_jobs` and whatever order trials finish in. Such a trial
//! waits (an order edge of the plan) for the trials it reads.

use std::collections::BTreeMap;

use builtins::tune::{Range, Scaling};
use serde::{Deserialize, Serialize};

use super::decode::{Ctx, DResult, Fields};
use super::model::{Pipeline, Step, StepKind, TrainStep};
use super::source::{Diagnostic, Spanned};
use super::yaml::{Node, NodeKind};

/// The keys of a tune step besides a train step's.
pub const KEYS: &[&str] = &[
    "ranges",
    "objective",
    "strategy",
    "strategy_config",
    "max_jobs",
    "max_parallel_jobs",
    "seed",
    "completion_criteria",
    "max_runtime",
    "warm_start",
];

/// The outputs of every tune step.
pub const OUTPUTS: &[&str] = &["model", "leaderboard", "metrics", "report"];

/// The file in the `leaderboard` output.
pub const LEADERBOARD_FILE: &str = "leaderboard.csv";

/// A tune step, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneStep {
    /// What each trial trains: the algorithm or code, channels and the fixed hyperparameters.
    pub train: TrainStep,
    /// Tuned hyperparameters, by name.
    pub ranges: BTreeMap<String, Range>,
    pub objective: Objective,
    pub strategy: Strategy,
    pub max_jobs: u32,
    pub max_parallel_jobs: u32,
    pub seed: u64,
    /// `strategy_config: {window: N}`: see [`TuneStep::window`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// When the search ends before `max_jobs` (SageMaker's `TuningJobCompletionCriteria`).
    #[serde(default, skip_serializing_if = "Completion::is_empty")]
    pub completion_criteria: Completion,
    /// No trial starts after this long (SageMaker's `MaxRuntimeInSeconds`):
    /// a search it cuts short is marked as not reproducible.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::spec::model::duration_opt"
    )]
    pub max_runtime: Option<std::time::Duration>,
    /// The trials' step names, in index order (set by [`expand`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<String>,
    /// An automl step's candidates (`kind: automl`, see `spec/automl.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automl: Option<super::automl::AutoMl>,
    /// `warm_start`: earlier searches whose trials the bayesian model starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<WarmStart>,
}

/// SageMaker's `WarmStartConfig`: the parent searches (tune steps of the
/// same pipeline, which a re-run finds cached) whose succeeded trials the
/// bayesian model reads before this search's own, in the parents' order
/// and each parent's trial order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmStart {
    pub parents: Vec<Spanned<String>>,
    #[serde(rename = "type")]
    pub kind: WarmStartType,
}

/// `identical_data_and_algorithm`: the parents trained the same thing on the
/// same data (only the ranges may differ); `transfer_learning`: anything
/// else; their trials are read as far as their points lie in this search's
/// ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmStartType {
    IdenticalDataAndAlgorithm,
    TransferLearning,
}

impl WarmStartType {
    pub const NAMES: &'static [&'static str] =
        &["identical_data_and_algorithm", "transfer_learning"];
}

/// Most parents a warm start may name (SageMaker's limit).
pub const MAX_PARENTS: usize = 5;

fn decode_warm_start(ctx: &Ctx, node: &Node, strategy: Strategy) -> DResult<WarmStart> {
    let w = ctx.fields(node, "`warm_start`", &["parents", "type"])?;
    if strategy != Strategy::Bayesian {
        return Err(ctx
            .err(node, "`warm_start` feeds the bayesian model; random and grid points do not depend on results")
            .help("use `strategy: bayesian`, or remove `warm_start`"));
    }
    let parents_node = w.req(ctx, "parents")?;
    let mut parents: Vec<Spanned<String>> = Vec::new();
    for item in ctx.seq(parents_node, "parents")? {
        let name = ctx.string(item, "a parent")?;
        if parents.iter().any(|p| p.value == name.value) {
            return Err(Diagnostic::at(
                &ctx.source,
                name.span,
                format!("`{}` is named twice", name.value),
            ));
        }
        parents.push(name);
    }
    if parents.is_empty() || parents.len() > MAX_PARENTS {
        return Err(ctx
            .err(
                parents_node,
                format!("`parents` names 1 to {MAX_PARENTS} tune steps"),
            )
            .help("e.g. `parents: [coarse]`, a tune step of this pipeline"));
    }
    let kind = match w.get("type") {
        None => WarmStartType::IdenticalDataAndAlgorithm,
        Some(n) => {
            let t = ctx.string(n, "type")?;
            match t.as_str() {
                "identical_data_and_algorithm" => WarmStartType::IdenticalDataAndAlgorithm,
                "transfer_learning" => WarmStartType::TransferLearning,
                other => {
                    return Err(ctx
                        .err(n, format!("unknown warm start type `{other}`"))
                        .suggest(other, WarmStartType::NAMES.iter().copied())
                        .help(format!("use one of: {}", WarmStartType::NAMES.join(", "))));
                }
            }
        }
    };
    Ok(WarmStart { parents, kind })
}

/// Checks every warm start against the steps it names, before anything
/// runs: each parent is another tune step of the pipeline with the same
/// objective; for `identical_data_and_algorithm`, one that trains the same
/// thing on the same channels with the same fixed hyperparameters, and
/// tunes every hyperparameter this one does.
pub fn check_warm_starts(ctx: &Ctx, p: &Pipeline) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for step in &p.steps {
        let StepKind::Tune(t) = &step.kind else {
            continue;
        };
        let Some(w) = &t.warm_start else {
            continue;
        };
        for parent in &w.parents {
            let at = |msg: String| Diagnostic::at(&ctx.source, parent.span, msg);
            let Some(ps) = p.steps.iter().find(|s| s.name() == parent.value) else {
                errors.push(
                    at(format!("no step `{}` to warm-start from", parent.value))
                        .suggest(
                            &parent.value,
                            p.steps
                                .iter()
                                .filter(|s| matches!(s.kind, StepKind::Tune(_)))
                                .map(|s| s.name()),
                        )
                        .help("name a `kind: tune` step of this pipeline"),
                );
                continue;
            };
            let StepKind::Tune(pt) = &ps.kind else {
                errors.push(
                    at(format!(
                        "`{}` is a {} step; a warm start reads a tune step's trials",
                        parent.value,
                        ps.kind.name()
                    ))
                    .help("name a `kind: tune` step"),
                );
                continue;
            };
            if parent.value == step.name() {
                errors.push(at("a search cannot warm-start from itself".into()));
                continue;
            }
            if pt.objective.metric != t.objective.metric
                || pt.objective.maximize != t.objective.maximize
            {
                errors.push(
                    at(format!(
                        "`{}` {} {}, this search {} {}: a warm start needs the same objective",
                        parent.value,
                        if pt.objective.maximize {
                            "maximizes"
                        } else {
                            "minimizes"
                        },
                        pt.objective.metric,
                        if t.objective.maximize {
                            "maximizes"
                        } else {
                            "minimizes"
                        },
                        t.objective.metric
                    ))
                    .help("give both the same `objective`"),
                );
                continue;
            }
            if w.kind == WarmStartType::IdenticalDataAndAlgorithm {
                let same = |a: &TrainStep, b: &TrainStep| {
                    a.algorithm == b.algorithm
                        && a.image == b.image
                        && a.run == b.run
                        && a.hyperparameters == b.hyperparameters
                        && serde_json::to_value(&a.channels).ok()
                            == serde_json::to_value(&b.channels).ok()
                };
                if !same(&pt.train, &t.train) {
                    errors.push(
                        at(format!("`{}` does not train the same algorithm, channels and fixed hyperparameters as this search", parent.value))
                            .help("use `type: transfer_learning`, which reads whatever of its trials lies in this search's ranges"),
                    );
                    continue;
                }
                if let Some(missing) = t.ranges.keys().find(|k| !pt.ranges.contains_key(*k)) {
                    errors.push(
                        at(format!(
                            "`{}` does not tune `{missing}`, which this search does",
                            parent.value
                        ))
                        .help("use `type: transfer_learning`, or tune only what the parent tuned"),
                    );
                }
            }
        }
    }
    errors
}

impl TuneStep {
    /// How many trials back a bayesian trial cannot see: trial `j` reads
    /// the results of trials `0..j+1-window`. `strategy_config.window`
    /// (default 4, so that up to 4 parallel jobs give the same trials as
    /// one), widened to `max_parallel_jobs` when that is more.
    pub fn window(&self) -> u32 {
        self.window
            .unwrap_or(DEFAULT_WINDOW)
            .max(self.max_parallel_jobs)
    }

    /// The search space in the compute crate's terms (parameters by name).
    pub fn space(&self) -> builtins::tune::Space {
        space_of(&self.ranges)
    }

    /// How many algorithms the search tries: an automl step's candidates, else one.
    pub fn candidate_count(&self) -> usize {
        self.automl.as_ref().map_or(1, |a| a.candidates.len())
    }

    /// The space of candidate `c` (a tune step has only candidate 0).
    pub fn candidate_space(&self, c: usize) -> builtins::tune::Space {
        match &self.automl {
            Some(a) => a.candidates[c].space(),
            None => self.space(),
        }
    }

    /// The algorithm candidate `c` trains, when it is a built-in.
    pub fn candidate_algorithm(&self, c: usize) -> Option<&str> {
        match &self.automl {
            Some(a) => Some(a.candidates[c].algorithm.as_str()),
            None => self.train.algorithm.as_deref(),
        }
    }

    /// The train step of a trial of candidate `c` at `point`.
    pub fn trial_train(&self, c: usize, point: &[builtins::tune::Value]) -> TrainStep {
        let mut train = self.train.clone();
        match &self.automl {
            Some(a) => {
                let cand = &a.candidates[c];
                train.algorithm = Some(cand.algorithm.clone());
                train.hyperparameters = cand.fixed.clone();
            }
            None => train.hyperparameters = fixed_hyperparameters(self),
        }
        train
            .hyperparameters
            .extend(self.candidate_space(c).to_strings(point));
        train
    }

    /// The seed candidate `c`'s points are drawn with.
    pub fn candidate_seed(&self, c: usize) -> u64 {
        match &self.automl {
            Some(_) => super::automl::Candidate::seed(self.seed, c),
            None => self.seed,
        }
    }
}

/// Criteria on the trials' results, in trial-index order, that end a
/// search early: the same trials end it whatever finished first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The search ends with the first trial whose objective is at least this
    /// good (SageMaker's `TargetObjectiveMetricValue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_objective_value: Option<f64>,
    /// ... or once this many trials in a row did not improve on the best
    /// (SageMaker's `MaxNumberOfTrainingJobsNotImproving`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_number_of_training_jobs_not_improving: Option<u32>,
}

impl Completion {
    pub fn is_empty(&self) -> bool {
        *self == Completion::default()
    }

    /// The index of the trial that ends the search, given the objectives of
    /// trials `0, 1, ...` in order (`None` in the list: failed); `None`: no
    /// trial of the list ends it.
    pub fn stop_after(&self, objectives: &[Option<f64>], maximize: bool) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let better = |a: f64, b: f64| if maximize { a > b } else { a < b };
        let mut best: Option<f64> = None;
        let mut stale = 0u32;
        for (k, v) in objectives.iter().enumerate() {
            match v {
                Some(v) if best.is_none_or(|b| better(*v, b)) => {
                    best = Some(*v);
                    stale = 0;
                }
                _ => stale += 1,
            }
            if let (Some(t), Some(v)) = (self.target_objective_value, v)
                && (*v == t || better(*v, t))
            {
                return Some(k);
            }
            if self
                .max_number_of_training_jobs_not_improving
                .is_some_and(|n| best.is_some() && stale >= n)
            {
                return Some(k);
            }
        }
        None
    }
}

/// The values at a range's ends (every value of a categorical), as text.
fn extremes(r: &Range) -> Vec<String> {
    match r {
        Range::Integer { min, max, .. } => vec![min.to_string(), max.to_string()],
        Range::Continuous { min, max, .. } => vec![format!("{min}"), format!("{max}")],
        Range::Categorical { values } => values.clone(),
    }
}

/// The names `scaling:` takes (SageMaker's, in snake case).
pub const SCALING_NAMES: &[&str] = &["auto", "linear", "logarithmic", "reverse_logarithmic"];

fn parse_scaling(s: &str) -> Option<Scaling> {
    Some(match s {
        "auto" => Scaling::Auto,
        "linear" => Scaling::Linear,
        "logarithmic" => Scaling::Logarithmic,
        "reverse_logarithmic" => Scaling::ReverseLogarithmic,
        _ => return None,
    })
}

/// What the search optimises: a metric the trials report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Objective {
    /// As written (`validation:auc`, SageMaker's name).
    pub metric: String,
    /// The name the trials' recorded metrics hold it under (`validation_auc`
    /// for a built-in; the `metric_definitions` name for the user's code).
    pub key: String,
    pub maximize: bool,
}

impl Objective {
    /// The value the search minimises, from a trial's metrics (`None`: the
    /// trial did not report it, or not as a finite number).
    pub fn loss(&self, metrics: &BTreeMap<String, serde_json::Value>) -> Option<f64> {
        let v = metrics.get(&self.key)?.as_f64().filter(|v| v.is_finite())?;
        Some(if self.maximize { -v } else { v })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Random,
    Grid,
    Bayesian,
}

impl Strategy {
    pub const NAMES: &'static [&'static str] = &["random", "grid", "bayesian"];
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::Grid => "grid",
            Strategy::Bayesian => "bayesian",
        }
    }
}

/// What makes a train step one trial of a tune step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    pub tune: String,
    pub index: u32,
    /// The trial's point is proposed from the results of trials `0..sees`
    /// when it starts (bayesian); otherwise its hyperparameters are set now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sees: Option<u32>,
    /// The tune steps its search warm-starts from: it is proposed from their
    /// trials too, so it waits for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
}

/// The name of trial `index` of tune step `tune`.
pub fn trial_name(tune: &str, index: u32) -> String {
    format!("{tune}.{index}")
}

/// Decodes a tune step's own keys; `train` is its train part, decoded as a train step.
pub fn decode(ctx: &Ctx, f: &Fields, train: TrainStep) -> DResult<TuneStep> {
    let ranges_node = f.req(ctx, "ranges")?;
    let mut ranges = BTreeMap::new();
    for (name, node) in ctx.entries(ranges_node, "ranges")? {
        if train.hyperparameters.contains_key(&name.value) {
            return Err(Diagnostic::at(
                &ctx.source,
                name.span,
                format!(
                    "`{}` is both a fixed hyperparameter and a tuned range",
                    name.value
                ),
            )
            .help("remove it from `hyperparameters` or from `ranges`"));
        }
        let range = decode_range(ctx, &name, node)?;
        ranges.insert(name.value.clone(), range);
    }
    if ranges.is_empty() {
        return Err(ctx
            .err(ranges_node, "`ranges` is empty: there is nothing to tune")
            .help(
                "add e.g. `eta: {type: continuous, min: 0.01, max: 0.3, scaling: logarithmic}`",
            ));
    }
    let objective = decode_objective(ctx, f, &train)?;
    let strategy = match f.get("strategy") {
        None => Strategy::Bayesian,
        Some(n) => {
            let s = ctx.string(n, "strategy")?;
            match s.as_str() {
                "random" => Strategy::Random,
                "grid" => Strategy::Grid,
                "bayesian" => Strategy::Bayesian,
                "hyperband" => {
                    return Err(ctx
                        .err(n, "the `hyperband` strategy is not implemented yet")
                        .help("use one of: random, grid, bayesian"));
                }
                other => {
                    return Err(ctx
                        .err(n, format!("unknown strategy `{other}`"))
                        .suggest(other, Strategy::NAMES.iter().copied())
                        .help(format!("use one of: {}", Strategy::NAMES.join(", "))));
                }
            }
        }
    };
    let space = space_of(&ranges);
    let grid_size = match strategy {
        Strategy::Grid => Some(space.grid_size().map_err(|e| {
            // At the first range a grid cannot enumerate.
            let span = ctx
                .entries(ranges_node, "ranges")
                .ok()
                .and_then(|es| {
                    es.into_iter()
                        .find(|(k, _)| {
                            matches!(ranges.get(&k.value), Some(Range::Continuous { .. }))
                        })
                        .map(|(k, _)| k.span)
                })
                .unwrap_or(ranges_node.span);
            Diagnostic::at(
                &ctx.source,
                span,
                format!("the grid strategy cannot search this space: {e}"),
            )
            .help("give every tuned parameter `type: integer` or `type: categorical`, or use `strategy: random` or `bayesian`")
        })?),
        _ => None,
    };
    let max_jobs = match (f.get("max_jobs"), grid_size) {
        (Some(n), _) => positive(ctx, n, "max_jobs")?,
        (None, Some(g)) => u32::try_from(g).unwrap_or(u32::MAX),
        (None, None) => {
            return Err(ctx
                .err(f.node, format!("{} needs `max_jobs`", f.what()))
                .help("add e.g. `max_jobs: 32`: how many trials to train"));
        }
    };
    let most = if strategy == Strategy::Bayesian {
        MAX_BAYESIAN_TRIALS
    } else {
        MAX_TRIALS
    };
    if max_jobs > most {
        let at = f.get("max_jobs").unwrap_or(ranges_node);
        return Err(ctx
            .err(
                at,
                format!(
                    "{max_jobs} trials is more than the {most} a {} search may have",
                    strategy.name()
                ),
            )
            .help(format!(
                "set `max_jobs` to at most {most}, or narrow the grid"
            )));
    }
    if let (Some(g), Some(n)) = (grid_size, f.get("max_jobs"))
        && u64::from(max_jobs) > g
    {
        return Err(ctx
            .err(
                n,
                format!("`max_jobs` is {max_jobs}, but the grid has only {g} points"),
            )
            .help(format!(
                "set `max_jobs` to at most {g}, or leave it out to search the whole grid"
            )));
    }
    let max_parallel_jobs = match f.get("max_parallel_jobs") {
        Some(n) => positive(ctx, n, "max_parallel_jobs")?,
        None => 1,
    };
    if max_parallel_jobs > max_jobs {
        return Err(ctx
            .err(
                f.get("max_parallel_jobs").unwrap_or(f.node),
                format!(
                    "`max_parallel_jobs` ({max_parallel_jobs}) is more than `max_jobs` ({max_jobs})"
                ),
            )
            .help(format!("set `max_parallel_jobs` to at most {max_jobs}")));
    }
    let seed = match f.get("seed") {
        Some(n) => ctx.uint(n, "seed")?.value,
        None => 0,
    };
    let window = match f.get("strategy_config") {
        None => None,
        Some(n) => {
            let sf = ctx.fields(n, "`strategy_config`", &["window"])?;
            if strategy != Strategy::Bayesian {
                return Err(ctx
                    .err(n, format!("`strategy_config` sets the bayesian strategy's window; this search is {}", strategy.name()))
                    .help("remove `strategy_config`, or use `strategy: bayesian`"));
            }
            sf.get("window")
                .map(|w| positive(ctx, w, "window"))
                .transpose()?
        }
    };
    let completion_criteria = match f.get("completion_criteria") {
        None => Completion::default(),
        Some(n) => {
            let cf = ctx.fields(
                n,
                "`completion_criteria`",
                &[
                    "target_objective_value",
                    "max_number_of_training_jobs_not_improving",
                ],
            )?;
            let target = cf
                .get("target_objective_value")
                .map(|v| ctx.float(v, "target_objective_value"))
                .transpose()?;
            if let Some(t) = &target
                && !t.value.is_finite()
            {
                return Err(Diagnostic::at(
                    &ctx.source,
                    t.span,
                    "`target_objective_value` must be a finite number",
                )
                .help("e.g. `target_objective_value: 0.95`"));
            }
            let stale = cf
                .get("max_number_of_training_jobs_not_improving")
                .map(|v| positive(ctx, v, "max_number_of_training_jobs_not_improving"))
                .transpose()?;
            Completion {
                target_objective_value: target.map(|t| t.value),
                max_number_of_training_jobs_not_improving: stale,
            }
        }
    };
    let max_runtime = f
        .get("max_runtime")
        .map(|n| super::load::decode_duration(ctx, n, "max_runtime"))
        .transpose()?;
    let warm_start = f
        .get("warm_start")
        .map(|n| decode_warm_start(ctx, n, strategy))
        .transpose()?;
    Ok(TuneStep {
        train,
        ranges,
        objective,
        strategy,
        max_jobs,
        max_parallel_jobs,
        seed,
        window,
        completion_criteria,
        max_runtime,
        trials: Vec::new(),
        automl: None,
        warm_start,
    })
}

fn space_of(ranges: &BTreeMap<String, Range>) -> builtins::tune::Space {
    builtins::tune::Space {
        params: ranges.iter().map(|(k, r)| (k.clone(), r.clone())).collect(),
    }
}

/// The default window of a bayesian search (see [`TuneStep::window`]).
pub const DEFAULT_WINDOW: u32 = 4;

/// The most trials one tune step may have (each is a step of the run).
pub const MAX_TRIALS: u32 = 1_000;
/// The most a bayesian search may have: each trial waits for the trials it
/// reads, an edge of the plan each, and the model refits on all of them.
pub const MAX_BAYESIAN_TRIALS: u32 = 500;

fn positive(ctx: &Ctx, n: &Node, field: &str) -> DResult<u32> {
    let v = ctx.uint(n, field)?;
    match u32::try_from(v.value) {
        Ok(x) if x > 0 => Ok(x),
        _ => Err(ctx
            .err(
                n,
                format!("`{field}` must be a whole number from 1 to {MAX_TRIALS}"),
            )
            .help(format!("for example `{field}: 4`"))),
    }
}

fn decode_range(ctx: &Ctx, name: &Spanned<String>, node: &Node) -> DResult<Range> {
    let what = format!("the range of `{}`", name.value);
    let f = ctx.fields(node, &what, &["type", "min", "max", "scaling", "values"])?;
    let ty_node = f.req(ctx, "type")?;
    let ty = ctx.string(ty_node, "type")?;
    let scaling = match f.get("scaling") {
        None => Scaling::Auto,
        Some(n) => {
            let s = ctx.string(n, "scaling")?;
            parse_scaling(&s).ok_or_else(|| {
                ctx.err(n, format!("unknown scaling `{}`", s.value))
                    .suggest(&s.value, SCALING_NAMES.iter().copied())
                    .help(format!("use one of: {}", SCALING_NAMES.join(", ")))
            })?
        }
    };
    let range = match ty.as_str() {
        "integer" | "continuous" => {
            if let Some(v) = f.get("values") {
                return Err(ctx
                    .err(
                        v,
                        format!(
                            "`values` is for `type: categorical`; {what} is {}",
                            ty.value
                        ),
                    )
                    .help("give `min` and `max`"));
            }
            let min_n = f.req(ctx, "min")?;
            let max_n = f.req(ctx, "max")?;
            if ty.as_str() == "integer" {
                let min = ctx.int(min_n, "min")?;
                let max = ctx.int(max_n, "max")?;
                Range::Integer {
                    min: min.value,
                    max: max.value,
                    scaling,
                }
            } else {
                let min = ctx.float(min_n, "min")?;
                let max = ctx.float(max_n, "max")?;
                Range::Continuous {
                    min: min.value,
                    max: max.value,
                    scaling,
                }
            }
        }
        "categorical" => {
            for k in ["min", "max", "scaling"] {
                if let Some(n) = f.get(k) {
                    return Err(ctx
                        .err(
                            n,
                            format!(
                                "`{k}` is for integer and continuous ranges; {what} is categorical"
                            ),
                        )
                        .help("list the choices in `values`"));
                }
            }
            let values_n = f.req(ctx, "values")?;
            let values = ctx
                .seq(values_n, "values")?
                .iter()
                .map(|n| ctx.scalar_string(n, "values").map(|s| s.value))
                .collect::<DResult<Vec<_>>>()?;
            Range::Categorical { values }
        }
        other => {
            return Err(ctx
                .err(ty_node, format!("unknown range type `{other}`"))
                .suggest(other, ["integer", "continuous", "categorical"])
                .help("use one of: integer, continuous, categorical"));
        }
    };
    range.check().map_err(|e| {
        let at = match &range {
            Range::Categorical { .. } => f.get("values").unwrap_or(node),
            _ => f
                .get("min")
                .filter(|_| e.contains("min") || e.contains('0'))
                .unwrap_or(node),
        };
        ctx.err(at, format!("{what} cannot be searched: {e}"))
            .help(range_help(&range))
    })?;
    Ok(range)
}

fn range_help(r: &Range) -> String {
    match r {
        Range::Categorical { .. } => "list each choice once, at least one".into(),
        _ => "make `min` at most `max`; logarithmic scaling needs `min` above 0, reverse_logarithmic a range inside [0, 1)".into(),
    }
}

/// The recorded metric names a built-in's trials report for `metric`
/// (`validation:auc` -> `validation_auc`), and whether the algorithm
/// reports it given the fixed hyperparameters.
fn decode_objective(ctx: &Ctx, f: &Fields, train: &TrainStep) -> DResult<Objective> {
    let node = f.req(ctx, "objective")?;
    let of = ctx.fields(node, "`objective`", &["metric", "type"])?;
    let metric_n = of.req(ctx, "metric")?;
    let metric = ctx.string(metric_n, "metric")?;
    let maximize = match of.get("type") {
        None => {
            return Err(ctx
                .err(node, "`objective` needs `type`")
                .help("add `type: maximize` or `type: minimize`"));
        }
        Some(n) => {
            let t = ctx.string(n, "type")?;
            match t.as_str() {
                "maximize" => true,
                "minimize" => false,
                other => {
                    return Err(ctx
                        .err(n, format!("unknown objective type `{other}`"))
                        .suggest(other, ["maximize", "minimize"])
                        .help("use `maximize` or `minimize`"));
                }
            }
        }
    };
    let key = match &train.algorithm {
        Some(algorithm) => builtin_metric_key(algorithm, &metric.value, &train.hyperparameters)
            .map_err(|(e, help)| ctx.err(metric_n, e).help(help))?,
        None => {
            let names: Vec<&str> = train
                .metric_definitions
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            if !names.contains(&metric.as_str()) {
                return Err(ctx
                    .err(metric_n, format!("the objective `{}` is not a metric the training code reports", metric.value))
                    .suggest(&metric.value, names.iter().copied())
                    .help(format!("add `{}` to `metric_definitions` (a name and a regex that finds its value in the log)", metric.value)));
            }
            metric.value.clone()
        }
    };
    Ok(Objective {
        metric: metric.value,
        key,
        maximize,
    })
}

/// Where a built-in records `metric` (`validation:auc` -> `validation_auc`),
/// or why it does not report it.
fn builtin_metric_key(
    algorithm: &str,
    metric: &str,
    fixed: &BTreeMap<String, String>,
) -> Result<String, (String, String)> {
    let Some((channel, name)) = metric.split_once(':') else {
        return Err((
            format!("the objective `{metric}` is not `CHANNEL:METRIC`"),
            "write e.g. `validation:auc` (the metric on the validation channel)".into(),
        ));
    };
    if channel != "validation" && channel != "train" {
        return Err((
            format!(
                "the objective `{metric}` reads channel `{channel}`; trials report `train:` and `validation:` metrics"
            ),
            format!("write `validation:{name}`"),
        ));
    }
    match algorithm {
        "gbdt" => {
            if let Some(set) = fixed.get("eval_metric")
                && set != name
            {
                return Err((
                    format!(
                        "the objective `{metric}` is not what the trials compute: `eval_metric` is fixed to `{set}`"
                    ),
                    format!(
                        "remove `eval_metric` (the trials then compute `{name}`) or set it to `{name}`"
                    ),
                ));
            }
            let mut hp = fixed.clone();
            hp.insert("eval_metric".into(), name.into());
            crate::exec::builtin::check_hyperparameters(algorithm, &hp).map_err(|_| {
                (
                    format!("gbdt does not compute the metric `{name}`"),
                    "use a gbdt `eval_metric`: e.g. auc, logloss, error, rmse, mae, mlogloss, merror".into(),
                )
            })?;
        }
        "linear-learner" => {
            let predictor = fixed.get("predictor_type").map_or("", String::as_str);
            let known: &[&str] = match predictor {
                "regressor" => &["rmse", "mae"],
                "multiclass_classifier" => &["logloss", "accuracy", "mlogloss", "merror"],
                _ => &["logloss", "accuracy", "auc", "error"],
            };
            if channel != "validation" || !known.contains(&name) {
                return Err((
                    format!("linear-learner does not report `{metric}`"),
                    format!(
                        "with predictor_type `{}` it reports {}",
                        if predictor.is_empty() {
                            "binary_classifier"
                        } else {
                            predictor
                        },
                        known
                            .iter()
                            .map(|k| format!("`validation:{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        other => {
            return Err((
                format!("{other} reports no validation metric a search could optimise"),
                "tune gbdt or linear-learner, or your own code with `metric_definitions`".into(),
            ));
        }
    }
    Ok(format!("{channel}_{name}"))
}

/// The fixed hyperparameters every trial of `t` trains with: the written
/// ones, and for gbdt the objective's metric as `eval_metric`.
pub fn fixed_hyperparameters(t: &TuneStep) -> BTreeMap<String, String> {
    let mut hp = t.train.hyperparameters.clone();
    if t.train.algorithm.as_deref() == Some("gbdt")
        && let Some((_, name)) = t.objective.metric.split_once(':')
    {
        hp.entry("eval_metric".into())
            .or_insert_with(|| name.into());
    }
    hp
}

/// Checks, before anything runs, that a built-in takes every tuned
/// hyperparameter at the ends of its range.
pub fn check(ctx: &Ctx, step: &Step, node: &Node) -> Vec<Diagnostic> {
    let StepKind::Tune(t) = &step.kind else {
        return vec![];
    };
    let Some(algorithm) = &t.train.algorithm else {
        return vec![];
    };
    let ranges_node = match &node.kind {
        NodeKind::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("ranges"))
            .map(|(_, v)| v),
        _ => None,
    };
    let entry = |name: &str| -> Option<&Node> {
        match &ranges_node?.kind {
            NodeKind::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(name))
                .map(|(k, _)| k),
            _ => None,
        }
    };
    let base: BTreeMap<String, String> = {
        let mut hp = fixed_hyperparameters(t);
        for (k, r) in &t.ranges {
            if let Some(v) = extremes(r).into_iter().next() {
                hp.insert(k.clone(), v);
            }
        }
        hp
    };
    let mut errors = Vec::new();
    let table = builtins::algorithm::hyperparameters(algorithm);
    for (name, range) in &t.ranges {
        let at = entry(name).unwrap_or(node);
        if let Some(table) = &table
            && !table.implemented.contains(&name.as_str())
        {
            let d = ctx
                .err(
                    at,
                    format!(
                        "{algorithm} does not take a hyperparameter `{name}` a search could tune"
                    ),
                )
                .suggest(name, table.implemented.iter().copied())
                .help(format!(
                    "tune one of {algorithm}'s hyperparameters (docs/models/)"
                ));
            errors.push(d);
            continue;
        }
        for v in extremes(range) {
            let mut hp = base.clone();
            hp.insert(name.clone(), v.clone());
            if let Err(e) = crate::exec::builtin::check_hyperparameters(algorithm, &hp) {
                let msg = e.to_string();
                let msg = msg.split("\n  help:").next().unwrap_or(&msg).to_string();
                errors.push(
                    ctx.err(
                        at,
                        format!(
                            "the range of `{name}` includes {v}, which {algorithm} refuses: {msg}"
                        ),
                    )
                    .help("narrow the range to values the algorithm takes"),
                );
                break;
            }
        }
    }
    errors
}

/// Puts each tune (and automl) step's trials before it (see the module's documentation).
pub fn expand(p: &mut Pipeline) {
    if !p.steps.iter().any(|s| s.kind.search().is_some()) {
        return;
    }
    let steps = std::mem::take(&mut p.steps);
    for mut step in steps {
        let Some(t) = step.kind.search() else {
            p.steps.push(step);
            continue;
        };
        let t = t.clone();
        let startup = builtins::tune::TpeSettings::default().startup as u32;
        let window = t.window();
        let mut names = Vec::with_capacity(t.max_jobs as usize);
        let parents: Vec<String> = t
            .warm_start
            .as_ref()
            .map(|w| w.parents.iter().map(|p| p.value.clone()).collect())
            .unwrap_or_default();
        // With a warm start even the first trials are proposed from results.
        let startup = if parents.is_empty() { startup } else { 0 };
        for j in 0..t.max_jobs {
            let name = trial_name(step.name(), j);
            let sees = (j + 1).saturating_sub(window);
            let (candidate, point, sees) = match (&t.automl, t.strategy) {
                // Each candidate's default first; the rest are chosen as they start.
                (Some(a), _) if (j as usize) < a.candidates.len() => {
                    let c = j as usize;
                    (c, Some(a.candidates[c].default_point()), None)
                }
                (Some(_), _) => (0, None, Some(sees)),
                (None, Strategy::Grid) => (
                    0,
                    Some(builtins::tune::grid(&t.space(), u64::from(j))),
                    None,
                ),
                (None, Strategy::Random) => (
                    0,
                    Some(builtins::tune::random(&t.space(), t.seed, u64::from(j))),
                    None,
                ),
                (None, Strategy::Bayesian) if sees < startup => (
                    0,
                    Some(builtins::tune::random(&t.space(), t.seed, u64::from(j))),
                    None,
                ),
                (None, Strategy::Bayesian) => (0, None, Some(sees)),
            };
            let train = match &point {
                Some(point) => t.trial_train(candidate, point),
                // Until its point is proposed, the trial is its first candidate with
                // the fixed hyperparameters.
                None => t.trial_train(0, &[]),
            };
            p.steps.push(Step {
                name: Spanned {
                    value: name.clone(),
                    span: step.name.span,
                },
                kind: StepKind::Train(train),
                trial: Some(Trial {
                    tune: step.name().to_string(),
                    index: j,
                    sees,
                    parents: if sees.is_some() {
                        parents.clone()
                    } else {
                        vec![]
                    },
                }),
                ..step.clone()
            });
            names.push(name);
        }
        if let StepKind::Tune(t) | StepKind::Automl(t) = &mut step.kind {
            t.trials = names;
        }
        p.steps.push(step);
    }
    p.step_names = Default::default();
}

/// The steps `step` waits for as part of a search: a tune step its trials,
/// a bayesian trial the trials whose results it is proposed from.
pub fn waits_for(step: &Step) -> Vec<String> {
    match (step.kind.search(), &step.trial) {
        (Some(t), _) => {
            let mut v = t.trials.clone();
            if let Some(w) = &t.warm_start {
                v.extend(w.parents.iter().map(|p| p.value.clone()));
            }
            v
        }
        (
            _,
            Some(Trial {
                tune,
                sees: Some(n),
                parents,
                ..
            }),
        ) => (0..*n)
            .map(|j| trial_name(tune, j))
            .chain(parents.iter().cloned())
            .collect(),
        _ => vec![],
    }
}

/// Why a step of a search cannot say before the run whether it is cached:
/// its key holds what earlier trials give.
pub fn decided_when_it_runs(step: &Step) -> Option<String> {
    match (step.kind.search(), &step.trial) {
        (Some(t), _) => Some(format!(
            "ranks its {} trials when they have ended (cached if they all are)",
            t.max_jobs
        )),
        (
            _,
            Some(Trial {
                sees: Some(0),
                parents,
                ..
            }),
        ) if !parents.is_empty() => Some(format!(
            "its point is proposed when it starts, from the trials of {}",
            parents.join(", ")
        )),
        (_, Some(Trial { sees: Some(0), .. })) => {
            Some("its algorithm and point are chosen when it starts".to_string())
        }
        (_, Some(Trial { sees: Some(n), .. })) => Some(format!(
            "its point is proposed when it starts, from the results of trials 0 to {}",
            n - 1
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_is_read_in_trial_order() {
        let target = Completion {
            target_objective_value: Some(0.9),
            max_number_of_training_jobs_not_improving: None,
        };
        let objs = [Some(0.5), None, Some(0.95), Some(0.99)];
        assert_eq!(target.stop_after(&objs, true), Some(2));
        // Minimising, the target is met from below.
        assert_eq!(target.stop_after(&[Some(1.0), Some(0.9)], false), Some(1));
        assert_eq!(target.stop_after(&objs[..2], true), None);
        let stale = Completion {
            target_objective_value: None,
            max_number_of_training_jobs_not_improving: Some(2),
        };
        // 0.5 best, then a failure and a worse one: two without improvement.
        assert_eq!(
            stale.stop_after(&[Some(0.5), None, Some(0.4), Some(0.9)], true),
            Some(2)
        );
        // Failures before any result do not count.
        assert_eq!(stale.stop_after(&[None, None, Some(0.1)], true), None);
        assert_eq!(Completion::default().stop_after(&objs, true), None);
    }

    #[test]
    fn trial_names_cannot_be_step_names() {
        let name = trial_name("tune", 3);
        assert_eq!(name, "tune.3");
        assert!(!crate::spec::model::is_name(&name));
    }
}
