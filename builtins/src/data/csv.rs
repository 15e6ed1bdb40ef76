//! The CSV reader: header, parallel number pass, level pass, columns.
//!
//! The body is cut at record starts into a few pieces a thread
//! ([`super::csv_chunks`]); each piece is parsed straight into per-column
//! `f32` buffers ([`super::csv_numbers`]); columns in which some field is text
//! are read again for their levels ([`super::csv_levels`]); the pieces'
//! buffers are then joined column by column. Line numbers in errors are
//! counted per piece and added up in file order, so they are exact.

use std::path::Path;

use rayon::prelude::*;

use super::ReadOptions;
use super::csv_chunks;
use super::csv_fields::{Unterminated, blank_line_end, scan_record};
use super::csv_levels::{self, LocalLevels};
use super::csv_numbers::{NumberPiece, PieceFailure, Problem, parse_piece};
use super::missing::Missing;
use super::table::Table;
use crate::dataset::Column;
use crate::error::DataError;

/// Pieces below this size are not worth a thread.
const MIN_PIECE: usize = 256 * 1024;

/// Reads CSV `bytes` (the contents of `path`) into columns.
///
/// `None` when the file holds nothing but blank lines. Columns named in
/// `force_text` are categorical even when every value is a number (used when
/// the part files of one data set disagree).
pub fn read_table(
    path: &Path,
    bytes: &[u8],
    opts: &ReadOptions,
    force_text: &[String],
) -> Result<Option<Table>, DataError> {
    read_table_in(path, bytes, opts, force_text, MIN_PIECE)
}

fn read_table_in(
    path: &Path,
    bytes: &[u8],
    opts: &ReadOptions,
    force_text: &[String],
    min_piece: usize,
) -> Result<Option<Table>, DataError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let delim = opts.delimiter;
    let mut pos = 0;
    let mut line = 0u64;
    while pos < bytes.len() {
        match blank_line_end(bytes, pos) {
            Some(next) => {
                pos = next;
                line += 1;
            }
            None => break,
        }
    }
    if pos >= bytes.len() {
        return Ok(None);
    }
    let first = scan_record(bytes, pos, delim).map_err(|Unterminated| {
        DataError::new(path, "a quoted field is never closed")
            .at(line + 1, None)
            .hint("close the quote with `\"`; write a quote inside a quoted field as `\"\"`")
    })?;
    let n_cols = first.fields.len();
    let (names, body_start, body_line) = if opts.header {
        (header_names(&first.fields), first.next, line + first.lines)
    } else {
        if opts.label_size > n_cols {
            return Err(DataError::new(
                path,
                format!(
                    "label_size is {} but the first line has only {n_cols} fields",
                    opts.label_size
                ),
            )
            .at(line + 1, None));
        }
        (super::headerless_names(n_cols, opts.label_size), pos, line)
    };
    let body = &bytes[body_start..];
    check_utf8(path, bytes, body_start)?;
    let pieces_wanted = (rayon::current_num_threads() * 4).min(body.len() / min_piece + 1);
    let ranges = csv_chunks::split(body, pieces_wanted, delim);
    let all_numeric = !opts.header;
    let missing = &opts.missing;
    let results: Vec<Result<NumberPiece, PieceFailure>> = ranges
        .par_iter()
        .map(|r| parse_piece(&body[r.clone()], delim, n_cols, all_numeric, missing))
        .collect();
    let mut pieces = Vec::with_capacity(results.len());
    let mut piece_lines = Vec::with_capacity(results.len());
    let mut offset = body_line;
    for r in results {
        match r {
            Ok(p) => {
                piece_lines.push(offset);
                offset += p.lines;
                pieces.push(p);
            }
            Err(f) => return Err(piece_error(path, &names, opts, offset + f.line + 1, f)),
        }
    }
    let declared = |j: usize| opts.categorical.contains(&names[j]);
    check_mixed(path, &names, &pieces, &piece_lines, opts, &declared)?;
    let text: Vec<bool> = (0..n_cols)
        .map(|j| pieces.iter().any(|p| p.text[j]) || force_text.contains(&names[j]) || declared(j))
        .collect();
    let numeric_missing = missing.numbers();
    if !numeric_missing.is_empty() {
        for p in &mut pieces {
            for (j, col) in p.columns.iter_mut().enumerate() {
                if !text[j] {
                    col.iter_mut()
                        .filter(|v| numeric_missing.contains(v))
                        .for_each(|v| *v = f32::NAN);
                }
            }
        }
    }
    let mut levels = if text.iter().any(|&t| t) {
        categorical_columns(path, body, &ranges, delim, &text, missing)?
    } else {
        (0..n_cols).map(|_| None).collect()
    };
    // Each column takes its pieces' buffers, so they are freed as it is
    // joined: the peak stays near one copy of the data, not two.
    let mut per_column: Vec<Vec<Vec<f32>>> = (0..n_cols)
        .map(|_| Vec::with_capacity(pieces.len()))
        .collect();
    for piece in pieces {
        for (j, buf) in piece.columns.into_iter().enumerate() {
            per_column[j].push(buf);
        }
    }
    let numeric: Vec<Option<Vec<f32>>> = per_column
        .into_par_iter()
        .enumerate()
        .map(|(j, bufs)| (!text[j]).then(|| join(bufs)))
        .collect();
    let declared_cols: Vec<bool> = (0..n_cols).map(declared).collect();
    let columns = names
        .into_iter()
        .zip(numeric)
        .zip(levels.iter_mut())
        .zip(declared_cols)
        .map(
            |(((name, values), cat), declared)| match (values, cat.take()) {
                (Some(v), _) => Column::numeric(name, v),
                (None, Some((levels, codes))) => match timestamp_seconds(&levels, declared) {
                    Some(seconds) => Column::numeric(
                        name,
                        codes
                            .iter()
                            .map(|&c| if c.is_nan() { c } else { seconds[c as usize] })
                            .collect(),
                    ),
                    None => Column::categorical(name, levels, codes),
                },
                (None, None) => Column::numeric(name, Vec::new()),
            },
        )
        .collect();
    Ok(Some(Table {
        columns,
        has_header: opts.header,
    }))
}

