//! Typed reading of [`Node`]s with located errors.
//!
//! [`Fields`] reads a mapping's keys against the list of keys it may hold, so
//! an unknown key is an error pointing at it with the closest known key
//! suggested. The scalar readers accept what a person would write
//! (`3`, `"3"`, `3.0` for a whole number) and say what was expected otherwise.

use std::sync::Arc;

use super::source::{Diagnostic, Source, Spanned};
use super::yaml::{Node, NodeKind, ScalarType, plain_scalar_type};

pub type DResult<T> = Result<T, Diagnostic>;

/// Reading context: the file, for diagnostics.
#[derive(Clone)]
pub struct Ctx {
    pub source: Arc<Source>,
}

impl Ctx {
    pub fn err(&self, node: &Node, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.source, node.span, msg)
    }

    fn expected(&self, node: &Node, what: &str, field: &str) -> Diagnostic {
        self.err(
            node,
            format!("`{field}` must be {what}, found {}", node.describe()),
        )
    }

    pub fn string(&self, node: &Node, field: &str) -> DResult<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => Ok(Spanned::new(text.clone(), node.span)),
            _ => Err(self.expected(node, "a string", field)),
        }
    }

    pub fn int(&self, node: &Node, field: &str) -> DResult<Spanned<i64>> {
        let parsed = node.as_scalar().and_then(|t| {
            t.trim().parse::<i64>().ok().or_else(|| {
                t.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
        });
        parsed
            .map(|v| Spanned::new(v, node.span))
            .ok_or_else(|| self.expected(node, "a whole number", field))
    }

    /// A whole number in `lo..=hi`; out of range (however far) says the range.
    pub fn int_in(
        &self,
        node: &Node,
        field: &str,
        lo: i64,
        hi: i64,
        why: &str,
    ) -> DResult<Spanned<i64>> {
        let text = node.as_scalar().map(str::trim).unwrap_or_default();
        let too_big = plain_scalar_type(text) == ScalarType::Int && text.parse::<i64>().is_err();
        let v = if too_big {
            None
        } else {
            Some(self.int(node, field)?)
        };
        match v {
            Some(v) if (lo..=hi).contains(&v.value) => Ok(v),
            _ => Err(self
                .err(
                    node,
                    format!("`{field}` must be from {lo} to {hi}, found {text}"),
                )
                .help(why.to_string())),
        }
    }

    pub fn uint(&self, node: &Node, field: &str) -> DResult<Spanned<u64>> {
        let v = self.int(node, field)?;
        if v.value < 0 {
            return Err(self.err(
                node,
                format!("`{field}` must be 0 or more, found {}", v.value),
            ));
        }
        Ok(Spanned::new(v.value as u64, v.span))
    }

    pub fn float(&self, node: &Node, field: &str) -> DResult<Spanned<f64>> {
        let parsed = node.as_scalar().and_then(|t| match t.trim() {
            ".inf" | "+.inf" => Some(f64::INFINITY),
            "-.inf" => Some(f64::NEG_INFINITY),
            t => t.parse::<f64>().ok(),
        });
        parsed
            .map(|v| Spanned::new(v, node.span))
            .ok_or_else(|| self.expected(node, "a number", field))
    }

    pub fn bool(&self, node: &Node, field: &str) -> DResult<Spanned<bool>> {
        let parsed = node.as_scalar().and_then(|t| match t.trim() {
            "true" | "True" | "TRUE" | "yes" | "on" => Some(true),
            "false" | "False" | "FALSE" | "no" | "off" => Some(false),
            _ => None,
        });
        parsed
            .map(|v| Spanned::new(v, node.span))
            .ok_or_else(|| self.expected(node, "true or false", field))
    }

    /// A scalar of any type as the string a container would be handed
    /// (`4` -> "4", `0.3` -> "0.3", `true` -> "true").
    pub fn scalar_string(&self, node: &Node, field: &str) -> DResult<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar { text, .. } => Ok(Spanned::new(text.clone(), node.span)),
            NodeKind::Null => Ok(Spanned::new(String::new(), node.span)),
            _ => Err(self.expected(node, "a single value (a string or number)", field)),
        }
    }

    pub fn seq<'n>(&self, node: &'n Node, field: &str) -> DResult<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Ok(items),
            _ => Err(self.expected(node, "a list", field)),
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    pub fn string_list(&self, node: &Node, field: &str) -> DResult<Vec<Spanned<String>>> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().map(|n| self.string(n, field)).collect(),
            NodeKind::Scalar { .. } => Ok(vec![self.string(node, field)?]),
            _ => Err(self.expected(node, "a list of strings", field)),
        }
    }

    /// The entries of a mapping whose keys are names chosen by the user.
    pub fn entries<'n>(
        &self,
        node: &'n Node,
        field: &str,
    ) -> DResult<Vec<(Spanned<String>, &'n Node)>> {
        match &node.kind {
            NodeKind::Map(m) => m
                .iter()
                .map(|(k, v)| Ok((self.string(k, field)?, v)))
                .collect::<DResult<Vec<_>>>(),
            NodeKind::Null => Ok(vec![]),
            _ => Err(self.expected(node, "a mapping", field)),
        }
    }

    /// Reads a mapping whose keys must be among `known`.
    pub fn fields<'n>(&self, node: &'n Node, what: &str, known: &[&str]) -> DResult<Fields<'n>> {
        let entries: &'n [(Node, Node)] = match &node.kind {
            NodeKind::Map(m) => m,
            NodeKind::Null => &[],
            _ => {
                return Err(self.err(
                    node,
                    format!("{what} must be a mapping, found {}", node.describe()),
                ));
            }
        };
        for (k, _) in entries {
            let name = k.as_scalar().unwrap_or("");
            if !known.contains(&name) {
                return Err(self
                    .err(k, format!("unknown key `{name}` in {what}"))
                    .label("not a known key here")
                    .suggest(name, known.iter().copied())
                    .note(format!("known keys: {}", known.join(", "))));
            }
        }
        Ok(Fields {
            node,
            entries,
            what: what.to_string(),
        })
    }
}

/// A mapping being read; its keys were checked against the known ones.
pub struct Fields<'n> {
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
    what: String,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }
    /// The key node itself (for pointing at a key rather than its value).
    pub fn key(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(k, _)| k)
    }
    pub fn req(&self, ctx: &Ctx, key: &str) -> DResult<&'n Node> {
        self.get(key).ok_or_else(|| {
            ctx.err(self.node, format!("{} needs `{key}`", self.what))
                .help(format!("add `{key}:` to {}", self.what))
        })
    }
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// Whether a node is a plain scalar of the given core-schema type.
pub fn is_plain(node: &Node, t: ScalarType) -> bool {
    matches!(&node.kind, NodeKind::Scalar { text, quoted: false } if plain_scalar_type(text) == t)
}
