//! The RecordIO-protobuf reader (`application/x-recordio-protobuf`), the
//! format SageMaker's own algorithms and its Python SDK's `record_set`
//! write.
//!
//! Framing is MXNet's RecordIO: each part of a record is a little-endian
//! `u32` magic (`0xced7230a`), a `u32` whose upper 3 bits say whether the
//! part is a whole record (0) or the start (1), a middle (2) or the end (3)
//! of one split into parts, and whose lower 29 bits are the part's length,
//! then the part's bytes padded with zeros to a multiple of 4. A record split
//! into parts is its parts joined with the magic between them (a writer
//! splits where the payload holds the magic, so a reader can find records by
//! it).
//!
//! Each record is the protobuf message `aialgs.data.Record`: a map of
//! feature tensors (field 1) and a map of label tensors (field 2), each
//! tensor a `Value` holding one of a `Float32Tensor` (2), `Float64Tensor`
//! (3), `Int32Tensor` (7) or `Bytes` (9). A tensor has `values` (1), and a
//! sparse one also `keys` (2, the column of each value) and `shape` (3, the
//! full width). The features are the tensor named `values` in the feature
//! map, the label the one named `values` in the label map (a scalar), which
//! unsupervised data leaves out. The decoder is written out by hand: the
//! schema is tiny, and a direct decode straight into columns is fast. Both
//! the packed and the unpacked encodings of repeated fields are read, and
//! unknown fields are skipped, as protobuf requires.
//!
//! The rows become the columns `label` (when the records have labels), then
//! `f0, f1, ...`, as headerless CSV and libsvm do; a sparse record's absent
//! columns are zero.

use std::borrow::Cow;
use std::path::Path;

use super::table::Table;
use crate::dataset::Column;
use crate::error::DataError;

/// The magic number starting every part of a record.
pub const MAGIC: u32 = 0xced7_230a;

/// Dense output larger than this many values is refused, not attempted.
const MAX_VALUES: u64 = 1 << 30;

/// The lower 29 bits of a part's second word: its length.
const LENGTH_MASK: u32 = (1 << 29) - 1;

