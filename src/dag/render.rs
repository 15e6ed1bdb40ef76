//! `pipeline graph`: the plan as Mermaid or Graphviz dot text.

use super::plan::{EdgeKind, Plan};
use crate::spec::model::{RefTarget, StepKind};

/// Output formats of `pipeline graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

fn label(plan: &Plan, i: usize) -> String {
    let s = &plan.pipeline.steps[i];
    let detail = match &s.kind {
        StepKind::Train(t) => t.algorithm.clone().unwrap_or_else(|| "custom".into()),
        StepKind::Evaluate(e) => format!("{:?}", e.method).to_lowercase(),
        StepKind::Register(r) => r.group.clone(),
        _ => String::new(),
    };
    if detail.is_empty() {
        format!("{}: {}", s.name(), s.kind.name())
    } else {
        format!("{}: {} {}", s.name(), s.kind.name(), detail)
    }
}

fn id(name: &str) -> String {
    name.replace('-', "_")
}

/// Edges to draw: (from, to, label, dashed).
fn edges(plan: &Plan) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    let p = &plan.pipeline;
    for name in p.inputs.keys() {
        for s in &p.steps {
            for (ch, r) in s.inputs() {
                if r.target == RefTarget::Input(name.clone()) {
                    out.push((format!("input_{}", id(name)), id(s.name()), ch, false));
                }
            }
        }
    }
    for &i in &plan.order {
        let s = &p.steps[i];
        for (j, kind) in plan.deps(i) {
            let from = id(p.steps[j].name());
            let lbl = match kind {
                EdgeKind::Data => s
                    .inputs()
                    .iter()
                    .filter_map(|(_, r)| match &r.target {
                        RefTarget::Output { step, output } if step == p.steps[j].name() => {
                            Some(output.clone())
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                EdgeKind::Condition => "when".into(),
                EdgeKind::Order => "after".into(),
                EdgeKind::Trial => "trial".into(),
            };
            out.push((from, id(s.name()), lbl, kind != EdgeKind::Data));
        }
    }
    out
}

pub fn render(plan: &Plan, format: GraphFormat) -> String {
    let p = &plan.pipeline;
    let mut s = String::new();
    match format {
        GraphFormat::Mermaid => {
            s.push_str("flowchart TD\n");
            for name in p.inputs.keys() {
                s.push_str(&format!("    input_{}[(\"inputs.{name}\")]\n", id(name)));
            }
            for &i in &plan.order {
                s.push_str(&format!(
                    "    {}[\"{}\"]\n",
                    id(p.steps[i].name()),
                    label(plan, i)
                ));
            }
            for (a, b, l, dashed) in edges(plan) {
                let arrow = if dashed { "-.->" } else { "-->" };
                if l.is_empty() {
                    s.push_str(&format!("    {a} {arrow} {b}\n"));
                } else {
                    s.push_str(&format!("    {a} {arrow}|{l}| {b}\n"));
                }
            }
        }
        GraphFormat::Dot => {
            s.push_str(&format!(
                "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box];\n",
                p.name
            ));
            for name in p.inputs.keys() {
                s.push_str(&format!(
                    "    input_{} [label=\"inputs.{name}\", shape=cylinder];\n",
                    id(name)
                ));
            }
            for &i in &plan.order {
                s.push_str(&format!(
                    "    {} [label=\"{}\"];\n",
                    id(p.steps[i].name()),
                    label(plan, i)
                ));
            }
            for (a, b, l, dashed) in edges(plan) {
                let style = if dashed { ", style=dashed" } else { "" };
                s.push_str(&format!("    {a} -> {b} [label=\"{l}\"{style}];\n"));
            }
            s.push_str("}\n");
        }
    }
    s
}

/// The plan as data, for the web UI's run page: each step (file order) with
/// its kind, label and the steps it waits for. Written beside a run's lock
/// (`runs/RUN/graph.json`) when the run starts.
pub fn json(plan: &Plan) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = (0..plan.len())
        .map(|i| {
            let s = &plan.pipeline.steps[i];
            let deps: Vec<serde_json::Value> = plan
                .deps(i)
                .into_iter()
                .map(|(j, kind)| {
                    serde_json::json!({
                        "step": plan.pipeline.steps[j].name(),
                        "kind": format!("{kind:?}").to_lowercase(),
                    })
                })
                .collect();
            serde_json::json!({
                "name": s.name(),
                "kind": s.kind.name(),
                "label": label(plan, i),
                "deps": deps,
            })
        })
        .collect();
    serde_json::json!({ "steps": steps })
}
