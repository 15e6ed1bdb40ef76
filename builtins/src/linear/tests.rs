use super::*;
use crate::dataset::Column;
use crate::dense::Rng;
use crate::hyperparams::Hyperparams;
use crate::model::{Model, Task};

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_hyperparameters(&Hyperparams::from_pairs(pairs)).unwrap()
}

fn param_err(pairs: &[(&str, &str)]) -> String {
    Params::from_hyperparameters(&Hyperparams::from_pairs(pairs))
        .unwrap_err()
        .to_string()
}

/// Rows of `d` features with different scales and offsets, and the linear
/// score `x . w_true + 0.5` of each (on the raw features).
fn features(n: usize, d: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let w: Vec<f64> = (0..d)
        .map(|j| if j % 2 == 0 { 1.0 } else { -0.7 })
        .collect();
    let mut rows = Vec::new();
    let mut scores = Vec::new();
    for _ in 0..n {
        let r: Vec<f32> = (0..d)
            .map(|j| (rng.normal() * (1.0 + j as f64) + j as f64) as f32)
            .collect();
        let s: f64 = r
            .iter()
            .zip(&w)
            .map(|(x, w)| *x as f64 * w / (1.0 + w.abs()))
            .sum();
        scores.push(s + 0.5);
        rows.push(r);
    }
    (rows, scores)
}

fn binary_data(n: usize, d: usize, seed: u64) -> Dataset {
    let (rows, s) = features(n, d, seed);
    let mut rng = Rng::new(seed + 100);
    let y: Vec<f32> = s
        .iter()
        .map(|&z| f32::from(rng.next_f64() < objective::sigmoid(z - 2.0)))
        .collect();
    Dataset::from_rows(&rows, Some(&y))
}

/// Gradient of `mean loss + wd/2 |w|^2` at the model's solution, computed
/// directly in f64 on standardised features, independently of the solvers.
fn naive_gradient(m: &LinearModel, ds: &Dataset, wd: f64, kind: PredictorType) -> Vec<f64> {
    let stats = FeatureStats::of(ds);
    let d = ds.n_features();
    let c = m.bias().len();
    let cols: Vec<&Column> = ds.features().collect();
    let y = &ds.target().unwrap().values;
    let n = ds.n_rows();
    let mut g = vec![0f64; d * c + c];
    for (i, &yi) in y.iter().enumerate() {
        let x: Vec<f64> = (0..d)
            .map(|j| (cols[j].values[i] as f64 - stats.mean[j]) / stats.scale[j])
            .collect();
        let s: Vec<f64> = (0..c)
            .map(|k| m.bias()[k] + (0..d).map(|j| x[j] * m.weights()[j * c + k]).sum::<f64>())
            .collect();
        let r: Vec<f64> = match kind {
            PredictorType::Binary => vec![1.0 / (1.0 + (-s[0]).exp()) - yi as f64],
            PredictorType::Regressor => vec![s[0] - yi as f64],
            PredictorType::Multiclass => {
                let t: f64 = s.iter().map(|v| v.exp()).sum();
                (0..c)
                    .map(|k| s[k].exp() / t - f64::from(k == yi as usize))
                    .collect()
            }
        };
        for k in 0..c {
            for j in 0..d {
                g[j * c + k] += x[j] * r[k] / n as f64;
            }
            g[d * c + k] += r[k] / n as f64;
        }
    }
    for (gj, w) in g.iter_mut().zip(m.weights()) {
        *gj += wd * w;
    }
    g
}

#[test]
fn hyperparameters_are_checked() {
    assert!(param_err(&[]).contains("`predictor_type`: is required"));
    assert!(
        param_err(&[("predictor_type", "binary_clasifier")])
            .contains("did you mean `binary_classifier`?")
    );
    assert!(
        param_err(&[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "2")
        ])
        .contains("num_classes")
    );
    assert!(
        param_err(&[("predictor_type", "regressor"), ("loss", "logistic")])
            .contains("not supported")
    );
    assert!(
        param_err(&[
            ("predictor_type", "regressor"),
            ("l1", "0.1"),
            ("optimizer", "exact")
        ])
        .contains("cannot handle an l1")
    );
    assert!(
        param_err(&[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "3"),
            ("optimizer", "exact")
        ])
        .contains("no exact solver")
    );
    assert!(param_err(&[("predictor_type", "regressor"), ("wd", "-1")]).contains("at least 0"));
    assert!(
        param_err(&[("predictor_type", "regressor"), ("learning_rat", "0.1")])
            .contains("did you mean `learning_rate`?")
    );
    let p = params(&[
        ("predictor_type", "binary_classifier"),
        ("feature_dim", "3"),
    ]);
    assert_eq!(
        (p.optimizer, p.loss, p.normalize_label),
        (Optimizer::Exact, Loss::Logistic, false)
    );
    let p = params(&[("predictor_type", "regressor"), ("l1", "0.5")]);
    assert_eq!(
        (p.optimizer, p.normalize_label),
        (Optimizer::Proximal, true)
    );
    let p = params(&[
        ("predictor_type", "multiclass_classifier"),
        ("num_classes", "4"),
        ("optimizer", "adam"),
    ]);
    assert_eq!((p.optimizer, p.learning_rate), (Optimizer::Adam, 0.001));
}

