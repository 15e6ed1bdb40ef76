//! Reading data sets from files into a [`Dataset`].
//!
//! `read(path, &ReadOptions)` is the one entry point. This first version reads
//! CSV sequentially; a parallel reader and the other formats replace it.

use std::path::Path;

use crate::dataset::{Column, Dataset};
use crate::error::DataError;

/// The file formats a channel may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Libsvm,
}

/// How to read a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    pub format: Format,
    /// The first line names the columns.
    pub header: bool,
    /// With a header: the name of the target column.
    pub target: Option<String>,
    /// Without a header: how many leading columns are the label (0 or 1).
    pub label_size: usize,
}

impl ReadOptions {
    /// Headerless SageMaker-style CSV with the label in the first column.
    pub fn sagemaker_csv(label_size: usize) -> Self {
        ReadOptions {
            format: Format::Csv,
            header: false,
            target: None,
            label_size,
        }
    }
    /// CSV with a header and, optionally, a named target column.
    pub fn csv_with_header(target: Option<&str>) -> Self {
        ReadOptions {
            format: Format::Csv,
            header: true,
            target: target.map(str::to_string),
            label_size: 0,
        }
    }
}

/// Reads `path` (a file) into a data set.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
    match opts.format {
        Format::Csv => read_csv(path, opts),
        other => Err(DataError::new(
            path,
            format!("format {other:?} is not supported yet"),
        )),
    }
}

fn is_missing(s: &str) -> bool {
    matches!(s, "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "?")
}

fn read_csv(path: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (names, first_data): (Vec<String>, Option<(usize, &str)>) = if opts.header {
        let (_, h) = lines
            .next()
            .ok_or_else(|| DataError::new(path, "the file is empty"))?;
        (
            h.split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect(),
            None,
        )
    } else {
        let first = lines
            .next()
            .ok_or_else(|| DataError::new(path, "the file is empty"))?;
        let n = first.1.split(',').count();
        let names = (0..n)
            .map(|j| {
                if j < opts.label_size {
                    "label".to_string()
                } else {
                    format!("f{}", j - opts.label_size)
                }
            })
            .collect();
        (names, Some(first))
    };
    let n = names.len();
    let mut raw: Vec<Vec<&str>> = vec![Vec::new(); n];
    for (idx, line) in first_data.into_iter().chain(lines) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != n {
            return Err(DataError::new(
                path,
                format!("expected {n} fields, found {}", fields.len()),
            )
            .at(idx as u64 + 1, None));
        }
        for (j, f) in fields.into_iter().enumerate() {
            raw[j].push(f.trim().trim_matches('"'));
        }
    }
    if raw[0].is_empty() {
        return Err(DataError::new(path, "the file has no data rows"));
    }
    let columns = names
        .iter()
        .zip(raw)
        .map(|(name, vals)| {
            let numeric: Option<Vec<f32>> = vals
                .iter()
                .map(|s| {
                    if is_missing(s) {
                        Some(f32::NAN)
                    } else {
                        s.parse().ok()
                    }
                })
                .collect();
            match numeric {
                Some(v) => Column::numeric(name.clone(), v),
                None => {
                    let mut levels: Vec<String> = Vec::new();
                    let codes = vals
                        .iter()
                        .map(|s| {
                            if is_missing(s) {
                                return f32::NAN;
                            }
                            match levels.iter().position(|l| l == s) {
                                Some(i) => i as f32,
                                None => {
                                    levels.push(s.to_string());
                                    (levels.len() - 1) as f32
                                }
                            }
                        })
                        .collect();
                    Column::categorical(name.clone(), levels, codes)
                }
            }
        })
        .collect();
    let target = match (&opts.target, opts.header, opts.label_size) {
        (Some(t), true, _) => {
            if !names.contains(t) {
                return Err(
                    DataError::new(path, format!("no column named `{t}` for the target"))
                        .at(1, None)
                        .hint(format!("the columns are: {}", names.join(", "))),
                );
            }
            Some(t.as_str())
        }
        (_, false, 1..) => Some("label"),
        _ => None,
    };
    Ok(Dataset::new(columns, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_penguins_with_a_target() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/data/penguins.csv");
        let ds = read(&p, &ReadOptions::csv_with_header(Some("species"))).unwrap();
        assert_eq!(ds.n_rows(), 344);
        assert_eq!(
            ds.target().unwrap().levels().unwrap(),
            ["Adelie", "Gentoo", "Chinstrap"]
        );
        assert!(ds.column("bill_length_mm").unwrap().values[3].is_nan());
    }
}
