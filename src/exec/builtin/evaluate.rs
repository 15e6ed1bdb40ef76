//! `kind: evaluate`: holdout, k-fold and A/B evaluation, written as
//! `metrics/metrics.json` (what `when:` and register steps read) and
//! `report/report.html` (what a person reads).

use std::collections::BTreeMap;

use builtins::metrics::bootstrap::{BootstrapOptions, difference, interval};
use builtins::metrics::{self, EvalInput};
use builtins::{Dataset, Hyperparams, Model, Predictions, Task, TrainContext};
use rayon::prelude::*;
use serde_json::{Value, json};

use super::data::{read_channel, read_labelled};
use super::{Layout, StepConfig, StepError};
use crate::report::{
    Cell, Report, Section, Table, bar_chart, confusion_table, fmt_num, line_plot, scatter_plot,
};
use crate::spec::model::{EvalMethod, EvaluateStep};

pub fn run(layout: &Layout, e: &EvaluateStep, cfg: &StepConfig) -> Result<(), StepError> {
    let (metrics, report) = match e.method {
        EvalMethod::Holdout => holdout(layout, e, cfg)?,
        EvalMethod::Kfold => kfold(layout, e, cfg)?,
        EvalMethod::Ab => ab(layout, e, cfg)?,
    };
    for (k, v) in metrics.as_object().into_iter().flatten() {
        if !v.is_object() && !v.is_array() {
            println!("{k}: {v}");
        }
    }
    let write = |dir: &str, file: &str, bytes: &[u8]| {
        let p = layout.output(dir).join(file);
        crate::store::write_atomic(&p, bytes)
            .map_err(|e| StepError::failed(format!("write {}: {e}", p.display())))
    };
    write(
        "metrics",
        "metrics.json",
        &serde_json::to_vec_pretty(&metrics).expect("json"),
    )?;
    let html = report.render().map_err(StepError::failed)?;
    write("report", "report.html", html.as_bytes())
}

fn task_name(t: &Task) -> &'static str {
    match t {
        Task::Regression => "regression",
        Task::Binary { .. } => "binary classification",
        Task::Multiclass { .. } => "multiclass classification",
        Task::Clustering => "clustering",
        Task::Projection => "projection",
    }
}

/// The metric names to compute: those asked for (checked), else the task's default.
fn metric_names(e: &EvaluateStep, task: &Task) -> Result<Vec<String>, StepError> {
    if e.metrics.is_empty() {
        return Ok(vec![metrics::default_for(task).to_string()]);
    }
    for m in &e.metrics {
        metrics::check_name(m, task)?;
    }
    Ok(e.metrics.clone())
}

fn options(e: &EvaluateStep) -> metrics::Options {
    metrics::Options {
        seed: e.seed,
        ..metrics::Options::default()
    }
}

/// Scores `model` on `data` with every metric.
fn score(
    names: &[String],
    input: &EvalInput,
    opts: &metrics::Options,
) -> Result<BTreeMap<String, f64>, StepError> {
    names
        .iter()
        .map(|n| Ok((n.clone(), metrics::compute_with(n, input, opts)?)))
        .collect()
}

fn holdout(
    layout: &Layout,
    e: &EvaluateStep,
    cfg: &StepConfig,
) -> Result<(Value, Report), StepError> {
    let model = builtins::algorithm::load(&layout.channel("model"))?;
    let data = read_channel(layout, cfg, "data")?;
    let preds = model.predict(&data)?;
    let task = preds.task.clone();
    let names = metric_names(e, &task)?;
    let input = with_features(EvalInput::from_dataset(&data, preds)?, &data, &names);
    let values = score(&names, &input, &options(e))?;
    let mut report = Report {
        title: format!("{} · holdout evaluation", cfg.step.name()),
        subtitle: format!(
            "{} model, {} on {} rows",
            model.algorithm(),
            task_name(&task),
            data.n_rows()
        ),
        ..Default::default()
    };
    for (k, v) in &values {
        report.metric(k, *v, None);
    }
    add_plots(&mut report, &input, &task)?;
    let mut m = serde_json::Map::new();
    for (k, v) in &values {
        m.insert(k.clone(), json!(v));
    }
    m.insert("rows".into(), json!(data.n_rows()));
    Ok((Value::Object(m), report))
}

