//! The hyperparameters of `algorithm: gbdt`, checked before any data is read.
//!
//! Names and defaults follow SageMaker's XGBoost container, so a pipeline
//! written for it keeps working; values arrive as strings and are parsed and
//! range-checked here, so a typo fails at validation time, not mid-training.

use crate::error::BuiltinError;
use crate::hyperparams::{Hyperparams, Irrelevant, Unsupported};

use super::model::GbdtModel;

/// The loss being minimised, and how margins become predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    SquaredError,
    /// Regression on labels in `[0, 1]` with the logistic loss.
    RegLogistic,
    BinaryLogistic,
    MultiSoftprob,
    MultiSoftmax,
    CountPoisson,
    /// Gamma regression with a log link (positive labels).
    Gamma,
    /// Tweedie regression with a log link, variance power `tweedie_variance_power`.
    Tweedie,
    /// The pseudo-Huber loss with slope `huber_slope`.
    PseudoHuber,
    /// Squared error of `ln(1 + x)` (labels above -1).
    SquaredLogError,
}

impl Objective {
    pub const NAMES: [&'static str; 11] = [
        "reg:squarederror",
        "reg:linear",
        "reg:logistic",
        "binary:logistic",
        "multi:softprob",
        "multi:softmax",
        "count:poisson",
        "reg:gamma",
        "reg:tweedie",
        "reg:pseudohubererror",
        "reg:squaredlogerror",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Objective::SquaredError => "reg:squarederror",
            Objective::RegLogistic => "reg:logistic",
            Objective::BinaryLogistic => "binary:logistic",
            Objective::MultiSoftprob => "multi:softprob",
            Objective::MultiSoftmax => "multi:softmax",
            Objective::CountPoisson => "count:poisson",
            Objective::Gamma => "reg:gamma",
            Objective::Tweedie => "reg:tweedie",
            Objective::PseudoHuber => "reg:pseudohubererror",
            Objective::SquaredLogError => "reg:squaredlogerror",
        }
    }

    pub fn from_name(s: &str) -> Option<Objective> {
        Some(match s {
            "reg:squarederror" | "reg:linear" => Objective::SquaredError,
            "reg:logistic" => Objective::RegLogistic,
            "binary:logistic" => Objective::BinaryLogistic,
            "multi:softprob" => Objective::MultiSoftprob,
            "multi:softmax" => Objective::MultiSoftmax,
            "count:poisson" => Objective::CountPoisson,
            "reg:gamma" => Objective::Gamma,
            "reg:tweedie" => Objective::Tweedie,
            "reg:pseudohubererror" => Objective::PseudoHuber,
            "reg:squaredlogerror" => Objective::SquaredLogError,
            _ => return None,
        })
    }

    pub fn is_multiclass(self) -> bool {
        matches!(self, Objective::MultiSoftprob | Objective::MultiSoftmax)
    }

    /// The metric XGBoost (3.x) reports when none is asked for; `param`
    /// is the objective's own (Tweedie's power, the pseudo-Huber slope).
    pub fn default_metric(self, param: f64) -> EvalMetric {
        match self {
            Objective::SquaredError => EvalMetric::Rmse,
            Objective::RegLogistic => EvalMetric::Rmse,
            Objective::BinaryLogistic => EvalMetric::Logloss,
            Objective::MultiSoftprob | Objective::MultiSoftmax => EvalMetric::Mlogloss,
            Objective::CountPoisson => EvalMetric::PoissonNloglik,
            Objective::Gamma => EvalMetric::GammaDeviance,
            Objective::Tweedie => EvalMetric::TweedieNloglik(param),
            Objective::PseudoHuber => EvalMetric::Mphe(param),
            Objective::SquaredLogError => EvalMetric::Rmsle,
        }
    }

    /// Whether predictions are the exponential of the margin (a log link).
    pub fn log_link(self) -> bool {
        matches!(
            self,
            Objective::CountPoisson | Objective::Gamma | Objective::Tweedie
        )
    }
}