/// Reads RecordIO-protobuf `bytes` (the contents of `path`); `None` when the
/// file holds no records.
///
/// Two passes: the first decodes and checks every record and measures the
/// data (rows, width, labels), so that its dense size is known, and refused
/// when too large, before anything is allocated for it (a sparse file's
/// rows of zeros cost it a few bytes each, and the dense columns 4 bytes a
/// column); the second decodes again, straight into the columns.
pub fn read_table(path: &Path, bytes: &[u8]) -> Result<Option<Table>, DataError> {
    let mut shape = Shape::default();
    each_record(path, bytes, |number, record| shape.check(number, record))?;
    if shape.rows == 0 {
        return Ok(None);
    }
    let width = shape.width();
    if width == 0 {
        return Err(DataError::new(path, "the records hold no features")
            .hint("write each record's features under `values` in its features map"));
    }
    if width.saturating_mul(shape.rows) > MAX_VALUES {
        return Err(DataError::new(
            path,
            format!(
                "{} rows x {width} features is too large to hold densely",
                shape.rows
            ),
        )
        .hint("reduce the feature width (a sparse tensor's shape or highest key sets it), or split the data"));
    }
    let rows = shape.rows as usize;
    let mut columns = vec![vec![0.0f32; rows]; width as usize];
    let mut labels = Vec::with_capacity(if shape.labelled == Some(true) {
        rows
    } else {
        0
    });
    // For each column, the last row (+1) that gave it a value: catches a
    // key given twice in one record.
    let mut seen = vec![0usize; width as usize];
    let mut row = 0usize;
    each_record(path, bytes, |_, record| {
        if let Some(label) = record.label {
            labels.push(label.values[0]);
        }
        let Some(features) = record.features else {
            return Ok(());
        };
        if features.keys.is_empty() {
            for (col, v) in columns.iter_mut().zip(features.values) {
                col[row] = v;
            }
        } else {
            for (&k, v) in features.keys.iter().zip(features.values) {
                let k = k as usize;
                if seen[k] == row + 1 {
                    return Err(bad(format!("its key {k} appears twice"))
                        .fix("give each column once per record"));
                }
                seen[k] = row + 1;
                columns[k][row] = v;
            }
        }
        row += 1;
        Ok(())
    })?;
    let mut out = Vec::with_capacity(columns.len() + 1);
    if shape.labelled == Some(true) {
        out.push(Column::numeric("label", labels));
    }
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

/// Calls `each` with every record of `bytes` and its 1-based number; errors
/// name the record and its byte offset.
fn each_record(
    path: &Path,
    bytes: &[u8],
    mut each: impl FnMut(u64, Record) -> Result<(), Bad>,
) -> Result<(), DataError> {
    let frames = Frames { bytes, pos: 0 };
    for (i, frame) in frames.enumerate() {
        let number = i as u64 + 1;
        let located = |offset: usize, what: String| {
            DataError::new(path, format!("record {number} (at byte {offset}): {what}"))
        };
        let (offset, payload) = frame.map_err(|(offset, bad)| {
            located(offset, bad.what).hint(bad.fix.unwrap_or(
                "the file is not whole RecordIO-protobuf; write it again, or set the channel's `format`",
            ))
        })?;
        let record = decode_record(&payload).map_err(|bad| {
            located(offset, bad.what).hint(bad.fix.unwrap_or(
                "the record is not an `aialgs.data.Record` message; write the file again (e.g. with sagemaker.amazon.common.write_numpy_to_dense_tensor)",
            ))
        })?;
        each(number, record).map_err(|bad| {
            let e = located(offset, bad.what);
            match bad.fix {
                Some(fix) => e.hint(fix),
                None => e,
            }
        })?;
    }
    Ok(())
}

/// What is wrong, and how to fix it when that is more than "write it again".
#[derive(Debug)]
struct Bad {
    what: String,
    fix: Option<&'static str>,
}

fn bad(what: impl Into<String>) -> Bad {
    Bad {
        what: what.into(),
        fix: None,
    }
}

impl Bad {
    fn fix(mut self, fix: &'static str) -> Bad {
        self.fix = Some(fix);
        self
    }
}

/// The records of a file, each its byte offset and its payload (the parts of
/// a split record joined).
struct Frames<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(usize, Cow<'a, [u8]>), (usize, Bad)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let mut joined: Option<Vec<u8>> = None;
        loop {
            let at = self.pos;
            let part = match self.part() {
                Ok(p) => p,
                Err(b) => {
                    self.pos = self.bytes.len();
                    return Some(Err((start, b)));
                }
            };
            let (flag, payload) = part;
            let fail = |this: &mut Self, b: Bad| {
                this.pos = this.bytes.len();
                Some(Err((start, b)))
            };
            match (flag, &mut joined) {
                (0, None) => return Some(Ok((start, Cow::Borrowed(payload)))),
                (1, None) => joined = Some(payload.to_vec()),
                (2 | 3, Some(v)) => {
                    v.extend_from_slice(&MAGIC.to_le_bytes());
                    v.extend_from_slice(payload);
                    if flag == 3 {
                        return Some(Ok((start, Cow::Owned(joined.take().unwrap_or_default()))));
                    }
                }
                (2 | 3, None) => {
                    return fail(
                        self,
                        bad(format!(
                            "the part at byte {at} continues a record (flag {flag}), but no record was started"
                        )),
                    );
                }
                (0 | 1, Some(_)) => {
                    return fail(
                        self,
                        bad(format!(
                            "the part at byte {at} starts a new record (flag {flag}) before the record split into parts ended"
                        )),
                    );
                }
                _ => {
                    return fail(
                        self,
                        bad(format!(
                            "the part at byte {at} has flag {flag}; RecordIO flags are 0 to 3"
                        )),
                    );
                }
            }
            if self.pos >= self.bytes.len() {
                return fail(
                    self,
                    bad(
                        "the file ends inside a record split into parts (its last part, flag 3, is missing)",
                    ),
                );
            }
        }
    }
}

impl<'a> Frames<'a> {
    /// One part: its flag and payload; moves past its padding.
    fn part(&mut self) -> Result<(u32, &'a [u8]), Bad> {
        let at = self.pos;
        let rest = &self.bytes[at..];
        if rest.len() < 8 {
            return Err(bad(format!(
                "the file ends {} bytes into a record header (a header is 8 bytes)",
                rest.len()
            ))
            .fix("the file is cut short; write it again"));
        }
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let magic = word(0);
        if magic != MAGIC {
            return Err(bad(format!(
                "bytes {at}..{} are {magic:#010x}, not the RecordIO magic number 0xced7230a",
                at + 4
            ))
            .fix("the file is not RecordIO-protobuf (or is cut or corrupt); check the channel's `format`/`content_type`"));
        }
        let head = word(4);
        let (flag, len) = (head >> 29, (head & LENGTH_MASK) as usize);
        let body = &rest[8..];
        if body.len() < len {
            return Err(bad(format!(
                "the record says it is {len} bytes long, but the file ends {} bytes into it",
                body.len()
            ))
            .fix("the file is cut short; write it again"));
        }
        let padded = len.div_ceil(4) * 4;
        // Padding missing at the very end of the file loses nothing.
        self.pos = (at + 8 + padded).min(self.bytes.len());
        Ok((flag, &body[..len]))
    }
}

