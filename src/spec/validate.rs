//! Checks that need the whole pipeline: every reference names something that
//! exists, `after:` names steps, `when:` reads real metrics and params.
//! Errors are collected (up to a screenful) rather than stopping at the first.

use super::decode::Ctx;
use super::model::{
    Approval, DataFormat, EvalMethod, EvaluateStep, Pipeline, RefTarget, Step, StepKind,
};
use super::params::ParamDecl;
use super::source::{Diagnostic, Span, closest};

const MAX_ERRORS: usize = 5;

pub fn check(ctx: &Ctx, p: &Pipeline, decls: &[ParamDecl]) -> Vec<Diagnostic> {
    let mut errors = super::tune::check_warm_starts(ctx, p);
    let lines = LineStarts::new(&ctx.source.text);
    // Every valid reference, for suggestions.
    let mut all_refs: Vec<String> = p.inputs.keys().map(|k| format!("inputs.{k}")).collect();
    for s in &p.steps {
        for o in s.outputs() {
            all_refs.push(format!("{}.{o}", s.name()));
        }
    }
    for step in &p.steps {
        if let Some(code) = step.code()
            && let Err(d) =
                super::code::check_exists(ctx, code, &p.base_dir, step.user_image().is_some())
        {
            errors.push(d);
        }
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
        check_split_formats(ctx, p, step, &mut errors);
        check_when(ctx, &lines, p, step, decls, &mut errors);
        check_approval(ctx, p, step, &mut errors);
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    errors.truncate(MAX_ERRORS);
    errors
}

/// A split writes CSV files with a header: an input in another format is
/// refused here, at the reference, rather than misread when the step runs.
fn check_split_formats(ctx: &Ctx, p: &Pipeline, step: &Step, errors: &mut Vec<Diagnostic>) {
    if !matches!(step.kind, StepKind::Split(_)) {
        return;
    }
    for (_, r) in step.inputs() {
        let RefTarget::Input(name) = &r.target else {
            continue;
        };
        let Some(def) = p.inputs.get(name) else {
            continue;
        };
        if def.format != DataFormat::Csv {
            errors.push(
                Diagnostic::at(
                    &ctx.source,
                    r.span,
                    format!(
                        "step `{}` splits `{}`, which is {} data, but a split splits CSV files with a header",
                        step.name(),
                        r.text,
                        def.format.name()
                    ),
                )
                .help("give the split the data as CSV, or split it with a `command` step"),
            );
        }
    }
}

fn suggest_ref(d: Diagnostic, text: &str, all: &[String]) -> Diagnostic {
    match closest(text, all.iter().map(String::as_str)) {
        Some(c) => d.help(format!("did you mean `{c}`?")),
        None => d,
    }
}

fn check_when(
    ctx: &Ctx,
    lines: &LineStarts,
    p: &Pipeline,
    step: &Step,
    decls: &[ParamDecl],
    errors: &mut Vec<Diagnostic>,
) {
    let (Some(when), Some(expr)) = (&step.when, &step.when_expr) else {
        return;
    };
    let quoted = u32::from(lines.quoted(&ctx.source.text, when.span));
    let multiline = when.value.contains('\n');
    for (path, offset) in expr.paths_at() {
        let joined = path.join(".");
        // Point at the path inside the condition (a one-line value maps offsets to columns).
        let at = |_: &str| -> Span {
            if multiline {
                when.span
            } else {
                Span::new(
                    when.span.line,
                    when.span.col + quoted + offset as u32,
                    joined.chars().count() as u32,
                )
            }
        };
        match path.first().map(String::as_str) {
            Some("params") => {
                let name = path.get(1).map(String::as_str).unwrap_or("");
                if decls.iter().any(|d| d.name == name && d.is_secret()) {
                    errors.push(
                        Diagnostic::at(
                            &ctx.source,
                            at(&joined),
                            format!("the condition reads the secret param `{name}`"),
                        )
                        .help("a secret reaches steps only in their `env:`; conditions may read the other params"),
                    );
                } else if path.len() != 2 || !decls.iter().any(|d| d.name == name) {
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
                    let reports = t.outputs().iter().any(|o| o == "metrics")
                        || matches!(t.kind, StepKind::Train(_));
                    if path.len() != 3 || path[1] != "metrics" || !reports {
                        errors.push(
                            Diagnostic::at(&ctx.source, at(&joined), format!("the condition reads `{joined}`, which is not a metric"))
                                .help(format!("write `{s}.metrics.NAME`, where `{s}` is an evaluate or train step (or lists a `metrics` output)")),
                        );
                    } else if let StepKind::Evaluate(e) = &t.kind {
                        let known = evaluate_metric_names(e);
                        if !known.iter().any(|k| *k == path[2]) {
                            errors.push(unknown_metric(ctx, at(&joined), &path[2], s, &known));
                        }
                    } else if let StepKind::Train(tr) = &t.kind
                        && tr.algorithm.is_none()
                    {
                        // Your own code reports what its metric_definitions find.
                        let known: Vec<String> = tr
                            .metric_definitions
                            .iter()
                            .map(|m| m.name.clone())
                            .collect();
                        if !known.iter().any(|k| *k == path[2]) {
                            errors.push(
                                unknown_metric(ctx, at(&joined), &path[2], s, &known).help(
                                    format!("add it to `{s}`'s `metric_definitions` (a name and a regex that finds it in the log)"),
                                ),
                            );
                        }
                    }
                }
            },
            None => {}
        }
    }
}

/// The metric names an evaluate step reports, as far as they are known before
/// it runs: those it lists (or, listing none, any metric, since the default
/// depends on the model's task), shaped by the method.
pub fn evaluate_metric_names(e: &EvaluateStep) -> Vec<String> {
    let base: Vec<String> = if e.metrics.is_empty() {
        builtins::metrics::METRICS
            .iter()
            .map(|m| m.name.to_string())
            .collect()
    } else {
        e.metrics.clone()
    };
    match e.method {
        EvalMethod::Holdout => base.into_iter().chain(["rows".to_string()]).collect(),
        EvalMethod::Kfold => base
            .iter()
            .flat_map(|n| [n.clone(), format!("{n}_std")])
            .collect(),
        EvalMethod::Ab => {
            let mut out = vec!["winner".to_string(), "confidence".to_string()];
            let primary: Vec<&String> = if e.metrics.is_empty() {
                base.iter().collect()
            } else {
                base.iter().take(1).collect()
            };
            for v in &e.variants {
                out.extend(base.iter().map(|n| format!("{}_{n}", v.name)));
            }
            if let Some(first) = e.variants.first() {
                for v in e.variants.iter().skip(1) {
                    out.extend(
                        primary
                            .iter()
                            .map(|p| format!("{}_minus_{}_{p}", v.name, first.name)),
                    );
                }
            }
            out
        }
    }
}

fn unknown_metric(ctx: &Ctx, at: Span, name: &str, step: &str, known: &[String]) -> Diagnostic {
    let d = Diagnostic::at(
        &ctx.source,
        at,
        format!("step `{step}` reports no metric `{name}`"),
    )
    .label("not a metric of that step");
    let d = d.suggest(name, known.iter().map(String::as_str));
    if known.len() <= 12 {
        d.note(format!("`{step}` reports: {}", known.join(", ")))
    } else {
        d.help(format!("list the metrics under `{step}`'s `metrics:`"))
    }
}

/// A register step's approval reads metric names: they must be ones its
/// `metrics:` step reports (when that is an evaluate step).
fn check_approval(ctx: &Ctx, p: &Pipeline, step: &Step, errors: &mut Vec<Diagnostic>) {
    let StepKind::Register(r) = &step.kind else {
        return;
    };
    let (names, text): (Vec<String>, &str) = match &r.approval {
        Approval::Manual => return,
        Approval::AutoApproveIf(c) => match crate::registry::Condition::parse(c) {
            Ok(cond) => (cond.metric_names(), c.as_str()),
            Err(_) => return,
        },
        Approval::BeatChampion { metric, .. } => (vec![metric.clone()], metric.as_str()),
    };
    let at = |name: &str| -> Span {
        let off = find_word(text, name).unwrap_or(0);
        Span::new(
            r.approval_span.line,
            r.approval_span.col + text[..off].chars().count() as u32,
            name.chars().count() as u32,
        )
    };
    let Some(m) = &r.metrics else {
        if let Some(n) = names.first() {
            errors.push(
                Diagnostic::at(
                    &ctx.source,
                    at(n),
                    format!("the approval policy reads the metric `{n}`, but the register step is given no metrics"),
                )
                .help("add `metrics: evaluate.metrics` (an evaluate step's metrics) to the register step"),
            );
        }
        return;
    };
    let RefTarget::Output { step: src, .. } = &m.target else {
        return;
    };
    let Some(StepKind::Evaluate(e)) = p.step(src).map(|s| &s.kind) else {
        return;
    };
    let known = evaluate_metric_names(e);
    for n in names {
        if !known.contains(&n) {
            errors.push(unknown_metric(ctx, at(&n), &n, src, &known));
        }
    }
}

/// The byte offset of `word` in `text` as a whole word (not inside a longer name).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// Where each line of a file starts, so a position is found without
/// rescanning the file (once a condition, that made validation quadratic).
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(text: &str) -> Self {
        let mut v = vec![0];
        v.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineStarts(v)
    }

    /// Whether the scalar at `span` was written in quotes (its text then starts one column later).
    fn quoted(&self, text: &str, span: Span) -> bool {
        let Some(&start) = self.0.get(span.line.saturating_sub(1) as usize) else {
            return false;
        };
        text[start..]
            .lines()
            .next()
            .and_then(|l| l.chars().nth(span.col.saturating_sub(1) as usize))
            .is_some_and(|c| c == '"' || c == '\'')
    }
}
