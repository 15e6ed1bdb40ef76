//! The boosting loop: labels and classes, binning, rounds, validation,
//! early stopping, checkpoints and incremental training.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::binning::BinnedMatrix;
use super::checkpoint::{self, Best, Checkpoint, Fingerprint};
use super::grow::{GradPair, TreeParams, grow_tree, leaf_by_bins};
use super::metric;
use super::model::GbdtModel;
use super::objective::{self, CHUNK};
use super::params::{Objective, Params};
use crate::dataset::{Column, Dataset};
use crate::error::{BuiltinError, DataError};
use crate::model::TrainContext;

/// Trains a booster on `train`, scoring `validation` each round when given.
///
/// Runs on `ctx.threads` threads; the model is the same whatever that number.
/// With `ctx.checkpoint_dir`, writes a checkpoint every `checkpoint_frequency`
/// rounds and resumes from one written by an identical earlier run.
pub fn train(
    params: &Params,
    train: &Dataset,
    validation: Option<&Dataset>,
    ctx: &TrainContext,
) -> Result<GbdtModel, BuiltinError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.threads.max(1))
        .build()
        .map_err(|e| BuiltinError::failed(format!("start training threads: {e}")))?;
    pool.install(|| run(params, train, validation, ctx))
}

/// Continues boosting from `initial`: its trees are kept and new rounds fit what they miss.
pub fn train_from(
    initial: &GbdtModel,
    params: &Params,
    train_data: &Dataset,
    validation: Option<&Dataset>,
    ctx: &TrainContext,
) -> Result<GbdtModel, BuiltinError> {
    let p = params.clone().with_initial_model(initial.clone());
    train(&p, train_data, validation, ctx)
}

fn data_error(what: &str, msg: impl Into<String>, hint: &str) -> BuiltinError {
    BuiltinError::Data(DataError::new(what, msg).hint(hint))
}

/// The most classes inferred from numeric labels (as `num_class` allows).
const MAX_CLASSES: usize = 65_536;

/// The classes of a classification target and its labels as class numbers.
struct Labels<'a> {
    values: Cow<'a, [f32]>,
    classes: Option<Vec<String>>,
    n_outputs: usize,
}

fn training_labels<'a>(p: &Params, target: &'a Column) -> Result<Labels<'a>, BuiltinError> {
    let obj = p.objective;
    let what = "training data";
    let levels = target.levels();
    let (classes, k) = match obj {
        Objective::BinaryLogistic => match levels {
            Some(l) if l.len() > 2 => {
                return Err(data_error(
                    what,
                    format!(
                        "the target `{}` has {} classes, binary:logistic needs 2",
                        target.name,
                        l.len()
                    ),
                    "use objective multi:softprob for more than two classes",
                ));
            }
            Some(l) => (Some(l.to_vec()), 1),
            None => (Some(vec!["0".to_string(), "1".to_string()]), 1),
        },
        Objective::MultiSoftprob | Objective::MultiSoftmax => {
            let k = match (p.num_class, levels) {
                (Some(k), Some(l)) if l.len() > k => {
                    return Err(BuiltinError::hyperparameter(
                        "num_class",
                        Some(&k.to_string()),
                        format!(
                            "is less than the {} classes of the target `{}`",
                            l.len(),
                            target.name
                        ),
                    )
                    .with_hint("leave num_class out to take it from the data"));
                }
                (Some(k), _) => k,
                (None, Some(l)) => l.len(),
                (None, None) => {
                    objective::check_labels(obj, &target.values, MAX_CLASSES, what)?;
                    target.values.iter().fold(0f32, |a, &b| a.max(b)) as usize + 1
                }
            };
            if k < 2 {
                return Err(data_error(
                    what,
                    format!("the target `{}` has only one class", target.name),
                    "a classifier needs rows of at least two classes",
                ));
            }
            let mut names: Vec<String> = levels.map(<[String]>::to_vec).unwrap_or_default();
            names.extend((names.len()..k).map(|i| i.to_string()));
            (Some(names), k)
        }
        _ => {
            if levels.is_some() {
                return Err(data_error(
                    what,
                    format!(
                        "the target `{}` holds text, but `{}` needs numbers",
                        target.name,
                        obj.name()
                    ),
                    "use binary:logistic or multi:softprob to classify text labels",
                ));
            }
            (None, 1)
        }
    };
    objective::check_labels(obj, &target.values, k, what)?;
    Ok(Labels {
        values: Cow::Borrowed(&target.values),
        classes,
        n_outputs: k,
    })
}

