//! The built-in algorithms by name: check hyperparameters, train, load.
//!
//! The engine knows algorithms only through this module, so adding one means
//! adding it here and nowhere in the engine.

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::BuiltinError;
use crate::hyperparams::{Hyperparams, closest};
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

/// Checks hyperparameters without data (names, types, ranges).
pub fn check(name: &str, hp: &Hyperparams) -> Result<(), BuiltinError> {
    match name {
        "gbdt" => gbdt::Params::from_hyperparameters(hp).map(drop),
        "linear-learner" => linear::Params::from_hyperparameters(hp).map(drop),
        "kmeans" => kmeans::Params::from_hyperparameters(hp).map(drop),
        "pca" => pca::Params::from_hyperparameters(hp).map(drop),
        other => Err(unknown(other)),
    }
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
        let from = gbdt::GbdtModel::load(dir)?;
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
