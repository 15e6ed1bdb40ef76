use super::*;
use crate::dense::Rng;
use crate::hyperparams::Hyperparams;
use crate::model::Model;

fn blobs(n_per: usize, centres: &[[f32; 2]], seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut rows = Vec::new();
    for i in 0..n_per {
        for c in centres {
            let _ = i;
            rows.push(vec![
                c[0] + 0.3 * rng.normal() as f32,
                c[1] + 0.3 * rng.normal() as f32,
            ]);
        }
    }
    Dataset::from_rows(&rows, None)
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_hyperparameters(&Hyperparams::from_pairs(pairs)).unwrap()
}

#[test]
fn hyperparameters_are_checked() {
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[])).unwrap_err();
    assert!(e.to_string().contains("`k`: is required"), "{e}");
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[("k", "0")])).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[("k", "3"), ("tool", "1")]))
        .unwrap_err();
    assert!(e.to_string().contains("did you mean `tol`?"), "{e}");
    let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[
        ("k", "3"),
        ("init_method", "kmeans+"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("did you mean `kmeans++`?"), "{e}");
    let p = params(&[("k", "4"), ("init_method", "random"), ("feature_dim", "2")]);
    assert_eq!(p.k, 4);
    assert_eq!(p.init_method, InitMethod::Random);
    // Mini-batch settings of SageMaker's streaming trainer are refused, not ignored.
    for name in ["mini_batch_size", "epochs"] {
        let e = Params::from_hyperparameters(&Hyperparams::from_pairs(&[("k", "4"), (name, "2")]))
            .unwrap_err();
        assert!(e.to_string().contains("is not supported"), "{e}");
    }
}

#[test]
fn finds_separated_clusters() {
    let truth = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
    let ds = blobs(200, &truth, 1);
    for init in ["kmeans++", "random"] {
        let m = train(
            &params(&[("k", "3"), ("init_method", init), ("seed", "4")]),
            &ds,
            None,
            &TrainContext::quiet(2),
        )
        .unwrap();
        for t in truth {
            let best = (0..3)
                .map(|c| {
                    let ce = &m.centres()[c * 2..c * 2 + 2];
                    (ce[0] - t[0]).powi(2) + (ce[1] - t[1]).powi(2)
                })
                .fold(f32::INFINITY, f32::min);
            assert!(
                best < 0.01,
                "{init}: no centre near {t:?}: {:?}",
                m.centres()
            );
        }
        // 600 rows of variance 0.09 per coordinate: inertia near 600 * 2 * 0.09.
        assert!((m.inertia() - 108.0).abs() < 15.0, "{}", m.inertia());
        let p = m.predict(&ds).unwrap();
        assert_eq!(p.width, 2);
        assert_eq!(p.task, Task::Clustering);
        let sum_sq: f64 = (0..p.n_rows).map(|i| (p.row(i)[1] as f64).powi(2)).sum();
        assert!((sum_sq - m.inertia()).abs() < 1e-3 * m.inertia());
    }
}

use crate::model::Task;

