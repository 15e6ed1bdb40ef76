//! The one small expression language of the pipeline: `when:` conditions,
//! the registry's `auto_approve_if` policies (and, later, tuning criteria).
//!
//! `evaluate.metrics.accuracy >= 0.9 and params.deploy == true`: comparisons
//! (`== != < <= > >=`) of numbers, strings, booleans and dotted paths,
//! combined with `and`, `or`, `not` (also `&&`, `||`, `!`, and upper case)
//! and parentheses. Paths are resolved by the caller (a step's metrics, the
//! params), so the parser only checks syntax; the validator checks that each
//! path names something real. Every error carries the character offset it
//! is about, and every path the offset it was written at.
//!
//! Two dialects share the lexer and the grammar: [`parse`] reads conditions
//! (any value may stand alone, e.g. `params.deploy`), [`parse_metrics`]
//! reads metric conditions as approval policies use them (every leaf is a
//! comparison of metric names and numbers, with a metric on one side).

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    /// A dotted name and the character offset it starts at.
    Path(Vec<String>, usize),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Ge => ">=",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Lt => "<",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }

    /// Applies the comparison to numbers; any comparison with a NaN but `!=` is false.
    pub fn apply(self, a: f64, b: f64) -> bool {
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

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A syntax error: the character offset in the expression, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// The hint for metric conditions.
pub const METRICS_EXAMPLE: &str =
    "write a comparison over metrics, e.g. `accuracy >= 0.97 and logloss < 0.3`";

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
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
            Tok::Num(n) => format!("`{n}`"),
            Tok::Str(s) => format!("`{s:?}`"),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::And => "`and`".into(),
            Tok::Or => "`or`".into(),
            Tok::Not => "`not`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
        }
    }
}

fn err(offset: usize, message: impl Into<String>, hint: Option<&str>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let digit_at = |j: usize| chars.get(j).is_some_and(|d| d.is_ascii_digit());
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let punct = match (c, next) {
            ('=', Some('=')) => Some((Tok::Op(CmpOp::Eq), 2)),
            ('!', Some('=')) => Some((Tok::Op(CmpOp::Ne), 2)),
            ('<', Some('=')) => Some((Tok::Op(CmpOp::Le), 2)),
            ('>', Some('=')) => Some((Tok::Op(CmpOp::Ge), 2)),
            ('&', Some('&')) => Some((Tok::And, 2)),
            ('|', Some('|')) => Some((Tok::Or, 2)),
            ('<', _) => Some((Tok::Op(CmpOp::Lt), 1)),
            ('>', _) => Some((Tok::Op(CmpOp::Gt), 1)),
            ('!', _) => Some((Tok::Not, 1)),
            ('(', _) => Some((Tok::LParen, 1)),
            (')', _) => Some((Tok::RParen, 1)),
            ('=', _) => {
                return Err(err(
                    start,
                    "`=` is not a comparison",
                    Some("write `==` to test equality"),
                ));
            }
            ('&' | '|', _) => {
                let (word, twice) = if c == '&' {
                    ("and", "&&")
                } else {
                    ("or", "||")
                };
                return Err(err(
                    start,
                    format!("unexpected `{c}`"),
                    Some(&format!("write `{word}` or `{twice}`")),
                ));
            }
            _ => None,
        };
        if let Some((tok, len)) = punct {
            i += len;
            out.push((start, tok));
            continue;
        }
        let tok = if c == '"' || c == '\'' {
            i += 1;
            let mut v = String::new();
            while i < chars.len() && chars[i] != c {
                v.push(chars[i]);
                i += 1;
            }
            if i == chars.len() {
                return Err(err(start, "the string is not closed", None));
            }
            i += 1;
            Tok::Str(v)
        } else if c.is_ascii_digit()
            || (matches!(c, '-' | '+' | '.') && digit_at(i + 1))
            || (matches!(c, '-' | '+') && next == Some('.') && digit_at(i + 2))
        {
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || (matches!(chars[i], '-' | '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
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
            Tok::Num(value)
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.as_str() {
                "and" | "AND" => Tok::And,
                "or" | "OR" => Tok::Or,
                "not" | "NOT" => Tok::Not,
                _ => Tok::Ident(text),
            }
        } else {
            return Err(err(
                start,
                format!("unexpected character `{c}`"),
                Some("write e.g. `evaluate.metrics.accuracy >= 0.9`; combine with and, or, not"),
            ));
        };
        out.push((start, tok));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Conditions,
    Metrics,
}

struct P {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
    dialect: Dialect,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |(o, _)| *o)
    }
    fn err(&self, m: impl Into<String>, hint: Option<&str>) -> ExprError {
        err(self.offset(), m, hint)
    }
    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("found {}", t.describe()),
            None => "found the end of the condition".to_string(),
        }
    }
    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.not()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            l = Expr::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn group(&mut self) -> Result<Expr, ExprError> {
        let open = self.offset();
        self.pos += 1;
        let e = self.or()?;
        if self.peek() != Some(&Tok::RParen) {
            return Err(self.err(
                "expected `)`",
                Some(&format!("close the `(` at column {}", open + 1)),
            ));
        }
        self.pos += 1;
        Ok(e)
    }
    fn cmp(&mut self) -> Result<Expr, ExprError> {
        if self.dialect == Dialect::Metrics && self.peek() == Some(&Tok::LParen) {
            return self.group();
        }
        let l_at = self.offset();
        let l = self.atom()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let r = self.atom()?;
            if self.dialect == Dialect::Metrics && matches!((&l, &r), (Expr::Lit(_), Expr::Lit(_)))
            {
                return Err(err(
                    l_at,
                    "the comparison has no metric on either side",
                    Some("compare a metric with a number, e.g. `auc >= 0.9`"),
                ));
            }
            return Ok(Expr::Cmp(Box::new(l), op, Box::new(r)));
        }
        if self.dialect == Dialect::Metrics {
            return Err(self.err(
                format!(
                    "expected a comparison (`>=`, `>`, `<=`, `<`, `==`, `!=`), {}",
                    self.found()
                ),
                Some(METRICS_EXAMPLE),
            ));
        }
        Ok(l)
    }
    fn atom(&mut self) -> Result<Expr, ExprError> {
        let at = self.offset();
        let Some(tok) = self.peek().cloned() else {
            return Err(match self.dialect {
                Dialect::Conditions => self.err("the expression ends too early", None),
                Dialect::Metrics => self.err(
                    "expected a metric name or a number, found the end of the condition",
                    Some(METRICS_EXAMPLE),
                ),
            });
        };
        let metrics = self.dialect == Dialect::Metrics;
        let e = match tok {
            Tok::Num(n) => Expr::Lit(Value::Num(n)),
            Tok::Ident(id) if id == "true" && !metrics => Expr::Lit(Value::Bool(true)),
            Tok::Ident(id) if id == "false" && !metrics => Expr::Lit(Value::Bool(false)),
            Tok::Ident(id) => {
                if id.ends_with('.') || id.contains("..") {
                    return Err(self.err(format!("`{id}` is not a valid name"), None));
                }
                Expr::Path(id.split('.').map(str::to_string).collect(), at)
            }
            Tok::Str(s) if !metrics => Expr::Lit(Value::Str(s)),
            Tok::LParen if !metrics => return self.group(),
            _ if metrics => {
                return Err(self.err(
                    format!("expected a metric name or a number, {}", self.found()),
                    Some(METRICS_EXAMPLE),
                ));
            }
            _ => return Err(self.err("expected a value, a name or `(`", None)),
        };
        self.pos += 1;
        Ok(e)
    }
}

