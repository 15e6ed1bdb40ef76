//! The libsvm reader: `label index:value index:value ...`, one row a line.
//!
//! libsvm files are sparse: a feature not on a line is zero. Indices are
//! 1-based in the original tools but 0-based in some writers, so the base is
//! detected: any index 0 in the file means 0-based, otherwise 1-based. The
//! features become dense columns `f0, f1, ...` and the label the target
//! `label`. Text after `#` is a comment.

use std::path::Path;

use super::float;
use super::table::Table;
use crate::dataset::Column;
use crate::error::DataError;

/// Dense output larger than this many values is refused, not attempted.
const MAX_VALUES: usize = 1 << 30;

/// Reads libsvm `bytes` (the contents of `path`); `None` when there are no rows.
pub fn read_table(path: &Path, bytes: &[u8]) -> Result<Option<Table>, DataError> {
    let mut labels: Vec<f32> = Vec::new();
    let mut row_ends: Vec<usize> = Vec::new();
    let mut entries: Vec<(u32, f32)> = Vec::new();
    let mut max_index = 0u32;
    let mut zero_based = false;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let content = match memchr::memchr(b'#', raw) {
            Some(k) => &raw[..k],
            None => raw,
        };
        let mut tokens = content
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let Some(label) = tokens.next() else { continue };
        let err = |col: u64, msg: String| DataError::new(path, msg).at(line, Some(col));
        let label_value = float::parse_field(label).ok_or_else(|| {
            err(1, format!("the label `{}` is not a number", lossy(label)))
                .hint("each line starts with one numeric label, then index:value pairs")
        })?;
        labels.push(label_value);
        let row_start = entries.len();
        for (k, tok) in tokens.enumerate() {
            let col = k as u64 + 2;
            let Some(colon) = memchr::memchr(b':', tok) else {
                return Err(err(col, format!("`{}` is not index:value", lossy(tok)))
                    .hint("write each feature as index:value, separated by spaces"));
            };
            let (idx, val) = (&tok[..colon], &tok[colon + 1..]);
            if idx == b"qid" {
                return Err(err(col, "query ids (`qid:`) are not supported".to_string())
                    .hint("remove the qid field; ranking data is not read from libsvm"));
            }
            let index = std::str::from_utf8(idx)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| {
                    err(
                        col,
                        format!("the index `{}` is not a whole number", lossy(idx)),
                    )
                    .hint("feature indices are 0 or more, e.g. `3:0.5`")
                })?;
            let value = match super::missing::classify(val, &super::missing::Missing::Usual) {
                super::missing::FieldValue::Number(v) => v,
                super::missing::FieldValue::Missing if !val.is_empty() => f32::NAN,
                _ => {
                    return Err(
                        err(col, format!("the value `{}` is not a number", lossy(val)))
                            .hint("write each feature as index:value with a numeric value"),
                    );
                }
            };
            // Writers emit ascending indices; only a step back needs the full look.
            let ascending = entries.len() == row_start || entries[entries.len() - 1].0 < index;
            if !ascending && entries[row_start..].iter().any(|&(j, _)| j == index) {
                return Err(err(col, format!("index {index} appears twice on the line"))
                    .hint("give each feature once per line"));
            }
            zero_based |= index == 0;
            max_index = max_index.max(index);
            entries.push((index, value));
        }
        row_ends.push(entries.len());
    }
    if labels.is_empty() {
        return Ok(None);
    }
    let n_features = if entries.is_empty() {
        0
    } else if zero_based {
        max_index as usize + 1
    } else {
        max_index as usize
    };
    if n_features.saturating_mul(labels.len()) > MAX_VALUES {
        return Err(DataError::new(
            path,
            format!(
                "{} rows x {n_features} features is too large to hold densely",
                labels.len()
            ),
        )
        .hint("reduce the feature indices (the highest index sets the column count)"));
    }
    let mut columns: Vec<Vec<f32>> = vec![vec![0.0; labels.len()]; n_features];
    let mut start = 0;
    for (row, &end) in row_ends.iter().enumerate() {
        for &(index, value) in &entries[start..end] {
            let j = if zero_based { index } else { index - 1 } as usize;
            columns[j][row] = value;
        }
        start = end;
    }
    let mut out = vec![Column::numeric("label", labels)];
    out.extend(
        columns
            .into_iter()
            .enumerate()
            .map(|(j, v)| Column::numeric(format!("f{j}"), v)),
    );
    Ok(Some(Table {
        columns: out,
        has_header: false,
    }))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Option<Table>, DataError> {
        read_table(Path::new("t.libsvm"), s.as_bytes())
    }

    #[test]
    fn one_based_by_default() {
        let t = read("1 1:0.5 3:2\n# comment\n0 2:1e-3 # trailing\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(t.names(), ["label", "f0", "f1", "f2"]);
        assert_eq!(t.columns[0].values, [1.0, 0.0]);
        assert_eq!(t.columns[1].values, [0.5, 0.0]);
        assert_eq!(t.columns[2].values, [0.0, 0.001]);
        assert_eq!(t.columns[3].values, [2.0, 0.0]);
    }

    #[test]
    fn zero_based_when_index_zero_appears() {
        let t = read("1 0:1 2:3\r\n0 1:4\r\n").unwrap().unwrap();
        assert_eq!(t.names(), ["label", "f0", "f1", "f2"]);
        assert_eq!(t.columns[1].values, [1.0, 0.0]);
        assert_eq!(t.columns[2].values, [0.0, 4.0]);
    }

    #[test]
    fn bad_tokens_name_line_and_field() {
        let e = read("1 1:2\n0 1:2 x\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(3)));
        let e = read("a 1:2\n").unwrap_err();
        assert!(e.message.contains("label `a`"), "{e}");
        let e = read("1 1:2 1:3\n").unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = read("1 -1:2\n").unwrap_err();
        assert!(e.message.contains("index `-1`"), "{e}");
        assert!(read("\n# only a comment\n").unwrap().is_none());
    }
}