/// How a validation set is scored (for early stopping and the run's record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalMetric {
    Rmse,
    Mae,
    Logloss,
    Auc,
    Error,
    Mlogloss,
    Merror,
    /// The Poisson negative log-likelihood, `count:poisson`'s default.
    PoissonNloglik,
    /// Root mean squared error of `ln(1 + x)`.
    Rmsle,
    /// Mean absolute percentage error (a label of 0 makes it infinite, as in XGBoost).
    Mape,
    /// The gamma negative log-likelihood (shape 1).
    GammaNloglik,
    /// Twice the gamma deviance, `reg:gamma`'s default.
    GammaDeviance,
    /// Mean pseudo-Huber error with this slope (`huber_slope`).
    Mphe(f64),
    /// The Tweedie negative log-likelihood for this variance power (`tweedie-nloglik@RHO`).
    TweedieNloglik(f64),
    /// The binary error rate with this threshold on the probability (`error@T`).
    ErrorAt(f64),
}

impl EvalMetric {
    /// The names `eval_metric` takes, besides `tweedie-nloglik@RHO` and `error@T`.
    pub const NAMES: [&'static str; 13] = [
        "rmse",
        "mae",
        "logloss",
        "auc",
        "error",
        "mlogloss",
        "merror",
        "poisson-nloglik",
        "rmsle",
        "mape",
        "gamma-nloglik",
        "gamma-deviance",
        "mphe",
    ];

    /// The metric's name, as XGBoost prints it in its logs.
    pub fn name(self) -> String {
        match self {
            EvalMetric::Rmse => "rmse".into(),
            EvalMetric::Mae => "mae".into(),
            EvalMetric::Logloss => "logloss".into(),
            EvalMetric::Auc => "auc".into(),
            EvalMetric::Error => "error".into(),
            EvalMetric::Mlogloss => "mlogloss".into(),
            EvalMetric::Merror => "merror".into(),
            EvalMetric::PoissonNloglik => "poisson-nloglik".into(),
            EvalMetric::Rmsle => "rmsle".into(),
            EvalMetric::Mape => "mape".into(),
            EvalMetric::GammaNloglik => "gamma-nloglik".into(),
            EvalMetric::GammaDeviance => "gamma-deviance".into(),
            EvalMetric::Mphe(_) => "mphe".into(),
            EvalMetric::TweedieNloglik(rho) => format!("tweedie-nloglik@{rho}"),
            EvalMetric::ErrorAt(t) => format!("error@{t}"),
        }
    }

    /// The metric `s` names; `param` is the objective's own parameter, which
    /// `mphe` reads (the pseudo-Huber slope).
    fn from_name(s: &str, param: f64) -> Option<EvalMetric> {
        Some(match s {
            "rmse" => EvalMetric::Rmse,
            "mae" => EvalMetric::Mae,
            "logloss" => EvalMetric::Logloss,
            "auc" => EvalMetric::Auc,
            "error" => EvalMetric::Error,
            "mlogloss" => EvalMetric::Mlogloss,
            "merror" => EvalMetric::Merror,
            "poisson-nloglik" => EvalMetric::PoissonNloglik,
            "rmsle" => EvalMetric::Rmsle,
            "mape" => EvalMetric::Mape,
            "gamma-nloglik" => EvalMetric::GammaNloglik,
            "gamma-deviance" => EvalMetric::GammaDeviance,
            "mphe" => EvalMetric::Mphe(param),
            _ => return None,
        })
    }

    /// Whether a larger value is better (only AUC).
    pub fn maximize(self) -> bool {
        self == EvalMetric::Auc
    }

    /// Whether the metric reads class probabilities of several classes.
    fn needs_multiclass(self) -> bool {
        matches!(self, EvalMetric::Mlogloss | EvalMetric::Merror)
    }

    /// Whether the metric reads one probability a row.
    fn needs_binary(self) -> bool {
        matches!(
            self,
            EvalMetric::Logloss | EvalMetric::Auc | EvalMetric::Error | EvalMetric::ErrorAt(_)
        )
    }
}