#[test]
fn bad_labels_name_their_row() {
    let ctx = TrainContext::quiet(1);
    let rows = vec![vec![1.0], vec![2.0], vec![3.0]];
    let ds = Dataset::from_rows(&rows, Some(&[0.0, 1.0, 2.0]));
    let e = train(
        &params(&[("predictor_type", "binary_classifier")]),
        &ds,
        None,
        &ctx,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("data row 3: label 2 is not 0 or 1"),
        "{e}"
    );
    let ds = Dataset::from_rows(&rows, Some(&[0.0, f32::NAN, 1.0]));
    let e = train(&params(&[("predictor_type", "regressor")]), &ds, None, &ctx).unwrap_err();
    assert!(e.to_string().contains("data row 2"), "{e}");
    let ds = Dataset::from_rows(&rows, Some(&[0.0, 1.5, 1.0]));
    let e = train(
        &params(&[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "3"),
        ]),
        &ds,
        None,
        &ctx,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("data row 2: label 1.5 is not a whole number"),
        "{e}"
    );
    let text = Dataset::new(
        vec![
            Column::numeric("x", vec![1.0, 2.0, 3.0]),
            Column::categorical("y", vec!["a".into()], vec![0.0, 0.0, 0.0]),
        ],
        Some("y"),
    );
    let e = train(
        &params(&[("predictor_type", "binary_classifier")]),
        &text,
        None,
        &ctx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("same label"), "{e}");
    let e = train(
        &params(&[("predictor_type", "regressor")]),
        &text,
        None,
        &ctx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("holds text"), "{e}");
    let unlabelled = Dataset::from_rows(&rows, None);
    assert!(
        train(
            &params(&[("predictor_type", "regressor")]),
            &unlabelled,
            None,
            &ctx
        )
        .is_err()
    );
}