/// The numbers of one tensor, converted to `f32` as they are decoded.
#[derive(Debug, Default, PartialEq)]
struct Tensor {
    values: Vec<f32>,
    keys: Vec<u64>,
    shape: Vec<u64>,
}

/// One decoded record: its feature tensor and its label tensor, if any.
#[derive(Debug, Default, PartialEq)]
struct Record {
    features: Option<Tensor>,
    label: Option<Tensor>,
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A cursor over protobuf bytes.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Wire { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self, what: &str) -> Result<u64, Bad> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(bad(format!("{what}: a varint runs past the end")));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!("{what}: a varint is longer than 10 bytes")))
    }

    /// The next field's number and wire type.
    fn key(&mut self, what: &str) -> Result<(u64, u8), Bad> {
        let k = self.varint(what)?;
        let field = k >> 3;
        if field == 0 {
            return Err(bad(format!("{what}: field number 0 is not valid")));
        }
        Ok((field, (k & 7) as u8))
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], Bad> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(format!(
                    "{what}: a field of {n} bytes runs past the end ({} bytes are left)",
                    self.buf.len() - self.pos
                ))
            })?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn len_delimited(&mut self, what: &str) -> Result<&'a [u8], Bad> {
        let n = self.varint(what)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.bytes(n, what)
    }

    /// Skips a field of wire type `wire` (an unknown field).
    fn skip(&mut self, wire: u8, what: &str) -> Result<(), Bad> {
        match wire {
            VARINT => self.varint(what).map(drop),
            I64 => self.bytes(8, what).map(drop),
            LEN => self.len_delimited(what).map(drop),
            I32 => self.bytes(4, what).map(drop),
            _ => Err(bad(format!(
                "{what}: wire type {wire} is not one this schema uses (groups are not supported)"
            ))),
        }
    }
}

fn decode_record(payload: &[u8]) -> Result<Record, Bad> {
    let mut w = Wire::new(payload);
    let mut record = Record::default();
    while !w.done() {
        let (field, wire) = w.key("the record")?;
        match (field, wire) {
            (1 | 2, LEN) => {
                let map = if field == 1 { "features" } else { "label" };
                let entry = w.len_delimited(map)?;
                let (name, tensor) = decode_entry(entry, map)?;
                if name != "values" {
                    return Err(bad(format!(
                        "the {map} map holds a tensor named `{}`; only `values` is read",
                        lossy(name.as_bytes())
                    ))
                    .fix("write the tensor under the name `values`, as SageMaker's writers do"));
                }
                let slot = if field == 1 {
                    &mut record.features
                } else {
                    &mut record.label
                };
                // A map key given twice: the last entry counts, as in protobuf.
                *slot = tensor;
            }
            (1 | 2, _) => {
                return Err(bad(format!(
                    "field {field} (a map) has wire type {wire}, not 2"
                )));
            }
            _ => w.skip(wire, "the record")?,
        }
    }
    Ok(record)
}

/// One map entry: its key and its `Value`'s tensor (`None` when the value
/// holds none).
fn decode_entry(entry: &[u8], map: &str) -> Result<(String, Option<Tensor>), Bad> {
    let mut w = Wire::new(entry);
    let mut key = String::new();
    let mut tensor = None;
    while !w.done() {
        let (field, wire) = w.key(map)?;
        match (field, wire) {
            (1, LEN) => {
                let b = w.len_delimited(map)?;
                key = std::str::from_utf8(b)
                    .map_err(|_| bad(format!("a key of the {map} map is not UTF-8 text")))?
                    .to_string();
            }
            (2, LEN) => tensor = decode_value(w.len_delimited(map)?, map)?,
            _ => w.skip(wire, map)?,
        }
    }
    Ok((key, tensor))
}