/// How a tree grows (`grow_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowPolicy {
    /// Level by level: every node of a level is split before the next level.
    Depthwise,
    /// Best first: the open node whose split lowers the loss most is split
    /// next, until `max_leaves` leaves (or no split gains).
    Lossguide,
}

/// Checked hyperparameters of a boosting run.
#[derive(Debug, Clone)]
pub struct Params {
    pub num_round: usize,
    pub eta: f64,
    pub max_depth: usize,
    /// 0 means no limit.
    pub max_leaves: usize,
    pub grow_policy: GrowPolicy,
    pub min_child_weight: f64,
    /// Cap on a leaf's output before `eta` (0: none).
    pub max_delta_step: f64,
    pub lambda: f64,
    pub alpha: f64,
    pub gamma: f64,
    pub subsample: f64,
    pub colsample_bytree: f64,
    /// Fraction of the tree's features each depth may use.
    pub colsample_bylevel: f64,
    /// Fraction of the depth's features each node may use.
    pub colsample_bynode: f64,
    pub max_bin: usize,
    pub scale_pos_weight: f64,
    pub seed: u64,
    pub objective: Objective,
    /// `reg:tweedie`'s variance power (1 < p < 2).
    pub tweedie_variance_power: f64,
    /// `reg:pseudohubererror`'s slope (above 0).
    pub huber_slope: f64,
    pub eval_metric: EvalMetric,
    /// Stop when the validation metric has not improved for this many rounds.
    pub early_stopping_rounds: Option<usize>,
    /// Given classes for a multiclass objective; inferred from the labels when `None`.
    pub num_class: Option<usize>,
    /// Initial prediction (in prediction space, as XGBoost's); estimated from the labels when `None`.
    pub base_score: Option<f64>,
    /// Rounds between checkpoints when the context has a checkpoint directory.
    pub checkpoint_frequency: usize,
    /// A model to continue boosting from (incremental training).
    pub initial_model: Option<Box<GbdtModel>>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            num_round: 100,
            eta: 0.3,
            max_depth: 6,
            max_leaves: 0,
            grow_policy: GrowPolicy::Depthwise,
            min_child_weight: 1.0,
            max_delta_step: 0.0,
            lambda: 1.0,
            alpha: 0.0,
            gamma: 0.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            colsample_bylevel: 1.0,
            colsample_bynode: 1.0,
            max_bin: 256,
            scale_pos_weight: 1.0,
            seed: 0,
            objective: Objective::SquaredError,
            tweedie_variance_power: 1.5,
            huber_slope: 1.0,
            eval_metric: EvalMetric::Rmse,
            early_stopping_rounds: None,
            num_class: None,
            base_score: None,
            checkpoint_frequency: 10,
            initial_model: None,
        }
    }
}

/// Every hyperparameter name that takes effect (see docs/models/gbdt.md).
pub const IMPLEMENTED: &[&str] = &[
    "num_round",
    "eta",
    "learning_rate",
    "max_depth",
    "max_leaves",
    "grow_policy",
    "min_child_weight",
    "max_delta_step",
    "lambda",
    "reg_lambda",
    "alpha",
    "reg_alpha",
    "gamma",
    "min_split_loss",
    "subsample",
    "colsample_bytree",
    "colsample_bylevel",
    "colsample_bynode",
    "max_bin",
    "scale_pos_weight",
    "seed",
    "objective",
    "tweedie_variance_power",
    "huber_slope",
    "eval_metric",
    "early_stopping_rounds",
    "num_class",
    "base_score",
    "checkpoint_frequency",
    "booster",
    "tree_method",
];

/// Names SageMaker's container accepts that cannot change a model here:
/// accepted with a warning.
pub const IRRELEVANT: &[Irrelevant] = &[
    (
        "nthread",
        "the step's threads come from its `resources.cpus`, and trees do not depend on them",
    ),
    ("verbosity", "progress always goes to the step's log"),
    ("silent", "progress always goes to the step's log"),
];