#[test]
fn same_result_for_any_thread_count() {
    let ds = blobs(3000, &[[0.0, 0.0], [1.0, 1.0], [3.0, 0.0], [0.0, 2.0]], 7);
    let p = params(&[("k", "5"), ("seed", "11")]);
    let a = train(&p, &ds, None, &TrainContext::quiet(1)).unwrap();
    let b = train(&p, &ds, None, &TrainContext::quiet(3)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn matches_a_plain_lloyd_from_the_same_start() {
    // An independent, obviously correct Lloyd loop in f64 started from the
    // centres our k-means++ picked must reach the same inertia.
    let ds = blobs(500, &[[0.0, 0.0], [2.0, 1.0], [4.0, 0.0]], 3);
    let x = FeatureStats::of(&ds).matrix(&ds, false);
    let mut rng = Rng::new(0);
    let start = init::kmeans_plus_plus(&x, 2, 3, &mut rng);
    let ours = lloyd::run(
        &x,
        2,
        start.clone(),
        (300, 0.0),
        &crate::cluster::Solo,
        0,
        &|_| {},
    )
    .unwrap();
    let mut c: Vec<f64> = start.iter().map(|&v| v as f64).collect();
    let pts: Vec<[f64; 2]> = x.chunks(2).map(|r| [r[0] as f64, r[1] as f64]).collect();
    let mut inertia = 0.0;
    for _ in 0..300 {
        let mut sums = [[0.0f64; 2]; 3];
        let mut counts = [0usize; 3];
        inertia = 0.0;
        for p in &pts {
            let (best, dist) = (0..3)
                .map(|k| (k, (p[0] - c[2 * k]).powi(2) + (p[1] - c[2 * k + 1]).powi(2)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            inertia += dist;
            sums[best][0] += p[0];
            sums[best][1] += p[1];
            counts[best] += 1;
        }
        for k in 0..3 {
            c[2 * k] = sums[k][0] / counts[k] as f64;
            c[2 * k + 1] = sums[k][1] / counts[k] as f64;
        }
    }
    assert!(
        (ours.inertia - inertia).abs() < 1e-4 * inertia,
        "{} vs {inertia}",
        ours.inertia
    );
}

#[test]
fn awkward_inputs_do_not_panic() {
    let ctx = TrainContext::quiet(1);
    let empty = Dataset::from_rows(&[], None);
    assert!(train(&params(&[("k", "2")]), &empty, None, &ctx).is_err());
    let tiny = Dataset::from_rows(&[vec![1.0], vec![2.0]], None);
    let e = train(&params(&[("k", "3")]), &tiny, None, &ctx).unwrap_err();
    assert!(e.to_string().contains("fewer than k = 3"), "{e}");
    // Duplicated points, a constant and an all-missing column, k = n.
    let rows = vec![
        vec![1.0, 5.0, f32::NAN],
        vec![1.0, 5.0, f32::NAN],
        vec![1.0, 5.0, f32::NAN],
        vec![2.0, 5.0, f32::NAN],
    ];
    let ds = Dataset::from_rows(&rows, None);
    for k in ["1", "2", "4"] {
        for init in ["kmeans++", "random"] {
            let m = train(&params(&[("k", k), ("init_method", init)]), &ds, None, &ctx).unwrap();
            assert!(m.centres().iter().all(|v| v.is_finite()));
            let p = m.predict(&ds).unwrap();
            assert!(p.values.iter().all(|v| v.is_finite()));
        }
    }
    let m = train(&params(&[("k", "2")]), &ds, None, &ctx).unwrap();
    let other = Dataset::from_rows(&[vec![1.0, 2.0]], None);
    assert!(m.predict(&other).is_err());
}

#[test]
fn save_and_load_round_trip() {
    let ds = blobs(50, &[[0.0, 0.0], [5.0, 5.0]], 2);
    let m = train(
        &params(&[("k", "2")]),
        &ds,
        Some(&ds),
        &TrainContext::quiet(1),
    )
    .unwrap();
    assert!(m.training_metrics().contains_key("validation_inertia"));
    let dir = std::env::temp_dir().join(format!("kmeans-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    m.save(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join("model.json")).unwrap();
    assert!(
        text.starts_with(r#"{"format":"pipeline-model","format_version":1,"algorithm":"kmeans""#)
    );
    let back = KMeansModel::load(&dir).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.predict(&ds).unwrap(), m.predict(&ds).unwrap());
    std::fs::write(
        dir.join("model.json"),
        text.replace("\"kmeans\"", "\"pca\""),
    )
    .unwrap();
    assert!(KMeansModel::load(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wide_vector_kernel_matches_the_portable_one() {
    let mut rng = Rng::new(8);
    for &(n, d, k) in &[(37usize, 5usize, 3usize), (64, 32, 16), (9, 33, 20)] {
        let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let c: Vec<f32> = (0..k * d).map(|_| rng.normal() as f32).collect();
        let ct = distance::CentresT::new(&c, d);
        let (mut l1, mut d1) = (vec![0u32; n], vec![0f32; n]);
        let (mut l2, mut d2) = (vec![0u32; n], vec![0f32; n]);
        ct.nearest(&x, &mut l1, &mut d1);
        ct.nearest_portable(&x, &mut l2, &mut d2);
        assert_eq!((l1.clone(), d1.clone()), (l2, d2));
        for i in 0..n {
            let row = &x[i * d..(i + 1) * d];
            let best = (0..k)
                .map(|j| distance::sq_dist(row, &c[j * d..(j + 1) * d]))
                .fold(f64::INFINITY, f64::min);
            assert!((d1[i] as f64 - best).abs() < 1e-4 * (1.0 + best));
        }
    }
}

#[test]
fn three_nodes_find_the_centres_of_one() {
    // Overlapping blobs: several iterations, and k-means++ choices that matter.
    let ds = blobs(400, &[[0.0, 0.0], [1.0, 0.0], [0.0, 1.2], [1.1, 1.0]], 5);
    let n = ds.n_rows();
    for init in ["kmeans++", "random"] {
        let p = params(&[("k", "6"), ("init_method", init), ("seed", "11")]);
        let one = train(&p, &ds, None, &TrainContext::quiet(2)).unwrap();
        assert!(one.iterations() > 3, "{}", one.iterations());
        for cuts in [vec![0, 700, 1580, n], vec![0, 5, 900, n]] {
            let models = crate::cluster::testing::train_on_nodes(&ds, &cuts, |part, ctx| {
                train(&p, part, None, ctx).unwrap()
            });
            for m in &models {
                assert_eq!(m.iterations(), one.iterations(), "{init} {cuts:?}");
                for (a, b) in m.centres().iter().zip(one.centres()) {
                    assert!((a - b).abs() < 1e-5, "{init} {cuts:?}: {a} vs {b}");
                }
                assert!((m.inertia() - one.inertia()).abs() < 1e-9 * one.inertia());
            }
        }
    }
}
