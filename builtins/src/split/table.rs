//! A CSV input held as raw lines, so a split writes every row exactly as it
//! was read (numbers are never re-printed, quoting is never changed).
//!
//! An input is a file or a directory of files (read in name order, hidden
//! files skipped) that all start with the same header. Blank lines are
//! skipped, as the data reader skips them; line endings become `\n` on
//! output. Records and fields are found by a quote-aware scan, so a quoted
//! field may hold commas and line breaks, and `\n`, `\r\n` and a lone `\r`
//! all end a line: the same records the data reader (and `inspect`) sees.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{BuiltinError, DataError};
use crate::hyperparams::closest;

/// One data row: where it is and which bytes of its file it covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub file: u32,
    /// 1-based line in its file.
    pub line: u64,
    pub start: usize,
    pub end: usize,
}

/// The rows of one input.
#[derive(Debug)]
pub(crate) struct Table {
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
    texts: Vec<String>,
    /// The header line as written (without its line ending).
    pub header: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, BuiltinError> {
        let files = list_files(path)?;
        let mut t = Table {
            path: path.to_path_buf(),
            files: Vec::new(),
            texts: Vec::new(),
            header: String::new(),
            columns: Vec::new(),
            rows: Vec::new(),
        };
        for file in files {
            check_format(&file)?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| DataError::new(&file, format!("cannot read: {e}")))?;
            let index = t.files.len() as u32;
            let mut header_seen = false;
            for (n, start, end) in records(&text) {
                let line = &text[start..end];
                if line.trim().is_empty() {
                    continue;
                }
                if !header_seen {
                    header_seen = true;
                    let line = line.trim_start_matches('\u{feff}');
                    if t.files.is_empty() {
                        t.header = line.to_string();
                        t.columns = split_fields(line)
                            .into_iter()
                            .map(|f| unquote(f).to_string())
                            .collect();
                    } else if line != t.header {
                        return Err(DataError::new(
                            &file,
                            format!(
                                "the header differs from the first file's ({})",
                                t.files[0].display()
                            ),
                        )
                        .at(n, None)
                        .hint("every file of an input must start with the same header line")
                        .into());
                    }
                    continue;
                }
                t.rows.push(Row {
                    file: index,
                    line: n,
                    start,
                    end,
                });
            }
            let first_new = t
                .rows
                .iter()
                .position(|r| r.file == index)
                .unwrap_or(t.rows.len());
            // Field counts are checked in parallel; the first bad row is reported.
            let bad = t.rows[first_new..]
                .par_iter()
                .position_first(|r| field_bounds(&text[r.start..r.end]).count() != t.columns.len());
            if let Some(i) = bad {
                let r = t.rows[first_new + i];
                let found = field_bounds(&text[r.start..r.end]).count();
                return Err(DataError::new(
                    &file,
                    format!("expected {} fields, found {found}", t.columns.len()),
                )
                .at(r.line, None)
                .into());
            }
            if !header_seen {
                return Err(DataError::new(&file, "the file is empty")
                    .hint("a split needs a header line naming the columns")
                    .into());
            }
            t.files.push(file);
            t.texts.push(text);
        }
        Ok(t)
    }

    /// A 64-bit hash of every row's line, computed in parallel (equal lines,
    /// equal hashes; a shared hash does not prove equal lines).
    pub fn line_hashes(&self) -> Vec<u64> {
        self.rows
            .par_iter()
            .map(|r| hash_line(self.line(r)))
            .collect()
    }

    pub fn line(&self, row: &Row) -> &str {
        &self.texts[row.file as usize][row.start..row.end]
    }

    pub fn file_of(&self, row: &Row) -> &Path {
        &self.files[row.file as usize]
    }

    /// The index of column `name`, or an error that lists the columns and suggests one.
    pub fn column(&self, name: &str, role: &str) -> Result<usize, BuiltinError> {
        if let Some(i) = self.columns.iter().position(|c| c == name) {
            return Ok(i);
        }
        let first = self
            .files
            .first()
            .map_or(self.path.as_path(), |p| p.as_path());
        let err =
            DataError::new(first, format!("no column named `{name}` for the {role}")).at(1, None);
        Err(
            match closest(name, self.columns.iter().map(String::as_str)) {
                Some(c) => err.hint(format!("did you mean `{c}`?")),
                None => err.hint(format!("the columns are: {}", self.columns.join(", "))),
            }
            .into(),
        )
    }

    /// Field `col` of `row`, trimmed and unquoted.
    pub fn field(&self, row: &Row, col: usize) -> &str {
        field_of_line(self.line(row), col)
    }
}

fn list_files(path: &Path) -> Result<Vec<PathBuf>, BuiltinError> {
    let meta =
        std::fs::metadata(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| DataError::new(path, format!("cannot list the directory: {e}")))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::new(path, "the directory holds no data files").into());
    }
    Ok(files)
}