fn parse_in(s: &str, dialect: Dialect) -> Result<Expr, ExprError> {
    let toks = lex(s)?;
    if toks.is_empty() {
        let hint = match dialect {
            Dialect::Metrics => METRICS_EXAMPLE,
            Dialect::Conditions => "write e.g. `evaluate.metrics.accuracy >= 0.9`",
        };
        return Err(err(0, "the condition is empty", Some(hint)));
    }
    let mut p = P {
        toks,
        pos: 0,
        len: s.chars().count(),
        dialect,
    };
    let e = p.or()?;
    if let Some(tok) = p.peek() {
        let hint = match tok {
            Tok::Ident(_) | Tok::Num(_) | Tok::Str(_) | Tok::LParen => {
                Some("join comparisons with `and` or `or`")
            }
            _ => None,
        };
        return Err(p.err(
            format!("unexpected {} after a complete condition", tok.describe()),
            hint,
        ));
    }
    Ok(e)
}

/// Parses a condition (`when:`).
pub fn parse(s: &str) -> Result<Expr, ExprError> {
    parse_in(s, Dialect::Conditions)
}

/// Parses a metric condition: every leaf compares metric names and numbers.
pub fn parse_metrics(s: &str) -> Result<Expr, ExprError> {
    parse_in(s, Dialect::Metrics)
}

impl Expr {
    /// Every dotted path the expression reads.
    pub fn paths(&self) -> Vec<&[String]> {
        self.paths_at().into_iter().map(|(p, _)| p).collect()
    }