/// Clustering and projection metrics need the features.
fn with_features(mut input: EvalInput, data: &Dataset, names: &[String]) -> EvalInput {
    let needs = names.iter().any(|n| {
        matches!(
            n.as_str(),
            "inertia" | "silhouette" | "explained_variance_ratio" | "reconstruction_error"
        )
    });
    if needs {
        input.features = Some(metrics::Features::from_dataset(data));
    }
    input
}

/// Bins of a binary classifier's reliability diagram.
const CALIBRATION_BINS: usize = 10;
/// The decision thresholds of a binary classifier's threshold table.
const THRESHOLDS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// A binary classifier's calibration (reliability diagram and its bins) and
/// what it does at each decision threshold.
fn add_binary_sections(
    report: &mut Report,
    input: &EvalInput,
    classes: &[String],
) -> Result<(), StepError> {
    let bins = metrics::calibration(input, CALIBRATION_BINS)?;
    let pts: Vec<(f64, f64)> = bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.mean_predicted, b.fraction_positive))
        .collect();
    let num = |x: f64| {
        if x.is_nan() {
            "–".to_string()
        } else {
            fmt_num(x)
        }
    };
    report.sections.push(Section {
        title: "Calibration".into(),
        note: Some(format!(
            "predicted probability of `{}` against the share of rows that are, in {CALIBRATION_BINS} equal-width bins (empty bins left out of the plot)",
            classes.get(1).map(String::as_str).unwrap_or("1")
        )),
        table: Some(Table {
            header: ["bin", "rows", "mean predicted", "fraction positive"]
                .map(String::from)
                .to_vec(),
            rows: bins
                .iter()
                .map(|b| {
                    vec![
                        Cell::plain(format!("[{:.1}, {:.1}{}", b.lower, b.upper, if b.upper >= 1.0 { "]" } else { ")" })),
                        Cell::plain(b.count.to_string()),
                        Cell::plain(num(b.mean_predicted)),
                        Cell::plain(num(b.fraction_positive)),
                    ]
                })
                .collect(),
        }),
        svgs: vec![line_plot(
            "Reliability diagram",
            "mean predicted probability",
            "fraction positive",
            &[("model".to_string(), pts)],
            true,
            true,
        )],
    });
    let rows = metrics::threshold_table(input, &THRESHOLDS)?;
    report.sections.push(Section {
        title: "Thresholds".into(),
        note: Some(
            "a row is predicted positive when its probability is at least the threshold".into(),
        ),
        table: Some(Table {
            header: [
                "threshold",
                "TP",
                "FP",
                "TN",
                "FN",
                "precision",
                "recall",
                "F1",
                "false positive rate",
            ]
            .map(String::from)
            .to_vec(),
            rows: rows
                .iter()
                .map(|r| {
                    vec![
                        Cell::plain(format!("{:.1}", r.threshold)),
                        Cell::plain(r.tp.to_string()),
                        Cell::plain(r.fp.to_string()),
                        Cell::plain(r.tn.to_string()),
                        Cell::plain(r.fn_.to_string()),
                        Cell::plain(num(r.precision)),
                        Cell::plain(num(r.recall)),
                        Cell::plain(num(r.f1)),
                        Cell::plain(num(r.false_positive_rate)),
                    ]
                })
                .collect(),
        }),
        ..Default::default()
    });
    Ok(())
}