/// Fails on bytes that are not UTF-8, naming the byte offset and line: text
/// cells would otherwise become levels with replacement characters.
fn check_utf8(path: &Path, bytes: &[u8], body_start: usize) -> Result<(), DataError> {
    if let Err(e) = std::str::from_utf8(&bytes[..body_start]) {
        return Err(utf8_error(path, bytes, e.valid_up_to()));
    }
    let body = &bytes[body_start..];
    // In parallel over fixed blocks; a block boundary inside a character is
    // retried from the block's start with the next block joined on.
    const BLOCK: usize = 1 << 22;
    let bad = (0..body.len().div_ceil(BLOCK))
        .into_par_iter()
        .find_map_first(|b| {
            let mut start = b * BLOCK;
            // The tail of a character begun in the block before (checked there).
            if b > 0 {
                let lead = body[start..]
                    .iter()
                    .take(3)
                    .take_while(|&&c| c & 0xC0 == 0x80);
                start += lead.count();
            }
            let end = (start + BLOCK).min(body.len());
            match std::str::from_utf8(&body[start..end]) {
                Ok(_) => None,
                Err(e) if e.error_len().is_none() && end < body.len() => {
                    // A character cut by the block's end: check it whole.
                    let to = (end + 4).min(body.len());
                    std::str::from_utf8(&body[start + e.valid_up_to()..to])
                        .err()
                        .filter(|e2| e2.valid_up_to() < end - start - e.valid_up_to())
                        .map(|e2| start + e.valid_up_to() + e2.valid_up_to())
                }
                Err(e) => Some(start + e.valid_up_to()),
            }
        });
    match bad {
        Some(offset) => Err(utf8_error(path, bytes, body_start + offset)),
        None => Ok(()),
    }
}

