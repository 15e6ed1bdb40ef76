//! Approval conditions: small boolean expressions over a version's metrics.
//!
//! `auto_approve_if: "accuracy >= 0.97 and logloss < 0.3"` is parsed once, when
//! the pipeline is validated, so a typo is reported with a caret before anything
//! runs; it is evaluated when the version is registered. The language is the
//! pipeline's one expression language ([`crate::spec::expr`]) in its metric
//! dialect: metric names, numbers, the six comparisons, `and`, `or`, `not`
//! (also `&&`, `||`, `!`) and parentheses. A comparison with a NaN metric
//! is false, as in IEEE arithmetic, so a NaN never approves a model.

use std::collections::BTreeMap;
use std::fmt;

use crate::spec::expr::{self as lang, Expr, Value};

/// A parsed approval condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    root: Expr,
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

impl ExprError {
    /// The offset in characters (columns), for carets.
    pub fn column(&self) -> usize {
        self.source[..self.offset.min(self.source.len())]
            .chars()
            .count()
    }
}

/// The byte offset of character `chars` in `s`.
fn byte_offset(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(b, _)| b)
}

/// The outcome of evaluating a condition, with the values that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub holds: bool,
    /// Each comparison with the metric values filled in, e.g.
    /// `accuracy = 0.981 >= 0.97 (true)`, joined by `; `.
    pub explanation: String,
}

impl Condition {
    /// Parses a condition such as `auc >= 0.9` or `accuracy >= 0.97 and logloss < 0.3`.
    pub fn parse(source: &str) -> Result<Condition, ExprError> {
        let root = lang::parse_metrics(source).map_err(|e| ExprError {
            source: source.to_string(),
            offset: byte_offset(source, e.offset),
            message: e.message,
            hint: e.hint,
        })?;
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
        let mut names: Vec<String> = self.root.paths().iter().map(|p| p.join(".")).collect();
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
        node: &Expr,
        metrics: &BTreeMap<String, f64>,
        parts: &mut Vec<String>,
    ) -> Result<bool, ExprError> {
        // Both sides are always evaluated so the explanation shows every value
        // and a missing metric is reported even behind a short-circuit.
        Ok(match node {
            Expr::And(a, b) => {
                let x = self.eval_node(a, metrics, parts)?;
                let y = self.eval_node(b, metrics, parts)?;
                x && y
            }
            Expr::Or(a, b) => {
                let x = self.eval_node(a, metrics, parts)?;
                let y = self.eval_node(b, metrics, parts)?;
                x || y
            }
            Expr::Not(a) => !self.eval_node(a, metrics, parts)?,
            Expr::Cmp(left, op, right) => {
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
            // The metric dialect makes every leaf a comparison.
            Expr::Lit(_) | Expr::Path(..) => {
                return Err(ExprError {
                    source: self.source.clone(),
                    offset: 0,
                    message: "the condition is not a comparison".into(),
                    hint: Some(lang::METRICS_EXAMPLE.into()),
                });
            }
        })
    }

    fn value(&self, operand: &Expr, metrics: &BTreeMap<String, f64>) -> Result<f64, ExprError> {
        match operand {
            Expr::Lit(Value::Num(n)) => Ok(*n),
            Expr::Path(parts, offset) => {
                let name = parts.join(".");
                metrics.get(&name).copied().ok_or_else(|| {
                    let hint = if metrics.is_empty() {
                        "the version has no metrics; pass `metrics: evaluate.metrics` to the register step"
                            .to_string()
                    } else {
                        let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                        match closest(&name, &known) {
                            Some(s) => format!("did you mean `{s}`? the version has: {}", known.join(", ")),
                            None => format!("the version has: {}", known.join(", ")),
                        }
                    };
                    ExprError {
                        source: self.source.clone(),
                        offset: byte_offset(&self.source, *offset),
                        message: format!("unknown metric `{name}`"),
                        hint: Some(hint),
                    }
                })
            }
            _ => Err(ExprError {
                source: self.source.clone(),
                offset: 0,
                message: "a comparison side is neither a metric nor a number".into(),
                hint: Some(lang::METRICS_EXAMPLE.into()),
            }),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn show_operand(operand: &Expr, value: f64) -> String {
    match operand {
        Expr::Path(parts, _) => format!("{} = {value}", parts.join(".")),
        _ => value.to_string(),
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

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid condition: {}", self.message)?;
        // Columns count characters, not bytes, so the caret lines up under
        // non-ASCII metric names too.
        writeln!(f, "  | {}", self.source)?;
        write!(f, "  | {}^", " ".repeat(self.column()))?;
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