/// The tensor kinds of a `Value`.
#[derive(Clone, Copy)]
enum Kind {
    F32,
    F64,
    I32,
}

fn decode_value(value: &[u8], map: &str) -> Result<Option<Tensor>, Bad> {
    let mut w = Wire::new(value);
    let mut tensor = None;
    while !w.done() {
        let (field, wire) = w.key(map)?;
        let kind = match (field, wire) {
            (2, LEN) => Kind::F32,
            (3, LEN) => Kind::F64,
            (7, LEN) => Kind::I32,
            (9, LEN) => {
                return Err(bad(format!(
                    "the {map} tensor `values` holds bytes, not numbers"
                ))
                .fix("write the data as a Float32, Float64 or Int32 tensor"));
            }
            _ => {
                w.skip(wire, map)?;
                continue;
            }
        };
        // One of a oneof: the last one given counts.
        tensor = Some(decode_tensor(w.len_delimited(map)?, kind, map)?);
    }
    Ok(tensor)
}

fn decode_tensor(buf: &[u8], kind: Kind, map: &str) -> Result<Tensor, Bad> {
    let mut w = Wire::new(buf);
    let mut t = Tensor::default();
    let tensor = match kind {
        Kind::F32 => "float32",
        Kind::F64 => "float64",
        Kind::I32 => "int32",
    };
    let what = format!("the {map} {tensor} tensor");
    while !w.done() {
        let (field, wire) = w.key(&what)?;
        match (field, kind, wire) {
            (1, Kind::F32, LEN) => {
                let b = w.len_delimited(&what)?;
                if b.len() % 4 != 0 {
                    return Err(bad(format!(
                        "{what}: its packed values are {} bytes, not a multiple of 4",
                        b.len()
                    )));
                }
                t.values.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (1, Kind::F32, I32) => {
                let c = w.bytes(4, &what)?;
                t.values.push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
            (1, Kind::F64, LEN) => {
                let b = w.len_delimited(&what)?;
                if b.len() % 8 != 0 {
                    return Err(bad(format!(
                        "{what}: its packed values are {} bytes, not a multiple of 8",
                        b.len()
                    )));
                }
                t.values.extend(b.chunks_exact(8).map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                }));
            }
            (1, Kind::F64, I64) => {
                let c = w.bytes(8, &what)?;
                t.values.push(
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
                );
            }
            (1, Kind::I32, LEN) => {
                let mut p = Wire::new(w.len_delimited(&what)?);
                while !p.done() {
                    t.values.push(p.varint(&what)? as i32 as f32);
                }
            }
            (1, Kind::I32, VARINT) => t.values.push(w.varint(&what)? as i32 as f32),
            (2 | 3, _, LEN) => {
                let mut p = Wire::new(w.len_delimited(&what)?);
                let out = if field == 2 {
                    &mut t.keys
                } else {
                    &mut t.shape
                };
                while !p.done() {
                    out.push(p.varint(&what)?);
                }
            }
            (2, _, VARINT) => t.keys.push(w.varint(&what)?),
            (3, _, VARINT) => t.shape.push(w.varint(&what)?),
            (1..=3, _, _) => {
                return Err(bad(format!(
                    "{what}: field {field} has wire type {wire}, which does not fit its type"
                )));
            }
            _ => w.skip(wire, &what)?,
        }
    }
    Ok(t)
}

/// What the first pass learns of the records, checking each against the
/// ones before it.
#[derive(Default)]
struct Shape {
    rows: u64,
    /// Whether the records have labels (known from the first).
    labelled: Option<bool>,
    /// The width a record stated (a dense record's length or a sparse one's
    /// shape), and the record that stated it first.
    stated: Option<(u64, u64)>,
    /// One more than the highest key of a sparse record without a shape.
    keys: u64,
}

impl Shape {
    fn width(&self) -> u64 {
        self.stated.map_or(self.keys, |(w, _)| w)
    }

