//! YAML text to a tree of [`Node`]s that remember where they were written.
//!
//! Built on `saphyr-parser`'s event stream rather than a serde deserializer,
//! so that every scalar, sequence and mapping keeps its span through
//! validation, duplicate keys are errors (YAML says they are, most loaders
//! silently keep the last), and aliases are expanded in place.

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

/// Parses one YAML document. An empty file is an empty mapping's absence: `Null`.
pub fn parse(source: &Arc<Source>) -> Result<Node, Diagnostic> {
    let mut b = Builder {
        source,
        parser: Parser::new_from_str(&source.text),
        anchors: HashMap::new(),
    };
    b.document()
}

struct Builder<'a> {
    source: &'a Arc<Source>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
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
                let mut entries: Vec<(Node, Node)> = Vec::new();
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
                                if !entries.iter().any(|(ek, _)| ek.kind == k.kind) {
                                    entries.push((k, v));
                                }
                            }
                            continue;
                        }
                    }
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.kind == key.kind) {
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
                    entries.push((key, value));
                }
                (
                    Node {
                        span,
                        kind: NodeKind::Map(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(n) => (
                    Node {
                        span,
                        kind: n.kind.clone(),
                    },
                    0,
                ),
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
            self.anchors.insert(anchor, node.clone());
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
    fn aliases_expand() {
        let n = parse(&src("d: &r {attempts: 3}\ne: *r\n")).unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        assert_eq!(m[0].1.kind, m[1].1.kind);
    }
}
