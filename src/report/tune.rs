//! A tune step's report: the best trial, the objective against the trial
//! (with the best so far), one plot per hyperparameter, a
//! parallel-coordinates view of every successful trial, and the trials.

use super::{COLORS, Cell, Frame, H, PAD, Report, Section, Table, W, axes, esc, fmt_num, open};
use crate::schedule::tune::{TrialRow, numeric_params, param_names};
use crate::spec::tune::TuneStep;

/// The report page of tune step `name`; `order` ranks `rows` best first.
pub fn render(
    name: &str,
    t: &TuneStep,
    rows: &[TrialRow],
    order: &[usize],
    blend: Option<&crate::schedule::automl::Blend>,
) -> Result<String, String> {
    let ok: Vec<&TrialRow> = rows.iter().filter(|r| r.objective.is_some()).collect();
    let direction = if t.objective.maximize {
        "maximize"
    } else {
        "minimize"
    };
    let search = match &t.automl {
        Some(a) => format!(
            "automl over {}",
            a.candidates
                .iter()
                .map(|c| c.algorithm.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("{} search", t.strategy.name()),
    };
    let mut r = Report {
        title: format!(
            "{} {name}",
            if t.automl.is_some() { "automl" } else { "tune" }
        ),
        subtitle: format!(
            "{search}, {} trials ({} succeeded), objective {} ({direction}), seed {}",
            rows.len(),
            ok.len(),
            t.objective.metric,
            t.seed
        ),
        ..Default::default()
    };
    if rows.iter().any(|r| r.status == "not_run") {
        r.sections.push(Section {
            title: if t.automl.is_some() {
                "Cut short by the time budget".into()
            } else {
                "Cut short by max_runtime".into()
            },
            note: Some("some trials did not start because the search's max_runtime had passed: another run of the same search may get further, so this result is not reproducible".into()),
            ..Default::default()
        });
    }
    if let Some(best) = order
        .first()
        .map(|&i| &rows[i])
        .filter(|b| b.objective.is_some())
    {
        r.metric(
            &format!("best {}", t.objective.metric),
            best.objective.unwrap_or(f64::NAN),
            None,
        );
        r.metric("best trial", f64::from(best.index), None);
        r.sections.push(Section {
            title: format!("Best trial: {}", best.name),
            table: Some(Table {
                header: vec!["hyperparameter".into(), "value".into()],
                rows: best
                    .params
                    .iter()
                    .map(|(k, v)| vec![Cell::plain(k.clone()), Cell::plain(v.clone())])
                    .collect(),
            }),
            ..Default::default()
        });
    }
    // Objective against trial, and the best so far.
    let pts: Vec<(f64, f64)> = ok
        .iter()
        .map(|r| (f64::from(r.index), r.objective.unwrap_or(f64::NAN)))
        .collect();
    let mut best_so_far = Vec::new();
    let mut best: Option<f64> = None;
    for row in rows {
        if let Some(v) = row.objective {
            let better = best.is_none_or(|b| if t.objective.maximize { v > b } else { v < b });
            if better {
                best = Some(v);
            }
        }
        if let Some(b) = best {
            best_so_far.push((f64::from(row.index), b));
        }
    }
    let mut svgs = vec![trials_plot(&t.objective.metric, &pts, &best_so_far)];
    // One plot per hyperparameter (of an automl step: each plots the trials
    // of the algorithm that has it).
    let space = match &t.automl {
        Some(a) => {
            let mut params: Vec<(String, builtins::tune::Range)> =
                a.candidates.iter().flat_map(|c| c.ranges.clone()).collect();
            params.sort_by(|x, y| x.0.cmp(&y.0));
            params.dedup_by(|x, y| x.0 == y.0);
            builtins::tune::Space { params }
        }
        None => t.space(),
    };
    let params = numeric_params(&space, rows);
    for (pname, log, values) in &params {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .zip(values)
            .filter_map(|(r, v)| {
                let x = (*v)?;
                let x = if *log { x.log10() } else { x };
                Some((x, r.objective?))
            })
            .collect();
        let xl = if *log {
            format!("log10({pname})")
        } else {
            pname.clone()
        };
        svgs.push(super::scatter_plot(
            pname,
            &xl,
            &t.objective.metric,
            &pts,
            false,
        ));
    }
    r.sections.push(Section {
        title: "Objective".into(),
        note: Some("each trial's objective; the line is the best so far".into()),
        svgs,
        ..Default::default()
    });
    match &t.automl {
        None => r.sections.push(Section {
            title: "Parallel coordinates".into(),
            note: Some("one line a successful trial, darker the better; axes scaled to the values tried (log10 where the range is logarithmic)".into()),
            svgs: vec![parallel_coordinates(t, rows, &params)],
            ..Default::default()
        }),
        Some(a) => {
            // Each algorithm's best, as AutoGluon's leaderboard leads with.
            let mut table = Vec::new();
            for c in &a.candidates {
                let mine: Vec<&TrialRow> = order
                    .iter()
                    .map(|&i| &rows[i])
                    .filter(|r| r.algorithm.as_deref() == Some(c.algorithm.as_str()))
                    .collect();
                let done = mine.iter().filter(|r| r.objective.is_some()).count();
                let best = mine.first().filter(|r| r.objective.is_some());
                table.push(vec![
                    Cell::plain(c.algorithm.clone()),
                    Cell::plain(format!("{} of {}", done, mine.len())),
                    Cell::plain(best.and_then(|b| b.objective).map(fmt_num).unwrap_or_default()),
                    Cell::plain(
                        best.and_then(|b| b.scored.as_ref()?.test)
                            .map(fmt_num)
                            .unwrap_or_default(),
                    ),
                    Cell::plain(best.map(|b| b.name.clone()).unwrap_or_default()),
                ]);
            }
            if let Some(b) = blend {
                table.insert(
                    0,
                    vec![
                        Cell::plain("ensemble"),
                        Cell::plain(format!("{} members", b.members.len())),
                        Cell::plain(fmt_num(b.validation)),
                        Cell::plain(b.scored.test.map(fmt_num).unwrap_or_default()),
                        Cell::plain(b.describe()),
                    ],
                );
                r.metric(
                    &format!("ensemble {}", t.objective.metric),
                    b.validation,
                    None,
                );
            }
            r.sections.push(Section {
                title: "Algorithms".into(),
                note: Some("each algorithm's best trial; the test score is on the held-out test channel, which no trial sees (empty without one). An ensemble (greedy selection over the best trials' models, weights the times each was picked) is listed and handed on only when it beats the best trial on validation. Fit and predict times are in the leaderboard's timings.csv".into()),
                table: Some(Table {
                    header: vec![
                        "algorithm".into(),
                        "trials succeeded".into(),
                        format!("best {}", t.objective.metric),
                        "its test score".into(),
                        "trial".into(),
                    ],
                    rows: table,
                }),
                ..Default::default()
            });
        }
    }
    let names = param_names(t);
    let mut header = vec!["trial".to_string()];
    if t.automl.is_some() {
        header.push("algorithm".into());
    }
    header.extend(["status".into(), "objective".into()]);
    if t.automl.is_some() {
        header.extend(["test".into(), "model bytes".into()]);
    }
    header.extend(names.iter().cloned());
    header.push("failure".into());
    let table_rows = order
        .iter()
        .map(|&i| {
            let row = &rows[i];
            let mut cells = vec![Cell::plain(row.name.clone())];
            if t.automl.is_some() {
                cells.push(Cell::plain(row.algorithm.clone().unwrap_or_default()));
            }
            cells.push(Cell::plain(row.status));
            cells.push(Cell::plain(row.objective.map(fmt_num).unwrap_or_default()));
            if t.automl.is_some() {
                let s = row.scored.as_ref();
                cells.push(Cell::plain(
                    s.and_then(|s| s.test).map(fmt_num).unwrap_or_default(),
                ));
                cells.push(Cell::plain(
                    s.and_then(|s| s.model_bytes)
                        .map(|b| b.to_string())
                        .unwrap_or_default(),
                ));
            }
            cells.extend(names.iter().map(|k| {
                Cell::plain(
                    row.params
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                )
            }));
            cells.push(Cell::plain(row.failure.clone().unwrap_or_default()));
            cells
        })
        .collect();
    r.sections.push(Section {
        title: "Trials".into(),
        note: Some(
            "best first; wall-clock times are in the run's record of each trial step (and, for automl, in the leaderboard's timings.csv), not here, so that the page is the same whatever ran in parallel".into(),
        ),
        table: Some(Table {
            header,
            rows: table_rows,
        }),
        ..Default::default()
    });
    r.render()
}

/// The objective of each trial (dots) and the best so far (a step line).
fn trials_plot(metric: &str, pts: &[(f64, f64)], best: &[(f64, f64)]) -> String {
    let f = Frame::fit(pts.iter().chain(best).copied());
    let title = "objective by trial";
    let mut s = open(title);
    s.push_str(&axes(title, "trial", metric, &f));
    let mut line = Vec::new();
    for (k, (x, y)) in best.iter().enumerate() {
        if k > 0 {
            line.push(format!("{:.1},{:.1}", f.px(*x), f.py(best[k - 1].1)));
        }
        line.push(format!("{:.1},{:.1}", f.px(*x), f.py(*y)));
    }
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" points=\"{}\"/>",
        COLORS[1],
        line.join(" ")
    ));
    for (x, y) in pts {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"{}\" fill-opacity=\"0.7\"/>",
            f.px(*x),
            f.py(*y),
            COLORS[0]
        ));
    }
    s.push_str("</svg>");
    s
}

