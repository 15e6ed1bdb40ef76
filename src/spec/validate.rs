//! Checks that need the whole pipeline: every reference names something that
//! exists, `after:` names steps, `when:` reads real metrics and params.
//! Errors are collected (up to a screenful) rather than stopping at the first.

use super::decode::Ctx;
use super::model::{Pipeline, RefTarget, Step};
use super::params::ParamDecl;
use super::source::{Diagnostic, Span, closest};

const MAX_ERRORS: usize = 5;

pub fn check(ctx: &Ctx, p: &Pipeline, decls: &[ParamDecl]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    // Every valid reference, for suggestions.
    let mut all_refs: Vec<String> = p.inputs.keys().map(|k| format!("inputs.{k}")).collect();
    for s in &p.steps {
        for o in s.outputs() {
            all_refs.push(format!("{}.{o}", s.name()));
        }
    }
    for step in &p.steps {
        for (_, r) in step.inputs() {
            match &r.target {
                RefTarget::Input(name) => {
                    if !p.inputs.contains_key(name) {
                        let d = Diagnostic::at(
                            &ctx.source,
                            r.span,
                            format!("unknown input `{}`", r.text),
                        )
                        .label("no such input");
                        let d = match closest(&r.text, all_refs.iter().map(String::as_str)) {
                            Some(c) => d.help(format!("did you mean `{c}`?")),
                            None => d.help(format!("declare `{name}` under `inputs:`")),
                        };
                        errors.push(d);
                    }
                }
                RefTarget::Output {
                    step: target,
                    output,
                } => {
                    if target == step.name() {
                        errors.push(
                            Diagnostic::at(
                                &ctx.source,
                                r.span,
                                format!("step `{target}` reads its own output `{}`", r.text),
                            )
                            .help("a step can only read what earlier steps produce"),
                        );
                        continue;
                    }
                    match p.step(target) {
                        None => {
                            let d = Diagnostic::at(
                                &ctx.source,
                                r.span,
                                format!("unknown reference `{}`", r.text),
                            )
                            .label(format!("there is no step `{target}`"));
                            errors.push(suggest_ref(d, &r.text, &all_refs));
                        }
                        Some(t) => {
                            let outs = t.outputs();
                            if !outs.contains(output) {
                                let d = Diagnostic::at(
                                    &ctx.source,
                                    r.span,
                                    format!("unknown reference `{}`", r.text),
                                )
                                .label(format!("step `{target}` has no output `{output}`"))
                                .note(format!(
                                    "the outputs of `{target}` ({}) are: {}",
                                    t.kind.name(),
                                    outs.join(", ")
                                ));
                                errors.push(suggest_ref(d, &r.text, &all_refs));
                            }
                        }
                    }
                }
                RefTarget::Registry(_) => {}
            }
        }
        for a in &step.after {
            if a.value == step.name() {
                errors.push(Diagnostic::at(
                    &ctx.source,
                    a.span,
                    format!("step `{}` cannot run after itself", a.value),
                ));
            } else if p.step(&a.value).is_none() {
                errors.push(
                    Diagnostic::at(
                        &ctx.source,
                        a.span,
                        format!("`after` names an unknown step `{}`", a.value),
                    )
                    .suggest(&a.value, p.steps.iter().map(|s| s.name())),
                );
            }
        }
        check_when(ctx, p, step, decls, &mut errors);
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    errors.truncate(MAX_ERRORS);
    errors
}

fn suggest_ref(d: Diagnostic, text: &str, all: &[String]) -> Diagnostic {
    match closest(text, all.iter().map(String::as_str)) {
        Some(c) => d.help(format!("did you mean `{c}`?")),
        None => d,
    }
}

fn check_when(
    ctx: &Ctx,
    p: &Pipeline,
    step: &Step,
    decls: &[ParamDecl],
    errors: &mut Vec<Diagnostic>,
) {
    let (Some(when), Some(expr)) = (&step.when, &step.when_expr) else {
        return;
    };
    let at = |path: &str| -> Span {
        // Point at the path inside the condition when it can be found.
        match when.value.find(path) {
            Some(off) => Span::new(
                when.span.line,
                when.span.col + off as u32 + u32::from(ctx_quoted(ctx, when.span)),
                path.chars().count() as u32,
            ),
            None => when.span,
        }
    };
    for path in expr.paths() {
        let joined = path.join(".");
        match path.first().map(String::as_str) {
            Some("params") => {
                let name = path.get(1).map(String::as_str).unwrap_or("");
                if path.len() != 2 || !decls.iter().any(|d| d.name == name) {
                    errors.push(
                        Diagnostic::at(
                            &ctx.source,
                            at(&joined),
                            format!("the condition reads `{joined}`, which is not a param"),
                        )
                        .suggest(name, decls.iter().map(|d| d.name.as_str())),
                    );
                }
            }
            Some(s) => match p.step(s) {
                None => errors.push(
                    Diagnostic::at(
                        &ctx.source,
                        at(&joined),
                        format!("the condition reads `{joined}`, but there is no step `{s}`"),
                    )
                    .suggest(s, p.steps.iter().map(|s| s.name()))
                    .help("conditions read `STEP.metrics.NAME` or `params.NAME`"),
                ),
                Some(t) if t.name() == step.name() => {
                    errors.push(Diagnostic::at(
                        &ctx.source,
                        at(&joined),
                        "a step's condition cannot read its own metrics",
                    ));
                }
                Some(t) => {
                    if path.len() != 3
                        || path[1] != "metrics"
                        || !t.outputs().iter().any(|o| o == "metrics")
                    {
                        errors.push(
                            Diagnostic::at(&ctx.source, at(&joined), format!("the condition reads `{joined}`, which is not a metric"))
                                .help(format!("write `{s}.metrics.NAME`, where `{s}` is an evaluate step (or lists a `metrics` output)")),
                        );
                    }
                }
            },
            None => {}
        }
    }
}

/// Whether the scalar at `span` was written in quotes (its text then starts one column later).
fn ctx_quoted(ctx: &Ctx, span: Span) -> bool {
    ctx.source
        .text
        .lines()
        .nth(span.line.saturating_sub(1) as usize)
        .and_then(|l| l.chars().nth(span.col.saturating_sub(1) as usize))
        .is_some_and(|c| c == '"' || c == '\'')
}