    fn check(&mut self, number: u64, record: Record) -> Result<(), Bad> {
        let Some(features) = record.features else {
            return Err(bad("it has no feature tensor (`values` in the features map)")
                .fix("every record needs its features under `values`, as SageMaker's writers put them"));
        };
        match (self.labelled, record.label.is_some()) {
            (None, has) => self.labelled = Some(has),
            (Some(true), false) => {
                return Err(
                    bad("it has no label, but the records before it have one").fix(
                        "give every record a label, or none (unsupervised algorithms: kmeans, pca)",
                    ),
                );
            }
            (Some(false), true) => {
                return Err(bad("it has a label, but the first record has none").fix(
                    "give every record a label, or none (unsupervised algorithms: kmeans, pca)",
                ));
            }
            _ => {}
        }
        if let Some(label) = &record.label
            && (!label.keys.is_empty() || label.values.len() != 1)
        {
            return Err(bad(format!(
                "its label tensor holds {} values{}; a record has one label",
                label.values.len(),
                if label.keys.is_empty() {
                    ""
                } else {
                    " (sparse)"
                }
            ))
            .fix("write one number as each record's label"));
        }
        // A sparse row of zeros has a shape but neither keys nor values.
        let sparse =
            !features.keys.is_empty() || (features.values.is_empty() && !features.shape.is_empty());
        if sparse && features.shape.len() > 1 {
            return Err(bad(format!(
                "its sparse feature tensor has the shape {:?}; a sparse record's shape is one number, its width",
                features.shape
            ))
            .fix("give sparse records the shape [WIDTH], as write_spmatrix_to_sparse_tensor does"));
        }
        if sparse && features.keys.len() != features.values.len() {
            return Err(bad(format!(
                "its sparse feature tensor has {} keys but {} values",
                features.keys.len(),
                features.values.len()
            ))
            .fix("give one key (column index) for every value"));
        }
        let stated = if features.shape.is_empty() {
            (!sparse).then_some(features.values.len() as u64)
        } else {
            let product = features
                .shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad("its feature tensor's shape is too large"))?;
            if !sparse && product != features.values.len() as u64 {
                return Err(bad(format!(
                    "its dense feature tensor has {} values, but its shape {:?} says {product}",
                    features.values.len(),
                    features.shape
                )));
            }
            Some(product)
        };
        match (stated, self.stated) {
            (Some(w), Some((first, at))) if w != first => {
                return Err(bad(format!(
                    "it has {w} features, but record {at} has {first}"
                ))
                .fix("every record needs the same number of features (a sparse record's shape is its width)"));
            }
            (Some(w), None) => {
                if self.keys > w {
                    return Err(bad(format!(
                        "it has {w} features, but earlier sparse records have keys up to {}",
                        self.keys - 1
                    ))
                    .fix("give every sparse record the shape of the full width"));
                }
                self.stated = Some((w, number));
            }
            _ => {}
        }
        if let Some(&key) = features.keys.iter().max() {
            if let Some((w, _)) = self.stated
                && key >= w
            {
                return Err(
                    bad(format!("its key {key} is outside the feature width {w}"))
                        .fix("keys are 0-based column indices below the tensor's shape"),
                );
            }
            self.keys = self.keys.max(key.saturating_add(1));
        }
        self.rows += 1;
        if self.width().saturating_mul(self.rows) > MAX_VALUES {
            return Err(bad(format!(
                "{} rows x {} features is too large to hold densely",
                self.rows,
                self.width()
            ))
            .fix("reduce the feature width (a sparse tensor's shape or highest key sets it), or split the data"));
        }
        Ok(())
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(40).collect()
}