/// One vertical axis a hyperparameter and one for the objective; one
/// polyline a successful trial, darker the better its objective.
fn parallel_coordinates(
    t: &TuneStep,
    rows: &[TrialRow],
    params: &[(String, bool, Vec<Option<f64>>)],
) -> String {
    let width = (W * 2.0).max(120.0 * (params.len() + 1) as f64);
    let axes_n = params.len() + 1;
    let x_of = |k: usize| PAD + k as f64 * (width - 2.0 * PAD) / (axes_n - 1).max(1) as f64;
    let (top, bottom) = (30.0, H - PAD);
    // Each axis's values, scaled to 0..1 over what was tried.
    let mut columns: Vec<Vec<Option<f64>>> = params
        .iter()
        .map(|(_, log, v)| {
            v.iter()
                .map(|x| x.map(|x| if *log { x.log10() } else { x }))
                .collect()
        })
        .collect();
    columns.push(rows.iter().map(|r| r.objective).collect());
    let ranges: Vec<(f64, f64)> = columns
        .iter()
        .map(|c| {
            let (lo, hi) = c
                .iter()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            if lo.is_finite() {
                (lo, if hi - lo < 1e-12 { lo + 1.0 } else { hi })
            } else {
                (0.0, 1.0)
            }
        })
        .collect();
    let y_of = |k: usize, v: f64| {
        let (lo, hi) = ranges[k];
        bottom - (v - lo) / (hi - lo) * (bottom - top)
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{H}\" viewBox=\"0 0 {width} {H}\" role=\"img\" aria-label=\"parallel coordinates\">"
    );
    let (olo, ohi) = ranges[axes_n - 1];
    for (ri, row) in rows.iter().enumerate() {
        let Some(obj) = row.objective else { continue };
        let goodness = {
            let g = (obj - olo) / (ohi - olo);
            if t.objective.maximize { g } else { 1.0 - g }
        };
        let pts: Option<Vec<String>> = (0..axes_n)
            .map(|k| columns[k][ri].map(|v| format!("{:.1},{:.1}", x_of(k), y_of(k, v))))
            .collect();
        if let Some(pts) = pts {
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-opacity=\"{:.2}\" stroke-width=\"1.2\" points=\"{}\"><title>{}</title></polyline>",
                COLORS[0],
                0.15 + 0.85 * goodness.clamp(0.0, 1.0),
                pts.join(" "),
                esc(&row.name)
            ));
        }
    }
    let names: Vec<String> = params
        .iter()
        .map(|(n, log, _)| {
            if *log {
                format!("log10({n})")
            } else {
                n.clone()
            }
        })
        .chain([t.objective.metric.clone()])
        .collect();
    for (k, n) in names.iter().enumerate() {
        let x = x_of(k);
        let (lo, hi) = ranges[k];
        s.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#888\"/><text x=\"{x:.1}\" y=\"16\" font-size=\"10\" text-anchor=\"middle\">{}</text><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            esc(n),
            bottom + 12.0,
            esc(&fmt_num(lo)),
            top - 3.0,
            esc(&fmt_num(hi)),
        ));
    }
    s.push_str("</svg>");
    s
}