/// The confusion matrix, curves, residuals or cluster sizes, as the task calls for.
fn add_plots(report: &mut Report, input: &EvalInput, task: &Task) -> Result<(), StepError> {
    match task {
        Task::Binary { classes } | Task::Multiclass { classes } => {
            let cm = metrics::confusion_matrix(input)?;
            report.sections.push(Section {
                title: "Confusion matrix".into(),
                table: Some(confusion_table(classes, &cm)),
                ..Default::default()
            });
            let curves = metrics::curves(input)?;
            let roc: Vec<(String, Vec<(f64, f64)>)> = curves
                .iter()
                .map(|(c, r, _)| {
                    (
                        classes[*c].clone(),
                        r.fpr.iter().copied().zip(r.tpr.iter().copied()).collect(),
                    )
                })
                .collect();
            let pr: Vec<(String, Vec<(f64, f64)>)> = curves
                .iter()
                .map(|(c, _, p)| {
                    (
                        classes[*c].clone(),
                        p.recall
                            .iter()
                            .copied()
                            .zip(p.precision.iter().copied())
                            .collect(),
                    )
                })
                .collect();
            report.sections.push(Section {
                title: "ROC and precision-recall curves".into(),
                note: (classes.len() > 2)
                    .then(|| "one curve per class against the rest".to_string()),
                svgs: vec![
                    line_plot(
                        "ROC",
                        "false positive rate",
                        "true positive rate",
                        &roc,
                        true,
                        true,
                    ),
                    line_plot("Precision-recall", "recall", "precision", &pr, true, false),
                ],
                ..Default::default()
            });
            if matches!(task, Task::Binary { .. }) {
                add_binary_sections(report, input, classes)?;
            }
        }
        Task::Regression => {
            let p = &input.predictions;
            if let Some(y) = &input.y_true {
                let pts: Vec<(f64, f64)> = (0..p.n_rows)
                    .map(|i| (f64::from(p.values[i]), y[i] - f64::from(p.values[i])))
                    .collect();
                let yp: Vec<f64> = p.values.iter().map(|v| f64::from(*v)).collect();
                let note = builtins::metrics::regression::residual_summary(y, &yp).map(|s| {
                    format!(
                        "residuals (true - predicted): mean {}, std {}, median {}, 5%-95% [{}, {}]",
                        fmt_num(s.mean),
                        fmt_num(s.std),
                        fmt_num(s.median),
                        fmt_num(s.p05),
                        fmt_num(s.p95)
                    )
                });
                report.sections.push(Section {
                    title: "Residuals".into(),
                    note,
                    svgs: vec![scatter_plot(
                        "Residuals",
                        "predicted",
                        "true - predicted",
                        &pts,
                        true,
                    )],
                    ..Default::default()
                });
            }
        }
        Task::Clustering => {
            let p = &input.predictions;
            let mut sizes: BTreeMap<i64, f64> = BTreeMap::new();
            for i in 0..p.n_rows {
                *sizes.entry(p.row(i)[0] as i64).or_default() += 1.0;
            }
            let bars: Vec<(String, f64)> =
                sizes.into_iter().map(|(c, n)| (c.to_string(), n)).collect();
            report.sections.push(Section {
                title: "Cluster sizes".into(),
                svgs: vec![bar_chart("Rows per cluster", "rows", &bars)],
                ..Default::default()
            });
        }
        Task::Projection => {}
    }
    Ok(())
}

/// The rows of each fold's test set; training uses the other rows (or, for
/// `time_column`, only the rows before the test set).
/// One fold: the rows it trains on and the rows it tests on.
type Fold = (Vec<usize>, Vec<usize>);

/// What one fold produced: its scores, its train and test row counts, the model's task.
type FoldResult = (BTreeMap<String, f64>, usize, usize, Task);

