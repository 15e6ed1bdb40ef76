//! The small expression language of `when:` conditions.
//!
//! `evaluate.metrics.accuracy >= 0.9 and params.deploy == true`: comparisons
//! (`== != < <= > >=`) of numbers, strings, booleans and dotted paths,
//! combined with `and`, `or`, `not` and parentheses. Paths are resolved at
//! run time by the caller (a step's metrics, the params), so the parser only
//! checks syntax; the validator checks that each path names something real.

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Path(Vec<String>),
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

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A syntax error: the character offset in the expression and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

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

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset, m: &str| ExprError {
        offset,
        message: m.to_string(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let tok = match (c, two.as_str()) {
            (_, "==") | (_, "!=") | (_, "<=") | (_, ">=") | (_, "&&") | (_, "||") => {
                i += 2;
                match two.as_str() {
                    "==" => Tok::Op(CmpOp::Eq),
                    "!=" => Tok::Op(CmpOp::Ne),
                    "<=" => Tok::Op(CmpOp::Le),
                    ">=" => Tok::Op(CmpOp::Ge),
                    "&&" => Tok::And,
                    _ => Tok::Or,
                }
            }
            ('<', _) => {
                i += 1;
                Tok::Op(CmpOp::Lt)
            }
            ('>', _) => {
                i += 1;
                Tok::Op(CmpOp::Gt)
            }
            ('!', _) => {
                i += 1;
                Tok::Not
            }
            ('(', _) => {
                i += 1;
                Tok::LParen
            }
            (')', _) => {
                i += 1;
                Tok::RParen
            }
            ('"' | '\'', _) => {
                let q = c;
                i += 1;
                let mut v = String::new();
                while i < chars.len() && chars[i] != q {
                    v.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err(err(start, "the string is not closed"));
                }
                i += 1;
                Tok::Str(v)
            }
            _ if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                Tok::Num(
                    text.parse()
                        .map_err(|_| err(start, &format!("`{text}` is not a number")))?,
                )
            }
            _ if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match text.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Ident(text),
                }
            }
            _ => return Err(err(start, &format!("unexpected character `{c}`"))),
        };
        out.push((start, tok));
    }
    Ok(out)
}

struct P {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |(o, _)| *o)
    }
    fn err(&self, m: impl Into<String>) -> ExprError {
        ExprError {
            offset: self.offset(),
            message: m.into(),
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
    fn cmp(&mut self) -> Result<Expr, ExprError> {
        let l = self.atom()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let r = self.atom()?;
            return Ok(Expr::Cmp(Box::new(l), op, Box::new(r)));
        }
        Ok(l)
    }
    fn atom(&mut self) -> Result<Expr, ExprError> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| self.err("the expression ends too early"))?;
        self.pos += 1;
        Ok(match tok {
            Tok::Num(n) => Expr::Lit(Value::Num(n)),
            Tok::Str(s) => Expr::Lit(Value::Str(s)),
            Tok::Ident(id) if id == "true" => Expr::Lit(Value::Bool(true)),
            Tok::Ident(id) if id == "false" => Expr::Lit(Value::Bool(false)),
            Tok::Ident(id) => {
                if id.ends_with('.') || id.contains("..") {
                    self.pos -= 1;
                    return Err(self.err(format!("`{id}` is not a valid name")));
                }
                Expr::Path(id.split('.').map(str::to_string).collect())
            }
            Tok::LParen => {
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.err("expected `)`"));
                }
                self.pos += 1;
                e
            }
            _ => {
                self.pos -= 1;
                return Err(self.err("expected a value, a name or `(`"));
            }
        })
    }
}

/// Parses an expression.
pub fn parse(s: &str) -> Result<Expr, ExprError> {
    let toks = lex(s)?;
    let mut p = P {
        toks,
        pos: 0,
        len: s.chars().count(),
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(p.err("unexpected text after the end of the expression"));
    }
    Ok(e)
}

impl Expr {
    /// Every dotted path the expression reads.
    pub fn paths(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        self.collect_paths(&mut out);
        out
    }
    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a [String]>) {
        match self {
            Expr::Path(p) => out.push(p),
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
            Expr::Path(p) => lookup(p)?,
            Expr::Not(e) => Value::Bool(!e.eval_bool(lookup)?),
            Expr::And(a, b) => Value::Bool(a.eval_bool(lookup)? && b.eval_bool(lookup)?),
            Expr::Or(a, b) => Value::Bool(a.eval_bool(lookup)? || b.eval_bool(lookup)?),
            Expr::Cmp(a, op, b) => {
                let (l, r) = (a.eval(lookup)?, b.eval(lookup)?);
                let ord = match (&l, &r) {
                    (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
                    (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                    (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
                    _ => return Err(format!("cannot compare {l} with {r}")),
                };
                use std::cmp::Ordering::*;
                Value::Bool(match (op, ord) {
                    (_, None) => matches!(op, CmpOp::Ne),
                    (CmpOp::Eq, Some(o)) => o == Equal,
                    (CmpOp::Ne, Some(o)) => o != Equal,
                    (CmpOp::Lt, Some(o)) => o == Less,
                    (CmpOp::Le, Some(o)) => o != Greater,
                    (CmpOp::Gt, Some(o)) => o == Greater,
                    (CmpOp::Ge, Some(o)) => o != Less,
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
    fn lists_paths() {
        let e = parse("x.metrics.auc > 0.8 and params.p == 1").unwrap();
        assert_eq!(e.paths().len(), 2);
    }
}
