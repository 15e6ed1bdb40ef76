//! Times the data readers on one file, for side-by-side comparisons.
//!
//! Usage: `read_bench FILE [RUNS] [--header [TARGET]] [--label-size N]`
//!
//! Reads FILE RUNS times (5 by default) with the format its extension says
//! (CSV otherwise), prints each time, then one JSON line with the median in
//! seconds. Headerless SageMaker-style CSV with the label first is the
//! default; the thread count is rayon's (set `RAYON_NUM_THREADS`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use builtins::data::{Format, ReadOptions, read};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first().map(PathBuf::from) else {
        eprintln!("usage: read_bench FILE [RUNS] [--header [TARGET]] [--label-size N]");
        return ExitCode::from(2);
    };
    let mut runs = 5usize;
    let mut opts = ReadOptions::sagemaker_csv(1);
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--header" => {
                let target = args.get(i + 1).filter(|a| !a.starts_with("--"));
                if target.is_some() {
                    i += 1;
                }
                opts = ReadOptions::csv_with_header(target.map(String::as_str));
            }
            "--label-size" => {
                i += 1;
                opts.label_size = args.get(i).and_then(|a| a.parse().ok()).unwrap_or(1);
            }
            n => match n.parse() {
                Ok(r) => runs = r,
                Err(_) => {
                    eprintln!("unknown argument `{n}`");
                    return ExitCode::from(2);
                }
            },
        }
        i += 1;
    }
    match Format::from_extension(&file) {
        Some(Format::Parquet) => opts = ReadOptions::parquet(opts.target.as_deref()),
        Some(Format::Libsvm) => opts = ReadOptions::libsvm(),
        _ => {}
    }
    let mut times = Vec::with_capacity(runs);
    let mut shape = (0, 0);
    for run in 0..runs.max(1) {
        let t0 = Instant::now();
        let ds = match read(&file, &opts) {
            Ok(ds) => ds,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        shape = (ds.n_rows(), ds.columns().len());
        drop(ds);
        eprintln!("run {}: {secs:.3} s", run + 1);
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"file\": \"{}\", \"rows\": {}, \"cols\": {}, \"threads\": {}, \"runs\": {}, \"median_s\": {median:.4}}}",
        file.display(),
        shape.0,
        shape.1,
        rayon::current_num_threads(),
        times.len()
    );
    ExitCode::SUCCESS
}