fn utf8_error(path: &Path, bytes: &[u8], offset: usize) -> DataError {
    let line = memchr::memchr_iter(b'\n', &bytes[..offset]).count() as u64 + 1;
    let shown: Vec<String> = bytes[offset..(offset + 4).min(bytes.len())]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    DataError::new(
        path,
        format!(
            "the bytes at byte offset {offset} (from the start of the file) are not UTF-8 (starting {})",
            shown.join(" ")
        ),
    )
    .at(line, None)
    .hint("save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")
}

/// Column names from a header record's fields (`columnN` for an empty one).
pub fn header_names(fields: &[std::borrow::Cow<'_, [u8]>]) -> Vec<String> {
    fields
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let name = String::from_utf8_lossy(f.trim_ascii()).into_owned();
            if name.is_empty() {
                format!("column{}", j + 1)
            } else {
                name
            }
        })
        .collect()
}

/// A text column whose every value is an ISO 8601 date or date-time is a
/// time, not a category of every distinct instant: its values become seconds
/// since 1970-01-01 UTC (as `f32`, so to about two minutes for present-day
/// dates). A column declared categorical stays text.
fn timestamp_seconds(levels: &[String], declared: bool) -> Option<Vec<f32>> {
    if declared || levels.is_empty() {
        return None;
    }
    // A quick look at the first level rules out most text columns at once.
    let looks_like_a_date = |l: &str| {
        let b = l.as_bytes();
        b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
    };
    if !looks_like_a_date(&levels[0]) {
        return None;
    }
    levels
        .iter()
        .map(|l| {
            if !looks_like_a_date(l) {
                return None;
            }
            crate::split::timestamp::parse(l).map(|ns| (ns as f64 / 1e9) as f32)
        })
        .collect()
}

fn join(mut bufs: Vec<Vec<f32>>) -> Vec<f32> {
    if bufs.len() == 1 {
        return bufs.pop().unwrap_or_default();
    }
    let total = bufs.iter().map(Vec::len).sum();
    let mut v = Vec::with_capacity(total);
    for b in bufs {
        v.extend_from_slice(&b);
    }
    v
}

type Levels = Option<(Vec<String>, Vec<f32>)>;

fn categorical_columns(
    path: &Path,
    body: &[u8],
    ranges: &[std::ops::Range<usize>],
    delim: u8,
    text: &[bool],
    missing: &Missing,
) -> Result<Vec<Levels>, DataError> {
    let locals: Vec<Vec<Option<LocalLevels<'_>>>> = ranges
        .par_iter()
        .map(|r| csv_levels::collect_piece(&body[r.clone()], delim, text, missing))
        .collect();
    let mut per_column: Vec<Vec<LocalLevels<'_>>> = text.iter().map(|_| Vec::new()).collect();
    for piece in locals {
        for (j, l) in piece.into_iter().enumerate() {
            if let Some(l) = l {
                per_column[j].push(l);
            }
        }
    }
    per_column
        .into_par_iter()
        .enumerate()
        .map(|(j, pieces)| {
            if !text[j] {
                return Ok(None);
            }
            csv_levels::merge(pieces).map(Some).map_err(|_| {
                DataError::new(
                    path,
                    format!(
                        "column {} has more than {} distinct values",
                        j + 1,
                        csv_levels::MAX_LEVELS
                    ),
                )
                .hint("a column of text with this many values cannot be a category; drop it or encode it as numbers")
            })
        })
        .collect()
}

