//! Cutting a CSV body into pieces that threads can parse on their own.
//!
//! A piece must start at the start of a record. Without any `"` in the file
//! every line break ends a record, so a cut goes after the first `\n` past each
//! target offset. With quotes, a line break inside a quoted field does not end
//! a record; one sequential pass that follows the same quoting rule as the
//! tokenizer (a quote opens a field only at its start) finds safe cuts.

use std::ops::Range;

/// Splits `buf` into at most `pieces` ranges that each start at a record start.
pub fn split(buf: &[u8], pieces: usize, delim: u8) -> Vec<Range<usize>> {
    let pieces = pieces.max(1);
    let step = buf.len().div_ceil(pieces).max(1);
    let mut cuts = vec![0];
    if memchr::memchr(b'"', buf).is_none() {
        let mut target = step;
        while target < buf.len() {
            let from = target.max(*cuts.last().unwrap_or(&0));
            match memchr::memchr(b'\n', &buf[from..]) {
                Some(k) if from + k + 1 < buf.len() => cuts.push(from + k + 1),
                _ => break,
            }
            target = cuts[cuts.len() - 1] + step;
        }
    } else {
        quoted_cuts(buf, step, delim, &mut cuts);
    }
    cuts.push(buf.len());
    cuts.dedup();
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

fn quoted_cuts(buf: &[u8], step: usize, delim: u8, cuts: &mut Vec<usize>) {
    let mut target = step;
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut i = 0;
    while i < buf.len() {
        let c = buf[i];
        if in_quotes {
            if c == b'"' {
                if buf.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else if c == delim {
            at_field_start = true;
        } else if c == b'\n' {
            at_field_start = true;
            if i + 1 >= target && i + 1 < buf.len() {
                cuts.push(i + 1);
                target = i + 1 + step;
            }
        } else if c == b'"' && at_field_start {
            in_quotes = true;
            at_field_start = false;
        } else if !(c == b' ' || c == b'\t' || c == b'\r') {
            at_field_start = false;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces<'a>(buf: &'a [u8], n: usize) -> Vec<&'a [u8]> {
        split(buf, n, b',').into_iter().map(|r| &buf[r]).collect()
    }

    #[test]
    fn cuts_after_line_breaks_and_covers_everything() {
        let buf = b"1,2\n3,4\n5,6\n7,8\n";
        let p = pieces(buf, 3);
        assert!(p.len() > 1);
        assert_eq!(p.concat(), buf);
        assert!(p.iter().all(|s| s.ends_with(b"\n")));
    }

    fn records(s: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < s.len() {
            let r = super::super::csv_fields::scan_record(s, pos, b',').unwrap();
            out.push(r.fields.iter().map(|f| f.to_vec()).collect());
            pos = r.next;
        }
        out
    }

    #[test]
    fn never_cuts_inside_a_quoted_field() {
        let buf = b"\"a\n\n\n\nb\",1\n\"c\",2\nx\"y,3\n\"d\ne\",4\n \"f\"\"\n\",5\n";
        let whole = records(buf);
        assert_eq!(whole.len(), 5);
        for n in 1..40 {
            let p = pieces(buf, n);
            assert_eq!(p.concat(), buf);
            let parts: Vec<_> = p.iter().flat_map(|s| records(s)).collect();
            assert_eq!(parts, whole, "{n} pieces");
        }
    }

    #[test]
    fn empty_input() {
        assert!(split(b"", 4, b',').is_empty());
    }
}
