//! `{{ params.NAME }}` templates, rendered with minijinja before validation.
//!
//! Templates are rendered scalar by scalar on the YAML tree, not on the file
//! text, so every value keeps its original position for later messages.
//! A template sees `params`, `outputs` and `inputs` and nothing else (no
//! environment, no files). Its work is bounded by minijinja's fuel (which
//! also counts the bytes it makes) and its output by [`MAX_OUTPUT`], so a
//! file cannot make `validate` loop or fill memory.
//! `{{ outputs.NAME }}` and `{{ inputs.NAME }}` name directories that exist
//! only when the step runs: they render to placeholders that the executor
//! fills in (see [`fill_run_placeholders`]). Secret params render to
//! placeholders too ([`SECRET_MARK`]): their values never enter the spec,
//! and only a step's `env:` values may hold them.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Object, Serde};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use super::decode::Ctx;
use super::params::{ParamDecl, closest_param};
use super::source::{Diagnostic, Span};
use super::yaml::{Node, NodeKind};

const OUT_MARK: &str = "\u{1}pipeline-output:";
const IN_MARK: &str = "\u{1}pipeline-input:";
/// Starts the placeholder a secret param renders to, `{{ secret.NAME }}`:
/// readable where the spec is shown (plans, cache-key changes), and never
/// rendered again, since templates are rendered once.
pub const SECRET_MARK: &str = "{{ secret.";
const SECRET_END: &str = " }}";
const END_MARK: &str = "\u{1}";

/// The work one template may do, in minijinja fuel (an instruction costs one;
/// 64 bytes of data made cost one).
pub const FUEL: u64 = 20_000;
/// The most text one template may render to.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// `outputs` / `inputs` in a template: any valid name renders to its placeholder.
#[derive(Debug)]
struct Placeholders(&'static str);

impl Object for Placeholders {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        super::model::is_name(name).then(|| format!("{}{name}{END_MARK}", self.0).into())
    }
}

/// The placeholder a secret param renders to.
pub fn secret_placeholder(name: &str) -> String {
    format!("{SECRET_MARK}{name}{SECRET_END}")
}

/// Renders every templated scalar under `node`, the value of the top-level key `section`.
pub fn render_tree(
    ctx: &Ctx,
    section: &str,
    node: &mut Node,
    params: &BTreeMap<String, Value>,
    decls: &[ParamDecl],
) -> Result<(), Diagnostic> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(32);
    // Secret params are seen as placeholders, never as their values.
    let mut seen: BTreeMap<String, Value> = params.clone();
    for d in decls.iter().filter(|d| d.is_secret()) {
        seen.insert(d.name.clone(), Value::from(secret_placeholder(&d.name)));
    }
    let vars = minijinja::context! {
        params => Serde(&seen),
        outputs => minijinja::Value::from_object(Placeholders(OUT_MARK)),
        inputs => minijinja::Value::from_object(Placeholders(IN_MARK)),
    };
    let mut path = vec![section.to_string()];
    let r = Renderer {
        ctx,
        env: &env,
        vars: &vars,
        decls,
    };
    r.walk(node, &mut path)
}

struct Renderer<'a> {
    ctx: &'a Ctx,
    env: &'a Environment<'a>,
    vars: &'a minijinja::Value,
    decls: &'a [ParamDecl],
}