/// Fails on a column that holds both numbers and text, unless it is declared
/// categorical: one stray cell (`n/a?`) would otherwise turn a numeric column
/// into a category of every distinct number. Names the first text cell.
fn check_mixed(
    path: &Path,
    names: &[String],
    pieces: &[NumberPiece],
    piece_lines: &[u64],
    opts: &ReadOptions,
    declared: &dyn Fn(usize) -> bool,
) -> Result<(), DataError> {
    for (j, name) in names.iter().enumerate() {
        if declared(j) {
            continue;
        }
        let Some((k, (line, text))) = pieces
            .iter()
            .enumerate()
            .find_map(|(k, p)| p.first_text[j].as_ref().map(|t| (k, t)))
        else {
            continue;
        };
        let mut row = 0usize;
        let first_number = pieces.iter().find_map(|p| {
            let found = p.columns[j].iter().position(|v| !v.is_nan());
            match found {
                Some(i) => Some(row + i + 1),
                None => {
                    row += p.columns[j].len();
                    None
                }
            }
        });
        let Some(number_row) = first_number else {
            continue;
        };
        let shown: String = text.chars().take(40).collect();
        let listed = match &opts.missing {
            super::missing::Missing::Usual => format!("missing_values: [\"{shown}\", \"\"]"),
            super::missing::Missing::Listed(l) => {
                let mut all: Vec<String> = l
                    .iter()
                    .map(|m| format!("{:?}", String::from_utf8_lossy(m)))
                    .collect();
                all.push(format!("{shown:?}"));
                format!("missing_values: [{}]", all.join(", "))
            }
        };
        return Err(DataError::new(
            path,
            format!(
                "column `{}`: `{shown}` is not a number, but the column holds numbers (the first in data row {number_row})",
                name
            ),
        )
        .at(piece_lines[k] + line + 1, Some(j as u64 + 1))
        .hint(format!(
            "if `{shown}` means a missing value, declare it on the input ({listed}); if the column is a category, declare it (categorical: [{}])",
            name
        )));
    }
    Ok(())
}

