//! First CSV pass over one piece: every field into its column's `f32` buffer.
//!
//! This is the hot loop. A field is first tried as a number straight from the
//! buffer (no allocation, no UTF-8 check); only when that fails is it cut out
//! as a field and classified as missing, a number in an unusual spelling, or
//! text. Text marks the column as categorical; its codes come from the second
//! pass ([`super::csv_levels`]), which reads only those columns again.

use super::csv_fields::{Unterminated, blank_line_end, is_field_end, line_end, scan_field};
use super::float;
use super::missing::{FieldValue, Missing, classify};

/// The columns of one piece.
pub struct NumberPiece {
    /// One buffer a column; `NaN` for missing values and for text.
    pub columns: Vec<Vec<f32>>,
    /// Columns in which some field is text.
    pub text: Vec<bool>,
    /// For each column, its first text field in the piece: the 0-based line
    /// in the piece and the text.
    pub first_text: Vec<Option<(u64, String)>>,
    /// Line breaks in the piece, to number the lines of later pieces.
    pub lines: u64,
}

/// What went wrong, and where in the piece (0-based line, 0-based field).
#[derive(Debug, Clone, PartialEq)]
pub struct PieceFailure {
    pub line: u64,
    pub field: Option<usize>,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    FieldCount {
        expected: usize,
        found: usize,
    },
    NotANumber(String),
    /// `inf`, or beyond the range of 32-bit floats.
    NotFinite(String),
    UnterminatedQuote,
}

/// Parses every record of `buf` (which holds whole records) into `n_cols` columns.
///
/// With `all_numeric`, text is an error (headerless SageMaker-style CSV).
pub fn parse_piece(
    buf: &[u8],
    delim: u8,
    n_cols: usize,
    all_numeric: bool,
    missing: &Missing,
) -> Result<NumberPiece, PieceFailure> {
    let capacity = memchr::memchr_iter(b'\n', buf).count() + 1;
    let mut columns: Vec<Vec<f32>> = (0..n_cols).map(|_| Vec::with_capacity(capacity)).collect();
    let mut text = vec![false; n_cols];
    let mut first_text: Vec<Option<(u64, String)>> = vec![None; n_cols];
    let mut pos = 0;
    let mut line = 0u64;
    let n = buf.len();
    while pos < n {
        if matches!(buf[pos], b' ' | b'\t' | b'\r' | b'\n')
            && let Some(next) = blank_line_end(buf, pos)
        {
            pos = next;
            line += 1;
            continue;
        }
        let record_start = pos;
        let record_line = line;
        for (j, column) in columns.iter_mut().enumerate() {
            let fail = |problem| PieceFailure {
                line: record_line,
                field: Some(j),
                problem,
            };
            let (value, end) = match float::parse_prefix(&buf[pos..]) {
                Some((v, len)) if is_field_end(buf.get(pos + len), delim) => (v, pos + len),
                _ => {
                    let f = scan_field(buf, pos, delim)
                        .map_err(|Unterminated| fail(Problem::UnterminatedQuote))?;
                    line += f.newlines;
                    let v = match classify(&f.text, missing) {
                        FieldValue::Number(v) => v,
                        FieldValue::Missing => f32::NAN,
                        FieldValue::Infinite => {
                            return Err(fail(Problem::NotFinite(
                                String::from_utf8_lossy(f.text.trim_ascii()).into_owned(),
                            )));
                        }
                        FieldValue::Text if all_numeric => {
                            return Err(fail(Problem::NotANumber(
                                String::from_utf8_lossy(&f.text).into_owned(),
                            )));
                        }
                        FieldValue::Text => {
                            if !text[j] {
                                text[j] = true;
                                first_text[j] = Some((
                                    record_line,
                                    String::from_utf8_lossy(f.text.trim_ascii()).into_owned(),
                                ));
                            }
                            f32::NAN
                        }
                    };
                    (v, f.end)
                }
            };
            column.push(value);
            let last = j + 1 == n_cols;
            if buf.get(end) == Some(&delim) {
                if last {
                    let found = count_fields(buf, record_start, delim)
                        .map_err(|Unterminated| fail(Problem::UnterminatedQuote))?;
                    return Err(PieceFailure {
                        line: record_line,
                        field: None,
                        problem: Problem::FieldCount {
                            expected: n_cols,
                            found,
                        },
                    });
                }
                pos = end + 1;
            } else {
                if !last {
                    return Err(PieceFailure {
                        line: record_line,
                        field: None,
                        problem: Problem::FieldCount {
                            expected: n_cols,
                            found: j + 1,
                        },
                    });
                }
                pos = line_end(buf, end);
            }
        }
        line += 1;
    }
    Ok(NumberPiece {
        columns,
        text,
        first_text,
        lines: line,
    })
}

/// How many fields the record at `pos` has.
pub fn count_fields(buf: &[u8], pos: usize, delim: u8) -> Result<usize, Unterminated> {
    super::csv_fields::scan_record(buf, pos, delim).map(|r| r.fields.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_missing_and_text() {
        let p = parse_piece(
            b"1,NA,x\n\n2.5,,\"y\"\r\n  \n-3e2,4,5",
            b',',
            3,
            false,
            &Missing::Usual,
        )
        .unwrap();
        assert_eq!(p.columns[0], [1.0, 2.5, -300.0]);
        assert!(p.columns[1][0].is_nan() && p.columns[1][1].is_nan());
        assert_eq!(p.columns[1][2], 4.0);
        assert_eq!(p.text, [false, false, true]);
        assert_eq!(p.lines, 5);
    }

    #[test]
    fn wrong_field_counts_name_the_line() {
        let e = parse_piece(b"1,2\n3\n", b',', 2, false, &Missing::Usual)
            .err()
            .unwrap();
        assert_eq!(e.line, 1);
        assert_eq!(
            e.problem,
            Problem::FieldCount {
                expected: 2,
                found: 1
            }
        );
        let e = parse_piece(b"1,2\n\"a\nb\",2\n3,4,5\n", b',', 2, false, &Missing::Usual)
            .err()
            .unwrap();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.problem,
            Problem::FieldCount {
                expected: 2,
                found: 3
            }
        );
    }

    #[test]
    fn text_in_an_all_numeric_file_is_an_error() {
        let e = parse_piece(b"1,2\n3,abc\n", b',', 2, true, &Missing::Usual)
            .err()
            .unwrap();
        assert_eq!((e.line, e.field), (1, Some(1)));
        assert_eq!(e.problem, Problem::NotANumber("abc".into()));
    }
}
