use super::*;
use crate::dense::Rng;
use crate::hyperparams::Hyperparams;
use crate::model::{Model, Task};

/// Rows `z A + noise` with a rank-`r` signal in `d` dimensions and a non-zero mean.
fn low_rank(n: usize, d: usize, r: usize, noise: f64, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let a: Vec<f64> = (0..r * d).map(|_| rng.normal()).collect();
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            let z: Vec<f64> = (0..r).map(|i| rng.normal() * (r - i) as f64).collect();
            (0..d)
                .map(|j| {
                    let s: f64 = (0..r).map(|i| z[i] * a[i * d + j]).sum();
                    (3.0 + j as f64 + s + noise * rng.normal()) as f32
                })
                .collect()
        })
        .collect();
    Dataset::from_rows(&rows, None)
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_hyperparameters(&Hyperparams::from_pairs(pairs)).unwrap()
}

#[test]
fn hyperparameters_are_checked() {
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[])).unwrap_err();
    assert!(
        e.to_string().contains("`num_components`: is required"),
        "{e}"
    );
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[
        ("num_components", "2"),
        ("algorithm_mode", "randomised"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("did you mean `randomized`?"), "{e}");
    let p = params(&[
        ("num_components", "3"),
        ("subtract_mean", "False"),
        ("feature_dim", "10"),
        ("mini_batch_size", "100"),
    ]);
    assert!(!p.subtract_mean);
    assert_eq!(p.oversampling(), 10);
    assert_eq!(params(&[("num_components", "30")]).oversampling(), 30);
    assert_eq!(
        params(&[
            ("num_components", "3"),
            ("algorithm_mode", "randomized"),
            ("extra_components", "2")
        ])
        .oversampling(),
        2
    );
    // Regular mode has no range finder to size.
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[
        ("num_components", "3"),
        ("extra_components", "2"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("has no effect here"), "{e}");
}

#[test]
fn top_component_matches_power_iteration_on_a_naive_covariance() {
    let ds = low_rank(800, 6, 2, 0.5, 1);
    let m = train(
        &params(&[("num_components", "2")]),
        &ds,
        None,
        &TrainContext::quiet(2),
    )
    .unwrap();
    // Independent reference: covariance in f64 by definition, then power iteration.
    let d = 6;
    let rows: Vec<Vec<f64>> = (0..ds.n_rows())
        .map(|i| ds.columns().iter().map(|c| c.values[i] as f64).collect())
        .collect();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let mut cov = vec![0f64; d * d];
    for r in &rows {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (r[i] - mean[i]) * (r[j] - mean[j]) / (n - 1.0);
            }
        }
    }
    let mut v = vec![1f64; d];
    let mut lambda = 0.0;
    for _ in 0..2000 {
        let w: Vec<f64> = (0..d)
            .map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum())
            .collect();
        lambda = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        v = w.iter().map(|x| x / lambda).collect();
    }
    let trace: f64 = (0..d).map(|j| cov[j * d + j]).sum();
    assert!((m.explained_variance()[0] - lambda).abs() < 1e-4 * lambda);
    assert!((m.explained_variance_ratio()[0] - lambda / trace).abs() < 1e-5);
    let dot: f64 = (0..d).map(|j| m.components()[j] as f64 * v[j]).sum();
    assert!((dot.abs() - 1.0).abs() < 1e-5, "{dot}");
    for (a, b) in m.mean().iter().zip(&mean) {
        assert!((a - b).abs() < 1e-4);
    }
    // Projections of the training rows have the explained variances.
    let p = m.predict(&ds).unwrap();
    assert_eq!((p.task.clone(), p.width), (Task::Projection, 2));
    for c in 0..2 {
        let var: f64 = (0..p.n_rows)
            .map(|i| (p.row(i)[c] as f64).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        assert!(
            (var - m.explained_variance()[c]).abs() < 1e-3 * var,
            "{var}"
        );
    }
}

#[test]
fn randomized_agrees_with_regular_on_low_rank_data() {
    let ds = low_rank(2000, 40, 3, 0.05, 2);
    let ctx = TrainContext::quiet(2);
    let r = train(&params(&[("num_components", "3")]), &ds, None, &ctx).unwrap();
    let z = train(
        &params(&[
            ("num_components", "3"),
            ("algorithm_mode", "randomized"),
            ("seed", "5"),
        ]),
        &ds,
        None,
        &ctx,
    )
    .unwrap();
    let sr: f64 = r.explained_variance_ratio().iter().sum();
    let sz: f64 = z.explained_variance_ratio().iter().sum();
    assert!((sr - sz).abs() < 1e-5, "{sr} vs {sz}");
    assert!(sr > 0.99);
    for c in 0..3 {
        let dot: f64 = (0..40)
            .map(|j| r.components()[c * 40 + j] as f64 * z.components()[c * 40 + j] as f64)
            .sum();
        assert!((dot - 1.0).abs() < 1e-3, "component {c}: {dot}");
    }
}