fn folds(e: &EvaluateStep, data: &Dataset) -> Result<Vec<Fold>, StepError> {
    let k = e.folds.unwrap_or(5) as usize;
    let n = data.n_rows();
    if n < k * 2 {
        return Err(StepError::invalid(format!(
            "{k}-fold evaluation needs at least {} rows; the data has {n}",
            k * 2
        )));
    }
    let column = |name: &str, what: &str| -> Result<&builtins::Column, StepError> {
        data.column(name).ok_or_else(|| {
            let names: Vec<&str> = data.columns().iter().map(|c| c.name.as_str()).collect();
            let hint = builtins::hyperparams::closest(name, names.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            StepError::invalid(format!(
                "`{what}: {name}` names no column of the data{hint}; its columns are: {}",
                names.join(", ")
            ))
        })
    };
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, e.seed);
    if let Some(tc) = &e.time_column {
        // Forward chaining: k+1 blocks in time order; fold i trains on blocks 0..=i, tests on i+1.
        let col = column(tc, "time_column")?;
        let times = row_times(col)?;
        let mut by_time: Vec<usize> = (0..n).collect();
        by_time.sort_by(|&a, &b| times[a].total_cmp(&times[b]).then(a.cmp(&b)));
        let block = n / (k + 1);
        return Ok((0..k)
            .map(|i| {
                let train = by_time[..block * (i + 1)].to_vec();
                let end = if i + 1 == k { n } else { block * (i + 2) };
                (train, by_time[block * (i + 1)..end].to_vec())
            })
            .collect());
    }
    let mut fold_of = vec![0usize; n];
    if let Some(gc) = &e.group_column {
        // Group k-fold: whole groups to the fold with the fewest rows, largest groups first.
        let col = column(gc, "group_column")?;
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &i in &order {
            groups.entry(col.values[i].to_bits()).or_default().push(i);
        }
        if groups.len() < k {
            return Err(StepError::invalid(format!(
                "group {k}-fold needs at least {k} groups in `{gc}`; there are {}",
                groups.len()
            )));
        }
        let mut gs: Vec<Vec<usize>> = groups.into_values().collect();
        gs.sort_by_key(|g| std::cmp::Reverse(g.len()));
        let mut sizes = vec![0usize; k];
        for g in gs {
            let f = (0..k).min_by_key(|&f| (sizes[f], f)).expect("k > 0");
            sizes[f] += g.len();
            for i in g {
                fold_of[i] = f;
            }
        }
    } else if let Some(sc) = &e.stratify {
        let col = column(sc, "stratify")?;
        let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &i in &order {
            by_class.entry(col.values[i].to_bits()).or_default().push(i);
        }
        let mut next = 0usize;
        for rows in by_class.values() {
            for &i in rows {
                fold_of[i] = next % k;
                next += 1;
            }
        }
    } else {
        for (pos, &i) in order.iter().enumerate() {
            fold_of[i] = pos % k;
        }
    }
    Ok((0..k)
        .map(|f| {
            let test: Vec<usize> = (0..n).filter(|&i| fold_of[i] == f).collect();
            let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
            (train, test)
        })
        .collect())
}

/// Seconds since the epoch for each row of a time column (numbers, or ISO 8601 text).
fn row_times(col: &builtins::Column) -> Result<Vec<f64>, StepError> {
    match col.levels() {
        None => Ok(col.values.iter().map(|v| f64::from(*v)).collect()),
        Some(levels) => {
            let parsed: Vec<Option<f64>> = levels
                .iter()
                .map(|l| builtins::split::timestamp::parse(l).map(|ns| ns as f64 / 1e9))
                .collect();
            col.values
                .iter()
                .enumerate()
                .map(|(row, v)| {
                    let lvl = *v as usize;
                    parsed.get(lvl).copied().flatten().ok_or_else(|| {
                        StepError::invalid(format!(
                            "time_column `{}`: row {} has `{}`, which is not a date or time (write ISO 8601 like 2024-01-31T12:00:00Z, or epoch seconds)",
                            col.name,
                            row + 1,
                            levels.get(lvl).map_or("", String::as_str)
                        ))
                    })
                })
                .collect()
        }
    }
}