impl Renderer<'_> {
    fn walk(&self, node: &mut Node, path: &mut Vec<String>) -> Result<(), Diagnostic> {
        match &mut node.kind {
            NodeKind::Scalar { text, quoted } => {
                if text.contains("{{") || text.contains("{%") || text.contains("{#") {
                    let rendered = self.env.render_str(text, self.vars).map_err(|e| {
                        template_error(self.ctx, node.span, *quoted, text, &e, self.decls)
                    })?;
                    if rendered.len() > MAX_OUTPUT {
                        return Err(Diagnostic::at(
                            &self.ctx.source,
                            node.span,
                            format!(
                                "the template renders to {} bytes, more than the {MAX_OUTPUT} a value may hold",
                                rendered.len()
                            ),
                        )
                        .help("templates fill in values; put large content in a file the step reads"));
                    }
                    *text = rendered;
                }
                if text.contains(SECRET_MARK) && !secret_allowed(path) {
                    return Err(Diagnostic::at(
                        &self.ctx.source,
                        node.span,
                        "a secret param may be used only in a step's `env:` values",
                    )
                    .label("this value would hold the secret")
                    .note("secret values are kept out of the run records, step files and cache keys; the step gets them in its environment")
                    .help("set an environment variable in the step's `env:` from the secret, e.g. `env: {DB_PASSWORD: \"{{ params.db_password }}\"}`, and read it there"));
                }
                Ok(())
            }
            NodeKind::Seq(items) => {
                for n in items {
                    path.push(String::new());
                    let r = self.walk(n, path);
                    path.pop();
                    r?;
                }
                Ok(())
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    path.push(k.as_scalar().unwrap_or("").to_string());
                    let r = self.walk(v, path);
                    path.pop();
                    r?;
                }
                Ok(())
            }
            NodeKind::Null => Ok(()),
        }
    }
}

/// Where a secret placeholder may stand: `steps.STEP.env.NAME`.
fn secret_allowed(path: &[String]) -> bool {
    matches!(path, [s, _, e, _] if s == "steps" && e == "env")
}

/// How far into `text` (in characters) the template error is, when minijinja knows.
fn error_column(e: &minijinja::Error, text: &str) -> Option<u32> {
    let r = e.range()?;
    let before = text.get(..r.start)?;
    // Only single-line values map characters to columns one to one.
    (!text.contains('\n')).then(|| before.chars().count() as u32)
}

fn template_error(
    ctx: &Ctx,
    span: Span,
    quoted: bool,
    text: &str,
    e: &minijinja::Error,
    decls: &[ParamDecl],
) -> Diagnostic {
    let at = match error_column(e, text) {
        Some(c) => Span::new(span.line, span.col + u32::from(quoted) + c, 1),
        None => span,
    };
    let mut d = Diagnostic::at(
        &ctx.source,
        at,
        format!("cannot fill in the template `{text}`"),
    );
    if e.kind() == ErrorKind::OutOfFuel {
        return d
            .label(format!(
                "the template does more work than the {FUEL} steps a value may take"
            ))
            .help("templates fill in values; move loops and computation into the step's code");
    }
    // Point at an unknown `params.X` with a suggestion.
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-';
    for (at_byte, _) in text.match_indices("params.") {
        if text[..at_byte].chars().next_back().is_some_and(is_word) {
            continue;
        }
        let rest = &text[at_byte + "params.".len()..];
        let name = &rest[..rest.find(|c: char| !is_word(c)).unwrap_or(rest.len())];
        let word_len = "params.".len() + name.len();
        if !decls.iter().any(|p| p.name == name) {
            if !text.contains('\n') {
                let col = text[..at_byte].chars().count() as u32;
                d.span = Span::new(
                    span.line,
                    span.col + u32::from(quoted) + col,
                    word_len as u32,
                );
            }
            d = d.label(format!("no param named `{name}`"));
            return match closest_param(decls, name) {
                Some(c) => d.help(format!("did you mean `params.{c}`?")),
                None => d.help("declare it under `params:`"),
            };
        }
    }
    let detail = match e.detail() {
        Some(x) => format!("{}: {x}", e.kind()),
        None => e.kind().to_string(),
    };
    if e.kind() == ErrorKind::UndefinedError {
        d = d.label(detail);
        return d.help("templates may use `params.NAME`, `outputs.NAME` and `inputs.NAME`");
    }
    d.label(detail)
        .help("templates may use `params.NAME`, `outputs.NAME` and `inputs.NAME`")
}

