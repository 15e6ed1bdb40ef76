//! The data readers on arbitrary bytes: CSV with a header and a target,
//! headerless SageMaker CSV, libsvm, RecordIO-protobuf and JSON Lines. A bad file must be a located
//! `DataError`, never a panic, a hang or unbounded memory.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use builtins::data::{ReadOptions, read};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("pipeline-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the scratch directory");
        dir
    })
}

fn write(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    let mut f = std::fs::File::create(&path).expect("write the scratch file");
    f.write_all(data).expect("write the scratch file");
    path
}

fuzz_target!(|data: &[u8]| {
    let csv = write("data.csv", data);
    let _ = read(&csv, &ReadOptions::csv_with_header(None));
    // The header's first name as the target, when there is one.
    let first = data
        .split(|&b| b == b',' || b == b'\n')
        .next()
        .and_then(|f| std::str::from_utf8(f).ok())
        .unwrap_or("");
    let _ = read(&csv, &ReadOptions::csv_with_header(Some(first)));
    let _ = read(&csv, &ReadOptions::sagemaker_csv(1));
    // libsvm is sparse and read densely: rows x the highest index is the
    // size of the result by design (refused beyond 2^30 values), so inputs
    // that ask for more than fits the fuzzer's memory limit are not read.
    if dense_values(data) <= 1 << 22 {
        let svm = write("data.libsvm", data);
        let _ = read(&svm, &ReadOptions::libsvm());
    }
    // RecordIO-protobuf is read densely too: a sparse record's shape or key
    // sets the width of every row, so the same limit applies.
    if recordio_dense_values(data) <= 1 << 22 {
        let rec = write("data.rec", data);
        let _ = read(&rec, &ReadOptions::recordio_protobuf());
    }
    let jsonl = write("data.jsonl", data);
    let _ = read(&jsonl, &ReadOptions::jsonlines(None));
    let _ = read(&jsonl, &ReadOptions::jsonlines(Some(first)));
});

/// An upper bound of the values a libsvm reading of `data` holds densely:
/// the lines times the largest number written before a `:`.
fn dense_values(data: &[u8]) -> u64 {
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let mut max_index = 0u64;
    let mut number = 0u64;
    for &b in data {
        match b {
            b'0'..=b'9' => {
                number = number
                    .saturating_mul(10)
                    .saturating_add(u64::from(b - b'0'))
            }
            b':' => {
                max_index = max_index.max(number);
                number = 0;
            }
            _ => number = 0,
        }
    }
    lines.saturating_mul(max_index.saturating_add(1))
}

/// An upper bound of the values a RecordIO-protobuf reading of `data` holds
/// densely: the records (at most one a magic number anywhere) times the
/// width, which is at most the largest varint starting at any byte (a key or
/// a sparse shape) or a count of the values the data holds.
fn recordio_dense_values(data: &[u8]) -> u64 {
    let magic = 0xced7_230a_u32.to_le_bytes();
    let records = data.windows(4).filter(|w| *w == magic).count() as u64 + 1;
    let mut widest = data.len() as u64;
    for start in 0..data.len() {
        let mut v = 0u64;
        for (i, &b) in data[start..].iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        widest = widest.max(v.saturating_add(1));
    }
    records.saturating_mul(widest)
}
