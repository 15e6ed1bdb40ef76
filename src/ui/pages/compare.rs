//! Runs and registry versions side by side: params, each step's metrics and
//! hyperparameters (rows that differ marked), and their training curves on
//! one plot a step and metric.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use serde::Serialize;

use super::runs::open_db;
use super::{Page, PageError, blocking, fmt_duration, fmt_value, render, seconds_between};
use crate::runs::live_status;
use crate::ui::{App, Identity, curves};

/// Most runs and versions compared at once.
const MAX_ITEMS: usize = 12;

/// One column: a run or a version.
#[derive(Default)]
struct Column {
    label: String,
    href: String,
    facts: BTreeMap<String, String>,
    params: BTreeMap<String, String>,
    /// By step: metrics and hyperparameters.
    metrics: BTreeMap<String, BTreeMap<String, String>>,
    hyper: BTreeMap<String, BTreeMap<String, String>>,
    /// By step: the training curves its log shows.
    curves: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>>,
}

#[derive(Serialize)]
struct Row {
    name: String,
    values: Vec<String>,
    differs: bool,
}

#[derive(Serialize)]
struct Block {
    title: String,
    rows: Vec<Row>,
}

fn rows_of(
    cols: &[Column],
    pick: impl Fn(&Column) -> Option<&BTreeMap<String, String>>,
) -> Vec<Row> {
    let keys: BTreeSet<&String> = cols
        .iter()
        .filter_map(&pick)
        .flat_map(|m| m.keys())
        .collect();
    keys.into_iter()
        .map(|k| {
            let values: Vec<String> = cols
                .iter()
                .map(|c| pick(c).and_then(|m| m.get(k)).cloned().unwrap_or_default())
                .collect();
            let differs = values.iter().any(|v| v != &values[0]);
            Row {
                name: k.clone(),
                values,
                differs,
            }
        })
        .collect()
}

fn scalar(v: &serde_json::Value) -> String {
    fmt_value(v)
}

fn run_column(app: &App, id: &str) -> Result<Column, PageError> {
    let db = open_db(app)?.ok_or_else(|| PageError::not_found("no runs here yet"))?;
    let ids = db.find_runs(id)?;
    let id = match ids.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(PageError::not_found(format!(
                "there is no run {id} in this workspace"
            )));
        }
        _ => {
            return Err(PageError::bad(format!(
                "`{id}` names {} runs; give more of the id",
                ids.len()
            )));
        }
    };
    let r = db
        .get_run(&id)?
        .ok_or_else(|| PageError::not_found(format!("there is no run {id}")))?;
    let status = live_status(&r, &app.ws.run_dir(&r.id));
    let mut c = Column {
        label: r.id.clone(),
        href: format!("/runs/{}", r.id),
        ..Column::default()
    };
    c.facts.insert("pipeline".into(), r.pipeline.clone());
    c.facts.insert("status".into(), status.as_str().into());
    c.facts.insert("started".into(), r.started_at.clone());
    if let Some(d) = seconds_between(&r.started_at, r.finished_at.as_deref()) {
        c.facts.insert("duration".into(), fmt_duration(d));
    }
    let lock = crate::repro::lock::recorded(&app.ws, &r.id);
    match &lock {
        Some(l) => {
            c.params = l
                .params
                .iter()
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect();
            for (name, st) in &l.steps {
                if let Some(h) = st.spec.get("hyperparameters").and_then(|h| h.as_object()) {
                    c.hyper.insert(
                        name.clone(),
                        h.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
                    );
                }
            }
        }
        None => c.params = r.params.iter().cloned().collect(),
    }
    for s in db.steps_of(&r.id)? {
        if !s.metrics.is_empty() {
            c.metrics.insert(
                s.name.clone(),
                s.metrics
                    .iter()
                    .map(|(k, v)| (k.clone(), scalar(v)))
                    .collect(),
            );
        }
        let is_train = lock
            .as_ref()
            .and_then(|l| l.steps.get(&s.name))
            .is_some_and(|st| st.kind == "train");
        if is_train && let Ok(text) = std::fs::read_to_string(app.ws.log_path(&r.id, &s.name)) {
            let series = curves::from_log(&text);
            if !series.is_empty() {
                c.curves.insert(s.name.clone(), series);
            }
        }
    }
    Ok(c)
}

