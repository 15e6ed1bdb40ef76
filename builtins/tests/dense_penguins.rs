//! The three dense algorithms on a real, messy file: the penguins data (text
//! labels and features, missing values), read the way a pipeline reads it.

use std::path::Path;

use builtins::data::{ReadOptions, read};
use builtins::{Hyperparams, Model, Task, TrainContext};

fn penguins(target: Option<&str>) -> builtins::Dataset {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/data/penguins.csv");
    read(&p, &ReadOptions::csv_with_header(target)).unwrap()
}

#[test]
fn linear_learner_classifies_species() {
    let ds = penguins(Some("species"));
    let hp = Hyperparams::from_pairs(&[
        ("predictor_type", "multiclass_classifier"),
        ("num_classes", "3"),
        ("wd", "0.001"),
    ]);
    let params = builtins::linear::Params::from_hyperparameters(&hp).unwrap();
    let m = builtins::linear::train(&params, &ds, Some(&ds), &TrainContext::quiet(2)).unwrap();
    let metrics = m.training_metrics();
    assert!(metrics["validation_accuracy"] > 0.95, "{metrics:?}");
    let p = m.predict(&ds).unwrap();
    assert_eq!(
        p.task,
        Task::Multiclass {
            classes: vec!["Adelie".into(), "Gentoo".into(), "Chinstrap".into()]
        }
    );
}

#[test]
fn kmeans_and_pca_take_the_same_file() {
    let ds = penguins(None);
    let ctx = TrainContext::quiet(2);
    let km = builtins::kmeans::train(
        &builtins::kmeans::Params::from_hyperparameters(&Hyperparams::from_pairs(&[("k", "3")]))
            .unwrap(),
        &ds,
        None,
        &ctx,
    )
    .unwrap();
    let p = km.predict(&ds).unwrap();
    assert_eq!(p.n_rows, ds.n_rows());
    assert!(p.values.iter().all(|v| v.is_finite()));
    let pca = builtins::pca::train(
        &builtins::pca::Params::from_hyperparameters(&Hyperparams::from_pairs(&[(
            "num_components",
            "2",
        )]))
        .unwrap(),
        &ds,
        None,
        &ctx,
    )
    .unwrap();
    // Body mass (grams) dominates the raw variance.
    assert!(pca.explained_variance_ratio()[0] > 0.9);
    assert_eq!(pca.predict(&ds).unwrap().width, 2);
}