/// Writers of hand-built records, for the tests here and elsewhere.
#[cfg(test)]
pub(crate) mod write {
    use super::MAGIC;

    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    pub fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// The numbers of a tensor, as its writer encodes them.
    pub enum Values<'a> {
        F32(&'a [f32]),
        F64(&'a [f64]),
        I32(&'a [i32]),
    }

    /// A `Value` holding a tensor, packed (as the SDK writes) or not.
    pub fn value(v: Values, keys: &[u64], shape: &[u64], packed: bool) -> Vec<u8> {
        let mut t = Vec::new();
        let kind = match v {
            Values::F32(xs) => {
                if packed {
                    let b: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
                    field(&mut t, 1, &b);
                } else {
                    for x in xs {
                        t.push(1 << 3 | 5);
                        t.extend_from_slice(&x.to_le_bytes());
                    }
                }
                2
            }
            Values::F64(xs) => {
                if packed {
                    let b: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
                    field(&mut t, 1, &b);
                } else {
                    for x in xs {
                        t.push(1 << 3 | 1);
                        t.extend_from_slice(&x.to_le_bytes());
                    }
                }
                3
            }
            Values::I32(xs) => {
                if packed {
                    let mut b = Vec::new();
                    for &x in xs {
                        varint(&mut b, x as i64 as u64);
                    }
                    field(&mut t, 1, &b);
                } else {
                    for &x in xs {
                        t.push(1 << 3);
                        varint(&mut t, x as i64 as u64);
                    }
                }
                7
            }
        };
        for (number, list) in [(2, keys), (3, shape)] {
            if list.is_empty() {
                continue;
            }
            if packed {
                let mut b = Vec::new();
                for &k in list {
                    varint(&mut b, k);
                }
                field(&mut t, number, &b);
            } else {
                for &k in list {
                    varint(&mut t, number << 3);
                    varint(&mut t, k);
                }
            }
        }
        let mut value = Vec::new();
        field(&mut value, kind, &t);
        value
    }

    /// A `Record` with `features` and, optionally, `label` under `values`.
    pub fn record(features: &[u8], label: Option<&[u8]>) -> Vec<u8> {
        let mut r = Vec::new();
        let entry = |value: &[u8]| {
            let mut e = Vec::new();
            field(&mut e, 1, b"values");
            field(&mut e, 2, value);
            e
        };
        field(&mut r, 1, &entry(features));
        if let Some(l) = label {
            field(&mut r, 2, &entry(l));
        }
        // An unknown string field, as `uid` is to this reader.
        field(&mut r, 3, b"row-id");
        r
    }

    /// One RecordIO part: header, payload, zero padding to 4 bytes.
    pub fn part(out: &mut Vec<u8>, flag: u32, payload: &[u8]) {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&(flag << 29 | payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }

    /// A whole record as MXNet's writer frames it: split into parts where
    /// the payload holds the magic at a 4-byte boundary.
    pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
        let magic = MAGIC.to_le_bytes();
        let cuts: Vec<usize> = (0..payload.len().saturating_sub(3))
            .step_by(4)
            .filter(|&i| payload[i..i + 4] == magic)
            .collect();
        if cuts.is_empty() {
            return part(out, 0, payload);
        }
        let mut start = 0;
        for (n, &c) in cuts.iter().enumerate() {
            part(out, if n == 0 { 1 } else { 2 }, &payload[start..c]);
            start = c + 4;
        }
        part(out, 3, &payload[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::write::{Values, frame, part, record, value};
    use super::*;

    fn read(bytes: &[u8]) -> Result<Option<Table>, DataError> {
        read_table(Path::new("t.rec"), bytes)
    }

    fn file(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            frame(&mut out, r);
        }
        out
    }

    fn values(t: &Table) -> Vec<(&str, Vec<f32>)> {
        t.columns
            .iter()
            .map(|c| (c.name.as_str(), c.values.clone()))
            .collect()
    }

    #[test]
    fn dense_f32_f64_i32_with_labels_packed_and_not() {
        for packed in [true, false] {
            let recs = vec![
                record(
                    &value(Values::F32(&[1.5, -2.0, 0.25]), &[], &[], packed),
                    Some(&value(Values::F32(&[1.0]), &[], &[], packed)),
                ),
                record(
                    &value(Values::F64(&[0.1, 1e10, -3.0]), &[], &[], packed),
                    Some(&value(Values::F64(&[0.0]), &[], &[], packed)),
                ),
                record(
                    &value(Values::I32(&[-7, 0, 2_000_000]), &[], &[], packed),
                    Some(&value(Values::I32(&[-1]), &[], &[], packed)),
                ),
            ];
            let t = read(&file(&recs)).unwrap().unwrap();
            assert!(!t.has_header);
            assert_eq!(
                values(&t),
                [
                    ("label", vec![1.0, 0.0, -1.0]),
                    ("f0", vec![1.5, 0.1, -7.0]),
                    ("f1", vec![-2.0, 1e10, 0.0]),
                    ("f2", vec![0.25, -3.0, 2e6]),
                ],
                "packed {packed}"
            );
        }
    }

    #[test]
    fn sparse_records_with_a_shape_and_without_a_label() {
        let recs = vec![
            record(&value(Values::F32(&[2.0, 3.0]), &[0, 3], &[5], true), None),
            record(&value(Values::F32(&[]), &[], &[5], true), None),
            record(&value(Values::F32(&[4.0]), &[2], &[5], false), None),
            // Unsorted keys are fine.
            record(&value(Values::F32(&[6.0, 5.0]), &[1, 0], &[5], true), None),
        ];
        let t = read(&file(&recs)).unwrap().unwrap();
        assert_eq!(
            values(&t),
            [
                ("f0", vec![2.0, 0.0, 0.0, 5.0]),
                ("f1", vec![0.0, 0.0, 0.0, 6.0]),
                ("f2", vec![0.0, 0.0, 4.0, 0.0]),
                ("f3", vec![3.0, 0.0, 0.0, 0.0]),
                ("f4", vec![0.0; 4]),
            ]
        );
        // Without a shape, the highest key sets the width.
        let recs = vec![
            record(&value(Values::F32(&[1.0]), &[0], &[], true), None),
            record(&value(Values::F32(&[2.0]), &[2], &[], true), None),
        ];
        let t = read(&file(&recs)).unwrap().unwrap();
        assert_eq!(t.names(), ["f0", "f1", "f2"]);
        assert_eq!(t.columns[2].values, [0.0, 2.0]);
    }

    #[test]
    fn records_split_into_parts_are_joined_with_the_magic() {
        // Features whose bytes hold the magic at a 4-byte boundary of the
        // payload: the writer splits there, the reader puts it back.
        let magic = f32::from_bits(MAGIC);
        let mut found = None;
        for n in 1..8 {
            let xs: Vec<f32> = std::iter::repeat_n(1.0, n)
                .chain([magic, 2.0, magic, 3.0])
                .collect();
            let r = record(&value(Values::F32(&xs), &[], &[], true), None);
            let mut out = Vec::new();
            frame(&mut out, &r);
            let parts = out
                .chunks_exact(4)
                .filter(|c| *c == MAGIC.to_le_bytes())
                .count();
            if parts > 1 {
                found = Some((xs, out));
                break;
            }
        }
        let (xs, bytes) = found.expect("a payload with the magic at a boundary");
        let t = read(&bytes).unwrap().unwrap();
        let got: Vec<u32> = t.columns.iter().map(|c| c.values[0].to_bits()).collect();
        let want: Vec<u32> = xs.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn padding_is_skipped_and_may_be_missing_at_the_end() {
        let r = (1..4)
            .map(|n| record(&value(Values::I32(&vec![1; n]), &[], &[], true), None))
            .find(|r| r.len() % 4 != 0)
            .expect("a payload that needs padding");
        let mut bytes = file(&[r.clone(), r.clone()]);
        assert_eq!(bytes.len() % 4, 0);
        let t = read(&bytes).unwrap().unwrap();
        assert_eq!(t.n_rows(), 2);
        assert!(t.columns.iter().all(|c| c.values == [1.0, 1.0]));
        bytes.truncate(bytes.len() - (4 - r.len() % 4));
        assert_eq!(read(&bytes).unwrap().unwrap().n_rows(), 2);
        assert!(read(b"").unwrap().is_none());
    }

    fn err(bytes: &[u8]) -> String {
        read(bytes).unwrap_err().to_string()
    }

    #[test]
    fn malformed_files_name_the_record_and_what_is_wrong() {
        let good = record(
            &value(Values::F32(&[1.0, 2.0]), &[], &[], true),
            Some(&value(Values::F32(&[1.0]), &[], &[], true)),
        );
        let two = file(&[good.clone(), good.clone()]);
        // Truncated inside the second record's payload.
        let e = err(&two[..two.len() - 8]);
        assert!(e.starts_with("t.rec: record 2 (at byte "), "{e}");
        assert!(
            e.contains("the file ends") && e.contains("cut short"),
            "{e}"
        );
        // Truncated inside a header.
        let e = err(&two[..two.len() / 2 + 3]);
        assert!(e.contains("record 2") && e.contains("record header"), "{e}");
        // Bad magic.
        let mut bad_magic = two.clone();
        bad_magic[0] ^= 1;
        let e = err(&bad_magic);
        assert!(
            e.contains("record 1 (at byte 0)") && e.contains("magic"),
            "{e}"
        );
        // A varint that never ends.
        let mut r = Vec::new();
        part(&mut r, 0, &[0x0a, 0xff, 0xff, 0xff]);
        let e = err(&r);
        assert!(
            e.contains("record 1") && e.contains("varint runs past"),
            "{e}"
        );
        let mut r = Vec::new();
        part(
            &mut r,
            0,
            &[0x0a; 1]
                .iter()
                .chain(&[0xff; 11])
                .copied()
                .collect::<Vec<_>>(),
        );
        assert!(err(&r).contains("longer than 10 bytes"));
        // A length past the end of the record.
        let mut r = Vec::new();
        part(&mut r, 0, &[0x0a, 0x40, 1, 2]);
        assert!(err(&r).contains("runs past the end"), "{}", err(&r));
        // Continuation flags out of order.
        let mut r = Vec::new();
        part(&mut r, 2, &good);
        assert!(err(&r).contains("no record was started"), "{}", err(&r));
        let mut r = Vec::new();
        part(&mut r, 1, &good);
        assert!(
            err(&r).contains("ends inside a record split"),
            "{}",
            err(&r)
        );
        let mut r = Vec::new();
        part(&mut r, 1, &good);
        part(&mut r, 0, &good);
        assert!(err(&r).contains("before the record split"), "{}", err(&r));
        // A packed float field that is not whole floats.
        let mut t = Vec::new();
        super::write::field(&mut t, 1, &[0, 0, 0]);
        let mut v = Vec::new();
        super::write::field(&mut v, 2, &t);
        let mut r = Vec::new();
        part(&mut r, 0, &record(&v, None));
        assert!(err(&r).contains("not a multiple of 4"), "{}", err(&r));
    }

    #[test]
    fn inconsistent_records_are_refused() {
        let dense = |xs: &[f32], label: Option<f32>| {
            let l = label.map(|l| value(Values::F32(&[l]), &[], &[], true));
            record(&value(Values::F32(xs), &[], &[], true), l.as_deref())
        };
        let e = err(&file(&[dense(&[1.0, 2.0], None), dense(&[1.0], None)]));
        assert!(
            e.contains("record 2") && e.contains("1 features, but record 1 has 2"),
            "{e}"
        );
        let e = err(&file(&[dense(&[1.0], Some(1.0)), dense(&[1.0], None)]));
        assert!(e.contains("record 2") && e.contains("no label"), "{e}");
        let e = err(&file(&[dense(&[1.0], None), dense(&[1.0], Some(0.0))]));
        assert!(e.contains("record 2") && e.contains("has a label"), "{e}");
        let two_labels = record(
            &value(Values::F32(&[1.0]), &[], &[], true),
            Some(&value(Values::F32(&[1.0, 2.0]), &[], &[], true)),
        );
        assert!(err(&file(&[two_labels])).contains("holds 2 values"));
        let sparse = |keys: &[u64], shape: &[u64]| {
            let xs = vec![1.0; keys.len()];
            record(&value(Values::F32(&xs), keys, shape, true), None)
        };
        let e = err(&file(&[sparse(&[0, 4], &[3])]));
        assert!(e.contains("key 4 is outside the feature width 3"), "{e}");
        let e = err(&file(&[sparse(&[1, 1], &[3])]));
        assert!(e.contains("key 1 appears twice"), "{e}");
        let e = err(&file(&[sparse(&[1 << 40], &[])]));
        assert!(e.contains("too large"), "{e}");
        let e = err(&file(&[sparse(&[1], &[2, 3])]));
        assert!(e.contains("shape is one number"), "{e}");
        // Rows of zeros of a wide shape: small on disk, refused before they
        // fill memory.
        let wide = sparse(&[], &[1 << 25]);
        let e = err(&file(&vec![wide; 40]));
        assert!(e.contains("record 33") && e.contains("too large"), "{e}");
        let e = err(&file(&[record(&[], None)]));
        assert!(e.contains("no feature tensor"), "{e}");
        let mut named = Vec::new();
        let mut entry = Vec::new();
        super::write::field(&mut entry, 1, b"other");
        super::write::field(&mut entry, 2, &value(Values::F32(&[1.0]), &[], &[], true));
        super::write::field(&mut named, 1, &entry);
        let e = err(&file(&[named]));
        assert!(e.contains("named `other`"), "{e}");
    }

    /// Every prefix of a good file, and the file with any one byte changed,
    /// reads as data or as an error: never a panic.
    #[test]
    fn cut_and_corrupted_files_never_panic() {
        let recs = vec![
            record(
                &value(Values::F32(&[1.0, 2.0]), &[], &[], true),
                Some(&value(Values::F32(&[1.0]), &[], &[], true)),
            ),
            record(
                &value(Values::F64(&[3.0]), &[1], &[2], false),
                Some(&value(Values::I32(&[0]), &[], &[], false)),
            ),
        ];
        let bytes = file(&recs);
        for n in 0..bytes.len() {
            let _ = read(&bytes[..n]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = read(&b);
            }
        }
    }
}