/// SageMaker XGBoost names with no implementation here: rejected, so a
/// setting never silently does nothing.
pub const UNSUPPORTED: &[Unsupported] = &[
    (
        "sampling_method",
        "rows are sampled uniformly only",
        "remove it; `subsample` samples rows uniformly",
    ),
    (
        "num_parallel_tree",
        "one tree is grown per round and output",
        "remove it (random forests are not offered)",
    ),
    (
        "monotone_constraints",
        "splits are not constrained",
        "remove it",
    ),
    (
        "interaction_constraints",
        "splits are not constrained",
        "remove it",
    ),
    ("csv_weights", "rows cannot carry weights", "remove it"),
    (
        "process_type",
        "only new trees are grown",
        "remove it; continue training with a `model` channel instead",
    ),
    (
        "updater",
        "the updater is fixed (histogram growing)",
        "remove it",
    ),
    (
        "predictor",
        "prediction always runs on the CPU",
        "remove it",
    ),
    ("sketch_eps", "bins come from `max_bin`", "use `max_bin`"),
];

/// `booster` values: only trees.
const BOOSTERS: &[&str] = &["gbtree"];
/// `tree_method` values: the histogram method is the only one here, and
/// `auto` means it.
const TREE_METHODS: &[&str] = &["hist", "auto"];

