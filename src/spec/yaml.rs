//! YAML text to a tree of [`Node`]s that remember where they were written.
//!
//! Built on `saphyr-parser`'s event stream rather than a serde deserializer,
//! so that every scalar, sequence and mapping keeps its span through
//! validation, duplicate keys are errors (YAML says they are, most loaders
//! silently keep the last), and aliases are expanded in place.
//!
//! Expansion is bounded: the nodes aliases copy may not outnumber the nodes
//! written in the file by more than [`ALIAS_FACTOR`] (with a floor of
//! [`ALIAS_MIN`]), so a "billion laughs" file fails at once instead of
//! filling memory, and nesting deeper than [`MAX_DEPTH`] is an error rather
//! than a stack overflow.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use super::source::{Diagnostic, Source, Span};

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or nothing.
    Null,
    /// A scalar's text; `quoted` when it was written in quotes (then it is always a string).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What kind of node this is, for messages ("a mapping", "a list", ...).
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "nothing (null)",
            NodeKind::Scalar { quoted: true, .. } => "a string",
            NodeKind::Scalar { text, .. } => match plain_scalar_type(text) {
                ScalarType::Int => "a whole number",
                ScalarType::Float => "a number",
                ScalarType::Bool => "true/false",
                ScalarType::Null => "nothing (null)",
                ScalarType::Str => "a string",
            },
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }
}

/// The YAML 1.2 core-schema type of a plain (unquoted) scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

pub fn plain_scalar_type(text: &str) -> ScalarType {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarType::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return ScalarType::Bool,
        ".inf" | "-.inf" | "+.inf" | ".nan" | ".NaN" | ".NAN" => return ScalarType::Float,
        _ => {}
    }
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return ScalarType::Int;
    }
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') && text.parse::<f64>().is_ok() {
        return ScalarType::Float;
    }
    ScalarType::Str
}

/// Aliases may copy at most this many times the nodes written in the file...
pub const ALIAS_FACTOR: usize = 8;
/// ...or this many nodes, whichever is more.
pub const ALIAS_MIN: usize = 10_000;
/// How deeply lists and mappings may nest.
pub const MAX_DEPTH: usize = 200;

/// Parses one YAML document. An empty file is an empty mapping's absence: `Null`.
pub fn parse(source: &Arc<Source>) -> Result<Node, Diagnostic> {
    let mut b = Builder {
        source,
        parser: Parser::new_from_str(&source.text),
        anchors: HashMap::new(),
        written: 0,
        copied: 0,
        depth: 0,
    };
    b.document()
}

struct Builder<'a> {
    source: &'a Arc<Source>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Each anchor's node and how many nodes it holds.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes read from the file's events.
    written: usize,
    /// Nodes copied by aliases.
    copied: usize,
    depth: usize,
}

/// How many nodes a tree holds.
fn count_nodes(n: &Node) -> usize {
    1 + match &n.kind {
        NodeKind::Seq(items) => items.iter().map(count_nodes).sum(),
        NodeKind::Map(m) => m.iter().map(|(k, v)| count_nodes(k) + count_nodes(v)).sum(),
        _ => 0,
    }
}

