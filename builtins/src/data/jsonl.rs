//! The JSON Lines reader (`application/jsonlines`): one JSON object a line.
//!
//! Two shapes, told apart by the first object:
//!
//! - SageMaker's built-in-algorithm shape, `{"features": [1.5, 2, ...],
//!   "label": 0}` (the label left out for unsupervised data): the columns
//!   are `label`, then `f0, f1, ...`, as for headerless CSV.
//! - An object of named columns, `{"x1": 1.0, "x2": "a", "y": 0}`, read as a
//!   CSV with a header is: the columns are the keys in order of first
//!   appearance (a key a line leaves out, and `null`, are missing values);
//!   numbers are numbers, strings are cell texts as in a CSV file (`"3.5"`
//!   a number, `"NA"` missing, other text makes the column categorical, with
//!   levels in order of first appearance), `true`/`false` are 1 and 0. A
//!   column of both numbers and text is an error unless declared
//!   categorical, exactly as in CSV.
//!
//! Numbers are read from their text by the same exact parser as CSV's, so
//! the same data gives the same values in either format. `NaN` (which
//! Python's `json` writes) is a missing value. Errors name the 1-based line
//! and the 1-based byte column of the value at fault.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use super::ReadOptions;
use super::float;
use super::missing::{FieldValue, Missing, classify};
use super::table::Table;
use crate::dataset::Column;
use crate::error::DataError;

/// Output larger than this many values is refused, not attempted.
const MAX_VALUES: usize = 1 << 30;

/// Deeper nesting than this is refused (no shape here needs more than 2).
const MAX_DEPTH: usize = 16;

/// Reads JSON Lines `bytes` (the contents of `path`); `None` when it holds
/// no objects. Columns named in `force_text` (or declared categorical) are
/// categorical even where their values are numbers.
pub fn read_table(
    path: &Path,
    bytes: &[u8],
    opts: &ReadOptions,
    force_text: &[String],
) -> Result<Option<Table>, DataError> {
    let mut shape: Option<Shape> = None;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Part files streamed one after another may each start with one.
        let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        if raw.trim_ascii().is_empty() {
            continue;
        }
        let at = |col: usize, msg: String| DataError::new(path, msg).at(line, Some(col as u64 + 1));
        let text = std::str::from_utf8(raw).map_err(|e| {
            at(e.valid_up_to(), "the line is not UTF-8 text".to_string())
                .hint("write the file as UTF-8")
        })?;
        let mut p = Parser {
            s: text.as_bytes(),
            pos: 0,
        };
        let (start, value) = p
            .document()
            .map_err(|(col, msg)| at(col, msg).hint("write one JSON object on each line"))?;
        let Json::Object(fields) = value else {
            return Err(at(start, format!("the line holds {}, not a JSON object", value.kind()))
                .hint("write one JSON object on each line, e.g. {\"features\": [1.5, 2], \"label\": 0} or {\"x\": 1.5, \"y\": 0}"));
        };
        let shape = shape.get_or_insert_with(|| {
            if is_sagemaker(&fields) {
                Shape::SageMaker(SageMaker::default())
            } else {
                Shape::Named(Named::new(opts, force_text))
            }
        });
        match shape {
            Shape::SageMaker(s) => s.push(fields, start),
            Shape::Named(n) => n.push(fields, &opts.missing),
        }
        .map_err(|(col, msg, hint)| at(col, msg).hint(hint))?;
    }
    match shape {
        None => Ok(None),
        Some(Shape::SageMaker(s)) => s.finish(path).map(Some),
        Some(Shape::Named(n)) => Ok(Some(n.finish())),
    }
}

/// A located complaint about one line: byte offset, what, how to fix it.
type Bad = (usize, String, String);

enum Shape {
    SageMaker(SageMaker),
    Named(Named),
}

/// The first object is `{"features": [...]}`, with at most a `label` beside it.
fn is_sagemaker(fields: &[(Cow<str>, usize, Json)]) -> bool {
    fields
        .iter()
        .any(|(k, _, v)| k == "features" && matches!(v, Json::Array(_)))
        && fields
            .iter()
            .all(|(k, _, _)| k == "features" || k == "label")
}

/// Rows of `{"features": [...], "label": x}`.
#[derive(Default)]
struct SageMaker {
    labels: Vec<f32>,
    labelled: Option<bool>,
    columns: Vec<Vec<f32>>,
    rows: usize,
}