/// Labels as the model's class numbers (files number text classes in their own order).
fn labels_as_classes<'a>(
    p: &Params,
    target: &'a Column,
    classes: Option<&[String]>,
    k: usize,
    what: &str,
) -> Result<Cow<'a, [f32]>, BuiltinError> {
    let values: Cow<[f32]> = match (target.levels(), classes) {
        (Some(levels), Some(classes)) => {
            let mut map = Vec::with_capacity(levels.len());
            for l in levels {
                match classes.iter().position(|c| c == l) {
                    Some(i) => map.push(i as f32),
                    None => {
                        return Err(data_error(
                            what,
                            format!(
                                "the target has class `{l}`, which the model was not trained on"
                            ),
                            "make sure every class appears in the first training data",
                        ));
                    }
                }
            }
            Cow::Owned(
                target
                    .values
                    .iter()
                    .map(|&v| map.get(v as usize).copied().unwrap_or(f32::NAN))
                    .collect(),
            )
        }
        _ => Cow::Borrowed(&target.values),
    };
    objective::check_labels(p.objective, &values, k, what)?;
    Ok(values)
}

/// A small deterministic generator (SplitMix64), seeded per round so that
/// resuming from a checkpoint draws the same rows and features.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, round: usize, stream: u64) -> Rng {
        let mut r = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        r.0 = r.next() ^ (round as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ stream;
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn data_fingerprint(cols: &[&[f32]], labels: &[f32], names: &[String]) -> String {
    let mut fp = Fingerprint::new();
    fp.bytes(&(labels.len() as u64).to_le_bytes());
    for n in names {
        fp.bytes(n.as_bytes());
        fp.bytes(b"\0");
    }
    fp.f32s(labels.iter().copied());
    let step = (labels.len() / 4096).max(1);
    for c in cols {
        fp.f32s(c.iter().step_by(step).copied());
    }
    fp.hex()
}

/// Validation rows, row-major, with their margins.
struct Validation<'a> {
    rows: Vec<f32>,
    labels: Cow<'a, [f32]>,
    margins: Vec<f64>,
}

