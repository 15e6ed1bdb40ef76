//! linear-learner hyperparameters, checked without touching data.

use crate::error::BuiltinError;
use crate::hyperparams::{Hyperparams, Irrelevant, Unsupported};

/// What the model predicts (`predictor_type`, required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictorType {
    /// Labels 0/1 (or a column of two strings); predicts the probability of 1.
    Binary,
    /// Labels `0..num_classes`; predicts one probability a class.
    Multiclass,
    /// A numeric target; predicts its value.
    Regressor,
}

/// The per-row loss (`loss`; `auto` picks the one that fits `predictor_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `log(1 + exp(-y' f))` for binary classifiers.
    Logistic,
    /// Cross-entropy of the softmax for multiclass classifiers.
    Softmax,
    /// `(f - y)^2 / 2` for regressors.
    Squared,
}

/// How the objective is minimised (`optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// Closed form for least squares (Cholesky of the normal equations),
    /// Newton's method for binary logistic regression.
    Exact,
    /// Full-batch limited-memory BFGS.
    Lbfgs,
    /// Full-batch proximal gradient with momentum (FISTA): what `l1 > 0` needs.
    Proximal,
    /// Mini-batch stochastic gradient descent with momentum.
    Sgd,
    /// Mini-batch Adam.
    Adam,
}

/// Checked linear-learner hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub predictor_type: PredictorType,
    /// Number of classes of a multiclass classifier (`num_classes`); 0:
    /// not given, so the distinct labels of the training data on one node.
    pub num_classes: usize,
    pub loss: Loss,
    /// L1 penalty on the weights (`l1`, default 0).
    pub l1: f64,
    /// L2 penalty on the weights (`wd`, default 0). The objective is
    /// `mean loss + wd/2 |w|^2 + l1 |w|_1`; the bias is not penalised.
    pub wd: f64,
    pub optimizer: Optimizer,
    /// Passes over the data for `sgd` and `adam` (`epochs`, default 15).
    pub epochs: usize,
    /// Rows a step for `sgd` and `adam` (`mini_batch_size`, default 1000).
    pub mini_batch_size: usize,
    /// Step size for `sgd` and `adam` (`learning_rate`; `auto`: 0.01 for sgd, 0.001 for adam).
    pub learning_rate: f64,
    /// Momentum of `sgd` (`momentum`, default 0).
    pub momentum: f64,
    /// Adam's moment decay rates (`beta_1`, `beta_2`, defaults 0.9 and 0.999).
    pub beta_1: f64,
    pub beta_2: f64,
    /// Standardise features to mean 0 and variance 1 (`normalize_data`, default true).
    pub normalize_data: bool,
    /// Standardise a regressor's target (`normalize_label`; `auto`: true for regressors).
    pub normalize_label: bool,
    /// Fit an intercept (`use_bias`, default true).
    pub use_bias: bool,
    /// Seed of the mini-batch order (`seed`, default 0).
    pub seed: u64,
    /// `sgd`/`adam`: stop after this many epochs without a relative
    /// improvement of `early_stopping_tolerance` in the objective (off when `None`).
    pub early_stopping_patience: Option<usize>,
    pub early_stopping_tolerance: f64,
    /// The number of features the data must have (`feature_dim`), when given.
    pub feature_dim: Option<usize>,
}

/// Upper bound on `num_classes`: the model holds a weight a feature and
/// class, and a larger count is almost surely a mistake rather than a task.
pub(crate) const MAX_CLASSES: usize = 10_000;

/// Every hyperparameter name that takes effect (see docs/models/linear-learner.md).
pub const IMPLEMENTED: &[&str] = &[
    "predictor_type",
    "num_classes",
    "loss",
    "l1",
    "wd",
    "optimizer",
    "epochs",
    "mini_batch_size",
    "learning_rate",
    "momentum",
    "beta_1",
    "beta_2",
    "normalize_data",
    "normalize_label",
    "use_bias",
    "seed",
    "early_stopping_patience",
    "early_stopping_tolerance",
    "feature_dim",
];