fn piece_error(
    path: &Path,
    names: &[String],
    opts: &ReadOptions,
    line: u64,
    f: PieceFailure,
) -> DataError {
    let column = f.field.map(|j| j as u64 + 1);
    let named = |msg: String| match (opts.header, f.field) {
        (true, Some(j)) => format!("column `{}`: {msg}", names[j]),
        _ => msg,
    };
    match f.problem {
        Problem::FieldCount { expected, found } => {
            let hint = if opts.header {
                format!(
                    "the header names {expected} columns, so every line needs {expected} fields; \
                     quote values that contain the delimiter"
                )
            } else {
                format!(
                    "the first line has {expected} fields, so every line needs {expected}; \
                     quote values that contain the delimiter"
                )
            };
            DataError::new(path, format!("expected {expected} fields, found {found}"))
                .at(line, None)
                .hint(hint)
        }
        Problem::NotANumber(text) => {
            let shown: String = text.chars().take(40).collect();
            DataError::new(path, named(format!("`{shown}` is not a number")))
                .at(line, column)
                .hint(
                    "headerless (SageMaker-style) CSV must hold only numbers, with missing values \
                     left empty; if the first line names the columns, set `header: true`",
                )
        }
        Problem::NotFinite(text) => {
            let shown: String = text.chars().take(40).collect();
            DataError::new(
                path,
                named(format!(
                    "`{shown}` is infinite or beyond the range of 32-bit floats (about 3.4e38)"
                )),
            )
            .at(line, column)
            .hint("write a finite number, or leave the cell empty to mark it missing")
        }
        Problem::UnterminatedQuote => {
            DataError::new(path, named("a quoted field is never closed".to_string()))
                .at(line, column)
                .hint("close the quote with `\"`; write a quote inside a quoted field as `\"\"`")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ColumnKind;

    fn table(text: &str, opts: &ReadOptions) -> Result<Option<Table>, DataError> {
        read_table(Path::new("t.csv"), text.as_bytes(), opts, &[])
    }

    #[test]
    fn header_quotes_crlf_and_categories() {
        let t = table(
            "\u{feff}a,\"b\",c\r\n1,x,\"2\"\r\n,\"y,z\",3\r\n4,x,NA\r\n\r\n",
            &ReadOptions::csv_with_header(None),
        )
        .unwrap()
        .unwrap();
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(t.columns[0].values[0], 1.0);
        assert!(t.columns[0].values[1].is_nan());
        assert_eq!(
            t.columns[1].kind,
            ColumnKind::Categorical {
                levels: vec!["x".into(), "y,z".into()]
            }
        );
        assert_eq!(t.columns[1].values, [0.0, 1.0, 0.0]);
        assert_eq!(t.columns[2].values[..2], [2.0, 3.0]);
    }

    #[test]
    fn a_text_cell_in_a_numeric_column_is_refused_unless_declared() {
        let text = "id,x,y\n1,0.5,a\n2,,b\n\n3,n/a?,a\n4,2.5,b\n";
        let e = table(text, &ReadOptions::csv_with_header(None))
            .err()
            .unwrap();
        assert_eq!((e.line, e.column), (Some(5), Some(2)), "{e}");
        assert!(
            e.message.contains("column `x`: `n/a?` is not a number, but the column holds numbers (the first in data row 1)"),
            "{e}"
        );
        assert!(e.hint.unwrap().contains("missing_values: [\"n/a?\", \"\"]"));
        // Declared missing: a gap in a numeric column.
        let mut opts = ReadOptions::csv_with_header(None);
        opts.missing = Missing::listed(&["n/a?", ""]);
        let t = table(text, &opts).unwrap().unwrap();
        assert!(!t.columns[1].is_categorical());
        assert!(t.columns[1].values[2].is_nan());
        // Declared categorical: every text is a level, numbers included.
        let mut opts = ReadOptions::csv_with_header(None);
        opts.categorical = vec!["x".to_string()];
        let t = table(text, &opts).unwrap().unwrap();
        assert_eq!(t.columns[1].levels().unwrap(), ["0.5", "n/a?", "2.5"]);
        // The same in a column of text with one number: the text cell is named.
        let e = table("a,b\nx,1\n7,2\n", &ReadOptions::csv_with_header(None))
            .err()
            .unwrap();
        assert_eq!((e.line, e.column), (Some(2), Some(1)), "{e}");
        // A whole column of text is a category, as before.
        let t = table("a,b\nx,1\ny,2\n", &ReadOptions::csv_with_header(None))
            .unwrap()
            .unwrap();
        assert!(t.columns[0].is_categorical());
    }

    #[test]
    fn listed_numbers_and_the_usual_spellings_under_a_declared_list() {
        let mut opts = ReadOptions::csv_with_header(None);
        opts.missing = Missing::listed(&["-999", ""]);
        let t = table("a,b\n-999,1\n2,\n", &opts).unwrap().unwrap();
        assert!(t.columns[0].values[0].is_nan());
        assert_eq!(t.columns[0].values[1], 2.0);
        assert!(t.columns[1].values[1].is_nan());
        // `NA` is not in the declared list, so it is text among numbers.
        let e = table("a\n1\nNA\n", &opts).err().unwrap();
        assert!(e.message.contains("`NA` is not a number"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_reported_with_its_byte_offset() {
        table(
            "a,b\n1,caf\u{e9}\n2,x\n",
            &ReadOptions::csv_with_header(None),
        )
        .unwrap();
        let bytes = b"a,b\n1,ok\n2,caf\xe9\n";
        let e = read_table(
            Path::new("t.csv"),
            bytes,
            &ReadOptions::csv_with_header(None),
            &[],
        )
        .err()
        .unwrap();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("byte offset 14"), "{e}");
        // Across a block boundary of the parallel check.
        let mut big = b"a,b\n".to_vec();
        while big.len() < (1 << 22) - 1 {
            big.extend_from_slice(b"1,x\n");
        }
        big.truncate((1 << 22) + 4 - 1);
        big.extend_from_slice("\u{e9}\n".as_bytes());
        let body_start = 4;
        assert!(check_utf8(Path::new("t.csv"), &big, body_start).is_ok());
        let n = big.len();
        big[n - 2] = 0xff;
        let e = check_utf8(Path::new("t.csv"), &big, body_start).unwrap_err();
        assert!(e.message.contains(&format!("byte offset {}", n - 3)), "{e}");
    }

    #[test]
    fn iso_timestamps_become_seconds_not_levels() {
        let t = table(
            "when,x\n2024-03-01,1\n2024-03-01T12:00:00Z,2\n,3\n2024-03-02 00:00:00+01:00,4\n",
            &ReadOptions::csv_with_header(None),
        )
        .unwrap()
        .unwrap();
        let c = &t.columns[0];
        assert!(!c.is_categorical());
        assert_eq!(c.values[0], 1_709_251_200.0);
        assert_eq!(c.values[1], (1_709_251_200.0f64 + 43_200.0) as f32);
        assert!(c.values[2].is_nan());
        assert_eq!(
            c.values[3],
            (1_709_251_200.0f64 + 86_400.0 - 3_600.0) as f32
        );
        // One value that is not a date keeps the column text; declared, it stays text.
        let t = table(
            "when\n2024-03-01\nsoon\n",
            &ReadOptions::csv_with_header(None),
        )
        .unwrap()
        .unwrap();
        assert!(t.columns[0].is_categorical());
        let mut opts = ReadOptions::csv_with_header(None);
        opts.categorical = vec!["when".to_string()];
        let t = table("when\n2024-03-01\n", &opts).unwrap().unwrap();
        assert!(t.columns[0].is_categorical());
    }

    #[test]
    fn infinite_and_out_of_range_numbers_are_errors() {
        for cell in ["inf", "-Infinity", "1e39", "-4e38"] {
            let e = table(
                &format!("a,b\n1,2\n3,{cell}\n"),
                &ReadOptions::csv_with_header(None),
            )
            .err()
            .unwrap();
            assert_eq!((e.line, e.column), (Some(3), Some(2)), "{cell}: {e}");
            assert!(e.message.contains("is infinite or beyond the range"), "{e}");
        }
        let e = table("1,inf\n", &ReadOptions::sagemaker_csv(1))
            .err()
            .unwrap();
        assert!(e.message.contains("infinite"), "{e}");
    }

    #[test]
    fn forced_text_turns_numbers_into_levels() {
        let t = read_table(
            Path::new("t.csv"),
            b"a,b\n1,2\n1.0,3\n1,4",
            &ReadOptions::csv_with_header(None),
            &["a".to_string()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.columns[0].levels().unwrap(), ["1", "1.0"]);
        assert_eq!(t.columns[0].values, [0.0, 1.0, 0.0]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = table("1,2\n3,4\n5,x\n", &ReadOptions::sagemaker_csv(1))
            .err()
            .unwrap();
        assert_eq!((e.line, e.column), (Some(3), Some(2)));
        assert!(e.message.contains("`x` is not a number"), "{e}");
        let e = table(
            "a,b\n1,2\n\"multi\nline\",3\n4\n",
            &ReadOptions::csv_with_header(None),
        )
        .err()
        .unwrap();
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("expected 2 fields, found 1"), "{e}");
        let e = table("a,b\n1,\"open\n", &ReadOptions::csv_with_header(None))
            .err()
            .unwrap();
        assert_eq!((e.line, e.column), (Some(2), Some(2)));
        assert!(e.message.contains("column `b`"), "{e}");
    }

    #[test]
    fn blank_only_is_none_and_header_only_has_no_rows() {
        assert!(
            table("\n \n", &ReadOptions::sagemaker_csv(0))
                .unwrap()
                .is_none()
        );
        let t = table("a,b\n", &ReadOptions::csv_with_header(None))
            .unwrap()
            .unwrap();
        assert_eq!(t.columns.len(), 2);
        assert!(t.columns[0].values.is_empty());
    }

    #[test]
    fn same_result_for_any_piece_count() {
        let mut text = String::from("k,v,q\n");
        for i in 0..20_000 {
            let q = if i % 13 == 0 { "\"a\nb\"" } else { "\"c\"" };
            text.push_str(&format!("c{},{}.5,{q}\n", (i * 7919) % 97, i));
        }
        let opts = ReadOptions::csv_with_header(None);
        let run = |threads: usize, min_piece: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| read_table_in(Path::new("t"), text.as_bytes(), &opts, &[], min_piece))
                .unwrap()
                .unwrap()
        };
        let one = run(1, MIN_PIECE);
        assert_eq!(one.columns[0].levels().unwrap().len(), 97);
        assert_eq!(one.columns[2].levels().unwrap(), ["a\nb", "c"]);
        assert_eq!(one.columns[1].values[19_999], 19_999.5);
        for (threads, min_piece) in [(2, 1000), (4, 64), (3, 7)] {
            assert_eq!(one.columns, run(threads, min_piece).columns);
        }
    }
}