impl SageMaker {
    fn push(&mut self, fields: Vec<(Cow<str>, usize, Json)>, start: usize) -> Result<(), Bad> {
        let shape_hint = || {
            "every line has the shape of the first: {\"features\": [numbers], \"label\": number}"
                .to_string()
        };
        let mut features = None;
        let mut label = None;
        for (k, at, v) in fields {
            match k.as_ref() {
                "features" => features = Some((at, v)),
                "label" => label = Some((at, v)),
                other => {
                    return Err((
                        at,
                        format!(
                            "`{other}` is not `features` or `label`, the keys of the first line"
                        ),
                        shape_hint(),
                    ));
                }
            }
        }
        let Some((at, Json::Array(items))) = features else {
            let at = features.map_or(start, |(a, _)| a);
            return Err((
                at,
                "the line has no `features` list".to_string(),
                shape_hint(),
            ));
        };
        match (self.labelled, &label) {
            (None, l) => self.labelled = Some(l.is_some()),
            (Some(true), None) => {
                return Err((
                    start,
                    "the line has no `label`, but the lines before it have one".to_string(),
                    "give every line a label, or none (unsupervised algorithms: kmeans, pca)"
                        .to_string(),
                ));
            }
            (Some(false), Some((a, _))) => {
                return Err((
                    *a,
                    "the line has a `label`, but the first line has none".to_string(),
                    "give every line a label, or none (unsupervised algorithms: kmeans, pca)"
                        .to_string(),
                ));
            }
            _ => {}
        }
        if let Some((a, v)) = label {
            match number_of(&v) {
                Ok(Some(x)) => self.labels.push(x),
                Ok(None) | Err(_) => {
                    return Err((
                        a,
                        format!("the label is {}, not a number", v.describe()),
                        "write each label as a number".to_string(),
                    ));
                }
            }
        }
        if self.rows == 0 {
            self.columns = vec![Vec::new(); items.len()];
        } else if items.len() != self.columns.len() {
            return Err((
                at,
                format!(
                    "the line has {} features, but the first has {}",
                    items.len(),
                    self.columns.len()
                ),
                "every line needs the same number of features".to_string(),
            ));
        }
        if (self.rows + 1).saturating_mul(self.columns.len()) > MAX_VALUES {
            return Err((
                at,
                "the data is too large to hold".to_string(),
                shape_hint(),
            ));
        }
        for (col, (a, v)) in self.columns.iter_mut().zip(items) {
            match number_of(&v) {
                Ok(Some(x)) => col.push(x),
                Ok(None) => col.push(f32::NAN),
                Err(why) => {
                    return Err((
                        a,
                        format!("a feature is {}: {why}", v.describe()),
                        "features are numbers (null or NaN for a missing value)".to_string(),
                    ));
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<Table, DataError> {
        if self.columns.is_empty() {
            return Err(DataError::new(path, "the `features` lists are empty")
                .hint("give each line its features, e.g. {\"features\": [1.5, 2], \"label\": 0}"));
        }
        let mut columns = Vec::with_capacity(self.columns.len() + 1);
        if self.labelled == Some(true) {
            columns.push(Column::numeric("label", self.labels));
        }
        columns.extend(
            self.columns
                .into_iter()
                .enumerate()
                .map(|(j, v)| Column::numeric(format!("f{j}"), v)),
        );
        Ok(Table {
            columns,
            has_header: false,
        })
    }
}

/// A number, `Ok(None)` for a missing value (`null`, `NaN`), or why not.
fn number_of(v: &Json) -> Result<Option<f32>, &'static str> {
    match v {
        Json::Null => Ok(None),
        Json::Number(t) => match float::parse_field(t.as_bytes()) {
            Some(x) if x.is_nan() => Ok(None),
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err("beyond the range of 32-bit floats"),
        },
        Json::Bool(b) => Ok(Some(f32::from(u8::from(*b)))),
        _ => Err("not a number"),
    }
}

/// One named column being filled.
struct NamedColumn {
    name: String,
    values: Vec<f32>,
    /// Declared categorical: every value is a level, numbers by their text.
    declared: bool,
    /// The first number's data row (1-based), once one is seen.
    first_number: Option<usize>,
    /// The first text value, once one is seen.
    first_text: Option<String>,
    levels: Vec<String>,
    index: HashMap<String, f32>,
}

impl NamedColumn {
    fn level(&mut self, text: &str) -> f32 {
        if let Some(&c) = self.index.get(text) {
            return c;
        }
        let c = self.levels.len() as f32;
        self.levels.push(text.to_string());
        self.index.insert(text.to_string(), c);
        c
    }
}

/// Rows of named columns.
struct Named {
    columns: Vec<NamedColumn>,
    by_name: HashMap<String, usize>,
    declared: Vec<String>,
    numeric_missing: Vec<f32>,
    rows: usize,
    /// For each column, the last row (+1) that gave it a value.
    seen: Vec<usize>,
}

impl Named {
    fn new(opts: &ReadOptions, force_text: &[String]) -> Self {
        Named {
            columns: Vec::new(),
            by_name: HashMap::new(),
            declared: opts.categorical.iter().chain(force_text).cloned().collect(),
            numeric_missing: opts.missing.numbers(),
            rows: 0,
            seen: Vec::new(),
        }
    }

    fn push(&mut self, fields: Vec<(Cow<str>, usize, Json)>, missing: &Missing) -> Result<(), Bad> {
        let row = self.rows;
        for (key, at, value) in fields {
            let j = match self.by_name.get(key.as_ref()) {
                Some(&j) => j,
                None => {
                    if (self.columns.len() + 1).saturating_mul(row + 1) > MAX_VALUES {
                        return Err((
                            at,
                            "the data is too large to hold".to_string(),
                            "use fewer distinct keys".to_string(),
                        ));
                    }
                    let j = self.columns.len();
                    self.columns.push(NamedColumn {
                        name: key.to_string(),
                        values: vec![f32::NAN; row],
                        declared: self.declared.iter().any(|d| d == key.as_ref()),
                        first_number: None,
                        first_text: None,
                        levels: Vec::new(),
                        index: HashMap::new(),
                    });
                    self.seen.push(0);
                    self.by_name.insert(key.to_string(), j);
                    j
                }
            };
            if self.seen[j] == row + 1 {
                return Err((
                    at,
                    format!("the key `{key}` appears twice in the object"),
                    "give each column once per line".to_string(),
                ));
            }
            self.seen[j] = row + 1;
            let c = &mut self.columns[j];
            let cell = match &value {
                Json::Null => Cell::Missing,
                Json::Bool(b) => {
                    Cell::Number(f32::from(u8::from(*b)), if *b { "true" } else { "false" })
                }
                Json::Number(t) => match float::parse_field(t.as_bytes()) {
                    Some(x) if x.is_nan() => Cell::Missing,
                    Some(x) if x.is_finite() => Cell::Number(x, t),
                    _ => Cell::Infinite,
                },
                Json::String(s) => match classify(s.as_bytes(), missing) {
                    FieldValue::Number(x) => Cell::Number(x, s.trim()),
                    FieldValue::Missing => Cell::Missing,
                    FieldValue::Text => Cell::Text(s.trim()),
                    FieldValue::Infinite if c.declared => Cell::Text(s.trim()),
                    FieldValue::Infinite => Cell::Infinite,
                },
                Json::Array(_) | Json::Object(_) => {
                    return Err((
                        at,
                        format!(
                            "column `{key}` holds {}; nested values cannot be read as a column",
                            value.kind()
                        ),
                        format!(
                            "flatten it into columns of their own (`{key}_0`, `{key}_1`, ...), or use SageMaker's shape {{\"features\": [...], \"label\": y}}"
                        ),
                    ));
                }
            };
            let v = match cell {
                Cell::Missing => f32::NAN,
                Cell::Infinite => {
                    return Err((
                        at,
                        format!(
                            "column `{key}`: the value is infinite or beyond the range of 32-bit floats"
                        ),
                        "write a finite number, or null for a missing value".to_string(),
                    ));
                }
                Cell::Number(x, text) if c.declared => {
                    if self.numeric_missing.contains(&x) {
                        f32::NAN
                    } else {
                        c.level(text)
                    }
                }
                Cell::Number(x, _) if self.numeric_missing.contains(&x) => f32::NAN,
                Cell::Number(x, _) => {
                    if let Some(text) = &c.first_text {
                        return Err(mixed(key.as_ref(), at, text, None, missing));
                    }
                    c.first_number.get_or_insert(row + 1);
                    x
                }
                Cell::Text(t) if c.declared => c.level(t),
                Cell::Text(t) => {
                    if let Some(n) = c.first_number {
                        return Err(mixed(key.as_ref(), at, t, Some(n), missing));
                    }
                    c.first_text.get_or_insert_with(|| t.to_string());
                    c.level(t)
                }
            };
            c.values.push(v);
        }
        self.rows += 1;
        for c in &mut self.columns {
            if c.values.len() < self.rows {
                c.values.push(f32::NAN);
            }
        }
        Ok(())
    }

    fn finish(self) -> Table {
        let columns = self
            .columns
            .into_iter()
            .map(|c| {
                if c.declared || c.first_text.is_some() {
                    Column::categorical(c.name, c.levels, c.values)
                } else {
                    Column::numeric(c.name, c.values)
                }
            })
            .collect();
        Table {
            columns,
            has_header: true,
        }
    }
}

enum Cell<'a> {
    Missing,
    Infinite,
    /// A number and its text (the level it is in a categorical column).
    Number(f32, &'a str),
    Text(&'a str),
}

/// The error for a column of numbers and text, as the CSV reader words it.
fn mixed(name: &str, at: usize, text: &str, number_row: Option<usize>, missing: &Missing) -> Bad {
    let shown: String = text.chars().take(40).collect();
    let listed = match missing {
        Missing::Usual => format!("missing_values: [\"{shown}\", \"\"]"),
        Missing::Listed(l) => {
            let mut all: Vec<String> = l
                .iter()
                .map(|m| format!("{:?}", String::from_utf8_lossy(m)))
                .collect();
            all.push(format!("{shown:?}"));
            format!("missing_values: [{}]", all.join(", "))
        }
    };
    let msg = match number_row {
        Some(n) => format!(
            "column `{name}`: `{shown}` is not a number, but the column holds numbers (the first in data row {n})"
        ),
        None => format!(
            "column `{name}`: this value is a number, but the column holds text (the first `{shown}`)"
        ),
    };
    (
        at,
        msg,
        format!(
            "if `{shown}` means a missing value, declare it on the input ({listed}); if the column is a category, declare it (categorical: [{name}])"
        ),
    )
}

/// A parsed JSON value; positions are byte offsets into the line.
#[derive(Debug)]
enum Json<'a> {
    Null,
    Bool(bool),
    /// The number's text, as written.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<(usize, Json<'a>)>),
    Object(Vec<(Cow<'a, str>, usize, Json<'a>)>),
}

impl Json<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "a list",
            Json::Object(_) => "an object",
        }
    }