/// A key's identity for finding duplicates in one pass: the scalar's text
/// (every key is read as a name, so `a` and `"a"` are the same key); other
/// keys (null, lists, mappings) are compared one by one, being rare.
fn key_id(k: &Node) -> Option<&str> {
    match &k.kind {
        NodeKind::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// A mapping under construction with a duplicate-key index.
#[derive(Default)]
struct MapBuilder {
    entries: Vec<(Node, Node)>,
    index: HashMap<String, usize>,
}

impl MapBuilder {
    fn find(&self, key: &Node) -> Option<usize> {
        match key_id(key) {
            Some(t) => self.index.get(t).copied(),
            None => self.entries.iter().position(|(k, _)| k.kind == key.kind),
        }
    }
    fn push(&mut self, key: Node, value: Node) {
        if let Some(t) = key_id(&key) {
            self.index.insert(t.to_string(), self.entries.len());
        }
        self.entries.push((key, value));
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, YSpan), Diagnostic> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => {
                let m = e.marker();
                let info = e.info();
                let span = Span::new(m.line() as u32, m.col() as u32 + 1, 1);
                Err(Diagnostic::at(
                    self.source,
                    span,
                    format!("the file is not valid YAML: {info}"),
                )
                .help("check the indentation and that every `{`, `[` and quote is closed"))
            }
            None => Ok((Event::StreamEnd, YSpan::default())),
        }
    }

    fn span(&self, s: &YSpan) -> Span {
        let len = if s.end.line() == s.start.line() {
            s.end.col().saturating_sub(s.start.col())
        } else {
            1
        };
        Span::new(
            s.start.line() as u32,
            s.start.col() as u32 + 1,
            len.max(1) as u32,
        )
    }

    fn document(&mut self) -> Result<Node, Diagnostic> {
        let mut root = None;
        loop {
            let (ev, sp) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(Diagnostic::at(
                            self.source,
                            self.span(&sp),
                            "the file holds more than one YAML document",
                        )
                        .help("keep one pipeline a file, and remove the `---` separator"));
                    }
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::DocumentEnd) {
                        root = Some(Node {
                            span: self.span(&sp),
                            kind: NodeKind::Null,
                        });
                    } else {
                        root = Some(self.node(ev, sp)?);
                    }
                }
                Event::StreamEnd => break,
                other => {
                    let n = self.node(other, sp)?;
                    root = Some(n);
                }
            }
        }
        Ok(root.unwrap_or(Node {
            span: Span::new(1, 1, 1),
            kind: NodeKind::Null,
        }))
    }

    fn node(&mut self, ev: Event<'a>, sp: YSpan) -> Result<Node, Diagnostic> {
        let span = self.span(&sp);
        self.written += 1;
        let nested = matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..));
        if nested {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(Diagnostic::at(
                    self.source,
                    span,
                    format!("lists and mappings nest more than {MAX_DEPTH} deep here"),
                )
                .help("a pipeline file needs a few levels; flatten this value"));
            }
        }
        let built = self.node_inner(ev, span);
        if nested {
            self.depth -= 1;
        }
        built
    }

    fn node_inner(&mut self, ev: Event<'a>, span: Span) -> Result<Node, Diagnostic> {
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let kind = if !quoted && plain_scalar_type(&text) == ScalarType::Null {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                // Quoted scalars' spans should cover the quotes' content length as written.
                (Node { span, kind }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, sp)?);
                }
                (
                    Node {
                        span,
                        kind: NodeKind::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut map = MapBuilder::default();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(ev, sp)?;
                    let (ev, sp) = self.next()?;
                    let value = self.node(ev, sp)?;
                    if key.as_scalar() == Some("<<") {
                        // Merge key: copy the aliased mapping's entries that are not set here.
                        if let NodeKind::Map(m) = value.kind {
                            for (k, v) in m {
                                if map.find(&k).is_none() {
                                    map.push(k, v);
                                }
                            }
                            continue;
                        }
                    }
                    if let Some(first) = map.find(&key).map(|i| &map.entries[i].0) {
                        let name = key.as_scalar().unwrap_or("?").to_string();
                        return Err(Diagnostic::at(
                            self.source,
                            key.span,
                            format!("the key `{name}` is written twice"),
                        )
                        .label("second time here")
                        .note(format!("first written at line {}", first.span.line))
                        .help("remove one of the two"));
                    }
                    map.push(key, value);
                }
                (
                    Node {
                        span,
                        kind: NodeKind::Map(map.entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((n, size)) => {
                    let allowed = ALIAS_MIN.max(ALIAS_FACTOR * self.written);
                    if self.copied + size > allowed {
                        return Err(Diagnostic::at(
                            self.source,
                            span,
                            format!(
                                "aliases expand to more than {allowed} nodes, {ALIAS_FACTOR} times what the file holds"
                            ),
                        )
                        .label("this alias goes over the limit")
                        .note("each `*name` copies everything its anchor holds, and anchors that hold aliases multiply")
                        .help("write the repeated values out, or nest aliases less deeply"));
                    }
                    self.copied += size;
                    (
                        Node {
                            span,
                            kind: n.kind.clone(),
                        },
                        0,
                    )
                }
                None => {
                    return Err(Diagnostic::at(
                        self.source,
                        span,
                        "an alias refers to an unknown anchor",
                    )
                    .help("define the anchor (`&name`) before using it (`*name`)"));
                }
            },
            other => {
                return Err(Diagnostic::at(
                    self.source,
                    span,
                    format!("unexpected YAML event {other:?}"),
                ));
            }
        };
        if anchor > 0 {
            let size = count_nodes(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(t: &str) -> Arc<Source> {
        Arc::new(Source {
            name: "t.yaml".into(),
            text: t.into(),
        })
    }

    #[test]
    fn keeps_spans_of_keys_and_values() {
        let n = parse(&src("name: demo\nsteps:\n  a:\n    kind: command\n")).unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        assert_eq!(m[0].1.span, Span::new(1, 7, 4));
        let NodeKind::Map(steps) = &m[1].1.kind else {
            panic!()
        };
        let NodeKind::Map(a) = &steps[0].1.kind else {
            panic!()
        };
        assert_eq!(a[0].0.span, Span::new(4, 5, 4));
        assert_eq!(a[0].1.as_scalar(), Some("command"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse(&src("a: 1\nb: 2\na: 3\n")).unwrap_err();
        assert_eq!(e.span.line, 3);
        assert!(e.message.contains("`a` is written twice"));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse(&src("a: [1, 2\nb: 3\n")).unwrap_err();
        assert!(
            e.message.starts_with("the file is not valid YAML"),
            "{}",
            e.message
        );
        assert!(e.span.line >= 1);
    }

    #[test]
    fn scalar_types() {
        assert_eq!(plain_scalar_type("42"), ScalarType::Int);
        assert_eq!(plain_scalar_type("-0.5"), ScalarType::Float);
        assert_eq!(plain_scalar_type("1e-3"), ScalarType::Float);
        assert_eq!(plain_scalar_type("true"), ScalarType::Bool);
        assert_eq!(plain_scalar_type("inputs.x"), ScalarType::Str);
        assert_eq!(plain_scalar_type("2s"), ScalarType::Str);
    }

    #[test]
    fn alias_bombs_stop_early() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&src(&text)).unwrap_err();
        assert!(
            e.message.contains("aliases expand to more than"),
            "{}",
            e.message
        );
        // a1 and a2 copy 1,220 nodes; a3's eighth alias of 1,111 nodes crosses 10,000.
        assert_eq!((e.span.line, e.span.col), (4, 10 + 7 * 5));
    }

    #[test]
    fn many_small_aliases_are_fine() {
        // A large generated file that merges defaults into every step.
        let mut text = String::from("d: &d {a: 1, b: 2, c: 3}\nsteps:\n");
        for i in 0..5000 {
            text.push_str(&format!("  s{i}: {{<<: *d, x: {i}}}\n"));
        }
        parse(&src(&text)).unwrap();
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // Block lists nest without limit in the parser: `- - - ... x`.
        let text = format!("{}x\n", "- ".repeat(100_000));
        let e = parse(&src(&text)).unwrap_err();
        assert!(e.message.contains("nest more than"), "{}", e.message);
        assert_eq!((e.span.line, e.span.col), (1, 1 + 2 * MAX_DEPTH as u32));
        // Flow collections stop in the parser (255 levels); an error either way.
        let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&src(&text)).is_err());
    }

    #[test]
    fn duplicate_keys_found_in_large_mappings() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("k{i}: {i}\n"));
        }
        text.push_str("'k7': again\n");
        let e = parse(&src(&text)).unwrap_err();
        assert_eq!(e.span.line, 20_001);
        assert!(e.message.contains("`k7` is written twice"));
    }

    #[test]
    fn aliases_expand() {
        let n = parse(&src("d: &r {attempts: 3}\ne: *r\n")).unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        assert_eq!(m[0].1.kind, m[1].1.kind);
    }
}
