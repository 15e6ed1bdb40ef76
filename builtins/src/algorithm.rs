//! The built-in algorithms by name: check hyperparameters, train, load.
//!
//! The engine knows algorithms only through this module, so adding one means
//! adding it here and nowhere in the engine.

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::BuiltinError;
use crate::hyperparams::{Hyperparams, Irrelevant, Unsupported, closest};
use crate::model::{Model, TrainContext, saved_algorithm};
use crate::{gbdt, kmeans, linear, pca};

/// The algorithms, as written in a pipeline's `algorithm:`.
pub const NAMES: &[&str] = &["gbdt", "linear-learner", "kmeans", "pca"];

fn unknown(name: &str) -> BuiltinError {
    let e = BuiltinError::failed(format!(
        "unknown algorithm `{name}` (known: {})",
        NAMES.join(", ")
    ));
    match closest(name, NAMES.iter().copied()) {
        Some(c) => BuiltinError::failed(format!("{e}; did you mean `{c}`?")),
        None => e,
    }
}

/// Checks hyperparameters without data (names, types, ranges); returns a
/// warning for each given name that cannot change the model here.
pub fn check(name: &str, hp: &Hyperparams) -> Result<Vec<String>, BuiltinError> {
    match name {
        "gbdt" => gbdt::Params::from_hyperparameters(hp).map(drop),
        "linear-learner" => linear::Params::from_hyperparameters(hp).map(drop),
        "kmeans" => kmeans::Params::from_hyperparameters(hp).map(drop),
        "pca" => pca::Params::from_hyperparameters(hp).map(drop),
        other => Err(unknown(other)),
    }?;
    Ok(hp.warnings())
}

/// Every hyperparameter name an algorithm accepts, by what it does.
#[derive(Debug, Clone, Copy)]
pub struct HyperparameterTable {
    /// Names that change the trained model (or are checked against the data).
    pub implemented: &'static [&'static str],
    /// Names accepted with a warning, because nothing here depends on them.
    pub irrelevant: &'static [Irrelevant],
    /// SageMaker names rejected as not supported.
    pub unsupported: &'static [Unsupported],
}

/// The hyperparameter table of `name` (`None` for an unknown algorithm).
pub fn hyperparameters(name: &str) -> Option<HyperparameterTable> {
    Some(match name {
        "gbdt" => HyperparameterTable {
            implemented: gbdt::params::IMPLEMENTED,
            irrelevant: gbdt::params::IRRELEVANT,
            unsupported: gbdt::params::UNSUPPORTED,
        },
        "linear-learner" => HyperparameterTable {
            implemented: linear::params::IMPLEMENTED,
            irrelevant: linear::params::IRRELEVANT,
            unsupported: linear::params::UNSUPPORTED,
        },
        "kmeans" => HyperparameterTable {
            implemented: kmeans::params::IMPLEMENTED,
            irrelevant: kmeans::params::IRRELEVANT,
            unsupported: kmeans::params::UNSUPPORTED,
        },
        "pca" => HyperparameterTable {
            implemented: pca::params::IMPLEMENTED,
            irrelevant: pca::params::IRRELEVANT,
            unsupported: pca::params::UNSUPPORTED,
        },
        _ => return None,
    })
}