    fn describe(&self) -> String {
        match self {
            Json::Number(t) => format!("`{t}`"),
            Json::String(s) => format!("the string {:?}", s.chars().take(40).collect::<String>()),
            other => other.kind().to_string(),
        }
    }
}

/// A recursive-descent JSON parser over one line.
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

type PResult<T> = Result<T, (usize, String)>;

impl<'a> Parser<'a> {
    /// The line's one value and where it starts; nothing but spaces may follow.
    fn document(&mut self) -> PResult<(usize, Json<'a>)> {
        self.ws();
        let start = self.pos;
        let v = self.value(0)?;
        self.ws();
        if self.pos < self.s.len() {
            return Err((
                self.pos,
                "more follows the JSON value on this line".to_string(),
            ));
        }
        Ok((start, v))
    }

    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn text(&self, from: usize) -> &'a str {
        // The line is UTF-8, and tokens start and end at ASCII bytes.
        std::str::from_utf8(&self.s[from..self.pos]).unwrap_or_default()
    }

    fn unexpected(&self, wanted: &str) -> (usize, String) {
        match self.s.get(self.pos) {
            None => (self.pos, format!("the line ends where {wanted} should be")),
            Some(_) => {
                let rest = std::str::from_utf8(&self.s[self.pos..]).unwrap_or_default();
                let shown: String = rest.chars().take(12).collect();
                (self.pos, format!("expected {wanted}, found `{shown}`"))
            }
        }
    }

    fn value(&mut self, depth: usize) -> PResult<Json<'a>> {
        if depth > MAX_DEPTH {
            return Err((self.pos, "the value is nested too deeply".to_string()));
        }
        match self.s.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => {
                for (word, v) in [
                    ("null", Json::Null),
                    ("true", Json::Bool(true)),
                    ("false", Json::Bool(false)),
                    ("NaN", Json::Number("NaN")),
                ] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(v);
                    }
                }
                if self.s[self.pos..].starts_with(b"Infinity") {
                    self.pos += 8;
                    return Ok(Json::Number("inf"));
                }
                Err(self.unexpected("a JSON value"))
            }
        }
    }

    fn object(&mut self, depth: usize) -> PResult<Json<'a>> {
        self.pos += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Object(fields));
        }
        loop {
            self.ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("a key (a quoted string)"));
            }
            let key = self.string()?;
            self.ws();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("`:`"));
            }
            self.pos += 1;
            self.ws();
            let at = self.pos;
            let v = self.value(depth + 1)?;
            fields.push((key, at, v));
            self.ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(fields));
                }
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> PResult<Json<'a>> {
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            let at = self.pos;
            items.push((at, self.value(depth + 1)?));
            self.ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    fn number(&mut self) -> PResult<Json<'a>> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.s.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos > from
        };
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
            if self.s[self.pos..].starts_with(b"Infinity") {
                self.pos += 8;
                return Ok(Json::Number("-inf"));
            }
        }
        let int_start = self.pos;
        if !digits(self) {
            return Err(self.unexpected("a digit"));
        }
        if self.s[int_start] == b'0' && self.pos - int_start > 1 {
            return Err((int_start, "a number has a leading zero".to_string()));
        }
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.unexpected("a digit after `.`"));
            }
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.unexpected("a digit of the exponent"));
            }
        }
        Ok(Json::Number(self.text(start)))
    }

    fn string(&mut self) -> PResult<Cow<'a, str>> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes.
        while let Some(&b) = self.s.get(self.pos) {
            match b {
                b'"' => {
                    let t = self.text(start);
                    self.pos += 1;
                    return Ok(Cow::Borrowed(t));
                }
                b'\\' => break,
                0..=0x1f => {
                    return Err((self.pos, "a control character inside a string".to_string()));
                }
                _ => self.pos += 1,
            }
        }
        let mut out = String::from(self.text(start));
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return Err((open, "the string is never closed".to_string()));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    let esc = self.pos;
                    self.pos += 1;
                    let c = match self.s.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let hi = self.hex4(esc)?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if !self.s[self.pos..].starts_with(b"\\u") {
                                    return Err((
                                        esc,
                                        "a lone UTF-16 surrogate in `\\u`".to_string(),
                                    ));
                                }
                                self.pos += 2;
                                let lo = self.hex4(esc)?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err((
                                        esc,
                                        "a lone UTF-16 surrogate in `\\u`".to_string(),
                                    ));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            let c = char::from_u32(code).ok_or_else(|| {
                                (esc, "a lone UTF-16 surrogate in `\\u`".to_string())
                            })?;
                            out.push(c);
                            continue;
                        }
                        _ => return Err((esc, "an unknown escape in a string".to_string())),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                0..=0x1f => {
                    return Err((self.pos, "a control character inside a string".to_string()));
                }
                _ => {
                    let from = self.pos;
                    self.pos += 1;
                    while self.s.get(self.pos).is_some_and(|&b| b & 0xc0 == 0x80) {
                        self.pos += 1;
                    }
                    out.push_str(self.text(from));
                }
            }
        }
    }

    fn hex4(&mut self, esc: usize) -> PResult<u32> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .filter(|_| {
                self.s[self.pos..self.pos + 4]
                    .iter()
                    .all(u8::is_ascii_hexdigit)
            })
            .ok_or_else(|| (esc, "`\\u` needs four hex digits".to_string()))?;
        self.pos += 4;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Option<Table>, DataError> {
        read_with(s, &ReadOptions::jsonlines(None))
    }

    fn read_with(s: &str, opts: &ReadOptions) -> Result<Option<Table>, DataError> {
        read_table(Path::new("t.jsonl"), s.as_bytes(), opts, &[])
    }

    #[test]
    fn sagemaker_shape_with_and_without_labels() {
        let t = read("{\"features\": [1.5, 2, -3e-2], \"label\": 1}\n\n{\"label\": 0, \"features\": [null, NaN, 4]}\r\n")
            .unwrap()
            .unwrap();
        assert!(!t.has_header);
        assert_eq!(t.names(), ["label", "f0", "f1", "f2"]);
        assert_eq!(t.columns[0].values, [1.0, 0.0]);
        assert_eq!(t.columns[1].values[0], 1.5);
        assert!(t.columns[1].values[1].is_nan() && t.columns[2].values[1].is_nan());
        assert_eq!(t.columns[3].values, [-0.03, 4.0]);
        let t = read("{\"features\": [1]}\n{\"features\": [2]}")
            .unwrap()
            .unwrap();
        assert_eq!(t.names(), ["f0"]);
        assert!(read("\n  \n").unwrap().is_none());
        // A byte-order mark at the start of the file, or of a streamed part.
        let t = read("\u{feff}{\"features\": [1]}\n\u{feff}{\"features\": [2]}\n")
            .unwrap()
            .unwrap();
        assert_eq!(t.columns[0].values, [1.0, 2.0]);
    }

    #[test]
    fn named_columns_read_as_csv_with_a_header() {
        let t = read(concat!(
            "{\"x1\": 1.0, \"x2\": \"a\", \"y\": 0}\n",
            "{\"x2\": \"b\", \"y\": true, \"x3\": \"2.5\"}\n",
            "{\"x1\": null, \"x2\": \"a\\u00e9\", \"y\": \"NA\", \"x3\": 1}\n",
        ))
        .unwrap()
        .unwrap();
        assert!(t.has_header);
        assert_eq!(t.names(), ["x1", "x2", "y", "x3"]);
        let x1 = &t.columns[0].values;
        assert_eq!(x1[0], 1.0);
        assert!(x1[1].is_nan() && x1[2].is_nan());
        assert_eq!(t.columns[1].levels().unwrap(), ["a", "b", "aé"]);
        assert_eq!(t.columns[1].values, [0.0, 1.0, 2.0]);
        assert_eq!(t.columns[2].values[..2], [0.0, 1.0]);
        assert!(t.columns[3].values[0].is_nan());
        assert_eq!(t.columns[3].values[1..], [2.5, 1.0]);
        // Declared categorical: numbers are levels by their text.
        let mut opts = ReadOptions::jsonlines(None);
        opts.categorical = vec!["c".to_string()];
        let t = read_with("{\"c\": 10}\n{\"c\": \"x\"}\n{\"c\": 10}\n", &opts)
            .unwrap()
            .unwrap();
        assert_eq!(t.columns[0].levels().unwrap(), ["10", "x"]);
        assert_eq!(t.columns[0].values, [0.0, 1.0, 0.0]);
    }

    fn err(s: &str) -> DataError {
        read(s).unwrap_err()
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = err("{\"a\": 1}\n{\"a\": 1,}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(9)), "{e}");
        let e = err("{\"a\": 1}\n{\"a\": \"red\"}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(7)), "{e}");
        assert!(e.message.contains("`red` is not a number"), "{e}");
        assert!(e.hint.unwrap().contains("categorical: [a]"));
        let e = err("{\"a\": \"red\"}\n{\"a\": 2}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(7)), "{e}");
        let e = err("[1, 2]\n");
        assert!(e.message.contains("a list, not a JSON object"), "{e}");
        let e = err("{\"a\": [1]}\n");
        assert!(e.message.contains("nested"), "{e}");
        let e = err("{\"a\": 1} {}\n");
        assert_eq!(e.column, Some(10), "{e}");
        let e = err("{\"a\": 1, \"a\": 2}\n");
        assert!(e.message.contains("twice"), "{e}");
        let e = err("{\"a\": \"x\n");
        assert!(e.message.contains("never closed"), "{e}");
        let e = err("{\"a\": 1e39}\n");
        assert!(e.message.contains("32-bit"), "{e}");
        let e = err("{\"a\": 012}\n");
        assert!(e.message.contains("leading zero"), "{e}");
        let e = err(&format!("{}1{}\n", "[".repeat(40), "]".repeat(40)));
        assert!(e.message.contains("nested too deeply"), "{e}");
        let e = err("{\"features\": [1, 2], \"label\": 1}\n{\"features\": [1], \"label\": 1}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(14)), "{e}");
        assert!(e.message.contains("1 features, but the first has 2"), "{e}");
        let e = err("{\"features\": [1], \"label\": 1}\n{\"features\": [1]}\n");
        assert!(e.message.contains("no `label`"), "{e}");
        let e = err("{\"features\": [1], \"label\": \"cat\"}\n");
        assert!(e.message.contains("not a number"), "{e}");
        let e = err("{\"features\": [\"a\"]}\n");
        assert!(e.message.contains("a feature is"), "{e}");
        let e = read_table(
            Path::new("t.jsonl"),
            b"{\"a\": \"\xff\"}",
            &ReadOptions::jsonlines(None),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.column, Some(8), "{e}");
    }
}
