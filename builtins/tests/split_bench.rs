//! Timings of splits on the large benchmark data sets (not run by default):
//!
//! `BENCH_DATA=DIR cargo test --release -p builtins --test split_bench -- --ignored --nocapture`
//!
//! where DIR holds `events.csv` and `clf_header.csv` from
//! `../shared/bench/gen_data.py`. Prints one JSON line per case with the
//! median of three runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use builtins::split::{self, SourceInput, SplitSpec, Strategy};

fn median_secs(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[1]
}

#[test]
#[ignore = "needs BENCH_DATA with the benchmark data sets"]
fn split_timings() {
    let Ok(data) = std::env::var("BENCH_DATA") else {
        eprintln!("set BENCH_DATA to the directory of the benchmark data");
        return;
    };
    let data = PathBuf::from(data);
    let out = std::env::temp_dir().join(format!("split-bench-{}", std::process::id()));
    let dirs: BTreeMap<String, PathBuf> = ["train", "validation", "test"]
        .iter()
        .map(|s| (s.to_string(), out.join(s)))
        .collect();
    let fr = |p: &[(&str, f64)]| -> Vec<(String, f64)> {
        p.iter().map(|(n, f)| (n.to_string(), *f)).collect()
    };
    let three = fr(&[("train", 0.7), ("validation", 0.15), ("test", 0.15)]);
    let cases: Vec<(&str, &Path, Strategy)> = vec![
        (
            "time_gap",
            Path::new("events.csv"),
            Strategy::Time {
                column: "timestamp".into(),
                cutoffs: vec![],
                gap: Some("1d".into()),
            },
        ),
        (
            "group_user",
            Path::new("events.csv"),
            Strategy::Group {
                column: "user_id".into(),
            },
        ),
        (
            "shuffle_stratified",
            Path::new("clf_header.csv"),
            Strategy::Shuffle {
                stratify: Some("label".into()),
            },
        ),
    ];
    for (name, file, strategy) in cases {
        let input = [SourceInput {
            path: data.join(file),
            fractions: None,
        }];
        let spec = SplitSpec {
            strategy,
            fractions: three.clone(),
            seed: 1,
        };
        let mut rows = 0;
        let secs = median_secs(|| {
            rows = split::run(&input, &spec, &dirs).unwrap().rows_out;
        });
        println!(r#"{{"case": "{name}", "rows_out": {rows}, "median_s": {secs:.3}}}"#);
    }
    std::fs::remove_dir_all(&out).unwrap();
}
