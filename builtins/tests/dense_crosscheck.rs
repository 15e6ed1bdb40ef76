//! Cross-checks linear-learner, kmeans and pca against an independent
//! implementation (smartcore) on small seeded data sets.

use approx::assert_abs_diff_eq;
use builtins::dense::Rng;
use builtins::{Dataset, Hyperparams, Model, TrainContext};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;

/// `n` rows of `d` standard-normal features and a seeded generator for labels.
fn rows(n: usize, d: usize, seed: u64) -> (Vec<Vec<f64>>, Rng) {
    let mut rng = Rng::new(seed);
    let x = (0..n)
        .map(|_| (0..d).map(|_| rng.normal()).collect())
        .collect();
    (x, rng)
}

/// Our data set from f64 rows (rounded to f32 first, so both sides see the same numbers).
fn dataset(x: &[Vec<f64>], y: Option<&[f64]>) -> (Dataset, DenseMatrix<f64>) {
    let x32: Vec<Vec<f32>> = x
        .iter()
        .map(|r| r.iter().map(|&v| v as f32).collect())
        .collect();
    let y32: Option<Vec<f32>> = y.map(|y| y.iter().map(|&v| v as f32).collect());
    let back: Vec<Vec<f64>> = x32
        .iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    (
        Dataset::from_rows(&x32, y32.as_deref()),
        DenseMatrix::from_2d_vec(&back).unwrap(),
    )
}

fn ctx() -> TrainContext<'static> {
    TrainContext::quiet(2)
}

#[test]
fn logistic_regression_matches_smartcore() {
    use smartcore::linear::logistic_regression::{
        LogisticRegression, LogisticRegressionParameters,
    };
    let (x, mut rng) = rows(600, 4, 1);
    let w = [1.5, -2.0, 0.5, 0.0];
    let y: Vec<f64> = x
        .iter()
        .map(|r| {
            let z: f64 = 0.3 + r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            f64::from(rng.next_f64() < 1.0 / (1.0 + (-z).exp()))
        })
        .collect();
    let (ds, xm) = dataset(&x, Some(&y));
    let wd = 0.01;
    let hp = Hyperparams::from_pairs(&[
        ("predictor_type", "binary_classifier"),
        ("wd", "0.01"),
        ("normalize_data", "false"),
    ]);
    let ours = builtins::linear::train(
        &builtins::linear::Params::from_hyperparameters(&hp).unwrap(),
        &ds,
        None,
        &ctx(),
    )
    .unwrap();
    // smartcore minimises sum(loss) + alpha/2 |w|^2: alpha = wd * n.
    let labels: Vec<i32> = y.iter().map(|&v| v as i32).collect();
    let theirs = LogisticRegression::fit(
        &xm,
        &labels,
        LogisticRegressionParameters::default().with_alpha(wd * 600.0),
    )
    .unwrap();
    for j in 0..4 {
        assert_abs_diff_eq!(
            ours.weights()[j],
            *theirs.coefficients().get((0, j)),
            epsilon = 1e-3
        );
    }
    assert_abs_diff_eq!(
        ours.bias()[0],
        *theirs.intercept().get((0, 0)),
        epsilon = 1e-3
    );
}

#[test]
fn least_squares_matches_smartcore() {
    use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};
    let (x, mut rng) = rows(300, 5, 2);
    let y: Vec<f64> = x
        .iter()
        .map(|r| 4.0 + 3.0 * r[0] - r[2] + 0.5 * r[4] + 0.1 * rng.normal())
        .collect();
    let (ds, xm) = dataset(&x, Some(&y));
    let theirs = LinearRegression::fit(&xm, &y, LinearRegressionParameters::default()).unwrap();
    let want: Vec<f64> = theirs.predict(&xm).unwrap();
    for norm in ["true", "false"] {
        let hp =
            Hyperparams::from_pairs(&[("predictor_type", "regressor"), ("normalize_data", norm)]);
        let ours = builtins::linear::train(
            &builtins::linear::Params::from_hyperparameters(&hp).unwrap(),
            &ds,
            None,
            &ctx(),
        )
        .unwrap();
        let got = ours.predict(&ds).unwrap();
        for (g, w) in got.values.iter().zip(&want) {
            assert_abs_diff_eq!(*g as f64, *w, epsilon = 1e-4);
        }
    }
}

#[test]
fn pca_projections_match_smartcore() {
    use smartcore::decomposition::pca::{PCA, PCAParameters};
    let (mut x, _) = rows(400, 6, 3);
    // Give the data unequal variances and a mean so the components are well separated.
    for r in &mut x {
        for (j, v) in r.iter_mut().enumerate() {
            *v = *v * (6.0 - j as f64) + j as f64;
        }
        r[1] += 0.5 * r[0];
    }
    let (ds, xm) = dataset(&x, None);
    let theirs = PCA::fit(&xm, PCAParameters::default().with_n_components(3)).unwrap();
    let want = theirs.transform(&xm).unwrap();
    for mode in ["regular", "randomized"] {
        let hp = Hyperparams::from_pairs(&[("num_components", "3"), ("algorithm_mode", mode)]);
        let ours = builtins::pca::train(
            &builtins::pca::Params::from_hyperparameters(&hp).unwrap(),
            &ds,
            None,
            &ctx(),
        )
        .unwrap();
        let got = ours.predict(&ds).unwrap();
        for c in 0..3 {
            // Components are defined up to sign.
            let dot: f64 = (0..400)
                .map(|i| got.row(i)[c] as f64 * want.get((i, c)))
                .sum();
            let sign = dot.signum();
            for i in 0..400 {
                assert_abs_diff_eq!(
                    got.row(i)[c] as f64,
                    sign * want.get((i, c)),
                    epsilon = 1e-3
                );
            }
        }
    }
}

#[test]
fn kmeans_partition_matches_smartcore() {
    use smartcore::cluster::kmeans::{KMeans, KMeansParameters};
    let (mut x, _) = rows(450, 2, 4);
    let centres = [[0.0, 0.0], [8.0, 1.0], [2.0, 9.0]];
    for (i, r) in x.iter_mut().enumerate() {
        r[0] += centres[i % 3][0];
        r[1] += centres[i % 3][1];
    }
    let (ds, xm) = dataset(&x, None);
    let theirs: KMeans<f64, u32, DenseMatrix<f64>, Vec<u32>> =
        KMeans::fit(&xm, KMeansParameters::default().with_k(3)).unwrap();
    let want: Vec<u32> = theirs.predict(&xm).unwrap();
    let hp = Hyperparams::from_pairs(&[("k", "3")]);
    let ours = builtins::kmeans::train(
        &builtins::kmeans::Params::from_hyperparameters(&hp).unwrap(),
        &ds,
        None,
        &ctx(),
    )
    .unwrap();
    let got = ours.predict(&ds).unwrap();
    // Same partition: cluster numbers correspond one to one.
    let mut map = [None::<u32>; 3];
    for (i, &w) in want.iter().enumerate() {
        let g = got.row(i)[0] as usize;
        match map[g] {
            None => map[g] = Some(w),
            Some(t) => assert_eq!(t, w, "row {i}"),
        }
    }
    let mut seen: Vec<u32> = map.iter().flatten().copied().collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
}