/// A seeded Fisher-Yates shuffle (splitmix64), the same on every machine.
fn shuffle(v: &mut [usize], seed: u64) {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

fn kfold(
    layout: &Layout,
    e: &EvaluateStep,
    cfg: &StepConfig,
) -> Result<(Value, Report), StepError> {
    let algorithm = e
        .algorithm
        .as_deref()
        .ok_or_else(|| StepError::invalid("k-fold evaluation needs `algorithm`"))?;
    let supervised = matches!(algorithm, "gbdt" | "linear-learner");
    // The fold columns stay, even when an upstream split arranged rows by them.
    let keep: Vec<String> = [&e.group_column, &e.time_column]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let data = if supervised {
        read_labelled(layout, cfg, "data", "k-fold evaluation", &keep)?
    } else {
        super::data::read_channel_with_ids(layout, cfg, "data", &keep)?.0
    };
    let hp = Hyperparams::new(e.hyperparameters.clone());
    for w in builtins::algorithm::check(algorithm, &hp)? {
        println!("warning: {w}");
    }
    let splits = folds(e, &data)?;
    // Folded by them, the group and time columns are not features (they would
    // let the model learn the folds), unless the input's `features.include` asks.
    let include = match super::data::channel_def(cfg, "data").and_then(|d| d.features) {
        Some(crate::spec::model::FeatureSelection::Include(v)) => v,
        _ => Vec::new(),
    };
    let data = if keep.iter().any(|c| !include.contains(c)) {
        data.partition_columns(|c| !keep.contains(&c.name) || include.contains(&c.name))
            .0
    } else {
        data
    };
    let k = splits.len();
    // Folds run side by side, sharing the cores.
    let threads = (layout.threads() / k).max(1);
    println!(
        "{k} folds of {} rows, {threads} thread(s) each",
        data.n_rows()
    );
    let results: Vec<Result<FoldResult, StepError>> = splits
        .par_iter()
        .enumerate()
        .map(|(f, (train_rows, test_rows))| {
            let train = data.take_rows(train_rows);
            let test = data.take_rows(test_rows);
            let hp = Hyperparams::new(e.hyperparameters.clone());
            let ctx = TrainContext::quiet(threads);
            let model = builtins::algorithm::train(algorithm, &hp, &train, None, None, &ctx)
                .map_err(|err| StepError {
                    invalid_input: err.is_invalid_input(),
                    message: format!("fold {}: {err}", f + 1),
                })?;
            let preds = model.predict(&test)?;
            let task = preds.task.clone();
            let names = metric_names(e, &task)?;
            let input = with_features(EvalInput::from_dataset(&test, preds)?, &test, &names);
            Ok((
                score(&names, &input, &options(e))?,
                train.n_rows(),
                test.n_rows(),
                task,
            ))
        })
        .collect();
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let task = results[0].3.clone();
    let names: Vec<String> = results[0].0.keys().cloned().collect();
    let mut out = serde_json::Map::new();
    let mut report = Report {
        title: format!("{} · {k}-fold evaluation", cfg.step.name()),
        subtitle: format!(
            "{algorithm}, {} on {} rows{}",
            task_name(&task),
            data.n_rows(),
            if let Some(t) = &e.time_column {
                format!(", forward-chaining by {t}")
            } else if let Some(g) = &e.group_column {
                format!(", grouped by {g}")
            } else if let Some(s) = &e.stratify {
                format!(", stratified by {s}")
            } else {
                String::new()
            }
        ),
        ..Default::default()
    };
    let mut header = vec!["fold".to_string(), "train rows".into(), "test rows".into()];
    header.extend(names.iter().cloned());
    let mut rows = Vec::new();
    for (f, (vals, ntr, nte, _)) in results.iter().enumerate() {
        let mut row = vec![
            Cell::plain((f + 1).to_string()),
            Cell::plain(ntr.to_string()),
            Cell::plain(nte.to_string()),
        ];
        row.extend(names.iter().map(|n| Cell::plain(fmt_num(vals[n]))));
        rows.push(row);
    }
    let mut svgs = Vec::new();
    for n in &names {
        let xs: Vec<f64> = results.iter().map(|r| r.0[n]).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let std = if xs.len() > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
        } else {
            0.0
        };
        out.insert(n.clone(), json!(mean));
        out.insert(format!("{n}_std"), json!(std));
        report.metric(&format!("{n} (mean of {k})"), mean, None);
        report.metric(&format!("{n} (std)"), std, None);
        svgs.push(bar_chart(
            n,
            n,
            &xs.iter()
                .enumerate()
                .map(|(i, x)| (format!("{}", i + 1), *x))
                .collect::<Vec<_>>(),
        ));
    }
    out.insert(
        "folds".into(),
        json!(results.iter().map(|r| &r.0).collect::<Vec<_>>()),
    );
    report.sections.push(Section {
        title: "Folds".into(),
        table: Some(Table { header, rows }),
        svgs,
        ..Default::default()
    });
    Ok((Value::Object(out), report))
}