impl Params {
    /// Parses and checks SageMaker XGBoost hyperparameters; fails on unknown names.
    pub fn from_hyperparameters(hp: &Hyperparams) -> Result<Params, BuiltinError> {
        let d = Params::default();
        hp.reject_unsupported(UNSUPPORTED)?;
        if let Some(b) = hp.get_str("booster")
            && !BOOSTERS.contains(&b)
        {
            let hint = match b {
                "gblinear" => {
                    "use `algorithm: linear-learner` for a linear model, or `booster: gbtree`"
                }
                _ => "use `booster: gbtree` (the only booster offered) or leave it out",
            };
            return Err(BuiltinError::hyperparameter(
                "booster",
                Some(b),
                "is not supported: only `gbtree` (trees) is implemented",
            )
            .with_hint(hint));
        }
        if let Some(t) = hp.get_str("tree_method")
            && !TREE_METHODS.contains(&t)
        {
            return Err(BuiltinError::hyperparameter(
                "tree_method",
                Some(t),
                "is not supported: trees are always grown from feature histograms",
            )
            .with_hint(
                "use `tree_method: hist` (or `auto`, which means it here), or leave it out",
            ));
        }
        let grow_policy = match hp
            .choice("grow_policy", "depthwise", &["depthwise", "lossguide"])?
            .as_str()
        {
            "lossguide" => GrowPolicy::Lossguide,
            _ => GrowPolicy::Depthwise,
        };
        let objective_name = hp.choice("objective", "reg:squarederror", &Objective::NAMES)?;
        let objective =
            Objective::from_name(&objective_name).expect("choice only returns known names");
        let tweedie_variance_power: f64 =
            hp.get("tweedie_variance_power", d.tweedie_variance_power)?;
        if !(tweedie_variance_power > 1.0 && tweedie_variance_power < 2.0) {
            return Err(BuiltinError::hyperparameter(
                "tweedie_variance_power",
                hp.get_str("tweedie_variance_power"),
                "must lie strictly between 1 and 2",
            )
            .with_hint(
                "1 is Poisson (count:poisson), 2 is gamma (reg:gamma); 1.5 is the default",
            ));
        }
        hp.only_with(
            "tweedie_variance_power",
            objective == Objective::Tweedie,
            "it is reg:tweedie's variance power",
        )?;
        let huber_slope: f64 = hp.get("huber_slope", d.huber_slope)?;
        if !(huber_slope > 0.0 && huber_slope.is_finite()) {
            return Err(BuiltinError::hyperparameter(
                "huber_slope",
                hp.get_str("huber_slope"),
                "must be above 0",
            ));
        }
        hp.only_with(
            "huber_slope",
            objective == Objective::PseudoHuber,
            "it is reg:pseudohubererror's slope",
        )?;
        let param = match objective {
            Objective::Tweedie => tweedie_variance_power,
            _ => huber_slope,
        };
        let metric = match hp.get_str("eval_metric") {
            None => objective.default_metric(param),
            Some(m) if m.starts_with("error@") => match m["error@".len()..].parse::<f64>() {
                Ok(t) if (0.0..=1.0).contains(&t) => EvalMetric::ErrorAt(t),
                _ => {
                    return Err(BuiltinError::hyperparameter(
                        "eval_metric",
                        Some(m),
                        "needs a threshold from 0 to 1 after the `@`",
                    )
                    .with_hint("for example `error@0.7`; `error` means `error@0.5`"));
                }
            },
            Some(m) => match m.strip_prefix("tweedie-nloglik@") {
                Some(rho) => match rho.parse::<f64>() {
                    Ok(r) if r > 1.0 && r < 2.0 => EvalMetric::TweedieNloglik(r),
                    _ => {
                        return Err(BuiltinError::hyperparameter(
                            "eval_metric",
                            Some(m),
                            "needs a variance power strictly between 1 and 2 after the `@`",
                        )
                        .with_hint("for example `tweedie-nloglik@1.5`"));
                    }
                },
                None => {
                    let name = hp.choice("eval_metric", "rmse", &EvalMetric::NAMES)?;
                    EvalMetric::from_name(&name, param).expect("choice only returns known names")
                }
            },
        };
        let metric_name = metric.name();
        let bad_metric = |why: &str| {
            BuiltinError::hyperparameter(
                "eval_metric",
                Some(&metric_name),
                format!("{why} `{}`", objective.name()),
            )
            .with_hint(format!(
                "leave it out to use `{}`, the objective's default",
                objective.default_metric(param).name()
            ))
        };
        if metric.needs_multiclass() && !objective.is_multiclass() {
            return Err(bad_metric("needs a multiclass objective, not"));
        }
        if metric.needs_binary()
            && !matches!(
                objective,
                Objective::BinaryLogistic | Objective::RegLogistic
            )
        {
            return Err(bad_metric("needs a binary objective, not"));
        }
        let num_class: Option<usize> = hp.opt("num_class")?;
        if let Some(k) = num_class {
            if !objective.is_multiclass() {
                return Err(BuiltinError::hyperparameter(
                    "num_class",
                    Some(&k.to_string()),
                    format!(
                        "only applies to multi:softprob and multi:softmax, not `{objective_name}`"
                    ),
                ));
            }
            if !(2..=65_536).contains(&k) {
                return Err(BuiltinError::hyperparameter(
                    "num_class",
                    Some(&k.to_string()),
                    "must be between 2 and 65536",
                ));
            }
        }
        let base_score: Option<f64> = hp.opt("base_score")?;
        if let Some(b) = base_score {
            let ok = match objective {
                Objective::BinaryLogistic | Objective::RegLogistic => b > 0.0 && b < 1.0,
                Objective::CountPoisson | Objective::Gamma | Objective::Tweedie => b > 0.0,
                Objective::SquaredLogError => b > -1.0 && b.is_finite(),
                _ => b.is_finite(),
            };
            if !ok {
                return Err(BuiltinError::hyperparameter(
                    "base_score",
                    Some(&b.to_string()),
                    format!("is outside the range of `{objective_name}` predictions"),
                )
                .with_hint("logistic objectives need 0 < base_score < 1; count:poisson, reg:gamma and reg:tweedie need base_score > 0; reg:squaredlogerror needs base_score > -1"));
            }
        }
        let early: usize = hp.get("early_stopping_rounds", 0)?;
        // XGBoost's aliases, as SageMaker's container declares them.
        let eta = hp.alias("eta", "learning_rate")?;
        let gamma = hp.alias("gamma", "min_split_loss")?;
        let lambda = hp.alias("lambda", "reg_lambda")?;
        let alpha = hp.alias("alpha", "reg_alpha")?;
        let p = Params {
            num_round: hp.get_in("num_round", d.num_round, 1, 1_000_000)?,
            eta: hp.get_in(eta, d.eta, 0.0, 1.0)?,
            max_depth: hp.get_in("max_depth", d.max_depth, 0, 63)?,
            max_leaves: hp.get("max_leaves", d.max_leaves)?,
            grow_policy,
            min_child_weight: hp.get_in("min_child_weight", d.min_child_weight, 0.0, f64::MAX)?,
            max_delta_step: hp.get_in("max_delta_step", d.max_delta_step, 0.0, f64::MAX)?,
            lambda: hp.get_in(lambda, d.lambda, 0.0, f64::MAX)?,
            alpha: hp.get_in(alpha, d.alpha, 0.0, f64::MAX)?,
            gamma: hp.get_in(gamma, d.gamma, 0.0, f64::MAX)?,
            subsample: hp.get_in("subsample", d.subsample, 1e-6, 1.0)?,
            colsample_bytree: hp.get_in("colsample_bytree", d.colsample_bytree, 1e-6, 1.0)?,
            colsample_bylevel: hp.get_in("colsample_bylevel", d.colsample_bylevel, 1e-6, 1.0)?,
            colsample_bynode: hp.get_in("colsample_bynode", d.colsample_bynode, 1e-6, 1.0)?,
            max_bin: hp.get_in("max_bin", d.max_bin, 2, 256)?,
            scale_pos_weight: hp.get_in("scale_pos_weight", d.scale_pos_weight, 0.0, f64::MAX)?,
            seed: hp.get("seed", d.seed)?,
            objective,
            tweedie_variance_power,
            huber_slope,
            eval_metric: metric,
            early_stopping_rounds: (early > 0).then_some(early),
            num_class,
            base_score,
            checkpoint_frequency: hp.get_in(
                "checkpoint_frequency",
                d.checkpoint_frequency,
                1,
                1_000_000,
            )?,
            initial_model: None,
        };
        if p.max_depth == 0 && p.max_leaves == 0 {
            return Err(BuiltinError::hyperparameter(
                "max_depth",
                Some("0"),
                "means no depth limit, which needs max_leaves > 0",
            )
            .with_hint("set max_depth (e.g. 6) or max_leaves (e.g. 31)"));
        }
        hp.only_with(
            "scale_pos_weight",
            matches!(
                objective,
                Objective::BinaryLogistic | Objective::RegLogistic
            ),
            "it weighs the positive rows of a logistic objective",
        )?;
        hp.finish(IRRELEVANT)?;
        Ok(p)
    }