#[test]
fn same_result_for_any_thread_count() {
    let ds = low_rank(9000, 12, 4, 0.3, 3);
    for mode in ["regular", "randomized"] {
        let p = params(&[("num_components", "4"), ("algorithm_mode", mode)]);
        let a = train(&p, &ds, None, &TrainContext::quiet(1)).unwrap();
        let b = train(&p, &ds, None, &TrainContext::quiet(3)).unwrap();
        assert_eq!(a, b, "{mode}");
    }
}

#[test]
fn awkward_inputs_do_not_panic() {
    let ctx = TrainContext::quiet(1);
    let one = Dataset::from_rows(&[vec![1.0, 2.0]], None);
    assert!(train(&params(&[("num_components", "1")]), &one, None, &ctx).is_err());
    let ds = Dataset::from_rows(
        &[
            vec![1.0, 5.0, f32::NAN],
            vec![2.0, 5.0, f32::NAN],
            vec![4.0, 5.0, f32::NAN],
        ],
        None,
    );
    let e = train(&params(&[("num_components", "4")]), &ds, None, &ctx).unwrap_err();
    assert!(e.to_string().contains("at most 3"), "{e}");
    for mode in ["regular", "randomized"] {
        for sub in ["true", "false"] {
            let m = train(
                &params(&[
                    ("num_components", "3"),
                    ("algorithm_mode", mode),
                    ("subtract_mean", sub),
                ]),
                &ds,
                Some(&ds),
                &ctx,
            )
            .unwrap();
            assert!(m.explained_variance_ratio().iter().all(|v| v.is_finite()));
            assert!(m.predict(&ds).unwrap().values.iter().all(|v| v.is_finite()));
        }
    }
    // More components than rows.
    let short = low_rank(3, 6, 2, 0.1, 9);
    for mode in ["regular", "randomized"] {
        let m = train(
            &params(&[("num_components", "5"), ("algorithm_mode", mode)]),
            &short,
            None,
            &ctx,
        )
        .unwrap();
        assert!(m.explained_variance_ratio().iter().all(|v| v.is_finite()));
        let s: f64 = m.explained_variance_ratio().iter().sum();
        assert!((s - 1.0).abs() < 1e-6, "{mode}: {s}");
    }
    let constant = Dataset::from_rows(&[vec![1.0, 1.0], vec![1.0, 1.0]], None);
    let m = train(&params(&[("num_components", "2")]), &constant, None, &ctx).unwrap();
    assert_eq!(m.explained_variance_ratio(), [0.0, 0.0]);
}

#[test]
fn save_and_load_round_trip() {
    let ds = low_rank(100, 5, 2, 0.1, 4);
    let m = train(
        &params(&[("num_components", "2")]),
        &ds,
        Some(&ds),
        &TrainContext::quiet(1),
    )
    .unwrap();
    assert!(m.training_metrics()["validation_explained_variance_ratio"] > 0.9);
    let dir = std::env::temp_dir().join(format!("pca-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    m.save(&dir).unwrap();
    let back = PcaModel::load(&dir).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.predict(&ds).unwrap(), m.predict(&ds).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn three_nodes_find_the_components_of_one() {
    let mut rng = crate::dense::Rng::new(3);
    let rows: Vec<Vec<f32>> = (0..900)
        .map(|_| {
            let a = rng.normal() as f32;
            let b = rng.normal() as f32;
            vec![
                a * 3.0 + 1.0,
                a - b,
                b * 0.5,
                rng.normal() as f32 * 0.1 + 2.0,
            ]
        })
        .collect();
    let ds = Dataset::from_rows(&rows, None);
    for mode in ["regular", "randomized"] {
        let p = Params::from_hyperparameters(&crate::hyperparams::Hyperparams::from_pairs(&[
            ("num_components", "2"),
            ("algorithm_mode", mode),
        ]))
        .unwrap();
        let one = train(&p, &ds, None, &TrainContext::quiet(2)).unwrap();
        let models =
            crate::cluster::testing::train_on_nodes(&ds, &[0, 400, 890, 900], |part, ctx| {
                train(&p, part, None, ctx).unwrap()
            });
        for m in &models {
            for (a, b) in m.components().iter().zip(one.components()) {
                assert!((a - b).abs() < 1e-5, "{mode}: {a} vs {b}");
            }
        }
    }
}
