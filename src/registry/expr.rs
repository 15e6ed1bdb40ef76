//! Approval conditions: small boolean expressions over a version's metrics.
//!
//! `auto_approve_if: "accuracy >= 0.97 and logloss < 0.3"` is parsed once, when
//! the pipeline is validated, so a typo is reported with a caret before anything
//! runs; it is evaluated when the version is registered. The language is
//! deliberately tiny: metric names, numbers, the six comparisons, `and`, `or`,
//! `not` (also `&&`, `||`, `!`) and parentheses. A comparison with a NaN metric
//! is false, as in IEEE arithmetic, so a NaN never approves a model.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed approval condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    root: Node,
}

/// An error in a condition, pointing at the offending character.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// The condition as written.
    pub source: String,
    /// Byte offset into `source` of the problem.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

/// The outcome of evaluating a condition, with the values that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub holds: bool,
    /// Each comparison with the metric values filled in, e.g.
    /// `accuracy = 0.981 >= 0.97 (true)`, joined by `; `.
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Number(f64),
    Metric { name: String, offset: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Ge => ">=",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Lt => "<",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
    fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Ge => a >= b,
            CmpOp::Gt => a > b,
            CmpOp::Le => a <= b,
            CmpOp::Lt => a < b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(f64),
    Op(CmpOp),
    And,
    Or,
    Not,
    LParen,
    RParen,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Number(n) => format!("`{n}`"),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::And => "`and`".into(),
            Tok::Or => "`or`".into(),
            Tok::Not => "`not`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
        }
    }
}