    /// Continue boosting from `model`: its trees come first and new rounds add to its predictions.
    pub fn with_initial_model(mut self, model: GbdtModel) -> Params {
        self.initial_model = Some(Box::new(model));
        self
    }

    /// The depth limit used while growing (0 in the hyperparameters means unlimited).
    pub(crate) fn depth_limit(&self) -> usize {
        if self.max_depth == 0 {
            64
        } else {
            self.max_depth
        }
    }

    /// A fingerprint of everything that shapes the trees, to refuse resuming a checkpoint
    /// written under other settings.
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{:?}|{:?}{}{}{}{}",
            self.num_round,
            self.eta,
            self.max_depth,
            self.max_leaves,
            self.min_child_weight,
            self.lambda,
            self.alpha,
            self.gamma,
            self.subsample,
            self.colsample_bytree,
            self.max_bin,
            self.scale_pos_weight,
            self.seed,
            self.objective.name(),
            self.num_class,
            self.base_score,
            self.early_stopping_rounds,
            // Absent for depthwise, so checkpoints written before the policy existed still match.
            match self.grow_policy {
                GrowPolicy::Depthwise => "",
                GrowPolicy::Lossguide => "|lossguide",
            },
            // Only for the objectives that have one, for the same reason.
            match self.objective {
                Objective::Tweedie => format!("|rho={}", self.tweedie_variance_power),
                Objective::PseudoHuber => format!("|slope={}", self.huber_slope),
                _ => String::new(),
            },
            if self.max_delta_step == 0.0 {
                String::new()
            } else {
                format!("|max_delta_step={}", self.max_delta_step)
            },
            if self.colsample_bylevel == 1.0 && self.colsample_bynode == 1.0 {
                String::new()
            } else {
                format!(
                    "|colsample={},{}",
                    self.colsample_bylevel, self.colsample_bynode
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_xgboost() {
        let p = Params::from_hyperparameters(&Hyperparams::from_pairs(&[])).unwrap();
        assert_eq!(p.num_round, 100);
        assert_eq!(p.eta, 0.3);
        assert_eq!(p.max_depth, 6);
        assert_eq!(p.objective, Objective::SquaredError);
        assert_eq!(p.eval_metric, EvalMetric::Rmse);
        assert_eq!(p.max_bin, 256);
    }

    #[test]
    fn parses_strings_and_picks_metric_by_objective() {
        let hp = Hyperparams::from_pairs(&[
            ("objective", "multi:softprob"),
            ("num_class", "3"),
            ("num_round", "20.0"),
            ("early_stopping_rounds", "5"),
            ("tree_method", "hist"),
        ]);
        let p = Params::from_hyperparameters(&hp).unwrap();
        assert_eq!(p.eval_metric, EvalMetric::Mlogloss);
        assert_eq!(p.num_class, Some(3));
        assert_eq!(p.num_round, 20);
        assert_eq!(p.early_stopping_rounds, Some(5));
    }

    #[test]
    fn rejects_bad_values_and_names() {
        let e =
            Params::from_hyperparameters(&Hyperparams::from_pairs(&[("eta", "2")])).unwrap_err();
        assert!(e.to_string().contains("between 0 and 1"), "{e}");
        let e =
            Params::from_hyperparameters(&Hyperparams::from_pairs(&[("etaa", "0.1")])).unwrap_err();
        assert!(e.to_string().contains("did you mean `eta`?"), "{e}");
        let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[(
            "objective",
            "binary:logistc",
        )]))
        .unwrap_err();
        assert!(
            e.to_string().contains("did you mean `binary:logistic`?"),
            "{e}"
        );
        let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[("eval_metric", "auc")]))
            .unwrap_err();
        assert!(e.to_string().contains("needs a binary objective"), "{e}");
        let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[("num_class", "3")]))
            .unwrap_err();
        assert!(e.to_string().contains("only applies to multi"), "{e}");
    }

    #[test]
    fn accepts_every_documented_name() {
        let hp = Hyperparams::from_pairs(&[
            ("num_round", "10"),
            ("eta", "0.1"),
            ("max_depth", "4"),
            ("max_leaves", "8"),
            ("min_child_weight", "2"),
            ("lambda", "2"),
            ("alpha", "0.5"),
            ("gamma", "0.1"),
            ("subsample", "0.8"),
            ("colsample_bytree", "0.5"),
            ("max_bin", "64"),
            ("scale_pos_weight", "3"),
            ("seed", "7"),
            ("objective", "binary:logistic"),
            ("eval_metric", "auc"),
            ("early_stopping_rounds", "3"),
            ("base_score", "0.3"),
            ("checkpoint_frequency", "5"),
        ]);
        let p = Params::from_hyperparameters(&hp).unwrap();
        assert_eq!((p.max_leaves, p.max_bin, p.seed), (8, 64, 7));
        assert_eq!(p.eval_metric, EvalMetric::Auc);
        assert_eq!(p.base_score, Some(0.3));
        assert!(p.eval_metric.maximize());
        let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[
            ("objective", "binary:logistic"),
            ("base_score", "1.5"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("outside the range"), "{e}");
    }
}