fn check_format(file: &Path) -> Result<(), BuiltinError> {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = match ext.as_str() {
        "parquet" | "pq" => "parquet",
        "libsvm" | "svm" => "libsvm",
        "rec" | "recordio" => "RecordIO-protobuf",
        "jsonl" | "jsonlines" => "JSON Lines",
        _ => return Ok(()),
    };
    Err(DataError::new(
        file,
        format!("a split cannot write {format} files yet; it splits CSV files with a header"),
    )
    .hint("convert the input to CSV, or split it with a `command` step")
    .into())
}

/// Byte ranges of the comma-separated fields of `line`; commas inside double
/// quotes do not separate.
fn field_bounds(line: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = line.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut quoted = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < bytes.len() {
            match bytes[i] {
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    let f = (start, i);
                    i += 1;
                    start = i;
                    return Some(f);
                }
                _ => {}
            }
            i += 1;
        }
        done = true;
        Some((start, bytes.len()))
    })
}

/// A fast 64-bit hash of a line: a multiply-rotate step per 8 bytes and a
/// final avalanche. Not for adversaries, only for grouping equal lines.
pub(crate) fn hash_line(line: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let bytes = line.as_bytes();
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ v).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

pub(crate) fn split_fields(line: &str) -> Vec<&str> {
    field_bounds(line).map(|(a, b)| &line[a..b]).collect()
}

/// Field `col` of a data line, trimmed and unquoted (empty when it has no such field).
pub(crate) fn field_of_line(line: &str, col: usize) -> &str {
    nth_field(line, col).map_or("", unquote)
}

fn nth_field(line: &str, n: usize) -> Option<&str> {
    field_bounds(line).nth(n).map(|(a, b)| &line[a..b])
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    if f.len() >= 2 && f.starts_with('"') && f.ends_with('"') {
        &f[1..f.len() - 1]
    } else {
        f
    }
}

/// The records of a CSV text as `(first line, start, end)`, the end before
/// the line ending: a record ends at a line break outside quotes, so a quoted
/// field may hold line breaks, and `\n`, `\r\n` and a lone `\r` all end a
/// line, as the data reader reads them.
fn records(text: &str) -> Vec<(u64, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut pos, mut line) = (0usize, 1u64);
    while pos < b.len() {
        let (start, first_line) = (pos, line);
        let mut quoted = false;
        let mut i = pos;
        let end = loop {
            let Some(k) = memchr::memchr3(b'"', b'\n', b'\r', &b[i..]) else {
                pos = b.len();
                break b.len();
            };
            let at = i + k;
            let crlf = b[at] == b'\r' && b.get(at + 1) == Some(&b'\n');
            let next = at + if crlf { 2 } else { 1 };
            match b[at] {
                b'"' => quoted = !quoted,
                _ if quoted => line += 1,
                _ => {
                    line += 1;
                    pos = next;
                    break at;
                }
            }
            i = next;
        };
        out.push((first_line, start, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_commas_do_not_split() {
        assert_eq!(split_fields(r#"a,"b,c",d"#), ["a", r#""b,c""#, "d"]);
        assert_eq!(split_fields("a,,"), ["a", "", ""]);
        assert_eq!(nth_field(" x , \"y\" ", 1).map(unquote), Some("y"));
    }

    #[test]
    fn reads_rows_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("split-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.csv");
        std::fs::write(&p, "\u{feff}id,name\r\n1,\"x, y\"\r\n\r\n2,z\r\n").unwrap();
        let t = Table::read(&p).unwrap();
        assert_eq!(t.columns, ["id", "name"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.line(&t.rows[0]), "1,\"x, y\"");
        assert_eq!(t.field(&t.rows[0], 1), "x, y");
        assert_eq!(t.rows[1].line, 4);
        let e = t.column("nme", "group").unwrap_err().to_string();
        assert!(e.contains("did you mean `name`"), "{e}");
        std::fs::write(&p, "id,name\n1,2,3\n").unwrap();
        let e = Table::read(&p).unwrap_err().to_string();
        assert!(e.contains("a.csv:2: expected 2 fields, found 3"), "{e}");
        // Quoted line breaks and lone-CR line endings: records as the data reader sees them.
        std::fs::write(&p, "id,note\r1,\"two\nlines\"\r2,b\r").unwrap();
        let t = Table::read(&p).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.field(&t.rows[0], 1), "two\nlines");
        assert_eq!((t.rows[0].line, t.rows[1].line), (2, 4));
        let ds = crate::data::read(&p, &crate::data::ReadOptions::csv_with_header(None)).unwrap();
        assert_eq!(ds.n_rows(), t.rows.len());
        let pq = dir.join("b.parquet");
        std::fs::write(&pq, "x").unwrap();
        assert!(
            Table::read(&pq)
                .unwrap_err()
                .to_string()
                .contains("parquet")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
