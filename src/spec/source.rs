//! Source files, positions in them, and diagnostics that point at a position.
//!
//! Every user error about a pipeline file is a [`Diagnostic`]: it prints
//! `error: WHAT`, then `--> FILE:LINE:COL`, the offending line with a caret
//! under the span, and `help:` lines saying how to fix it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A pipeline file's text and the name to show for it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user wrote it (shown in messages).
    pub name: String,
    pub text: String,
}

/// Where something is in a source file: 1-based line and column (in characters)
/// and a length in characters on that line (at least 1 when shown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Span {
    pub fn new(line: u32, col: u32, len: u32) -> Self {
        Span { line, col, len }
    }
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

/// A value together with where it was written.
///
/// Equality, hashing and serialization look at the value only, so a spanned
/// value can stand in cache keys and JSON just like the value.
#[derive(Debug, Clone, Default)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Spanned<T> {}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|value| Spanned {
            value,
            span: Span::default(),
        })
    }
}

/// A located, actionable error message.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub source: Option<Arc<Source>>,
    pub span: Span,
    /// A short note printed after the caret.
    pub label: Option<String>,
    /// `help:` lines: how to fix it.
    pub help: Vec<String>,
    /// `note:` lines: more context (e.g. where something else was defined).
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error not tied to a file position (e.g. about the command line).
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            source: None,
            span: Span::default(),
            label: None,
            help: vec![],
            notes: vec![],
        }
    }
    /// An error at `span` in `source`.
    pub fn at(source: &Arc<Source>, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            source: Some(source.clone()),
            span,
            ..Diagnostic::new(message)
        }
    }
    /// An error about a whole file, with no position in it.
    pub fn in_file(source: &Arc<Source>, message: impl Into<String>) -> Self {
        Diagnostic {
            source: Some(source.clone()),
            ..Diagnostic::new(message)
        }
    }
    pub fn label(mut self, l: impl Into<String>) -> Self {
        self.label = Some(l.into());
        self
    }
    pub fn help(mut self, h: impl Into<String>) -> Self {
        self.help.push(h.into());
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.notes.push(n.into());
        self
    }
    /// Adds "did you mean `X`?" when a candidate is close to `name`.
    pub fn suggest<'a>(self, name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match closest(name, candidates) {
            Some(c) => self.help(format!("did you mean `{c}`?")),
            None => self,
        }
    }
    /// `FILE:LINE:COL`, or just the file, or nothing.
    pub fn location(&self) -> Option<String> {
        let src = self.source.as_ref()?;
        Some(if self.span.is_known() {
            format!("{}:{}:{}", src.name, self.span.line, self.span.col)
        } else {
            src.name.clone()
        })
    }
}

pub use builtins::hyperparams::closest;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if let Some(loc) = self.location() {
            let src = self.source.as_ref().expect("location implies source");
            let line_no = self.span.line.to_string();
            let pad = " ".repeat(line_no.len());
            writeln!(f, "{pad} --> {loc}")?;
            if let Some(text) = self
                .span
                .line
                .checked_sub(1)
                .and_then(|i| src.text.lines().nth(i as usize))
            {
                let text = text.trim_end();
                writeln!(f, "{pad} |")?;
                writeln!(f, "{line_no} | {text}")?;
                let col = (self.span.col.max(1) - 1) as usize;
                // Keep the caret under the right character even when the line has tabs.
                let lead: String = text
                    .chars()
                    .take(col)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let avail = text.chars().count().saturating_sub(col).max(1);
                let carets = "^".repeat((self.span.len as usize).clamp(1, avail));
                match &self.label {
                    Some(l) => writeln!(f, "{pad} | {lead}{carets} {l}")?,
                    None => writeln!(f, "{pad} | {lead}{carets}")?,
                }
            } else if let Some(l) = &self.label {
                writeln!(f, "{pad} = {l}")?;
            }
            for n in &self.notes {
                writeln!(f, "{pad} = note: {n}")?;
            }
            for h in &self.help {
                writeln!(f, "{pad} = help: {h}")?;
            }
        } else {
            if let Some(l) = &self.label {
                writeln!(f, "  {l}")?;
            }
            for n in &self.notes {
                writeln!(f, "  = note: {n}")?;
            }
            for h in &self.help {
                writeln!(f, "  = help: {h}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_caret() {
        let src = Arc::new(Source {
            name: "p.yaml".into(),
            text: "name: x\nsteps:\n  a: {kind: comand}\n".into(),
        });
        let d = Diagnostic::at(&src, Span::new(3, 13, 6), "unknown step kind `comand`")
            .suggest("comand", ["command", "train"])
            .label("not a step kind");
        let text = d.to_string();
        assert_eq!(
            text,
            "error: unknown step kind `comand`\n  --> p.yaml:3:13\n  |\n3 |   a: {kind: comand}\n  |             ^^^^^^ not a step kind\n  = help: did you mean `command`?\n"
        );
    }

    #[test]
    fn closest_ignores_far_names() {
        assert_eq!(closest("trian", ["train", "split"]), Some("train"));
        assert_eq!(closest("zzzzzz", ["train", "split"]), None);
    }
}