    /// Every dotted path with the character offset it was written at.
    pub fn paths_at(&self) -> Vec<(&[String], usize)> {
        let mut out = Vec::new();
        self.collect_paths(&mut out);
        out
    }
    fn collect_paths<'a>(&'a self, out: &mut Vec<(&'a [String], usize)>) {
        match self {
            Expr::Path(p, at) => out.push((p, *at)),
            Expr::Lit(_) => {}
            Expr::Not(e) => e.collect_paths(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(a, _, b) => {
                a.collect_paths(out);
                b.collect_paths(out);
            }
        }
    }

    /// Evaluates to a value; `lookup` resolves paths.
    pub fn eval(
        &self,
        lookup: &dyn Fn(&[String]) -> Result<Value, String>,
    ) -> Result<Value, String> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Path(p, _) => lookup(p)?,
            Expr::Not(e) => Value::Bool(!e.eval_bool(lookup)?),
            Expr::And(a, b) => Value::Bool(a.eval_bool(lookup)? && b.eval_bool(lookup)?),
            Expr::Or(a, b) => Value::Bool(a.eval_bool(lookup)? || b.eval_bool(lookup)?),
            Expr::Cmp(a, op, b) => {
                let (l, r) = (a.eval(lookup)?, b.eval(lookup)?);
                let ord = match (&l, &r) {
                    (Value::Num(x), Value::Num(y)) => return Ok(Value::Bool(op.apply(*x, *y))),
                    (Value::Str(x), Value::Str(y)) => x.cmp(y),
                    (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
                    _ => return Err(format!("cannot compare {l} with {r}")),
                };
                use std::cmp::Ordering::*;
                Value::Bool(match op {
                    CmpOp::Eq => ord == Equal,
                    CmpOp::Ne => ord != Equal,
                    CmpOp::Lt => ord == Less,
                    CmpOp::Le => ord != Greater,
                    CmpOp::Gt => ord == Greater,
                    CmpOp::Ge => ord != Less,
                })
            }
        })
    }

    pub fn eval_bool(
        &self,
        lookup: &dyn Fn(&[String]) -> Result<Value, String>,
    ) -> Result<bool, String> {
        match self.eval(lookup)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "the condition must be true or false, but it is {other}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(p: &[String]) -> Result<Value, String> {
        match p.join(".").as_str() {
            "evaluate.metrics.accuracy" => Ok(Value::Num(0.93)),
            "params.deploy" => Ok(Value::Bool(true)),
            "ab.metrics.winner" => Ok(Value::Str("challenger".into())),
            other => Err(format!("no {other}")),
        }
    }

    #[test]
    fn evaluates_comparisons_and_logic() {
        let t = |s: &str| parse(s).unwrap().eval_bool(&lookup).unwrap();
        assert!(t("evaluate.metrics.accuracy >= 0.9"));
        assert!(!t("evaluate.metrics.accuracy >= 0.95"));
        assert!(t("evaluate.metrics.accuracy > 0.9 and params.deploy"));
        assert!(t(
            "not (evaluate.metrics.accuracy < 0.5) && ab.metrics.winner == 'challenger'"
        ));
        assert!(t(
            "evaluate.metrics.accuracy < 0.5 or params.deploy == true"
        ));
        assert!(t("1e-3 < 2"));
    }

    #[test]
    fn reports_syntax_errors_with_offsets() {
        assert_eq!(parse("a >= ").unwrap_err().offset, 5);
        assert_eq!(parse("a >= 1 b").unwrap_err().offset, 7);
        assert_eq!(parse("(a > 1").unwrap_err().message, "expected `)`");
        assert!(parse("a $ b").is_err());
    }

    #[test]
    fn nan_compares_false_except_not_equal() {
        let nan = |_: &[String]| Ok(Value::Num(f64::NAN));
        assert!(!parse("x.metrics.a >= 0").unwrap().eval_bool(&nan).unwrap());
        assert!(!parse("x.metrics.a < 0").unwrap().eval_bool(&nan).unwrap());
        assert!(parse("x.metrics.a != 0").unwrap().eval_bool(&nan).unwrap());
    }

    #[test]
    fn metric_dialect_wants_comparisons() {
        assert!(parse("params.deploy").is_ok());
        let e = parse_metrics("auc").unwrap_err();
        assert!(e.message.starts_with("expected a comparison"), "{e:?}");
        assert_eq!(parse_metrics("1 < 2").unwrap_err().offset, 0);
        assert!(parse_metrics("(auc > 1) AND NOT (r2 < 0)").is_ok());
    }

    #[test]
    fn paths_know_where_they_are() {
        let e = parse("params.a and ünïcode.metrics.x > 1").unwrap();
        let at: Vec<usize> = e.paths_at().iter().map(|(_, o)| *o).collect();
        assert_eq!(at, vec![0, 13]);
    }

    #[test]
    fn lists_paths() {
        let e = parse("x.metrics.auc > 0.8 and params.p == 1").unwrap();
        assert_eq!(e.paths().len(), 2);
    }
}