/// Which variant a row goes to: a hash of the row's values against the
/// cumulative weights, as a traffic splitter would route a request.
fn route(data: &Dataset, weights: &[f64]) -> Vec<usize> {
    let cols: Vec<&builtins::Column> = data.features().collect();
    let total: f64 = weights.iter().sum();
    (0..data.n_rows())
        .map(|i| {
            let mut h = blake3::Hasher::new();
            for c in &cols {
                h.update(&c.values[i].to_le_bytes());
            }
            let bytes = h.finalize();
            let x = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes")) as f64
                / u64::MAX as f64
                * total;
            let mut acc = 0.0;
            for (v, w) in weights.iter().enumerate() {
                acc += w;
                if x < acc {
                    return v;
                }
            }
            weights.len() - 1
        })
        .collect()
}

fn ab(layout: &Layout, e: &EvaluateStep, cfg: &StepConfig) -> Result<(Value, Report), StepError> {
    let data = read_channel(layout, cfg, "data")?;
    let weights: Vec<f64> = e.variants.iter().map(|v| v.weight).collect();
    let assignment = route(&data, &weights);
    let models: Vec<Box<dyn Model>> = e
        .variants
        .iter()
        .map(|v| {
            builtins::algorithm::load(&layout.channel(&format!("variant-{}", v.name)))
                .map_err(StepError::from)
        })
        .collect::<Result<_, _>>()?;
    let mut inputs: Vec<EvalInput> = Vec::new();
    let mut task: Option<Task> = None;
    for (vi, m) in models.iter().enumerate() {
        let rows: Vec<usize> = (0..data.n_rows())
            .filter(|&i| assignment[i] == vi)
            .collect();
        if rows.is_empty() {
            return Err(StepError::invalid(format!(
                "variant `{}` received no rows: the data is too small for its weight",
                e.variants[vi].name
            )));
        }
        let part = data.take_rows(&rows);
        let preds: Predictions = m.predict(&part)?;
        task.get_or_insert(preds.task.clone());
        inputs.push(EvalInput::from_dataset(&part, preds)?);
    }
    let task = task.expect("at least two variants");
    let names = metric_names(e, &task)?;
    let primary = names[0].clone();
    let higher = metrics::info(&primary).is_none_or(|m| m.higher_is_better);
    let boot = BootstrapOptions {
        seed: e.seed,
        metric: options(e),
        ..BootstrapOptions::default()
    };
    let mut out = serde_json::Map::new();
    let mut report = Report {
        title: format!("{} · A/B evaluation", cfg.step.name()),
        subtitle: format!(
            "{} variants, {} rows routed by a hash of each row; 95% bootstrap intervals ({} resamples)",
            e.variants.len(),
            data.n_rows(),
            boot.resamples
        ),
        ..Default::default()
    };
    let mut header = vec!["variant".to_string(), "weight".into(), "rows".into()];
    header.extend(names.iter().map(|n| format!("{n} [95% interval]")));
    let mut rows = Vec::new();
    let mut per_variant = serde_json::Map::new();
    for (v, input) in e.variants.iter().zip(&inputs) {
        let mut row = vec![
            Cell::plain(v.name.clone()),
            Cell::plain(format!("{}", v.weight)),
            Cell::plain(input.n_rows().to_string()),
        ];
        let mut vm = serde_json::Map::new();
        for n in &names {
            let iv = interval(n, input, &boot)?;
            row.push(Cell::plain(format!(
                "{} [{}, {}]",
                fmt_num(iv.estimate),
                fmt_num(iv.lower),
                fmt_num(iv.upper)
            )));
            out.insert(format!("{}_{n}", v.name), json!(iv.estimate));
            vm.insert(
                n.clone(),
                json!({"value": iv.estimate, "lower": iv.lower, "upper": iv.upper}),
            );
            report.metric(
                &format!("{} {n}", v.name),
                iv.estimate,
                Some((iv.lower, iv.upper)),
            );
        }
        vm.insert("rows".into(), json!(input.n_rows()));
        per_variant.insert(v.name.clone(), Value::Object(vm));
        rows.push(row);
    }
    // The first variant is the baseline (the champion); each other is compared with it.
    let base = &e.variants[0].name;
    let mut winner = base.clone();
    let mut confidence = 0.0;
    let mut comparisons = Vec::new();
    for (v, input) in e.variants.iter().zip(&inputs).skip(1) {
        let d = difference(&primary, &inputs[0], input, &boot)?;
        let better = if higher { d.lower > 0.0 } else { d.upper < 0.0 };
        println!(
            "{} - {base}: {primary} {:+.6} [{:+.6}, {:+.6}], better in {:.1}% of resamples",
            v.name,
            d.estimate,
            d.lower,
            d.upper,
            100.0 * d.b_better_share
        );
        if better && d.b_better_share > confidence {
            winner = v.name.clone();
            confidence = d.b_better_share;
        }
        out.insert(
            format!("{}_minus_{base}_{primary}", v.name),
            json!(d.estimate),
        );
        comparisons.push(json!({"variant": v.name, "baseline": base, "metric": primary, "difference": d.estimate, "lower": d.lower, "upper": d.upper, "better_share": d.b_better_share}));
        report.metric(
            &format!("{} - {base} ({primary})", v.name),
            d.estimate,
            Some((d.lower, d.upper)),
        );
    }
    if winner == *base {
        // No challenger is better beyond doubt: the baseline keeps its place.
        confidence = comparisons
            .iter()
            .filter_map(|c| c["better_share"].as_f64())
            .map(|s| 1.0 - s)
            .fold(1.0, f64::min);
    }
    out.insert("winner".into(), json!(winner));
    out.insert("confidence".into(), json!(confidence));
    out.insert("variants".into(), Value::Object(per_variant));
    out.insert("comparisons".into(), json!(comparisons));
    report.sections.push(Section {
        title: "Variants".into(),
        note: Some(format!("winner: {winner} (better in {:.1}% of resamples on {primary}; a challenger wins only when the 95% interval of its difference excludes 0)", confidence * 100.0)),
        table: Some(Table { header, rows }),
        ..Default::default()
    });
    Ok((Value::Object(out), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_weights_and_is_stable() {
        let rows: Vec<Vec<f32>> = (0..4000).map(|i| vec![i as f32, (i % 7) as f32]).collect();
        let ds = Dataset::from_rows(&rows, None);
        let a = route(&ds, &[0.2, 0.8]);
        assert_eq!(a, route(&ds, &[0.2, 0.8]));
        let share = a.iter().filter(|&&v| v == 0).count() as f64 / a.len() as f64;
        assert!((share - 0.2).abs() < 0.03, "{share}");
    }

    #[test]
    fn shuffles_are_seeded_permutations() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7);
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, (0..100).collect::<Vec<_>>());
    }
}