/// Trains `name` on `train` (early stopping and scores on `validation`).
/// `initial`, a saved model of the same algorithm, continues training from it
/// where the algorithm supports that (gbdt).
pub fn train(
    name: &str,
    hp: &Hyperparams,
    train: &Dataset,
    validation: Option<&Dataset>,
    initial: Option<&Path>,
    ctx: &TrainContext,
) -> Result<Box<dyn Model>, BuiltinError> {
    if let Some(dir) = initial {
        if name != "gbdt" {
            return Err(BuiltinError::failed(format!(
                "continuing training from an earlier model is supported for gbdt, not {name}; remove the `model` channel"
            )));
        }
        let mut from = gbdt::GbdtModel::load_initial(dir)?;
        // A model XGBoost saved without names has the data's, column for column.
        if from.feature_names.is_empty() {
            let names = train.feature_names();
            if names.len() != from.feature_levels.len() {
                return Err(BuiltinError::failed(format!(
                    "continue training: the initial model has {} features, the training data {}",
                    from.feature_levels.len(),
                    names.len()
                )));
            }
            from.feature_names = names;
        }
        let p = gbdt::Params::from_hyperparameters(hp)?;
        return Ok(Box::new(gbdt::train_from(
            &from, &p, train, validation, ctx,
        )?));
    }
    Ok(match name {
        "gbdt" => Box::new(gbdt::train(
            &gbdt::Params::from_hyperparameters(hp)?,
            train,
            validation,
            ctx,
        )?),
        "linear-learner" => Box::new(linear::train(
            &linear::Params::from_hyperparameters(hp)?,
            train,
            validation,
            ctx,
        )?),
        "kmeans" => Box::new(kmeans::train(
            &kmeans::Params::from_hyperparameters(hp)?,
            train,
            validation,
            ctx,
        )?),
        "pca" => Box::new(pca::train(
            &pca::Params::from_hyperparameters(hp)?,
            train,
            validation,
            ctx,
        )?),
        other => return Err(unknown(other)),
    })
}

