//! End-to-end checks of `algorithm: gbdt`: learning, determinism, save/load,
//! early stopping, checkpoints, incremental training and input errors.

use std::path::PathBuf;
use std::sync::Mutex;

use builtins::gbdt::{self, GbdtModel, Importance, Params};
use builtins::{Column, Dataset, Hyperparams, Model, Task, TrainContext};

/// A seeded generator for test data (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Rows with 4 features (one with missing values) and a label from `f`.
fn data(n: usize, seed: u64, f: impl Fn(&[f32], f32) -> f32) -> Dataset {
    let mut rng = Rng(seed);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..n {
        let mut r: Vec<f32> = (0..4).map(|_| rng.next() * 4.0 - 2.0).collect();
        if rng.next() < 0.2 {
            r[2] = f32::NAN;
        }
        labels.push(f(&r, rng.next()));
        rows.push(r);
    }
    Dataset::from_rows(&rows, Some(&labels))
}

fn binary(n: usize, seed: u64) -> Dataset {
    data(n, seed, |r, u| {
        let z = r[0] * 1.5 - r[1] + if r[2].is_nan() { 1.0 } else { r[2] * r[3] };
        f32::from(u < 1.0 / (1.0 + (-2.0 * z).exp()))
    })
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_hyperparameters(&Hyperparams::from_pairs(pairs)).unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gbdt-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn binary_learns_and_is_thread_count_independent() {
    let (tr, te) = (binary(4000, 1), binary(2000, 2));
    let p = params(&[
        ("objective", "binary:logistic"),
        ("num_round", "30"),
        ("eta", "0.2"),
        ("subsample", "0.8"),
        ("colsample_bytree", "0.75"),
    ]);
    let m1 = gbdt::train(&p, &tr, None, &TrainContext::quiet(1)).unwrap();
    let m2 = gbdt::train(&p, &tr, None, &TrainContext::quiet(2)).unwrap();
    assert_eq!(m1, m2, "the model depends on the thread count");
    let pred = m1.predict(&te).unwrap();
    assert!(matches!(pred.task, Task::Binary { .. }));
    let auc = gbdt::metric::auc(&te.target().unwrap().values, &pred.values);
    assert!(auc > 0.8, "test AUC {auc}");
    let imp = m1.feature_importance(Importance::Gain);
    assert!(imp["f0"] > 0.0 && imp.contains_key("f2"), "{imp:?}");
}

#[test]
fn regression_beats_the_mean() {
    let f = |r: &[f32], u: f32| {
        3.0 * r[0] + r[1] * r[1] + if r[2].is_nan() { 2.0 } else { 0.0 } + u * 0.1
    };
    let (tr, te) = (data(3000, 3, f), data(1000, 4, f));
    let m = gbdt::train(
        &params(&[("num_round", "50")]),
        &tr,
        None,
        &TrainContext::quiet(2),
    )
    .unwrap();
    let y = &te.target().unwrap().values;
    let p = m.predict(&te).unwrap().values;
    let mean = y.iter().sum::<f32>() / y.len() as f32;
    let mse: f32 = y.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / y.len() as f32;
    let var: f32 = y.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / y.len() as f32;
    assert!(mse < 0.05 * var, "mse {mse} var {var}");
}

#[test]
fn multiclass_with_text_labels_saves_and_loads() {
    let base = data(1500, 5, |r, _| {
        if r[0] > 0.5 {
            2.0
        } else if r[1] > 0.0 {
            1.0
        } else {
            0.0
        }
    });
    let names = ["low", "mid", "high"];
    let mut cols: Vec<Column> = base.features().cloned().collect();
    // Levels in first-appearance order differ from class numbers, as a reader produces them.
    let mut levels: Vec<String> = Vec::new();
    let codes = base
        .target()
        .unwrap()
        .values
        .iter()
        .map(|&v| {
            let s = names[v as usize].to_string();
            let i = levels.iter().position(|l| *l == s).unwrap_or_else(|| {
                levels.push(s);
                levels.len() - 1
            });
            i as f32
        })
        .collect();
    cols.push(Column::categorical("kind", levels.clone(), codes));
    let ds = Dataset::new(cols, Some("kind"));
    let p = params(&[
        ("objective", "multi:softprob"),
        ("num_round", "20"),
        ("eval_metric", "merror"),
    ]);
    let m = gbdt::train(&p, &ds, Some(&ds), &TrainContext::quiet(2)).unwrap();
    assert_eq!(m.n_outputs, 3);
    let pred = m.predict(&ds).unwrap();
    assert_eq!(
        pred.task,
        Task::Multiclass {
            classes: levels.clone()
        }
    );
    assert!(
        m.training_metrics()["validation_merror"] < 0.05,
        "{:?}",
        m.training_metrics()
    );
    let dir = tmpdir("multi");
    m.save(&dir).unwrap();
    assert_eq!(builtins::model::saved_algorithm(&dir).unwrap(), "gbdt");
    let back = GbdtModel::load(&dir).unwrap();
    assert_eq!(back.predict(&ds).unwrap(), pred);
    assert!(dir.join("xgboost-model.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn early_stopping_keeps_the_best_round() {
    let (tr, va) = (binary(1500, 6), binary(1500, 7));
    let p = params(&[
        ("objective", "binary:logistic"),
        ("num_round", "300"),
        ("eta", "0.5"),
        ("max_depth", "8"),
        ("min_child_weight", "0"),
        ("early_stopping_rounds", "5"),
    ]);
    let m = gbdt::train(&p, &tr, Some(&va), &TrainContext::quiet(2)).unwrap();
    let best = m.best_iteration.expect("stopped early");
    assert!(best < 100, "best round {best}");
    assert_eq!(m.trees.len(), best + 1);
    let pred = m.predict(&va).unwrap();
    let ll = gbdt::metric::evaluate(
        gbdt::EvalMetric::Logloss,
        &va.target().unwrap().values,
        &pred.values,
        1,
    );
    assert!((ll - m.training_metrics()["validation_logloss"]).abs() < 1e-6);
}

#[test]
fn resuming_from_a_checkpoint_gives_the_same_model() {
    let (tr, va) = (binary(2000, 8), binary(500, 9));
    let p = params(&[
        ("objective", "binary:logistic"),
        ("num_round", "25"),
        ("subsample", "0.7"),
        ("checkpoint_frequency", "10"),
        ("early_stopping_rounds", "50"),
    ]);
    let full = gbdt::train(&p, &tr, Some(&va), &TrainContext::quiet(2)).unwrap();
    // A run that writes checkpoints after rounds 10 and 20 (on one thread, to show that does not matter).
    let dir = tmpdir("ckpt");
    let logs = Mutex::new(Vec::new());
    let log = |s: &str| logs.lock().unwrap().push(s.to_string());
    let ctx = TrainContext {
        threads: 1,
        checkpoint_dir: Some(dir.clone()),
        log: &log,
        cluster: &builtins::cluster::Solo,
    };
    let first = gbdt::train(&p, &tr, Some(&va), &ctx).unwrap();
    assert_eq!(first, full);
    assert!(dir.join("gbdt-checkpoint.json").exists());
    // As if that run had died after round 20: a new run resumes from the checkpoint.
    let resumed = gbdt::train(&p, &tr, Some(&va), &ctx).unwrap();
    assert!(
        logs.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("resuming from the checkpoint after round 20")),
        "{:?}",
        logs.lock().unwrap()
    );
    assert_eq!(resumed, full);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn continuing_from_a_model_equals_training_longer() {
    let tr = binary(2000, 10);
    let p20 = params(&[("objective", "binary:logistic"), ("num_round", "20")]);
    let p10 = params(&[("objective", "binary:logistic"), ("num_round", "10")]);
    let straight = gbdt::train(&p20, &tr, None, &TrainContext::quiet(2)).unwrap();
    let first = gbdt::train(&p10, &tr, None, &TrainContext::quiet(2)).unwrap();
    let more = gbdt::train_from(&first, &p10, &tr, None, &TrainContext::quiet(2)).unwrap();
    assert_eq!(more.trees, straight.trees);
    assert_eq!(more.predict(&tr).unwrap(), straight.predict(&tr).unwrap());
}

#[test]
fn bad_labels_and_missing_columns_are_reported() {
    let mut tr = binary(50, 11);
    let e = gbdt::train(
        &params(&[("objective", "multi:softprob"), ("num_class", "2")]),
        &data(10, 1, |_, _| 2.0),
        None,
        &TrainContext::quiet(1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("row 1: the label is 2"), "{e}");
    assert!(e.is_invalid_input());
    let e = gbdt::train(
        &params(&[("objective", "count:poisson")]),
        &data(10, 1, |r, _| r[0]),
        None,
        &TrainContext::quiet(1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("needs a count"), "{e}");
    let m = gbdt::train(
        &params(&[("objective", "binary:logistic"), ("num_round", "2")]),
        &tr,
        None,
        &TrainContext::quiet(1),
    )
    .unwrap();
    tr = Dataset::new(
        tr.columns()
            .iter()
            .filter(|c| c.name != "f3")
            .cloned()
            .collect(),
        Some("label"),
    );
    let e = m.predict(&tr).unwrap_err();
    assert!(e.to_string().contains("no column `f3`"), "{e}");
    let no_target = Dataset::from_rows(&[vec![1.0]], None);
    assert!(gbdt::train(&params(&[]), &no_target, None, &TrainContext::quiet(1)).is_err());
}

#[test]
fn text_features_are_matched_by_level_not_by_code() {
    let colors = ["red", "green", "blue"];
    let n = 600;
    let codes: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
    let label: Vec<f32> = codes.iter().map(|&c| f32::from(c == 1.0)).collect();
    let levels: Vec<String> = colors.iter().map(|s| s.to_string()).collect();
    let train = Dataset::new(
        vec![
            Column::categorical("color", levels.clone(), codes.clone()),
            Column::numeric("label", label),
        ],
        Some("label"),
    );
    let p = params(&[("objective", "binary:logistic"), ("num_round", "5")]);
    let m = gbdt::train(&p, &train, None, &TrainContext::quiet(1)).unwrap();
    // Another file met the colours in another order, so its codes differ; "pink" is new.
    let other_levels: Vec<String> = ["blue", "green", "red", "pink"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let other = Dataset::new(
        vec![Column::categorical(
            "color",
            other_levels,
            vec![1.0, 2.0, 0.0, 3.0],
        )],
        None,
    );
    let p_other = m.predict(&other).unwrap().values;
    let same = Dataset::new(
        vec![Column::categorical(
            "color",
            levels,
            vec![1.0, 0.0, 2.0, f32::NAN],
        )],
        None,
    );
    assert_eq!(p_other, m.predict(&same).unwrap().values);
    assert!(p_other[0] > 0.5 && p_other[1] < 0.5);
}

/// `binary(n, seed)` with the label as text, levels in the order given.
fn text_labelled(n: usize, seed: u64, order: [&str; 2]) -> Dataset {
    let ds = binary(n, seed);
    let names = ["no", "yes"];
    let levels: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    let codes = ds
        .target()
        .unwrap()
        .values
        .iter()
        .map(|&v| levels.iter().position(|l| l == names[v as usize]).unwrap() as f32)
        .collect();
    let mut cols: Vec<Column> = ds.features().cloned().collect();
    cols.push(Column::categorical("answer", levels, codes));
    Dataset::new(cols, Some("answer"))
}

#[test]
fn continuing_on_a_file_that_numbers_classes_differently() {
    let first = text_labelled(2000, 12, ["no", "yes"]);
    let second = text_labelled(2000, 13, ["yes", "no"]);
    let p = params(&[("objective", "binary:logistic"), ("num_round", "10")]);
    let m = gbdt::train(&p, &first, None, &TrainContext::quiet(2)).unwrap();
    let more = gbdt::train_from(&m, &p, &second, Some(&second), &TrainContext::quiet(2)).unwrap();
    assert_eq!(
        more.classes,
        Some(vec!["no".to_string(), "yes".to_string()])
    );
    // Had the codes been taken as they are, the second file would teach the opposite.
    let before = m.training_metrics()["train_logloss"];
    let after = more.training_metrics()["validation_logloss"];
    assert!(after < before, "logloss went from {before} to {after}");
}
