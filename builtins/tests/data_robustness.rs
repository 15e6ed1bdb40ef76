//! Any bytes in, `Ok` or `Err` out: the readers never panic on bad input.
//!
//! Feeds random bytes, CSV-ish noise, valid files cut at every kind of
//! offset, and valid files with bytes flipped, to every format.

use std::path::{Path, PathBuf};

use builtins::data::{ReadOptions, read};

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("builtins-robust-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn all_options() -> Vec<ReadOptions> {
    vec![
        ReadOptions::sagemaker_csv(0),
        ReadOptions::sagemaker_csv(1),
        ReadOptions::csv_with_header(None),
        ReadOptions::csv_with_header(Some("b")),
        ReadOptions::csv_with_header(None).with_delimiter(b';'),
        ReadOptions::libsvm(),
        ReadOptions::parquet(None),
    ]
}

/// Reads `bytes` with every option set; a panic fails the test.
fn read_all_ways(file: &Path, bytes: &[u8]) -> usize {
    std::fs::write(file, bytes).unwrap();
    let mut ok = 0;
    for opts in all_options() {
        if let Ok(ds) = read(file, &opts) {
            assert!(ds.n_rows() > 0);
            ok += 1;
        }
    }
    ok
}

const ALPHABET: &[u8] = b"0123456789.,;-+eE\"\r\n :#abcNA\t";

#[test]
fn random_bytes_and_csv_noise() {
    let dir = scratch("noise");
    let file = dir.join("f");
    let mut rng = SplitMix(1);
    let mut ok = 0;
    for round in 0..1500 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if round % 3 == 0 {
                    rng.next() as u8
                } else {
                    ALPHABET[rng.below(ALPHABET.len())]
                }
            })
            .collect();
        ok += read_all_ways(&file, &bytes);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // The noise is not all rejected: the readers did parse some of it.
    assert!(ok > 0);
}

fn valid_samples() -> Vec<Vec<u8>> {
    let mut csv = String::from("a,b,c\n");
    let mut plain = String::new();
    let mut svm = String::new();
    for i in 0..400 {
        csv.push_str(&format!("{i}.25,\"x{}\",{}\r\n", i % 5, i as f32 * 1e-3));
        plain.push_str(&format!("{},{i},{}e2\n", i % 2, i as f32 / 7.0));
        svm.push_str(&format!("{} 1:{i} 4:0.5\n", i % 2));
    }
    vec![
        csv.into_bytes(),
        plain.into_bytes(),
        svm.into_bytes(),
        parquet_sample(),
    ]
}

fn parquet_sample() -> Vec<u8> {
    use std::sync::Arc;

    use arrow_array::{Float64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    let schema = Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Float64Array::from_iter_values((0..300).map(f64::from))),
            Arc::new(StringArray::from_iter_values(
                (0..300).map(|i| format!("s{}", i % 7)),
            )),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn truncated_and_corrupted_files() {
    let dir = scratch("cut");
    let file = dir.join("f");
    let mut rng = SplitMix(2);
    for sample in valid_samples() {
        assert!(
            read_all_ways(&file, &sample) > 0,
            "the untouched sample reads"
        );
        for _ in 0..60 {
            let cut = rng.below(sample.len() + 1);
            read_all_ways(&file, &sample[..cut]);
            let mut flipped = sample.clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(flipped.len());
                flipped[i] = rng.next() as u8;
            }
            read_all_ways(&file, &flipped);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
