//! Second CSV pass: codes for the categorical columns.
//!
//! Each piece numbers its own distinct values in order of first appearance;
//! the pieces are then merged in file order, so a level's global code is its
//! rank of first appearance in the whole file, whatever the number of pieces
//! or threads.

use std::borrow::Cow;

use foldhash::HashMap;

use super::csv_fields::{blank_line_end, scan_record};
use super::missing::Missing;

/// Distinct values of one column in one piece, and the piece's codes into them.
pub struct LocalLevels<'a> {
    pub levels: Vec<Cow<'a, [u8]>>,
    /// Index into `levels`, or `NaN` when missing.
    pub codes: Vec<f32>,
}

/// A column's lookup from value to local code, beside the levels it builds.
type Collector<'a> = (HashMap<Cow<'a, [u8]>, u32>, LocalLevels<'a>);

/// Collects levels for the columns flagged in `wanted` (the piece is known to be valid).
pub fn collect_piece<'a>(
    buf: &'a [u8],
    delim: u8,
    wanted: &[bool],
    missing: &Missing,
) -> Vec<Option<LocalLevels<'a>>> {
    let mut maps: Vec<Option<Collector<'a>>> = wanted
        .iter()
        .map(|&w| {
            w.then(|| {
                (
                    HashMap::default(),
                    LocalLevels {
                        levels: Vec::new(),
                        codes: Vec::new(),
                    },
                )
            })
        })
        .collect();
    let mut pos = 0;
    while pos < buf.len() {
        if let Some(next) = blank_line_end(buf, pos) {
            pos = next;
            continue;
        }
        // The first pass already checked every record, so this cannot fail;
        // stop quietly rather than panic if it somehow does.
        let Ok(record) = scan_record(buf, pos, delim) else {
            break;
        };
        for (slot, field) in maps.iter_mut().zip(record.fields) {
            let Some((map, local)) = slot else { continue };
            let field = trim_cow(field);
            if missing.is_missing(&field) {
                local.codes.push(f32::NAN);
                continue;
            }
            let next_code = local.levels.len() as u32;
            let code = *map.entry(field).or_insert_with_key(|k| {
                local.levels.push(k.clone());
                next_code
            });
            local.codes.push(code as f32);
        }
        pos = record.next;
    }
    maps.into_iter().map(|m| m.map(|(_, l)| l)).collect()
}

fn trim_cow(c: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    match c {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim_ascii()),
        Cow::Owned(v) if v.trim_ascii().len() == v.len() => Cow::Owned(v),
        Cow::Owned(v) => Cow::Owned(v.trim_ascii().to_vec()),
    }
}

/// The most levels a column may have: codes are `f32` and must stay exact.
pub const MAX_LEVELS: usize = 1 << 24;

/// Too many distinct values to code exactly.
#[derive(Debug)]
pub struct TooManyLevels;

/// Merges one column's pieces, in file order, into global levels and codes.
pub fn merge(pieces: Vec<LocalLevels<'_>>) -> Result<(Vec<String>, Vec<f32>), TooManyLevels> {
    let total: usize = pieces.iter().map(|p| p.codes.len()).sum();
    let mut index: HashMap<Vec<u8>, u32> = HashMap::default();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut codes = Vec::with_capacity(total);
    for piece in pieces {
        let mut remap = Vec::with_capacity(piece.levels.len());
        for level in piece.levels {
            let next = levels.len() as u32;
            let code = match index.get(level.as_ref()) {
                Some(&c) => c,
                None => {
                    let owned = level.into_owned();
                    levels.push(owned.clone());
                    index.insert(owned, next);
                    next
                }
            };
            remap.push(code as f32);
        }
        if levels.len() > MAX_LEVELS {
            return Err(TooManyLevels);
        }
        codes.extend(
            piece
                .codes
                .iter()
                .map(|&c| if c.is_nan() { c } else { remap[c as usize] }),
        );
    }
    let levels = levels
        .into_iter()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect();
    Ok((levels, codes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_first_appearance_across_pieces() {
        let a = b"b,1\na,2\n";
        let b = b"NA,3\nc,4\na,5\n";
        let pa = collect_piece(a, b',', &[true, false], &Missing::Usual)
            .remove(0)
            .unwrap();
        let pb = collect_piece(b, b',', &[true, false], &Missing::Usual)
            .remove(0)
            .unwrap();
        let (levels, codes) = merge(vec![pa, pb]).unwrap();
        assert_eq!(levels, ["b", "a", "c"]);
        assert_eq!(codes[..2], [0.0, 1.0]);
        assert!(codes[2].is_nan());
        assert_eq!(codes[3..], [2.0, 1.0]);
        let whole = collect_piece(
            b"b,1\na,2\nNA,3\nc,4\na,5\n",
            b',',
            &[true, false],
            &Missing::Usual,
        )
        .remove(0)
        .unwrap();
        let (levels2, codes2) = merge(vec![whole]).unwrap();
        assert_eq!(levels2, levels);
        assert_eq!(format!("{codes2:?}"), format!("{codes:?}"));
    }
}