/// Fills a step's `env:` value's secret placeholders with the secrets' values.
pub fn fill_secrets(
    value: &str,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find(SECRET_MARK) {
        out.push_str(&rest[..i]);
        let after = &rest[i + SECRET_MARK.len()..];
        let end = after.find(SECRET_END).unwrap_or(after.len());
        let name = &after[..end];
        match secrets(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "the secret param `{name}` has no value in this run"
                ));
            }
        }
        rest = &after[(end + SECRET_END.len()).min(after.len())..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills the run-time placeholders of a command step's argument.
pub fn fill_run_placeholders(
    arg: &str,
    outputs: &dyn Fn(&str) -> Option<String>,
    inputs: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    loop {
        let next = [(OUT_MARK, true), (IN_MARK, false)]
            .into_iter()
            .filter_map(|(m, is_out)| rest.find(m).map(|i| (i, m, is_out)))
            .min_by_key(|(i, _, _)| *i);
        let Some((i, mark, is_out)) = next else { break };
        out.push_str(&rest[..i]);
        let after = &rest[i + mark.len()..];
        let end = after.find(END_MARK).unwrap_or(after.len());
        let name = &after[..end];
        let value = if is_out { outputs(name) } else { inputs(name) };
        match value {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "`{{{{ {}.{name} }}}}` names no {} of this step",
                    if is_out { "outputs" } else { "inputs" },
                    if is_out { "output" } else { "input channel" }
                ));
            }
        }
        rest = &after[(end + END_MARK.len()).min(after.len())..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The names of run-time placeholders in an argument: (outputs, inputs).
pub fn placeholder_names(arg: &str) -> (Vec<String>, Vec<String>) {
    let find = |mark: &str| {
        let mut v = Vec::new();
        let mut rest = arg;
        while let Some(i) = rest.find(mark) {
            let after = &rest[i + mark.len()..];
            let end = after.find(END_MARK).unwrap_or(after.len());
            v.push(after[..end].to_string());
            rest = &after[end..];
            rest = rest.strip_prefix(END_MARK).unwrap_or(rest);
        }
        v
    };
    (find(OUT_MARK), find(IN_MARK))
}

/// Shows an argument with placeholders written back as templates (for plans and messages).
pub fn display_arg(arg: &str) -> String {
    let (outs, ins) = placeholder_names(arg);
    if outs.is_empty() && ins.is_empty() {
        return arg.to_string();
    }
    fill_run_placeholders(arg, &|n| Some(format!("{{{{ outputs.{n} }}}}")), &|n| {
        Some(format!("{{{{ inputs.{n} }}}}"))
    })
    .unwrap_or_else(|_| arg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(t: &str) -> String {
        render_one(t, &[]).unwrap()
    }

    fn render_one(t: &str, decls: &[ParamDecl]) -> Result<String, Diagnostic> {
        let ctx = Ctx {
            source: Arc::new(super::super::source::Source {
                name: "t.yaml".into(),
                text: format!("v: {t}\n"),
            }),
        };
        let mut node = Node {
            span: Span::new(1, 4, 1),
            kind: NodeKind::Scalar {
                text: t.to_string(),
                quoted: false,
            },
        };
        let params = decls
            .iter()
            .filter_map(|d| Some((d.name.clone(), d.default.clone()?)))
            .collect();
        render_tree(&ctx, "v", &mut node, &params, decls)?;
        Ok(node.as_scalar().unwrap().to_string())
    }

    fn int_param(name: &str, v: i64) -> ParamDecl {
        ParamDecl {
            name: name.into(),
            ty: super::super::params::ParamType::Int,
            default: Some(Value::from(v)),
            choices: vec![],
            span: Span::new(1, 1, 1),
            secret: None,
        }
    }

    #[test]
    fn params_render_and_typos_are_suggested() {
        let d = [int_param("max_depth", 6)];
        assert_eq!(render_one("{{ params.max_depth }}", &d).unwrap(), "6");
        assert_eq!(render_one("{{ params.max_depth * 2 }}", &d).unwrap(), "12");
        let e = render_one("{{ params.max_dept }}", &d).unwrap_err();
        assert!(
            e.to_string().contains("did you mean `params.max_depth`?"),
            "{e}"
        );
    }

    #[test]
    fn templates_cannot_read_the_environment() {
        let e = render_one("{{ get_env(name='HOME') }}", &[]).unwrap_err();
        assert!(e.message.contains("cannot fill in the template"), "{e}");
        let e = render_one("{{ env.HOME }}", &[]).unwrap_err();
        assert!(e.message.contains("cannot fill in the template"), "{e}");
    }

    #[test]
    fn work_and_output_are_bounded() {
        let looping =
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}";
        let t = std::time::Instant::now();
        let e = render_one(looping, &[]).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(e.to_string().contains("more work than"), "{e}");
        // Doubling a string through nested loops: fuel counts the bytes made.
        let mut doubling = String::from("{% for s0 in ['xxxxxxxxxxxxxxxx'] %}");
        for i in 1..40 {
            doubling.push_str(&format!("{{% for s{i} in [s{p} ~ s{p}] %}}", p = i - 1));
        }
        doubling.push_str("{{ s39 }}");
        doubling.push_str(&"{% endfor %}".repeat(40));
        assert!(render_one(&doubling, &[]).is_err());
        let e = render_one("{{ 'x' * 70000 }}", &[]).unwrap_err();
        assert!(e.to_string().contains("bytes"), "{e}");
    }

    #[test]
    fn secrets_render_to_placeholders_filled_only_on_request() {
        let mut d = int_param("pw", 0);
        d.ty = super::super::params::ParamType::Secret;
        d.default = None;
        d.secret = Some(super::super::params::SecretSource::Env(
            super::super::source::Spanned::new("PW".into(), Span::new(1, 1, 1)),
        ));
        let ctx = Ctx {
            source: Arc::new(super::super::source::Source {
                name: "t.yaml".into(),
                text: "x\n".into(),
            }),
        };
        let node = |kind| Node {
            span: Span::new(1, 1, 1),
            kind,
        };
        let scalar = |t: &str| {
            node(NodeKind::Scalar {
                text: t.into(),
                quoted: false,
            })
        };
        let env = node(NodeKind::Map(vec![(
            scalar("a"),
            node(NodeKind::Map(vec![(
                scalar("env"),
                node(NodeKind::Map(vec![(
                    scalar("PW"),
                    scalar("u:{{ params.pw }}"),
                )])),
            )])),
        )]));
        let mut steps = env.clone();
        let decls = std::slice::from_ref(&d);
        render_tree(&ctx, "steps", &mut steps, &BTreeMap::new(), decls).unwrap();
        let NodeKind::Map(m) = &steps.kind else {
            panic!()
        };
        let NodeKind::Map(m) = &m[0].1.kind else {
            panic!()
        };
        let NodeKind::Map(m) = &m[0].1.kind else {
            panic!()
        };
        let v = m[0].1.as_scalar().unwrap();
        assert_eq!(v, "u:{{ secret.pw }}");
        let filled = fill_secrets(v, &|n| (n == "pw").then(|| "s3cr3t".to_string())).unwrap();
        assert_eq!(filled, "u:s3cr3t");
        // Anywhere but a step's env: is refused.
        let mut elsewhere = env;
        let e = render_tree(&ctx, "inputs", &mut elsewhere, &BTreeMap::new(), decls).unwrap_err();
        assert!(e.message.contains("only in a step's `env:`"), "{e}");
    }

    #[test]
    fn output_placeholders_round_trip() {
        let p = prepare("--out={{ outputs.model }}/x and {{inputs.train}}");
        assert_eq!(
            placeholder_names(&p),
            (vec!["model".to_string()], vec!["train".to_string()])
        );
        let filled = fill_run_placeholders(&p, &|n| Some(format!("/o/{n}")), &|n| {
            Some(format!("/i/{n}"))
        })
        .unwrap();
        assert_eq!(filled, "--out=/o/model/x and /i/train");
        assert_eq!(
            display_arg(&p),
            "--out={{ outputs.model }}/x and {{ inputs.train }}"
        );
    }
}