/// Loads a saved model of any algorithm from its directory.
pub fn load(dir: &Path) -> Result<Box<dyn Model>, BuiltinError> {
    Ok(match saved_algorithm(dir)?.as_str() {
        "gbdt" => Box::new(gbdt::GbdtModel::load(dir)?),
        "linear-learner" => Box::new(linear::LinearModel::load(dir)?),
        "kmeans" => Box::new(kmeans::KMeansModel::load(dir)?),
        "pca" => Box::new(pca::PcaModel::load(dir)?),
        // Made by automl from trained models, never trained by name.
        "ensemble" => Box::new(crate::ensemble::EnsembleModel::load(dir)?),
        other => {
            return Err(BuiltinError::failed(format!(
                "{}: {}",
                dir.display(),
                unknown(other)
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_trains_saves_and_loads() {
        let rows: Vec<Vec<f32>> = (0..60)
            .map(|i| vec![i as f32 % 7.0, (i * 3 % 11) as f32, (i % 5) as f32])
            .collect();
        let label: Vec<f32> = rows.iter().map(|r| f32::from(r[0] + r[1] > 8.0)).collect();
        let ds = Dataset::from_rows(&rows, Some(&label));
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "gbdt",
                &[("objective", "binary:logistic"), ("num_round", "5")],
            ),
            ("linear-learner", &[("predictor_type", "binary_classifier")]),
            ("kmeans", &[("k", "3")]),
            ("pca", &[("num_components", "2")]),
        ];
        for (name, hps) in cases {
            let hp = Hyperparams::from_pairs(hps);
            check(name, &hp).unwrap();
            let m = train(name, &hp, &ds, None, None, &TrainContext::quiet(1)).unwrap();
            let dir = std::env::temp_dir()
                .join(format!("builtins-algorithm-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            m.save(&dir).unwrap();
            let back = load(&dir).unwrap();
            assert_eq!(back.algorithm(), *name);
            assert_eq!(back.predict(&ds).unwrap(), m.predict(&ds).unwrap());
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(
            check("gdbt", &Hyperparams::default())
                .unwrap_err()
                .to_string()
                .contains("did you mean `gbdt`")
        );
    }
}

/// Every accepted hyperparameter name must do something: walks each
/// algorithm's table.
#[cfg(test)]
mod hyperparameter_walk {
    use super::*;

    enum Expect {
        /// The trained model (its files, predictions or metrics) differs.
        Changes,
        /// Checking or training fails with this value.
        Rejected,
    }
    use Expect::*;

    #[derive(Clone, Copy)]
    enum Data {
        Binary,
        Multi,
    }

    /// `(algorithm, base hyperparameters, data, name, value, expectation)`.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Data,
        &'static str,
        &'static str,
        Expect,
    );

    const GB: &[(&str, &str)] = &[("objective", "binary:logistic"), ("num_round", "5")];
    const GB_LEAVES: &[(&str, &str)] = &[
        ("objective", "binary:logistic"),
        ("num_round", "5"),
        ("max_leaves", "5"),
    ];
    const GB_SAMPLED: &[(&str, &str)] = &[
        ("objective", "binary:logistic"),
        ("num_round", "5"),
        ("subsample", "0.5"),
    ];
    const GB_LONG: &[(&str, &str)] = &[
        ("objective", "binary:logistic"),
        ("num_round", "60"),
        ("eta", "1"),
    ];
    const GB_MULTI: &[(&str, &str)] = &[("objective", "multi:softprob"), ("num_round", "3")];
    const GB_ETA: &[(&str, &str)] = &[
        ("objective", "binary:logistic"),
        ("num_round", "5"),
        ("eta", "0.2"),
    ];
    const GB_TWEEDIE: &[(&str, &str)] = &[("objective", "reg:tweedie"), ("num_round", "5")];
    const GB_HUBER: &[(&str, &str)] = &[("objective", "reg:pseudohubererror"), ("num_round", "5")];
    const LL: &[(&str, &str)] = &[("predictor_type", "binary_classifier")];
    const LL_MULTI: &[(&str, &str)] = &[
        ("predictor_type", "multiclass_classifier"),
        ("num_classes", "3"),
    ];
    const LL_REG: &[(&str, &str)] = &[("predictor_type", "regressor")];
    const LL_SGD: &[(&str, &str)] = &[
        ("predictor_type", "binary_classifier"),
        ("optimizer", "sgd"),
        ("mini_batch_size", "20"),
    ];
    const LL_ADAM: &[(&str, &str)] = &[
        ("predictor_type", "binary_classifier"),
        ("optimizer", "adam"),
        ("mini_batch_size", "20"),
    ];
    const LL_SGD_60: &[(&str, &str)] = &[
        ("predictor_type", "binary_classifier"),
        ("optimizer", "sgd"),
        ("mini_batch_size", "20"),
        ("learning_rate", "0.5"),
        ("epochs", "60"),
    ];
    const LL_SGD_LONG: &[(&str, &str)] = &[
        ("predictor_type", "binary_classifier"),
        ("optimizer", "sgd"),
        ("mini_batch_size", "20"),
        ("epochs", "60"),
        ("early_stopping_patience", "2"),
    ];
    const KM: &[(&str, &str)] = &[("k", "3")];
    const PC: &[(&str, &str)] = &[("num_components", "2")];
    const PC_RAND: &[(&str, &str)] = &[("num_components", "2"), ("algorithm_mode", "randomized")];

    const CASES: &[Case] = &[
        ("gbdt", GB, Data::Binary, "num_round", "8", Changes),
        ("gbdt", GB, Data::Binary, "eta", "0.1", Changes),
        ("gbdt", GB, Data::Binary, "max_depth", "2", Changes),
        ("gbdt", GB, Data::Binary, "max_leaves", "3", Changes),
        (
            "gbdt",
            GB_LEAVES,
            Data::Binary,
            "grow_policy",
            "lossguide",
            Changes,
        ),
        (
            "gbdt",
            GB,
            Data::Binary,
            "grow_policy",
            "leafwise",
            Rejected,
        ),
        ("gbdt", GB, Data::Binary, "min_child_weight", "15", Changes),
        ("gbdt", GB, Data::Binary, "max_delta_step", "0.1", Changes),
        ("gbdt", GB, Data::Binary, "max_delta_step", "-1", Rejected),
        ("gbdt", GB, Data::Binary, "lambda", "20", Changes),
        ("gbdt", GB, Data::Binary, "alpha", "5", Changes),
        ("gbdt", GB, Data::Binary, "gamma", "1", Changes),
        ("gbdt", GB, Data::Binary, "subsample", "0.5", Changes),
        ("gbdt", GB, Data::Binary, "colsample_bytree", "0.5", Changes),
        (
            "gbdt",
            GB,
            Data::Binary,
            "colsample_bylevel",
            "0.5",
            Changes,
        ),
        ("gbdt", GB, Data::Binary, "colsample_bynode", "0.5", Changes),
        ("gbdt", GB, Data::Binary, "colsample_bynode", "0", Rejected),
        ("gbdt", GB, Data::Binary, "max_bin", "4", Changes),
        ("gbdt", GB, Data::Binary, "scale_pos_weight", "4", Changes),
        ("gbdt", GB_SAMPLED, Data::Binary, "seed", "7", Changes),
        (
            "gbdt",
            GB,
            Data::Binary,
            "objective",
            "reg:logistic",
            Changes,
        ),
        ("gbdt", GB, Data::Binary, "eval_metric", "auc", Changes),
        (
            "gbdt",
            GB,
            Data::Binary,
            "eval_metric",
            "error@0.7",
            Changes,
        ),
        ("gbdt", GB, Data::Binary, "eval_metric", "error@2", Rejected),
        ("gbdt", GB, Data::Binary, "learning_rate", "0.1", Changes),
        (
            "gbdt",
            GB_ETA,
            Data::Binary,
            "learning_rate",
            "0.1",
            Rejected,
        ),
        ("gbdt", GB, Data::Binary, "reg_lambda", "20", Changes),
        ("gbdt", GB, Data::Binary, "reg_alpha", "5", Changes),
        ("gbdt", GB, Data::Binary, "min_split_loss", "1", Changes),
        (
            "gbdt",
            GB,
            Data::Binary,
            "objective",
            "reg:tweedie",
            Changes,
        ),
        (
            "gbdt",
            GB,
            Data::Binary,
            "objective",
            "reg:squaredlogerror",
            Changes,
        ),
        (
            "gbdt",
            GB,
            Data::Binary,
            "objective",
            "reg:pseudohubererror",
            Changes,
        ),
        (
            "gbdt",
            GB_TWEEDIE,
            Data::Binary,
            "tweedie_variance_power",
            "1.2",
            Changes,
        ),
        (
            "gbdt",
            GB_TWEEDIE,
            Data::Binary,
            "tweedie_variance_power",
            "2",
            Rejected,
        ),
        (
            "gbdt",
            GB,
            Data::Binary,
            "tweedie_variance_power",
            "1.2",
            Rejected,
        ),
        (
            "gbdt",
            GB_HUBER,
            Data::Binary,
            "huber_slope",
            "0.3",
            Changes,
        ),
        ("gbdt", GB_HUBER, Data::Binary, "huber_slope", "0", Rejected),
        ("gbdt", GB, Data::Binary, "huber_slope", "0.3", Rejected),
        (
            "gbdt",
            GB_LONG,
            Data::Binary,
            "early_stopping_rounds",
            "1",
            Changes,
        ),
        ("gbdt", GB_MULTI, Data::Multi, "num_class", "4", Changes),
        ("gbdt", GB, Data::Binary, "base_score", "0.2", Changes),
        (
            "gbdt",
            GB,
            Data::Binary,
            "checkpoint_frequency",
            "0",
            Rejected,
        ),
        ("gbdt", GB, Data::Binary, "booster", "gblinear", Rejected),
        ("gbdt", GB, Data::Binary, "booster", "dart", Rejected),
        ("gbdt", GB, Data::Binary, "tree_method", "exact", Rejected),
        ("gbdt", GB, Data::Binary, "tree_method", "approx", Rejected),
        (
            "gbdt",
            GB,
            Data::Binary,
            "tree_method",
            "gpu_hist",
            Rejected,
        ),
        (
            "gbdt",
            &[("objective", "reg:squarederror")],
            Data::Binary,
            "scale_pos_weight",
            "2",
            Rejected,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "predictor_type",
            "regressor",
            Changes,
        ),
        (
            "linear-learner",
            LL_MULTI,
            Data::Multi,
            "num_classes",
            "4",
            Changes,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "loss",
            "hinge_loss",
            Rejected,
        ),
        ("linear-learner", LL, Data::Binary, "l1", "0.05", Changes),
        ("linear-learner", LL, Data::Binary, "wd", "0.1", Changes),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "optimizer",
            "sgd",
            Changes,
        ),
        (
            "linear-learner",
            LL_SGD,
            Data::Binary,
            "epochs",
            "3",
            Changes,
        ),
        ("linear-learner", LL, Data::Binary, "epochs", "3", Rejected),
        (
            "linear-learner",
            LL_SGD,
            Data::Binary,
            "mini_batch_size",
            "7",
            Changes,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "mini_batch_size",
            "7",
            Rejected,
        ),
        (
            "linear-learner",
            LL_SGD,
            Data::Binary,
            "learning_rate",
            "0.1",
            Changes,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "learning_rate",
            "0.1",
            Rejected,
        ),
        (
            "linear-learner",
            LL_SGD,
            Data::Binary,
            "momentum",
            "0.9",
            Changes,
        ),
        (
            "linear-learner",
            LL_ADAM,
            Data::Binary,
            "momentum",
            "0.9",
            Rejected,
        ),
        (
            "linear-learner",
            LL_ADAM,
            Data::Binary,
            "beta_1",
            "0.5",
            Changes,
        ),
        (
            "linear-learner",
            LL_SGD,
            Data::Binary,
            "beta_1",
            "0.5",
            Rejected,
        ),
        (
            "linear-learner",
            LL_ADAM,
            Data::Binary,
            "beta_2",
            "0.9",
            Changes,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "normalize_data",
            "false",
            Changes,
        ),
        (
            "linear-learner",
            LL_REG,
            Data::Binary,
            "normalize_label",
            "false",
            Changes,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "use_bias",
            "false",
            Changes,
        ),
        ("linear-learner", LL_SGD, Data::Binary, "seed", "5", Changes),
        (
            "linear-learner",
            LL_SGD_60,
            Data::Binary,
            "early_stopping_patience",
            "1",
            Changes,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "early_stopping_patience",
            "1",
            Rejected,
        ),
        (
            "linear-learner",
            LL_SGD_LONG,
            Data::Binary,
            "early_stopping_tolerance",
            "0.5",
            Changes,
        ),
        (
            "linear-learner",
            LL_SGD,
            Data::Binary,
            "early_stopping_tolerance",
            "0.5",
            Rejected,
        ),
        (
            "linear-learner",
            LL,
            Data::Binary,
            "feature_dim",
            "9",
            Rejected,
        ),
        ("kmeans", KM, Data::Binary, "k", "4", Changes),
        ("kmeans", KM, Data::Binary, "init_method", "random", Changes),
        ("kmeans", KM, Data::Binary, "max_iterations", "1", Changes),
        ("kmeans", KM, Data::Binary, "tol", "0.9", Changes),
        ("kmeans", KM, Data::Binary, "seed", "5", Changes),
        ("kmeans", KM, Data::Binary, "feature_dim", "9", Rejected),
        ("pca", PC, Data::Binary, "num_components", "3", Changes),
        (
            "pca",
            PC,
            Data::Binary,
            "algorithm_mode",
            "randomized",
            Changes,
        ),
        ("pca", PC, Data::Binary, "subtract_mean", "false", Changes),
        (
            "pca",
            PC_RAND,
            Data::Binary,
            "extra_components",
            "1",
            Changes,
        ),
        ("pca", PC, Data::Binary, "extra_components", "1", Rejected),
        ("pca", PC_RAND, Data::Binary, "seed", "5", Changes),
        ("pca", PC, Data::Binary, "feature_dim", "9", Rejected),
    ];

    fn data(kind: Data, seed: u32) -> Dataset {
        // Deterministic pseudo-random rows: 4 features, labels from a noisy rule.
        let mut state = 0x9e37_79b9u32 ^ seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 10_000) as f32 / 10_000.0
        };
        let rows: Vec<Vec<f32>> = (0..300)
            .map(|_| (0..4).map(|_| next() * 10.0).collect())
            .collect();
        let label: Vec<f32> = rows
            .iter()
            .map(|r| {
                let s = r[0] + 0.5 * r[1] - 0.3 * r[2] + next() * 4.0;
                match kind {
                    Data::Binary => f32::from(s > 6.0),
                    Data::Multi => ((s / 4.0) as usize).min(2) as f32,
                }
            })
            .collect();
        Dataset::from_rows(&rows, Some(&label))
    }

    /// Everything a trained model shows: its files, predictions and metrics.
    fn fingerprint(m: &dyn Model, ds: &Dataset, tag: &str) -> String {
        let dir = std::env::temp_dir().join(format!("builtins-walk-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        m.save(&dir).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut out = String::new();
        for n in names {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&n).unwrap()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        out.push_str(&format!("{:?}", m.predict(ds).unwrap().values));
        out.push_str(&format!("{:?}", m.training_metrics()));
        out
    }

    fn outcome(
        alg: &str,
        pairs: &[(&str, &str)],
        kind: Data,
        tag: &str,
    ) -> Result<(String, Vec<String>), String> {
        let hp = Hyperparams::from_pairs(pairs);
        let warnings = check(alg, &hp).map_err(|e| e.to_string())?;
        let (train_ds, valid) = (data(kind, 1), data(kind, 2));
        let m = train(
            alg,
            &hp,
            &train_ds,
            Some(&valid),
            None,
            &TrainContext::quiet(1),
        )
        .map_err(|e| e.to_string())?;
        Ok((fingerprint(m.as_ref(), &valid, tag), warnings))
    }

    #[test]
    fn every_accepted_name_takes_effect_or_is_refused() {
        for alg in NAMES {
            let table = hyperparameters(alg).unwrap();
            for name in table.implemented {
                assert!(
                    CASES.iter().any(|c| c.0 == *alg && c.3 == *name),
                    "{alg}: `{name}` is implemented but no case shows its effect"
                );
            }
        }
        for (i, (alg, base, kind, name, value, expect)) in CASES.iter().enumerate() {
            let table = hyperparameters(alg).unwrap();
            assert!(
                table.implemented.contains(name),
                "{alg}: `{name}` is not in the table"
            );
            let tag = format!("{alg}-{i}");
            let before =
                outcome(alg, base, *kind, &tag).unwrap_or_else(|e| panic!("{alg} {base:?}: {e}"));
            let mut with: Vec<(&str, &str)> =
                base.iter().filter(|p| p.0 != *name).copied().collect();
            with.push((name, value));
            match (expect, outcome(alg, &with, *kind, &tag)) {
                (Changes, Ok((after, _))) => assert_ne!(
                    before.0, after,
                    "{alg}: `{name}: {value}` did not change the model"
                ),
                (Rejected, Err(_)) => {}
                (Changes, Err(e)) => panic!("{alg}: `{name}: {value}` failed: {e}"),
                (Rejected, Ok(_)) => panic!("{alg}: `{name}: {value}` was accepted"),
            }
        }
    }

    #[test]
    fn irrelevant_names_warn_and_change_nothing() {
        let bases: &[(&str, &[(&str, &str)])] = &[
            ("gbdt", GB),
            ("linear-learner", LL),
            ("kmeans", KM),
            ("pca", PC),
        ];
        for (alg, base) in bases {
            let table = hyperparameters(alg).unwrap();
            let (before, none) = outcome(alg, base, Data::Binary, alg).unwrap();
            assert!(none.is_empty(), "{alg}: {none:?}");
            for (name, _) in table.irrelevant {
                let mut with = base.to_vec();
                with.push((name, "4"));
                let (after, warnings) = outcome(alg, &with, Data::Binary, alg).unwrap();
                assert_eq!(before, after, "{alg}: `{name}` changed the model");
                assert_eq!(warnings.len(), 1, "{alg}: {warnings:?}");
                assert!(warnings[0].contains(name), "{warnings:?}");
            }
        }
    }

    #[test]
    fn unsupported_and_unknown_names_are_refused() {
        let bases: &[(&str, &[(&str, &str)])] = &[
            ("gbdt", GB),
            ("linear-learner", LL),
            ("kmeans", KM),
            ("pca", PC),
        ];
        for (alg, base) in bases {
            let table = hyperparameters(alg).unwrap();
            for (name, _, _) in table.unsupported {
                let mut with = base.to_vec();
                with.push((name, "1"));
                let e = check(alg, &Hyperparams::from_pairs(&with)).unwrap_err();
                assert!(e.to_string().contains("is not supported"), "{alg}: {e}");
            }
            // A name in no table is refused, whatever it is.
            for name in ["no_such_name", "booster_type", "learning_rates"] {
                let mut with = base.to_vec();
                with.push((name, "1"));
                let e = check(alg, &Hyperparams::from_pairs(&with)).unwrap_err();
                assert!(
                    e.to_string()
                        .contains("is not a hyperparameter of this algorithm"),
                    "{alg}: {e}"
                );
            }
        }
    }
}
