//! A directory of part files read as one data set.
//!
//! Spark, Hive and SageMaker processing jobs write a data set as many files
//! in one directory. Every regular file is read, in file name order, except
//! hidden ones: names starting with `.` or `_` (`_SUCCESS`, `.crc` files).
//! All parts must have the same columns in the same order; rows are appended
//! in file order. A column that holds numbers in one part and text in another
//! is an error, as it is within one file (unless declared categorical, which
//! makes it text in every part); a CSV column with no values at all in one
//! part and text in another is read again as text. Levels keep their order of
//! first appearance across the parts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::table::{self, Table};
use super::{Format, ReadOptions};
use crate::dataset::{Column, ColumnKind, Dataset};
use crate::error::DataError;

/// Reads every part file of `dir` into one data set.
pub fn read_dir(dir: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
    let files = part_files(dir)?;
    if files.is_empty() {
        return Err(DataError::new(dir, "the directory holds no data files")
            .hint("names starting with `.` or `_` are skipped; add the part files"));
    }
    let mut parts: Vec<(PathBuf, Table)> = Vec::new();
    for f in files {
        if let Some(t) = super::read_table(&f, opts, &[])? {
            parts.push((f, t));
        }
    }
    let Some((first_path, first)) = parts.first() else {
        return Err(
            DataError::new(dir, "every part file in the directory is empty")
                .hint("point the channel at a directory with data"),
        );
    };
    let names: Vec<String> = first.names().iter().map(|s| s.to_string()).collect();
    for (p, t) in &parts[1..] {
        if t.names() != first.names() {
            return Err(DataError::new(
                p,
                format!(
                    "the columns differ from those of {}: {} here, {} there",
                    first_path.display(),
                    t.names().join(", "),
                    names.join(", ")
                ),
            )
            .hint("every part file must have the same columns in the same order"));
        }
    }
    let has_header = first.has_header;
    let text: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(j, _)| parts.iter().any(|(_, t)| t.columns[*j].is_categorical()))
        .map(|(_, n)| n.clone())
        .collect();
    let parts_paths: Vec<PathBuf> = parts.iter().map(|(p, _)| p.clone()).collect();
    let text_in: Vec<Vec<String>> = parts
        .iter()
        .map(|(_, t)| {
            t.columns
                .iter()
                .filter(|c| c.is_categorical())
                .map(|c| c.name.clone())
                .collect()
        })
        .collect();
    for (p, t) in &mut parts {
        let mixed = t
            .columns
            .iter()
            .find(|c| !c.is_categorical() && text.contains(&c.name));
        if let Some(c) = mixed {
            // Numbers here and text elsewhere: the same mix the CSV reader
            // refuses within one file (a column with no values here is fine).
            let by_text = matches!(opts.format, Format::Csv | Format::Jsonlines);
            if !by_text || c.values.iter().any(|v| !v.is_nan()) {
                let other = parts_text_file(&parts_paths, &text_in, &c.name);
                return Err(DataError::new(
                    p.as_path(),
                    format!(
                        "column `{}` holds numbers here but text in {}",
                        c.name,
                        other
                    ),
                )
                .hint("every part file must give a column the same type; declare the text that means missing (missing_values) or the column categorical (categorical)"));
            }
            if let Some(again) = super::read_table(p, opts, &text)? {
                *t = again;
            }
        }
    }
    let mut columns = Vec::with_capacity(names.len());
    for (j, name) in names.into_iter().enumerate() {
        let pieces: Vec<Column> = parts
            .iter_mut()
            .map(|(_, t)| std::mem::replace(&mut t.columns[j], Column::numeric("", Vec::new())))
            .collect();
        columns.push(append(name, pieces));
    }
    table::finish(
        dir,
        Table {
            columns,
            has_header,
        },
        opts,
    )
}

/// The first part file in which column `name` is text, for an error.
fn parts_text_file(paths: &[PathBuf], text_in: &[Vec<String>], name: &str) -> String {
    paths
        .iter()
        .zip(text_in)
        .find(|(_, t)| t.iter().any(|n| n == name))
        .map_or_else(
            || "another part".to_string(),
            |(p, _)| p.display().to_string(),
        )
}

/// The regular, non-hidden files of `dir`, in name order.
pub(super) fn part_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |e: std::io::Error| DataError::new(dir, format!("cannot list the directory: {e}"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let hidden = name
            .to_str()
            .is_none_or(|n| n.starts_with('.') || n.starts_with('_'));
        // Follows symbolic links, so a linked part file counts as a file.
        if !hidden && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Appends one column's parts; categorical codes are mapped to shared levels.
fn append(name: String, pieces: Vec<Column>) -> Column {
    let total = pieces.iter().map(|c| c.values.len()).sum();
    let mut values = Vec::with_capacity(total);
    if !pieces.iter().any(Column::is_categorical) {
        for p in pieces {
            values.extend_from_slice(&p.values);
        }
        return Column::numeric(name, values);
    }
    let mut levels: Vec<String> = Vec::new();
    let mut index: HashMap<String, f32> = HashMap::new();
    for p in pieces {
        let (local, codes) = match p.kind {
            ColumnKind::Categorical { levels } => (levels, p.values),
            // CSV parts are read again as text and other formats refuse the
            // mix, so this is a safety net: numbers become their own levels.
            ColumnKind::Numeric => as_levels(&p.values),
        };
        let remap: Vec<f32> = local
            .into_iter()
            .map(|l| {
                let next = levels.len() as f32;
                *index.entry(l).or_insert_with_key(|k| {
                    levels.push(k.clone());
                    next
                })
            })
            .collect();
        values.extend(
            codes
                .iter()
                .map(|&c| if c.is_nan() { c } else { remap[c as usize] }),
        );
    }
    Column::categorical(name, levels, values)
}

/// Numbers as categorical levels (each distinct value's text).
fn as_levels(values: &[f32]) -> (Vec<String>, Vec<f32>) {
    let mut levels: Vec<String> = Vec::new();
    let mut index: HashMap<u32, f32> = HashMap::new();
    let codes = values
        .iter()
        .map(|v| {
            if v.is_nan() {
                return f32::NAN;
            }
            let next = levels.len() as f32;
            *index.entry(v.to_bits()).or_insert_with(|| {
                levels.push(v.to_string());
                next
            })
        })
        .collect();
    (levels, codes)
}