/// No SageMaker linear-learner name is accepted without an effect here.
pub const IRRELEVANT: &[Irrelevant] = &[];

/// SageMaker linear-learner names with no implementation here: rejected, so a
/// setting never silently does nothing.
pub const UNSUPPORTED: &[Unsupported] = &[
    (
        "num_models",
        "one model is trained, not several in parallel",
        "remove it; compare settings with a `tune` step or several train steps",
    ),
    (
        "num_calibration_samples",
        "no model is selected among parallel models",
        "remove it",
    ),
    ("init_method", "the weights always start at 0", "remove it"),
    ("init_scale", "the weights always start at 0", "remove it"),
    ("init_sigma", "the weights always start at 0", "remove it"),
    ("init_bias", "the bias always starts at 0", "remove it"),
    (
        "use_lr_scheduler",
        "the learning rate is constant",
        "remove it; lower `learning_rate` or use `optimizer: adam`",
    ),
    (
        "lr_scheduler_step",
        "the learning rate is constant",
        "remove it",
    ),
    (
        "lr_scheduler_factor",
        "the learning rate is constant",
        "remove it",
    ),
    (
        "lr_scheduler_minimum_lr",
        "the learning rate is constant",
        "remove it",
    ),
    (
        "unbias_data",
        "only `normalize_data` (which also centres) is offered",
        "use `normalize_data`",
    ),
    (
        "unbias_label",
        "only `normalize_label` (which also centres) is offered",
        "use `normalize_label`",
    ),
    (
        "num_point_for_scaler",
        "the scaling statistics always use every training row",
        "remove it",
    ),
    (
        "binary_classifier_model_selection_criteria",
        "no decision threshold is tuned; a binary classifier predicts the probability of the positive class",
        "remove it; pick a threshold from the evaluate step's curves",
    ),
    (
        "target_recall",
        "no decision threshold is tuned",
        "remove it",
    ),
    (
        "target_precision",
        "no decision threshold is tuned",
        "remove it",
    ),
    (
        "accuracy_top_k",
        "no model is selected by accuracy",
        "remove it",
    ),
    ("f_beta", "no model is selected by F-beta", "remove it"),
    (
        "bias_lr_mult",
        "the bias learns at the weights' rate",
        "remove it",
    ),
    ("bias_wd_mult", "the bias is never penalised", "remove it"),
    (
        "positive_example_weight_mult",
        "rows cannot be weighted",
        "remove it",
    ),
    ("huber_delta", "huber_loss is not offered", "remove it"),
    ("quantile", "quantile_loss is not offered", "remove it"),
    (
        "loss_insensitivity",
        "the eps-insensitive losses are not offered",
        "remove it",
    ),
    ("margin", "hinge_loss is not offered", "remove it"),
];

