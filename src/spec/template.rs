//! `{{ params.NAME }}` templates, rendered with tera before validation.
//!
//! Templates are rendered scalar by scalar on the YAML tree, not on the file
//! text, so every value keeps its original position for later messages.
//! `{{ outputs.NAME }}` and `{{ inputs.NAME }}` name directories that exist
//! only when the step runs: they render to placeholders that the executor
//! fills in (see [`fill_run_placeholders`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::decode::Ctx;
use super::params::{ParamDecl, closest_param};
use super::source::Diagnostic;
use super::yaml::{Node, NodeKind};

const OUT_MARK: &str = "\u{1}pipeline-output:";
const IN_MARK: &str = "\u{1}pipeline-input:";
const END_MARK: &str = "\u{1}";

/// Renders every templated scalar under `node`.
pub fn render_tree(
    ctx: &Ctx,
    node: &mut Node,
    params: &BTreeMap<String, Value>,
    decls: &[ParamDecl],
) -> Result<(), Diagnostic> {
    let mut tctx = tera::Context::new();
    tctx.insert("params", params);
    walk(ctx, node, &tctx, decls)
}

/// Rewrites `outputs.NAME` / `inputs.NAME` inside `{{ }}` into literal
/// placeholders, so tera never has to resolve them.
fn prepare(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + end].trim();
        out.push_str(&rest[..start]);
        let mark = inner
            .strip_prefix("outputs.")
            .map(|n| (OUT_MARK, n))
            .or_else(|| inner.strip_prefix("inputs.").map(|n| (IN_MARK, n)));
        match mark {
            Some((m, name)) if super::model::is_name(name) => {
                out.push_str(m);
                out.push_str(name);
                out.push_str(END_MARK);
            }
            _ => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn walk(
    ctx: &Ctx,
    node: &mut Node,
    tctx: &tera::Context,
    decls: &[ParamDecl],
) -> Result<(), Diagnostic> {
    match &mut node.kind {
        NodeKind::Scalar { text, .. } if text.contains("{{") || text.contains("{%") => {
            let span = node.span;
            let prepared = prepare(text);
            if prepared.contains("{{") || prepared.contains("{%") {
                *text = tera::Tera::one_off(&prepared, tctx, false)
                    .map_err(|e| template_error(ctx, span, text, &e, decls))?;
            } else {
                *text = prepared;
            }
            Ok(())
        }
        NodeKind::Seq(items) => items.iter_mut().try_for_each(|n| walk(ctx, n, tctx, decls)),
        NodeKind::Map(entries) => entries
            .iter_mut()
            .try_for_each(|(_, v)| walk(ctx, v, tctx, decls)),
        _ => Ok(()),
    }
}

fn template_error(
    ctx: &Ctx,
    span: super::source::Span,
    text: &str,
    e: &tera::Error,
    decls: &[ParamDecl],
) -> Diagnostic {
    let mut chain = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        let m = c.to_string();
        if !m.starts_with("Failed to render") && !m.contains("__tera_one_off") {
            chain.push(m);
        }
        cur = c.source();
    }
    let detail = chain.join(": ");
    let mut d = Diagnostic::at(
        &ctx.source,
        span,
        format!("cannot fill in the template `{text}`"),
    );
    // Point at an unknown `params.X` with a suggestion.
    for word in
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
    {
        if let Some(name) = word.strip_prefix("params.")
            && !decls.iter().any(|p| p.name == name)
        {
            d = d.label(format!("no param named `{name}`"));
            return match closest_param(decls, name) {
                Some(c) => d.help(format!("did you mean `params.{c}`?")),
                None => d.help("declare it under `params:`"),
            };
        }
    }
    if !detail.is_empty() {
        d = d.label(detail);
    }
    d.help("templates may use `params.NAME`, `outputs.NAME` and `inputs.NAME`")
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