impl Condition {
    /// Parses a condition such as `auc >= 0.9` or `accuracy >= 0.97 and logloss < 0.3`.
    pub fn parse(source: &str) -> Result<Condition, ExprError> {
        let tokens = lex(source)?;
        let mut p = Parser {
            source,
            tokens: &tokens,
            pos: 0,
        };
        if tokens.is_empty() {
            return Err(p.error(0, "the condition is empty", Some(EXAMPLE)));
        }
        let root = p.or()?;
        if let Some((tok, offset)) = p.tokens.get(p.pos) {
            let hint = match tok {
                Tok::Ident(_) | Tok::Number(_) | Tok::LParen => {
                    Some("join comparisons with `and` or `or`")
                }
                _ => None,
            };
            return Err(p.error(
                *offset,
                format!("unexpected {} after a complete condition", tok.describe()),
                hint,
            ));
        }
        Ok(Condition {
            source: source.to_string(),
            root,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The metric names the condition reads, sorted and without duplicates, so
    /// the caller can check them against the metrics an evaluate step produces.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        collect_metrics(&self.root, &mut names);
        names.sort();
        names.dedup();
        names
    }

    /// Evaluates the condition over `metrics`. A metric the condition names but
    /// the map lacks is an error naming the metrics that exist.
    pub fn evaluate(&self, metrics: &BTreeMap<String, f64>) -> Result<Evaluation, ExprError> {
        let mut parts = Vec::new();
        let holds = self.eval_node(&self.root, metrics, &mut parts)?;
        Ok(Evaluation {
            holds,
            explanation: parts.join("; "),
        })
    }

    fn eval_node(
        &self,
        node: &Node,
        metrics: &BTreeMap<String, f64>,
        parts: &mut Vec<String>,
    ) -> Result<bool, ExprError> {
        // Both sides are always evaluated so the explanation shows every value
        // and a missing metric is reported even behind a short-circuit.
        Ok(match node {
            Node::And(a, b) => {
                let x = self.eval_node(a, metrics, parts)?;
                let y = self.eval_node(b, metrics, parts)?;
                x && y
            }
            Node::Or(a, b) => {
                let x = self.eval_node(a, metrics, parts)?;
                let y = self.eval_node(b, metrics, parts)?;
                x || y
            }
            Node::Not(a) => !self.eval_node(a, metrics, parts)?,
            Node::Compare { left, op, right } => {
                let a = self.value(left, metrics)?;
                let b = self.value(right, metrics)?;
                let r = op.apply(a, b);
                parts.push(format!(
                    "{} {} {} ({r})",
                    show_operand(left, a),
                    op.symbol(),
                    show_operand(right, b)
                ));
                r
            }
        })
    }

    fn value(&self, operand: &Operand, metrics: &BTreeMap<String, f64>) -> Result<f64, ExprError> {
        match operand {
            Operand::Number(n) => Ok(*n),
            Operand::Metric { name, offset } => metrics.get(name).copied().ok_or_else(|| {
                let hint = if metrics.is_empty() {
                    "the version has no metrics; pass `metrics: evaluate.metrics` to the register step"
                        .to_string()
                } else {
                    let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                    match closest(name, &known) {
                        Some(s) => format!("did you mean `{s}`? the version has: {}", known.join(", ")),
                        None => format!("the version has: {}", known.join(", ")),
                    }
                };
                ExprError {
                    source: self.source.clone(),
                    offset: *offset,
                    message: format!("unknown metric `{name}`"),
                    hint: Some(hint),
                }
            }),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn show_operand(operand: &Operand, value: f64) -> String {
    match operand {
        Operand::Number(n) => n.to_string(),
        Operand::Metric { name, .. } => format!("{name} = {value}"),
    }
}

fn collect_metrics(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::And(a, b) | Node::Or(a, b) => {
            collect_metrics(a, out);
            collect_metrics(b, out);
        }
        Node::Not(a) => collect_metrics(a, out),
        Node::Compare { left, right, .. } => {
            for o in [left, right] {
                if let Operand::Metric { name, .. } = o {
                    out.push(name.clone());
                }
            }
        }
    }
}

fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

const EXAMPLE: &str = "write a comparison over metrics, e.g. `accuracy >= 0.97 and logloss < 0.3`";

fn lex(source: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let err = |offset: usize, message: String, hint: Option<&str>| ExprError {
        source: source.to_string(),
        offset,
        message,
        hint: hint.map(str::to_string),
    };
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            b'>' | b'<' | b'=' | b'!' => {
                let next = bytes.get(i + 1).copied();
                let (tok, len) = match (c, next) {
                    (b'>', Some(b'=')) => (Tok::Op(CmpOp::Ge), 2),
                    (b'<', Some(b'=')) => (Tok::Op(CmpOp::Le), 2),
                    (b'=', Some(b'=')) => (Tok::Op(CmpOp::Eq), 2),
                    (b'!', Some(b'=')) => (Tok::Op(CmpOp::Ne), 2),
                    (b'>', _) => (Tok::Op(CmpOp::Gt), 1),
                    (b'<', _) => (Tok::Op(CmpOp::Lt), 1),
                    (b'!', _) => (Tok::Not, 1),
                    _ => {
                        return Err(err(
                            start,
                            "`=` is not a comparison".into(),
                            Some("write `==` to test equality"),
                        ));
                    }
                };
                out.push((tok, start));
                i += len;
            }
            b'&' | b'|' => {
                if bytes.get(i + 1) != Some(&c) {
                    let (word, twice) = if c == b'&' {
                        ("and", "&&")
                    } else {
                        ("or", "||")
                    };
                    return Err(err(
                        start,
                        format!("unexpected `{}`", c as char),
                        Some(&format!("write `{word}` or `{twice}`")),
                    ));
                }
                out.push((if c == b'&' { Tok::And } else { Tok::Or }, start));
                i += 2;
            }
            b'0'..=b'9' | b'.' | b'-' | b'+' => {
                i += 1;
                while i < bytes.len() {
                    let d = bytes[i];
                    let exponent_sign =
                        (d == b'-' || d == b'+') && matches!(bytes[i - 1], b'e' | b'E');
                    if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let text = &source[start..i];
                let value: f64 = text.parse().map_err(|_| {
                    err(
                        start,
                        format!("`{text}` is not a number"),
                        Some("write numbers like `0.9`, `-1.5` or `1e-3`"),
                    )
                })?;
                if !value.is_finite() {
                    return Err(err(start, format!("`{text}` is not a finite number"), None));
                }
                out.push((Tok::Number(value), start));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                let word = &source[start..i];
                let tok = match word {
                    "and" | "AND" => Tok::And,
                    "or" | "OR" => Tok::Or,
                    "not" | "NOT" => Tok::Not,
                    _ => Tok::Ident(word.to_string()),
                };
                out.push((tok, start));
            }
            _ => {
                let ch = source[start..].chars().next().unwrap_or('?');
                return Err(err(
                    start,
                    format!("unexpected character `{ch}`"),
                    Some(EXAMPLE),
                ));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    source: &'a str,
    tokens: &'a [(Tok, usize)],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, offset: usize, message: impl Into<String>, hint: Option<&str>) -> ExprError {
        ExprError {
            source: self.source.to_string(),
            offset,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map(|(_, o)| *o)
            .unwrap_or(self.source.len())
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.not()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.not()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(&Tok::LParen) {
            let open = self.offset();
            self.pos += 1;
            let inner = self.or()?;
            if self.peek() != Some(&Tok::RParen) {
                return Err(self.error(
                    self.offset(),
                    "expected `)`",
                    Some(&format!("close the `(` at column {}", open + 1)),
                ));
            }
            self.pos += 1;
            return Ok(inner);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => {
                let found = match self.tokens.get(self.pos) {
                    Some((t, _)) => format!("found {}", t.describe()),
                    None => "found the end of the condition".to_string(),
                };
                return Err(self.error(
                    self.offset(),
                    format!("expected a comparison (`>=`, `>`, `<=`, `<`, `==`, `!=`), {found}"),
                    Some(EXAMPLE),
                ));
            }
        };
        self.pos += 1;
        let right = self.operand()?;
        if matches!((&left, &right), (Operand::Number(_), Operand::Number(_))) {
            return Err(self.error(
                self.tokens[self.pos - 3].1,
                "the comparison has no metric on either side",
                Some("compare a metric with a number, e.g. `auc >= 0.9`"),
            ));
        }
        Ok(Node::Compare { left, op, right })
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        let offset = self.offset();
        match self.tokens.get(self.pos) {
            Some((Tok::Number(n), _)) => {
                self.pos += 1;
                Ok(Operand::Number(*n))
            }
            Some((Tok::Ident(name), _)) => {
                self.pos += 1;
                Ok(Operand::Metric {
                    name: name.clone(),
                    offset,
                })
            }
            Some((t, _)) => Err(self.error(
                offset,
                format!("expected a metric name or a number, found {}", t.describe()),
                Some(EXAMPLE),
            )),
            None => Err(self.error(
                offset,
                "expected a metric name or a number, found the end of the condition",
                Some(EXAMPLE),
            )),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid condition: {}", self.message)?;
        // Columns count characters, not bytes, so the caret lines up under
        // non-ASCII metric names too.
        let column = self.source[..self.offset.min(self.source.len())]
            .chars()
            .count();
        writeln!(f, "  | {}", self.source)?;
        write!(f, "  | {}^", " ".repeat(column))?;
        if let Some(h) = &self.hint {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ExprError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn holds(src: &str, m: &[(&str, f64)]) -> bool {
        Condition::parse(src)
            .unwrap()
            .evaluate(&metrics(m))
            .unwrap()
            .holds
    }

    #[test]
    fn single_comparisons() {
        let m = [("auc", 0.9)];
        assert!(holds("auc >= 0.9", &m));
        assert!(!holds("auc > 0.9", &m));
        assert!(holds("auc <= 0.9", &m));
        assert!(!holds("auc < 0.9", &m));
        assert!(holds("auc == 0.9", &m));
        assert!(!holds("auc != 0.9", &m));
        assert!(holds("0.5 < auc", &m));
        assert!(holds("auc>=9e-1", &m));
    }

    #[test]
    fn boolean_operators_and_precedence() {
        let m = [("accuracy", 0.98), ("logloss", 0.4)];
        assert!(!holds("accuracy >= 0.97 and logloss < 0.3", &m));
        assert!(holds("accuracy >= 0.97 or logloss < 0.3", &m));
        assert!(holds("accuracy >= 0.97 && !(logloss < 0.3)", &m));
        // `and` binds tighter than `or`: false or (true and true).
        assert!(holds("logloss < 0.3 or accuracy > 0.9 and logloss < 1", &m));
        assert!(!holds(
            "(logloss < 0.3 or accuracy > 0.9) and logloss < 0.1",
            &m
        ));
        assert!(holds("not not accuracy > 0", &m));
    }

    #[test]
    fn negative_numbers_and_comparisons_of_metrics() {
        let m = [("r2", -0.5), ("a", 1.0), ("b", 2.0)];
        assert!(holds("r2 > -1", &m));
        assert!(holds("a < b", &m));
    }

    #[test]
    fn nan_never_holds() {
        let m = [("auc", f64::NAN)];
        assert!(!holds("auc >= 0.9", &m));
        assert!(!holds("auc < 0.9", &m));
    }

    #[test]
    fn explanation_shows_values() {
        let c = Condition::parse("accuracy >= 0.97 and logloss < 0.3").unwrap();
        let e = c
            .evaluate(&metrics(&[("accuracy", 0.981), ("logloss", 0.2)]))
            .unwrap();
        assert!(e.holds);
        assert_eq!(
            e.explanation,
            "accuracy = 0.981 >= 0.97 (true); logloss = 0.2 < 0.3 (true)"
        );
        assert_eq!(c.metric_names(), vec!["accuracy", "logloss"]);
    }

    #[test]
    fn unknown_metric_suggests_the_closest() {
        let c = Condition::parse("acuracy >= 0.9").unwrap();
        let e = c
            .evaluate(&metrics(&[("accuracy", 0.9), ("logloss", 0.1)]))
            .unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("unknown metric `acuracy`"), "{e}");
        assert!(e.hint.unwrap().contains("did you mean `accuracy`"));
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let cases = [
            ("", 0, "empty"),
            ("auc >= ", 7, "found the end"),
            ("auc = 0.9", 4, "`=` is not a comparison"),
            ("auc 0.9", 4, "expected a comparison"),
            ("auc >= 0.9 logloss < 1", 11, "unexpected `logloss`"),
            ("(auc >= 0.9", 11, "expected `)`"),
            ("auc >= 0.9 & x < 1", 11, "unexpected `&`"),
            ("auc >= 1.2.3", 7, "not a number"),
            ("1 < 2", 0, "no metric"),
            ("auc >= $", 7, "unexpected character `$`"),
            ("auc >= and", 7, "expected a metric name or a number"),
        ];
        for (src, offset, needle) in cases {
            let e = Condition::parse(src).unwrap_err();
            assert_eq!(e.offset, offset, "{src}: {e}");
            assert!(e.message.contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn error_display_has_a_caret_under_the_problem() {
        let e = Condition::parse("auc => 0.9").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("  | auc => 0.9\n  |     ^"), "{text}");
    }
}