impl Params {
    pub fn from_hyperparameters(hp: &Hyperparams) -> Result<Params, BuiltinError> {
        hp.reject_unsupported(UNSUPPORTED)?;
        if hp.get_str("predictor_type").is_none() {
            return Err(
                BuiltinError::hyperparameter("predictor_type", None, "is required").with_hint(
                    "set `predictor_type` to binary_classifier, multiclass_classifier or regressor",
                ),
            );
        }
        let predictor_type = match hp
            .choice(
                "predictor_type",
                "",
                &["binary_classifier", "multiclass_classifier", "regressor"],
            )?
            .as_str()
        {
            "binary_classifier" => PredictorType::Binary,
            "multiclass_classifier" => PredictorType::Multiclass,
            _ => PredictorType::Regressor,
        };
        let num_classes = match predictor_type {
            PredictorType::Multiclass => {
                // Not given: counted from the training labels (SageMaker requires it).
                let k = hp.opt::<usize>("num_classes")?.unwrap_or(0);
                if k != 0 && k < 3 {
                    return Err(BuiltinError::hyperparameter(
                        "num_classes",
                        hp.get_str("num_classes"),
                        "must be at least 3",
                    )
                    .with_hint("for two classes use predictor_type: binary_classifier"));
                }
                if k > MAX_CLASSES {
                    return Err(BuiltinError::hyperparameter(
                        "num_classes",
                        hp.get_str("num_classes"),
                        format!("must be at most {MAX_CLASSES}"),
                    ));
                }
                k
            }
            PredictorType::Binary => {
                let k = hp.get("num_classes", 2usize)?;
                if k != 2 {
                    return Err(BuiltinError::hyperparameter(
                        "num_classes",
                        hp.get_str("num_classes"),
                        "must be 2 for a binary_classifier",
                    ));
                }
                2
            }
            PredictorType::Regressor => {
                if hp.get_str("num_classes").is_some() {
                    return Err(BuiltinError::hyperparameter(
                        "num_classes",
                        hp.get_str("num_classes"),
                        "has no meaning for a regressor",
                    )
                    .with_hint("remove `num_classes`"));
                }
                1
            }
        };
        let (natural, natural_name) = match predictor_type {
            PredictorType::Binary => (Loss::Logistic, "logistic"),
            PredictorType::Multiclass => (Loss::Softmax, "softmax_loss"),
            PredictorType::Regressor => (Loss::Squared, "squared_loss"),
        };
        let loss_name = hp.choice(
            "loss",
            "auto",
            &[
                "auto",
                "logistic",
                "softmax_loss",
                "squared_loss",
                "absolute_loss",
                "hinge_loss",
                "eps_insensitive_squared_loss",
                "eps_insensitive_absolute_loss",
                "quantile_loss",
                "huber_loss",
            ],
        )?;
        if loss_name != "auto" && loss_name != natural_name {
            return Err(BuiltinError::hyperparameter(
                "loss",
                Some(&loss_name),
                format!(
                    "is not supported for predictor_type {pt_name}",
                    pt_name = pt_name(predictor_type)
                ),
            )
            .with_hint(format!("use `auto` or `{natural_name}`")));
        }
        let l1 = non_negative(hp, "l1", 0.0)?;
        let wd = non_negative(hp, "wd", 0.0)?;
        let opt = hp.choice(
            "optimizer",
            "auto",
            &["auto", "exact", "lbfgs", "sgd", "adam"],
        )?;
        let optimizer = match opt.as_str() {
            "sgd" => Optimizer::Sgd,
            "adam" => Optimizer::Adam,
            "lbfgs" | "exact" if l1 > 0.0 => {
                return Err(BuiltinError::hyperparameter(
                    "optimizer",
                    Some(&opt),
                    "cannot handle an l1 penalty",
                )
                .with_hint("use optimizer auto, sgd or adam with l1 > 0, or set l1 to 0"));
            }
            "lbfgs" => Optimizer::Lbfgs,
            "exact" if predictor_type == PredictorType::Multiclass => {
                return Err(BuiltinError::hyperparameter(
                    "optimizer",
                    Some(&opt),
                    "has no exact solver for a multiclass_classifier",
                )
                .with_hint("use optimizer auto or lbfgs"));
            }
            "exact" => Optimizer::Exact,
            _ if l1 > 0.0 => Optimizer::Proximal,
            _ => match predictor_type {
                PredictorType::Multiclass => Optimizer::Lbfgs,
                _ => Optimizer::Exact,
            },
        };
        let minibatch = matches!(optimizer, Optimizer::Sgd | Optimizer::Adam);
        let solver = match optimizer {
            Optimizer::Exact => "the exact solver",
            Optimizer::Lbfgs => "L-BFGS",
            Optimizer::Proximal => "the proximal solver (chosen for l1 > 0)",
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        };
        for name in [
            "epochs",
            "mini_batch_size",
            "early_stopping_patience",
            "early_stopping_tolerance",
        ] {
            hp.only_with(
                name,
                minibatch,
                &format!("it applies to optimizer sgd or adam, and this step uses {solver}"),
            )?;
        }
        if hp.get_str("learning_rate") != Some("auto") {
            hp.only_with(
                "learning_rate",
                minibatch,
                &format!("it applies to optimizer sgd or adam, and this step uses {solver}"),
            )?;
        }
        hp.warn_unless(
            "seed",
            minibatch,
            &format!("{solver} is deterministic; the seed orders sgd's and adam's mini-batches"),
        );
        hp.only_with(
            "momentum",
            optimizer == Optimizer::Sgd,
            &format!("it applies to optimizer sgd, and this step uses {solver}"),
        )?;
        for name in ["beta_1", "beta_2"] {
            hp.only_with(
                name,
                optimizer == Optimizer::Adam,
                &format!("it applies to optimizer adam, and this step uses {solver}"),
            )?;
        }
        hp.only_with(
            "early_stopping_tolerance",
            hp.get_str("early_stopping_patience").is_some(),
            "it applies with early_stopping_patience, which is not set",
        )?;
        let early_stopping_patience: Option<usize> = hp.opt("early_stopping_patience")?;
        if early_stopping_patience == Some(0) {
            return Err(BuiltinError::hyperparameter(
                "early_stopping_patience",
                Some("0"),
                "must be at least 1",
            )
            .with_hint("leave it out to run every epoch"));
        }
        let early_stopping_tolerance = hp.get_in("early_stopping_tolerance", 0.001f64, 0.0, 1.0)?;
        let feature_dim: Option<usize> = hp.opt("feature_dim")?;
        let epochs = hp.get_in("epochs", 15usize, 1, 1_000_000)?;
        let mini_batch_size = hp.get_in("mini_batch_size", 1000usize, 1, usize::MAX)?;
        let learning_rate = match hp.get_str("learning_rate") {
            None | Some("auto") => {
                if optimizer == Optimizer::Adam {
                    0.001
                } else {
                    0.01
                }
            }
            Some(_) => {
                let v: f64 = hp.get("learning_rate", 0.0)?;
                if !(v > 0.0 && v.is_finite()) {
                    return Err(BuiltinError::hyperparameter(
                        "learning_rate",
                        hp.get_str("learning_rate"),
                        "must be a number above 0 or `auto`",
                    ));
                }
                v
            }
        };
        let momentum = hp.get_in("momentum", 0.0f64, 0.0, 0.999_999)?;
        let beta_1 = hp.get_in("beta_1", 0.9f64, 0.0, 0.999_999)?;
        let beta_2 = hp.get_in("beta_2", 0.999f64, 0.0, 0.999_999_999)?;
        let normalize_data = hp.get("normalize_data", true)?;
        let normalize_label = match hp.get_str("normalize_label") {
            None | Some("auto") => predictor_type == PredictorType::Regressor,
            Some(_) => hp.get("normalize_label", false)?,
        };
        if normalize_label && predictor_type != PredictorType::Regressor {
            return Err(BuiltinError::hyperparameter(
                "normalize_label",
                hp.get_str("normalize_label"),
                "applies only to a regressor",
            )
            .with_hint("remove it or set it to false for a classifier"));
        }
        let use_bias = hp.get("use_bias", true)?;
        let seed = hp.get("seed", 0u64)?;
        hp.finish(IRRELEVANT)?;
        Ok(Params {
            predictor_type,
            num_classes,
            loss: natural,
            l1,
            wd,
            optimizer,
            epochs,
            mini_batch_size,
            learning_rate,
            momentum,
            beta_1,
            beta_2,
            normalize_data,
            normalize_label,
            use_bias,
            seed,
            early_stopping_patience,
            early_stopping_tolerance,
            feature_dim,
        })
    }
}

fn pt_name(p: PredictorType) -> &'static str {
    match p {
        PredictorType::Binary => "binary_classifier",
        PredictorType::Multiclass => "multiclass_classifier",
        PredictorType::Regressor => "regressor",
    }
}

fn non_negative(hp: &Hyperparams, name: &str, default: f64) -> Result<f64, BuiltinError> {
    let v: f64 = hp.get(name, default)?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(BuiltinError::hyperparameter(
            name,
            hp.get_str(name),
            "must be a number of at least 0",
        ));
    }
    Ok(v)
}