#[test]
fn every_binary_solver_reaches_the_optimum() {
    let ds = binary_data(3000, 5, 1);
    let ctx = TrainContext::quiet(2);
    let wd = 1e-3;
    let wd_s = wd.to_string();
    let exact = train(
        &params(&[("predictor_type", "binary_classifier"), ("wd", &wd_s)]),
        &ds,
        None,
        &ctx,
    )
    .unwrap();
    let g = naive_gradient(&exact, &ds, wd, PredictorType::Binary);
    assert!(g.iter().all(|v| v.abs() < 2e-6), "{g:?}");
    let lb = train(
        &params(&[
            ("predictor_type", "binary_classifier"),
            ("wd", &wd_s),
            ("optimizer", "lbfgs"),
        ]),
        &ds,
        None,
        &ctx,
    )
    .unwrap();
    for (a, b) in exact.weights().iter().zip(lb.weights()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    for opt in ["sgd", "adam"] {
        let m = train(
            &params(&[
                ("predictor_type", "binary_classifier"),
                ("wd", &wd_s),
                ("optimizer", opt),
                ("epochs", "30"),
                ("mini_batch_size", "50"),
                ("learning_rate", if opt == "sgd" { "0.1" } else { "0.01" }),
            ]),
            &ds,
            None,
            &ctx,
        )
        .unwrap();
        assert!(
            m.objective() < exact.objective() * 1.01,
            "{opt}: {} vs {}",
            m.objective(),
            exact.objective()
        );
    }
    let p = exact.predict(&ds).unwrap();
    assert_eq!(
        p.task,
        Task::Binary {
            classes: vec!["0".into(), "1".into()]
        }
    );
    assert!(p.values.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn least_squares_matches_the_generating_line() {
    let (rows, s) = features(2000, 3, 2);
    let mut rng = Rng::new(5);
    let y: Vec<f32> = s
        .iter()
        .map(|v| (10.0 * v + 0.01 * rng.normal()) as f32)
        .collect();
    let ds = Dataset::from_rows(&rows, Some(&y));
    let ctx = TrainContext::quiet(2);
    for norm in ["true", "false"] {
        let m = train(
            &params(&[("predictor_type", "regressor"), ("normalize_data", norm)]),
            &ds,
            None,
            &ctx,
        )
        .unwrap();
        let p = m.predict(&ds).unwrap();
        let rmse = (p
            .values
            .iter()
            .zip(&y)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / y.len() as f64)
            .sqrt();
        assert!(rmse < 0.012, "normalize_data {norm}: rmse {rmse}");
    }
    let m = train(
        &params(&[
            ("predictor_type", "regressor"),
            ("normalize_label", "false"),
            ("wd", "0.01"),
        ]),
        &ds,
        None,
        &ctx,
    )
    .unwrap();
    let g = naive_gradient(&m, &ds, 0.01, PredictorType::Regressor);
    assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
}

#[test]
fn lasso_meets_its_optimality_conditions() {
    let (rows, s) = features(1500, 6, 3);
    let y: Vec<f32> = s.iter().map(|v| *v as f32).collect();
    let ds = Dataset::from_rows(&rows, Some(&y));
    let l1 = 0.05;
    let m = train(
        &params(&[
            ("predictor_type", "regressor"),
            ("normalize_label", "false"),
            ("l1", "0.05"),
        ]),
        &ds,
        None,
        &TrainContext::quiet(2),
    )
    .unwrap();
    let g = naive_gradient(&m, &ds, 0.0, PredictorType::Regressor);
    for (j, w) in m.weights().iter().enumerate() {
        if *w == 0.0 {
            assert!(
                g[j].abs() <= l1 + 1e-5,
                "zero weight {j}: gradient {}",
                g[j]
            );
        } else {
            assert!(
                (g[j] + l1 * w.signum()).abs() < 1e-5,
                "weight {j}: {w}, gradient {}",
                g[j]
            );
        }
    }
    assert!((g[6]).abs() < 1e-5);
    // A penalty this large leaves only the bias.
    let m = train(
        &params(&[("predictor_type", "regressor"), ("l1", "100")]),
        &ds,
        None,
        &TrainContext::quiet(1),
    )
    .unwrap();
    assert!(m.weights().iter().all(|w| *w == 0.0));
}

#[test]
fn softmax_learns_text_classes() {
    let mut rng = Rng::new(4);
    let centres = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]];
    let names = ["red", "green", "blue"];
    let (mut x0, mut x1, mut codes) = (vec![], vec![], vec![]);
    for i in 0..900 {
        let c = i % 3;
        x0.push(centres[c][0] + rng.normal() as f32);
        x1.push(centres[c][1] + rng.normal() as f32);
        codes.push(c as f32);
    }
    let ds = Dataset::new(
        vec![
            Column::categorical(
                "colour",
                names.iter().map(|s| s.to_string()).collect(),
                codes.clone(),
            ),
            Column::numeric("a", x0),
            Column::numeric("b", x1),
        ],
        Some("colour"),
    );
    let p = params(&[
        ("predictor_type", "multiclass_classifier"),
        ("num_classes", "3"),
        ("wd", "0.001"),
    ]);
    let m = train(&p, &ds, Some(&ds), &TrainContext::quiet(2)).unwrap();
    // L-BFGS also stops on a negligible relative decrease (as scikit-learn's).
    let g = naive_gradient(&m, &ds, 0.001, PredictorType::Multiclass);
    assert!(g.iter().all(|v| v.abs() < 1e-5), "{g:?}");
    let metrics = m.training_metrics();
    assert!(metrics["validation_accuracy"] > 0.95, "{metrics:?}");
    let pr = m.predict(&ds).unwrap();
    assert_eq!(pr.width, 3);
    assert_eq!(pr.column_names[1], "probability_green");
    assert!((pr.row(0).iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn same_result_for_any_thread_count() {
    let ds = binary_data(20_000, 4, 6);
    for opt in ["exact", "lbfgs", "sgd"] {
        let mut hp = vec![("predictor_type", "binary_classifier"), ("optimizer", opt)];
        if opt == "sgd" {
            hp.push(("epochs", "2"));
        }
        let p = params(&hp);
        let a = train(&p, &ds, None, &TrainContext::quiet(1)).unwrap();
        let b = train(&p, &ds, None, &TrainContext::quiet(3)).unwrap();
        assert_eq!(a, b, "{opt}");
    }
}

#[test]
fn awkward_inputs_do_not_panic() {
    let ctx = TrainContext::quiet(1);
    // Separable data without a penalty, a constant column, an all-missing column.
    let rows: Vec<Vec<f32>> = (0..40).map(|i| vec![i as f32, 3.0, f32::NAN]).collect();
    let y: Vec<f32> = (0..40).map(|i| f32::from(i >= 20)).collect();
    let ds = Dataset::from_rows(&rows, Some(&y));
    for opt in ["exact", "lbfgs", "sgd", "adam"] {
        let m = train(
            &params(&[("predictor_type", "binary_classifier"), ("optimizer", opt)]),
            &ds,
            None,
            &ctx,
        )
        .unwrap();
        let p = m.predict(&ds).unwrap();
        assert!(p.values.iter().all(|v| v.is_finite()), "{opt}");
        assert!(p.values[0] < 0.5 && p.values[39] > 0.5, "{opt}");
    }
    let m = train(&params(&[("predictor_type", "regressor")]), &ds, None, &ctx).unwrap();
    assert!(m.predict(&ds).unwrap().values.iter().all(|v| v.is_finite()));
    let other = Dataset::from_rows(&[vec![1.0]], None);
    assert!(m.predict(&other).is_err());
    let empty = Dataset::from_rows(&[], Some(&[]));
    assert!(
        train(
            &params(&[("predictor_type", "regressor")]),
            &empty,
            None,
            &ctx
        )
        .is_err()
    );
    let e = train(
        &params(&[
            ("predictor_type", "regressor"),
            ("optimizer", "sgd"),
            ("learning_rate", "1e6"),
        ]),
        &ds,
        None,
        &ctx,
    );
    if let Ok(m) = e {
        assert!(m.weights().iter().all(|w| w.is_finite()));
    }
}

#[test]
fn save_and_load_round_trip() {
    let ds = binary_data(500, 3, 7);
    let m = train(
        &params(&[("predictor_type", "binary_classifier")]),
        &ds,
        Some(&ds),
        &TrainContext::quiet(1),
    )
    .unwrap();
    assert!(m.training_metrics().contains_key("validation_logloss"));
    let dir = std::env::temp_dir().join(format!("linear-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    m.save(&dir).unwrap();
    let back = LinearModel::load(&dir).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.predict(&ds).unwrap(), m.predict(&ds).unwrap());
    assert!(crate::kmeans::KMeansModel::load(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn three_nodes_reach_the_weights_of_one() {
    let mut rng = crate::dense::Rng::new(21);
    let rows: Vec<Vec<f32>> = (0..1200)
        .map(|_| (0..4).map(|_| rng.normal() as f32).collect())
        .collect();
    let score = |r: &[f32]| r[0] * 1.5 - r[1] + 0.3 * r[2];
    let binary: Vec<f32> = rows
        .iter()
        .map(|r| f32::from(score(r) + 0.5 * rng.normal() as f32 > 0.0))
        .collect();
    let real: Vec<f32> = rows
        .iter()
        .map(|r| score(r) + 0.1 * rng.normal() as f32)
        .collect();
    type Case<'a> = (&'a [f32], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (&binary, &[("predictor_type", "binary_classifier")]),
        (
            &binary,
            &[
                ("predictor_type", "binary_classifier"),
                ("optimizer", "lbfgs"),
            ],
        ),
        (
            &binary,
            &[("predictor_type", "binary_classifier"), ("l1", "0.01")],
        ),
        (&real, &[("predictor_type", "regressor")]),
    ];
    for (label, hps) in cases {
        let ds = Dataset::from_rows(&rows, Some(label));
        let p = Params::from_hyperparameters(&Hyperparams::from_pairs(hps)).unwrap();
        let one = train(&p, &ds, None, &TrainContext::quiet(2)).unwrap();
        let models =
            crate::cluster::testing::train_on_nodes(&ds, &[0, 500, 1190, 1200], |part, ctx| {
                train(&p, part, None, ctx).unwrap()
            });
        let a = one.predict(&ds).unwrap();
        for m in &models {
            let b = m.predict(&ds).unwrap();
            for (x, y) in a.values.iter().zip(&b.values) {
                assert!((x - y).abs() < 1e-5, "{hps:?}: {x} vs {y}");
            }
        }
    }
}
