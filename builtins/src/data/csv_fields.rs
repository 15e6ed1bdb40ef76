//! The CSV tokenizer: one field, one record, one blank line at a time.
//!
//! Basic RFC 4180 quoting: a field that starts with `"` (after optional
//! spaces) runs to the next lone `"`, may hold delimiters and line breaks, and
//! writes a quote as `""`. Unquoted fields are trimmed of spaces. Lines end in
//! `\n` or `\r\n`. Every reader pass (header, numbers, levels, chunk bounds)
//! uses these functions, so they all agree on where a field starts and ends.

use std::borrow::Cow;

/// One field as found in the buffer.
#[derive(Debug)]
pub struct Field<'a> {
    /// The field's text: quotes removed and `""` unescaped, unquoted text trimmed.
    pub text: Cow<'a, [u8]>,
    /// Where the field ends: the delimiter, the line break, or the buffer end.
    pub end: usize,
    /// Line breaks inside the (quoted) field.
    pub newlines: u64,
}

/// A quoted field whose closing quote never comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unterminated;

/// True for the bytes that may follow a field.
#[inline]
pub fn is_field_end(next: Option<&u8>, delim: u8) -> bool {
    match next {
        None => true,
        Some(&c) => c == delim || c == b'\n' || c == b'\r',
    }
}

#[inline]
fn is_pad(c: u8, delim: u8) -> bool {
    c == b' ' || (c == b'\t' && delim != b'\t')
}

/// Reads the field starting at `pos`.
pub fn scan_field(buf: &[u8], pos: usize, delim: u8) -> Result<Field<'_>, Unterminated> {
    let mut i = pos;
    while i < buf.len() && is_pad(buf[i], delim) {
        i += 1;
    }
    if buf.get(i) != Some(&b'"') {
        let start = i;
        let end = match memchr::memchr3(delim, b'\n', b'\r', &buf[start..]) {
            Some(k) => start + k,
            None => buf.len(),
        };
        let mut stop = end;
        while stop > start && is_pad(buf[stop - 1], delim) {
            stop -= 1;
        }
        return Ok(Field {
            text: Cow::Borrowed(&buf[start..stop]),
            end,
            newlines: 0,
        });
    }
    let start = i + 1;
    let mut seg = start;
    let mut owned: Option<Vec<u8>> = None;
    let mut j = start;
    let close = loop {
        let q = match memchr::memchr(b'"', &buf[j..]) {
            Some(k) => j + k,
            None => return Err(Unterminated),
        };
        if buf.get(q + 1) == Some(&b'"') {
            owned
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&buf[seg..=q]);
            j = q + 2;
            seg = j;
        } else {
            break q;
        }
    };
    let newlines = memchr::memchr_iter(b'\n', &buf[start..close]).count() as u64;
    let mut text = match owned {
        Some(mut v) => {
            v.extend_from_slice(&buf[seg..close]);
            Cow::Owned(v)
        }
        None => Cow::Borrowed(&buf[start..close]),
    };
    // Text after the closing quote is not valid RFC 4180; like most readers,
    // keep it as part of the field rather than reject the file.
    let rest_start = close + 1;
    let end = match memchr::memchr3(delim, b'\n', b'\r', &buf[rest_start..]) {
        Some(k) => rest_start + k,
        None => buf.len(),
    };
    let rest = &buf[rest_start..end];
    if rest.iter().any(|&c| !is_pad(c, delim)) {
        let mut v = text.into_owned();
        v.extend_from_slice(rest.trim_ascii_end());
        text = Cow::Owned(v);
    }
    Ok(Field {
        text,
        end,
        newlines,
    })
}

/// When the line at `pos` holds nothing but spaces, where the next line starts.
#[inline]
pub fn blank_line_end(buf: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos;
    while i < buf.len() && (buf[i] == b' ' || buf[i] == b'\t') {
        i += 1;
    }
    match buf.get(i) {
        None => Some(i),
        Some(b'\n') => Some(i + 1),
        Some(b'\r') => Some(line_end(buf, i)),
        Some(_) => None,
    }
}

/// Skips the line break at `pos` (`\n`, `\r\n`, a lone `\r`, or the buffer end).
#[inline]
pub fn line_end(buf: &[u8], pos: usize) -> usize {
    match buf.get(pos) {
        Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => pos + 2,
        Some(b'\r') | Some(b'\n') => pos + 1,
        _ => pos,
    }
}

/// One whole record starting at `pos`.
pub struct Record<'a> {
    pub fields: Vec<Cow<'a, [u8]>>,
    /// Where the next record starts.
    pub next: usize,
    /// Line breaks the record spans (its own included, when it has one).
    pub lines: u64,
}

/// Reads every field of the record starting at `pos` (not a blank line).
pub fn scan_record(buf: &[u8], pos: usize, delim: u8) -> Result<Record<'_>, Unterminated> {
    let mut fields = Vec::new();
    let mut lines = 0;
    let mut i = pos;
    loop {
        let f = scan_field(buf, i, delim)?;
        fields.push(f.text);
        lines += f.newlines;
        if buf.get(f.end) == Some(&delim) {
            i = f.end + 1;
        } else {
            let next = line_end(buf, f.end);
            if next > f.end {
                lines += 1;
            }
            return Ok(Record {
                fields,
                next,
                lines,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(s: &str) -> Vec<String> {
        scan_record(s.as_bytes(), 0, b',')
            .unwrap()
            .fields
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn quoting_and_trimming() {
        assert_eq!(record("a, b ,c\n"), ["a", "b", "c"]);
        assert_eq!(
            record(r#""x,y","say ""hi""",z"#),
            ["x,y", r#"say "hi""#, "z"]
        );
        assert_eq!(record("\"two\nlines\",1\r\n"), ["two\nlines", "1"]);
        assert_eq!(record(",,\n"), ["", "", ""]);
        assert_eq!(record(r#""a"b,c"#), ["ab", "c"]);
    }

    #[test]
    fn record_reports_its_lines_and_end() {
        let buf = b"\"a\nb\",1\r\nnext";
        let r = scan_record(buf, 0, b',').unwrap();
        assert_eq!(r.lines, 2);
        assert_eq!(&buf[r.next..], b"next");
        assert_eq!(
            scan_record(b"\"open,1\n", 0, b',').err(),
            Some(Unterminated)
        );
    }

    #[test]
    fn blank_lines() {
        assert_eq!(blank_line_end(b"  \r\nx", 0), Some(4));
        assert_eq!(blank_line_end(b"\n", 0), Some(1));
        assert_eq!(blank_line_end(b"  ", 0), Some(2));
        assert_eq!(blank_line_end(b" x", 0), None);
    }
}