fn run(
    params: &Params,
    train: &Dataset,
    validation: Option<&Dataset>,
    ctx: &TrainContext,
) -> Result<GbdtModel, BuiltinError> {
    let log = ctx.log;
    let target = train.target().ok_or_else(|| {
        data_error(
            "training data",
            "has no target column to learn",
            "name the label column (`target:`) or put it first in a headerless CSV",
        )
    })?;
    let n = train.n_rows();
    if n == 0 || train.n_features() == 0 {
        return Err(data_error(
            "training data",
            "has no rows or no feature columns",
            "check the train channel points at the right file",
        ));
    }
    if n >= u32::MAX as usize {
        return Err(BuiltinError::failed(format!(
            "train gbdt on {n} rows: at most {} rows are supported",
            u32::MAX - 1
        )));
    }
    let labels = training_labels(params, target)?;
    let k = labels.n_outputs;
    let obj = params.objective;
    let features: Vec<&Column> = train.features().collect();
    let mut model = match &params.initial_model {
        Some(m) => {
            let names = train.feature_names();
            if m.objective != obj || m.n_outputs != k || m.feature_names != names {
                return Err(BuiltinError::failed(format!(
                    "continue training: the initial model ({}, {} outputs, features {}) does not match this run ({}, {k} outputs, features {})",
                    m.objective.name(),
                    m.n_outputs,
                    m.feature_names.join(","),
                    obj.name(),
                    names.join(",")
                )));
            }
            let mut m = (**m).clone();
            m.best_iteration = None;
            m
        }
        None => GbdtModel {
            objective: obj,
            n_outputs: k,
            base_margin: objective::base_margins(obj, &labels.values, k, params.base_score),
            feature_names: train.feature_names(),
            feature_levels: features
                .iter()
                .map(|c| c.levels().map(<[String]>::to_vec))
                .collect(),
            classes: labels.classes.clone(),
            trees: Vec::new(),
            best_iteration: None,
            metrics: BTreeMap::new(),
        },
    };
    let n_initial_trees = model.trees.len();
    // Text features and classes as the model numbers them (an initial model may come from another file).
    let label_values =
        labels_as_classes(params, target, model.classes.as_deref(), k, "training data")?;
    let train_cols = model.feature_columns(train)?;
    let cols: Vec<&[f32]> = train_cols.iter().map(|c| c.as_ref()).collect();

    let mut valid = match validation {
        None => None,
        Some(v) => {
            let vt = v.target().ok_or_else(|| {
                data_error(
                    "validation data",
                    "has no target column",
                    "give the validation channel the same columns as the train channel",
                )
            })?;
            let vlabels =
                labels_as_classes(params, vt, model.classes.as_deref(), k, "validation data")?;
            let vcols = model.feature_columns(v)?;
            let nf = vcols.len();
            let mut rows = vec![0f32; v.n_rows() * nf];
            for (f, c) in vcols.iter().enumerate() {
                for (i, &x) in c.iter().enumerate() {
                    rows[i * nf + f] = x;
                }
            }
            let vrefs: Vec<&[f32]> = vcols.iter().map(|c| c.as_ref()).collect();
            let margins = model.margins_of_columns(&vrefs, v.n_rows(), &model.trees);
            Some(Validation {
                rows,
                labels: vlabels,
                margins,
            })
        }
    };
    if params.early_stopping_rounds.is_some() && valid.is_none() {
        log("early_stopping_rounds has no effect: there is no validation data");
    }

    let mut pfp = params.fingerprint();
    if let Some(m) = &params.initial_model {
        let mut fp = Fingerprint::new();
        fp.bytes(m.to_json_string().as_bytes());
        pfp.push_str(&format!("|initial:{}", fp.hex()));
    }
    let dfp = data_fingerprint(&cols, &label_values, &model.feature_names);
    let mut start = 0usize;
    let mut best: Option<Best> = None;
    let mut last_score: Option<f64> = None;
    if let Some(dir) = &ctx.checkpoint_dir {
        if let Some(c) = checkpoint::read(dir, &pfp, &dfp, log)? {
            log(&format!(
                "resuming from the checkpoint after round {}",
                c.rounds_done
            ));
            start = c.rounds_done;
            best = c.best;
            last_score = c.last_score;
            model = c.model;
            if let Some(v) = &mut valid {
                let nf = cols.len();
                let vcols: Vec<Vec<f32>> = (0..nf)
                    .map(|f| v.rows.iter().skip(f).step_by(nf).copied().collect())
                    .collect();
                let vrefs: Vec<&[f32]> = vcols.iter().map(Vec::as_slice).collect();
                v.margins = model.margins_of_columns(&vrefs, v.labels.len(), &model.trees);
            }
        }
    }
    let mut margins = if model.trees.is_empty() {
        let mut m = Vec::with_capacity(n * k);
        for _ in 0..n {
            m.extend_from_slice(&model.base_margin);
        }
        m
    } else {
        model.margins_of_columns(&cols, n, &model.trees)
    };

    let clock = std::time::Instant::now();
    let binned = BinnedMatrix::build(&cols, n, params.max_bin);
    let nf = cols.len();
    log(&format!(
        "binned {n} rows x {nf} features (at most {} bins each) in {:.2} s",
        params.max_bin.min(255),
        clock.elapsed().as_secs_f64()
    ));
    let clock = std::time::Instant::now();
    let tp = TreeParams {
        eta: params.eta,
        lambda: params.lambda,
        alpha: params.alpha,
        gamma: params.gamma,
        min_child_weight: params.min_child_weight,
        max_depth: params.depth_limit(),
        max_leaves: params.max_leaves,
    };
    let mut grads = vec![GradPair::default(); n * k];
    let mut stopped_early = false;
    for r in start..params.num_round {
        if stopped_early {
            break;
        }
        let (sample, in_sample): (Vec<u32>, Option<Vec<bool>>) = if params.subsample < 1.0 {
            let mut rng = Rng::new(params.seed, r, 1);
            let flags: Vec<bool> = (0..n).map(|_| rng.uniform() < params.subsample).collect();
            let mut rows: Vec<u32> = (0..n as u32).filter(|&i| flags[i as usize]).collect();
            if rows.is_empty() {
                rows.push(0);
            }
            (rows, Some(flags))
        } else {
            ((0..n as u32).collect(), None)
        };
        let mut use_feature = vec![true; nf];
        if params.colsample_bytree < 1.0 {
            let want = ((params.colsample_bytree * nf as f64) as usize).max(1);
            let mut rng = Rng::new(params.seed, r, 2);
            let mut order: Vec<usize> = (0..nf).collect();
            for i in 0..want {
                let j = i + (rng.next() % (nf - i) as u64) as usize;
                order.swap(i, j);
            }
            use_feature = vec![false; nf];
            for &f in &order[..want] {
                use_feature[f] = true;
            }
        }
        for c in 0..k {
            objective::gradients(
                obj,
                &label_values,
                &margins,
                k,
                c,
                params.scale_pos_weight,
                &mut grads[c * n..(c + 1) * n],
            );
        }
        for c in 0..k {
            let mut rows = sample.clone();
            let g = grow_tree(
                &binned,
                &grads[c * n..(c + 1) * n],
                &mut rows,
                &use_feature,
                &tp,
            );
            for &(leaf, s, e) in &g.leaves {
                let v = g.tree.value[leaf] as f64;
                for &row in &rows[s..e] {
                    margins[row as usize * k + c] += v;
                }
            }
            if let Some(flags) = &in_sample {
                for (i, _) in flags.iter().enumerate().filter(|(_, f)| !**f) {
                    margins[i * k + c] += g.tree.value[leaf_by_bins(&g, &binned, i)] as f64;
                }
            }
            if let Some(v) = &mut valid {
                let tree = &g.tree;
                v.margins
                    .par_chunks_mut(CHUNK * k)
                    .zip(v.rows.par_chunks(CHUNK * nf))
                    .for_each(|(m, rows)| {
                        for (mr, row) in m.chunks_mut(k).zip(rows.chunks(nf)) {
                            mr[c] += tree.predict_row(row) as f64;
                        }
                    });
            }
            model.trees.push(g.tree);
        }
        let round = r + 1;
        if let Some(v) = &valid {
            let preds = objective::transform(obj, &v.margins, k);
            let score = metric::evaluate(params.eval_metric, &v.labels, &preds, k);
            last_score = Some(score);
            let better = match best {
                None => true,
                Some(b) if params.eval_metric.maximize() => score > b.score,
                Some(b) => score < b.score,
            };
            if better {
                best = Some(Best { round: r, score });
            }
            log(&format!(
                "[{round}] validation-{}: {score:.6}",
                params.eval_metric.name()
            ));
            if let (Some(esr), Some(b)) = (params.early_stopping_rounds, best) {
                if r - b.round >= esr {
                    log(&format!(
                        "stopping early: no improvement in {esr} rounds; the best round is {}",
                        b.round + 1
                    ));
                    stopped_early = true;
                }
            }
        } else if round % 10 == 0 || round == params.num_round {
            log(&format!("[{round}] trained {} trees", model.trees.len()));
        }
        if let Some(dir) = &ctx.checkpoint_dir {
            if round % params.checkpoint_frequency == 0
                && round < params.num_round
                && !stopped_early
            {
                let ckpt = Checkpoint {
                    rounds_done: round,
                    best,
                    last_score,
                    model,
                };
                checkpoint::write(dir, &pfp, &dfp, &ckpt)?;
                model = ckpt.model;
            }
        }
    }

    let rounds_run = (model.trees.len() - n_initial_trees) / k;
    log(&format!(
        "boosted {} rounds in {:.2} s",
        rounds_run.saturating_sub(start),
        clock.elapsed().as_secs_f64()
    ));
    let mut kept = rounds_run;
    if let (Some(_), Some(b)) = (params.early_stopping_rounds, best) {
        kept = b.round + 1;
        model.best_iteration = Some(b.round);
        model.trees.truncate(n_initial_trees + kept * k);
    }
    let train_margins = if kept < rounds_run {
        model.margins_of_columns(&cols, n, &model.trees)
    } else {
        margins
    };
    let train_preds = objective::transform(obj, &train_margins, k);
    let mut metrics = BTreeMap::new();
    let mname = params.eval_metric.name();
    metrics.insert(
        format!("train_{mname}"),
        metric::evaluate(params.eval_metric, &label_values, &train_preds, k),
    );
    metrics.insert("rounds".to_string(), kept as f64);
    metrics.insert("trees".to_string(), model.trees.len() as f64);
    if let Some(b) = best {
        let score = if params.early_stopping_rounds.is_some() {
            b.score
        } else {
            last_score.unwrap_or(b.score)
        };
        metrics.insert(format!("validation_{mname}"), score);
        metrics.insert("best_iteration".to_string(), b.round as f64);
    }
    model.metrics = metrics;
    Ok(model)
}