fn version_column(app: &App, reference: &str) -> Result<Column, PageError> {
    let (group, v) = reference
        .rsplit_once('@')
        .and_then(|(g, v)| Some((g, v.parse::<u32>().ok()?)))
        .ok_or_else(|| PageError::bad(format!("`{reference}` is not GROUP@VERSION")))?;
    let reg = super::registry::open(app)?;
    let m = reg
        .version(group, v)
        .map_err(|e| PageError::not_found(e.to_string()))?;
    let mut c = Column {
        label: format!("{group}@{v}"),
        href: format!("/registry/{}/{v}", crate::ui::url_escape(group)),
        ..Column::default()
    };
    c.facts.insert("status".into(), m.status.as_str().into());
    c.facts.insert("algorithm".into(), m.algorithm.clone());
    c.facts.insert("run".into(), m.run_id.clone());
    c.facts.insert("registered".into(), m.created_at.clone());
    c.params = m
        .params
        .iter()
        .map(|(k, v)| (k.clone(), scalar(v)))
        .collect();
    c.metrics.insert(
        m.step.clone(),
        m.metrics
            .iter()
            .map(|(k, v)| (k.clone(), crate::report::fmt_num(*v)))
            .collect(),
    );
    c.hyper.insert(m.step.clone(), m.hyperparameters.clone());
    // The curves of the step that trained it, when that run is in this workspace.
    if let Ok(text) = std::fs::read_to_string(app.ws.log_path(&m.run_id, &m.step)) {
        let series = curves::from_log(&text);
        if !series.is_empty() {
            c.curves.insert(m.step.clone(), series);
        }
    }
    Ok(c)
}

pub async fn show(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Query(q): Query<Vec<(String, String)>>,
) -> Page {
    let items: Vec<(String, String)> = q
        .into_iter()
        .filter(|(k, v)| (k == "run" || k == "version") && !v.trim().is_empty())
        .collect();
    if items.len() > MAX_ITEMS {
        return Err(PageError::bad(format!(
            "compare at most {MAX_ITEMS} at once"
        )));
    }
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let cols: Vec<Column> = items
                .iter()
                .map(|(k, v)| {
                    if k == "run" {
                        run_column(&app, v.trim())
                    } else {
                        version_column(&app, v.trim())
                    }
                })
                .collect::<Result<_, _>>()?;
            let mut blocks = vec![
                Block {
                    title: "Run".into(),
                    rows: rows_of(&cols, |c| Some(&c.facts)),
                },
                Block {
                    title: "Params".into(),
                    rows: rows_of(&cols, |c| Some(&c.params)),
                },
            ];
            let steps: BTreeSet<String> = cols
                .iter()
                .flat_map(|c| c.metrics.keys().chain(c.hyper.keys()).cloned())
                .collect();
            for s in &steps {
                let m = rows_of(&cols, |c| c.metrics.get(s));
                if !m.is_empty() {
                    blocks.push(Block {
                        title: format!("{s}: metrics"),
                        rows: m,
                    });
                }
                let h = rows_of(&cols, |c| c.hyper.get(s));
                if !h.is_empty() {
                    blocks.push(Block {
                        title: format!("{s}: hyperparameters"),
                        rows: h,
                    });
                }
            }
            let mut plots = Vec::new();
            let curve_keys: BTreeSet<(String, String)> = cols
                .iter()
                .flat_map(|c| {
                    c.curves
                        .iter()
                        .flat_map(|(s, m)| m.keys().map(move |k| (s.clone(), k.clone())))
                })
                .collect();
            for (step, metric) in curve_keys {
                let series: Vec<(String, Vec<(f64, f64)>)> = cols
                    .iter()
                    .filter_map(|c| {
                        let pts = c.curves.get(&step)?.get(&metric)?;
                        // The plot's legend is narrow: a run by its id's last part.
                        let short = c.label.rsplit('-').next().unwrap_or(&c.label).to_string();
                        Some((
                            if c.label.contains('@') {
                                c.label.clone()
                            } else {
                                short
                            },
                            pts.clone(),
                        ))
                    })
                    .collect();
                let x = if metric.starts_with("train:loss") {
                    "epoch"
                } else {
                    "round"
                };
                plots.push(crate::report::line_plot(
                    &format!("{step}: {metric}"),
                    x,
                    &metric,
                    &series,
                    false,
                    false,
                ));
            }
            let heads: Vec<(String, String)> = cols
                .iter()
                .map(|c| (c.label.clone(), c.href.clone()))
                .collect();
            Ok(minijinja::context! {
                title => "Compare",
                section => "compare",
                columns => minijinja::Value::from(minijinja::value::Serde(&heads)),
                blocks => minijinja::Value::from(minijinja::value::Serde(&blocks)),
                plots => minijinja::Value::from(minijinja::value::Serde(&plots)),
                empty => cols.is_empty(),
            })
        })
        .await?
    };
    render(&app, &who, "compare.html", ctx)
}
