//! The determinism promise at the level of the bytes a pipeline stores:
//! every algorithm, trained on 1, 2, 4 and 8 threads, saves the same model
//! files and predicts the same values, bit for bit.
//!
//! The data are large enough that every parallel loop has several chunks to
//! share out (gbdt's histogram chunks are 32,768 rows, the dense kernels'
//! blocks 4,096), with missing values and a categorical column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use builtins::{Column, Dataset, Hyperparams, TrainContext};

const ROWS: usize = 70_000;
const THREADS: [usize; 4] = [1, 2, 4, 8];

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

/// Five numeric features (one with missing values), one categorical of four
/// levels, and a three-class label that depends on them.
fn data(n: usize) -> Dataset {
    let mut rng = Rng(17);
    let mut num: Vec<Vec<f32>> = (0..5).map(|_| Vec::with_capacity(n)).collect();
    let mut cat = Vec::with_capacity(n);
    let mut label = Vec::with_capacity(n);
    for _ in 0..n {
        let x: Vec<f32> = (0..5).map(|_| rng.next() * 4.0 - 2.0).collect();
        let c = (rng.next() * 4.0).floor().min(3.0);
        let z = x[0] * 1.5 - x[1] + x[2] * x[3] + c * 0.4 + rng.next();
        label.push(if z < -0.5 {
            0.0
        } else if z < 1.0 {
            1.0
        } else {
            2.0
        });
        for (j, v) in x.into_iter().enumerate() {
            num[j].push(if j == 4 && rng.next() < 0.15 {
                f32::NAN
            } else {
                v
            });
        }
        cat.push(c);
    }
    let mut columns: Vec<Column> = num
        .into_iter()
        .enumerate()
        .map(|(j, v)| Column::numeric(format!("x{j}"), v))
        .collect();
    columns.push(Column::categorical(
        "kind",
        ["a", "b", "c", "d"].map(String::from).to_vec(),
        cat,
    ));
    columns.push(Column::numeric("y", label));
    Dataset::new(columns, Some("y"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("threads-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file a saved model is made of, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A saved model's files by name.
type SavedFiles = BTreeMap<String, Vec<u8>>;

/// Trains `algorithm` on every thread count of [`THREADS`] and checks that
/// the saved files and the predictions are the same bits each time.
fn same_bits_on_any_thread_count(algorithm: &str, hps: &[(&str, &str)], ds: &Dataset) {
    let hp = Hyperparams::from_pairs(hps);
    let mut first: Option<(SavedFiles, Vec<u32>)> = None;
    for threads in THREADS {
        let model = builtins::algorithm::train(
            algorithm,
            &hp,
            ds,
            None,
            None,
            &TrainContext::quiet(threads),
        )
        .unwrap_or_else(|e| panic!("{algorithm} on {threads} threads: {e}"));
        let dir = tmpdir(&format!("{algorithm}-{threads}"));
        model.save(&dir).unwrap();
        let saved = files(&dir);
        let predicted: Vec<u32> = model
            .predict(ds)
            .unwrap()
            .values
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        match &first {
            None => first = Some((saved, predicted)),
            Some((files, predictions)) => {
                assert_eq!(
                    files.keys().collect::<Vec<_>>(),
                    saved.keys().collect::<Vec<_>>(),
                    "{algorithm}: the files saved on {threads} threads"
                );
                for (name, bytes) in files {
                    assert!(
                        saved[name] == *bytes,
                        "{algorithm}: {name} on {threads} threads differs from 1 thread's"
                    );
                }
                assert!(
                    *predictions == predicted,
                    "{algorithm}: the predictions on {threads} threads differ from 1 thread's"
                );
            }
        }
    }
}

#[test]
fn gbdt_saves_the_same_bytes_on_any_thread_count() {
    let ds = data(ROWS);
    same_bits_on_any_thread_count(
        "gbdt",
        &[
            ("objective", "multi:softprob"),
            ("num_round", "8"),
            ("max_depth", "5"),
            ("subsample", "0.8"),
            ("colsample_bytree", "0.8"),
            ("seed", "3"),
        ],
        &ds,
    );
    same_bits_on_any_thread_count(
        "gbdt",
        &[
            ("objective", "reg:squarederror"),
            ("num_round", "6"),
            ("grow_policy", "lossguide"),
            ("max_leaves", "12"),
        ],
        &ds,
    );
}

#[test]
fn linear_learner_saves_the_same_bytes_on_any_thread_count() {
    let ds = data(ROWS);
    same_bits_on_any_thread_count(
        "linear-learner",
        &[
            ("predictor_type", "multiclass_classifier"),
            ("num_classes", "3"),
        ],
        &ds,
    );
    same_bits_on_any_thread_count(
        "linear-learner",
        &[
            ("predictor_type", "regressor"),
            ("optimizer", "adam"),
            ("epochs", "2"),
            ("seed", "4"),
        ],
        &ds,
    );
}

#[test]
fn kmeans_and_pca_save_the_same_bytes_on_any_thread_count() {
    let ds = data(ROWS);
    same_bits_on_any_thread_count("kmeans", &[("k", "5"), ("seed", "9")], &ds);
    same_bits_on_any_thread_count(
        "kmeans",
        &[("k", "4"), ("init_method", "random"), ("seed", "2")],
        &ds,
    );
    same_bits_on_any_thread_count("pca", &[("num_components", "3")], &ds);
    same_bits_on_any_thread_count(
        "pca",
        &[
            ("num_components", "2"),
            ("algorithm_mode", "randomized"),
            ("seed", "6"),
        ],
        &ds,
    );
}
