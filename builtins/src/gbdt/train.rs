//! The boosting loop: labels and classes, binning, rounds, validation,
//! early stopping, checkpoints and incremental training.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::binning::{BinnedMatrix, FeatureCuts, sample_rows};
use super::checkpoint::{self, Best, Checkpoint, Fingerprint};
use super::grow::{
    GradPair, TreeParams, grid_unit, grow_tree, leaf_by_bins, max_abs, snap, snap_to_grid,
};
use super::metric;
use super::model::GbdtModel;
use super::objective::{self, CHUNK};
use super::params::{Objective, Params};
use crate::cluster::{
    Cluster, bytes_f32, bytes_f64, decode_parts, encode_parts, f32_bytes, f64_bytes, shard_offset,
};
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

/// `max_label` is the largest label over all nodes' rows (for the class count of numeric labels).
fn training_labels<'a>(
    p: &Params,
    target: &'a Column,
    max_label: f32,
) -> Result<Labels<'a>, BuiltinError> {
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
                    max_label as usize + 1
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
    /// Moves on as if `n` numbers had been drawn.
    fn skip(&mut self, n: usize) {
        self.0 = self
            .0
            .wrapping_add((n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
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
    let cluster = ctx.cluster;
    let multi = cluster.size() > 1;
    let n = train.n_rows();
    let (offset, n_total) = shard_offset(cluster, n)?;
    if n_total == 0 || train.n_features() == 0 {
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
    // The largest label (for the class count) and the largest magnitude (for
    // exact label sums), over every node.
    let mut label_max = [
        target.values.iter().fold(0f32, |a, &b| a.max(b)) as f64,
        target
            .values
            .iter()
            .fold(0f64, |a, &b| a.max((b as f64).abs())),
    ];
    cluster.allreduce_max_f64(&mut label_max)?;
    let labels = training_labels(params, target, label_max[0] as f32)?;
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
            base_margin: objective::base_margins(
                obj,
                &label_stats(&labels.values, k, obj, label_max[1], n_total, cluster)?,
                k,
                params.base_score,
            ),
            feature_names: train.feature_names(),
            feature_levels: features
                .iter()
                .map(|c| c.levels().map(<[String]>::to_vec))
                .collect(),
            classes: labels.classes.clone(),
            trees: Vec::new(),
            best_iteration: None,
            metrics: BTreeMap::new(),
            objective_param: objective_param(params),
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
    if multi && !cluster.is_main() {
        // Validation is the main node's: it decides early stopping for all.
        valid = None;
    }
    if params.early_stopping_rounds.is_some() && valid.is_none() && cluster.is_main() {
        log("early_stopping_rounds has no effect: there is no validation data");
    }

    let mut pfp = params.fingerprint();
    if let Some(m) = &params.initial_model {
        let mut fp = Fingerprint::new();
        fp.bytes(m.to_json_string().as_bytes());
        pfp.push_str(&format!("|initial:{}", fp.hex()));
    }
    let mut dfp = data_fingerprint(&cols, &label_values, &model.feature_names);
    if multi {
        let all = cluster.allgather_bytes(dfp.as_bytes())?;
        let mut fp = Fingerprint::new();
        for part in &all {
            fp.bytes(part);
            fp.bytes(b"|");
        }
        dfp = format!("{}-nodes-{}", all.len(), fp.hex());
    }
    let mut start = 0usize;
    let mut best: Option<Best> = None;
    let mut last_score: Option<f64> = None;
    let found = match &ctx.checkpoint_dir {
        Some(dir) if cluster.is_main() => checkpoint::read(dir, &pfp, &dfp, log)?,
        _ => None,
    };
    // The main node's checkpoint (or its absence) holds for every node.
    let found = if multi {
        let text = found.as_ref().map(checkpoint::encode).unwrap_or_default();
        let text = cluster.broadcast_bytes(text.as_bytes())?;
        if text.is_empty() {
            None
        } else {
            Some(checkpoint::decode(&String::from_utf8_lossy(&text))?)
        }
    } else {
        found
    };
    if let Some(c) = found {
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
    let binned = if multi {
        let cuts = shared_cuts(&cols, n, (offset, n_total), params.max_bin, cluster)?;
        BinnedMatrix::with_cuts(&cols, n, cuts)
    } else {
        BinnedMatrix::build(&cols, n, params.max_bin)
    };
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
        max_delta_step: params.max_delta_step,
        max_depth: params.depth_limit(),
        max_leaves: params.max_leaves,
        lossguide: params.grow_policy == super::GrowPolicy::Lossguide,
        colsample_bylevel: params.colsample_bylevel,
        colsample_bynode: params.colsample_bynode,
        column_seed: 0,
    };
    let mut grads = vec![GradPair::default(); n * k];
    let mut stopped_early = false;
    // The live display counts rounds against this (`round 308/400`).
    log(&format!("boosting up to {} rounds", params.num_round));
    for r in start..params.num_round {
        if stopped_early {
            break;
        }
        let (sample, in_sample): (Vec<u32>, Option<Vec<bool>>) = if params.subsample < 1.0 {
            let mut rng = Rng::new(params.seed, r, 1);
            // Draws follow global row order, so N nodes sample the rows one would.
            rng.skip(offset);
            let flags: Vec<bool> = (0..n).map(|_| rng.uniform() < params.subsample).collect();
            let mut rows: Vec<u32> = (0..n as u32).filter(|&i| flags[i as usize]).collect();
            let mut sampled = [rows.len() as u64];
            cluster.allreduce_sum_u64(&mut sampled)?;
            if sampled[0] == 0 && offset == 0 && n > 0 {
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
                params,
                &mut grads[c * n..(c + 1) * n],
            );
        }
        // Onto a grid where every sum is exact: trees then never depend on
        // the order gradients are added in (threads, nodes).
        let mut maxima: Vec<f64> = (0..k)
            .flat_map(|c| {
                let (g, h) = max_abs(&grads[c * n..(c + 1) * n]);
                [g, h]
            })
            .collect();
        cluster.allreduce_max_f64(&mut maxima)?;
        for c in 0..k {
            let units = (
                grid_unit(maxima[2 * c], n_total),
                grid_unit(maxima[2 * c + 1], n_total),
            );
            snap_to_grid(&mut grads[c * n..(c + 1) * n], units);
        }
        for c in 0..k {
            let mut rows = sample.clone();
            let tp = TreeParams {
                column_seed: Rng::new(params.seed, r, 3 + c as u64).next(),
                ..tp
            };
            let g = grow_tree(
                &binned,
                &grads[c * n..(c + 1) * n],
                &mut rows,
                &use_feature,
                &tp,
                cluster,
            )?;
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
            // XGBoost's own line (`[0]<TAB>validation-auc:0.91234`, the
            // round counted from 0), which SageMaker's metric regexes read.
            log(&format!(
                "[{r}]\tvalidation-{}:{score:.5}",
                params.eval_metric.name()
            ));
            if let (Some(esr), Some(b)) = (params.early_stopping_rounds, best)
                && r - b.round >= esr
            {
                log(&format!(
                    "stopping early: no improvement in {esr} rounds; the best round is {}",
                    b.round + 1
                ));
                stopped_early = true;
            }
        } else if round % 10 == 0 || round == params.num_round {
            log(&format!("[{round}] trained {} trees", model.trees.len()));
        }
        if multi {
            // The main node's early-stopping state, for every node.
            let mut state = [
                f64::from(u8::from(stopped_early)),
                best.map_or(-1.0, |b| b.round as f64),
                best.map_or(0.0, |b| b.score),
            ];
            state = bytes_f64(&cluster.broadcast_bytes(&f64_bytes(&state))?)
                .try_into()
                .map_err(|_| BuiltinError::failed("a malformed message from the main node"))?;
            stopped_early = state[0] != 0.0;
            best = (state[1] >= 0.0).then(|| Best {
                round: state[1] as usize,
                score: state[2],
            });
        }
        if let Some(dir) = &ctx.checkpoint_dir
            && cluster.is_main()
            && round.is_multiple_of(params.checkpoint_frequency)
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
    let train_score = if multi {
        // The main node scores the predictions of every node's rows, in row order.
        let mut mine = f32_bytes(&train_preds);
        mine.extend(f32_bytes(&label_values));
        let parts = cluster.gather_bytes(&encode_parts(&[mine]))?;
        let (mut all_preds, mut all_labels) = (Vec::new(), Vec::new());
        for p in &parts {
            let p = decode_parts(p)?.pop().unwrap_or_default();
            let rows = p.len() / (4 * k + 4);
            all_preds.extend(bytes_f32(&p[..rows * k * 4]));
            all_labels.extend(bytes_f32(&p[rows * k * 4..]));
        }
        cluster
            .is_main()
            .then(|| metric::evaluate(params.eval_metric, &all_labels, &all_preds, k))
    } else {
        Some(metric::evaluate(
            params.eval_metric,
            &label_values,
            &train_preds,
            k,
        ))
    };
    if let Some(score) = train_score {
        metrics.insert(format!("train_{mname}"), score);
    }
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

/// What the starting margins are made of, over every node: the row count,
/// the label sum (exact: labels rounded onto a common grid, so the sum does
/// not depend on how rows are split) and, for classes, their counts.
/// What the model keeps of the objective's own setting (for XGBoost's format).
fn objective_param(p: &Params) -> Option<f64> {
    match p.objective {
        Objective::Tweedie => Some(p.tweedie_variance_power),
        Objective::PseudoHuber => Some(p.huber_slope),
        _ => None,
    }
}

fn label_stats(
    labels: &[f32],
    k: usize,
    obj: Objective,
    max_abs_label: f64,
    n_total: usize,
    cluster: &dyn Cluster,
) -> Result<objective::LabelStats, BuiltinError> {
    let unit = grid_unit(max_abs_label, n_total);
    let mut v = vec![0f64; 2 + k];
    v[0] = labels.len() as f64;
    v[1] = labels.iter().map(|&y| snap(y as f64, unit)).sum();
    if obj.is_multiclass() {
        for &y in labels {
            if let Some(c) = v.get_mut(2 + y as usize) {
                *c += 1.0;
            }
        }
    }
    cluster.allreduce_sum_f64(&mut v)?;
    Ok(objective::LabelStats {
        n: v[0],
        sum: v[1],
        counts: v[2..].to_vec(),
    })
}

/// Bin cuts every node agrees on, equal to one node's on all the rows: each
/// node sends the values of its rows among the global sample rows (all rows
/// when there are few), the main node places the cuts and sends them back.
fn shared_cuts(
    cols: &[&[f32]],
    n: usize,
    (offset, n_total): (usize, usize),
    max_bin: usize,
    cluster: &dyn Cluster,
) -> Result<Vec<FeatureCuts>, BuiltinError> {
    let rows: Vec<usize> = match sample_rows(n_total) {
        None => (0..n).collect(),
        Some(all) => all
            .into_iter()
            .filter(|&g| (offset..offset + n).contains(&g))
            .map(|g| g - offset)
            .collect(),
    };
    let mine: Vec<Vec<u8>> = cols
        .iter()
        .map(|c| f32_bytes(&rows.iter().map(|&i| c[i]).collect::<Vec<f32>>()))
        .collect();
    let parts = cluster.gather_bytes(&encode_parts(&mine))?;
    let mut answer = Vec::new();
    if cluster.is_main() {
        let per_node: Vec<Vec<Vec<u8>>> = parts
            .iter()
            .map(|p| decode_parts(p))
            .collect::<Result<_, _>>()?;
        let cuts: Vec<Vec<u8>> = (0..cols.len())
            .into_par_iter()
            .map(|f| {
                let vals: Vec<f32> = per_node
                    .iter()
                    .flat_map(|node| bytes_f32(node.get(f).map_or(&[][..], Vec::as_slice)))
                    .collect();
                f32_bytes(&FeatureCuts::from_values(&vals, max_bin).cuts)
            })
            .collect();
        answer = encode_parts(&cuts);
    }
    let cuts = decode_parts(&cluster.broadcast_bytes(&answer)?)?;
    if cuts.len() != cols.len() {
        return Err(BuiltinError::failed(
            "the main node sent bin cuts for another number of features",
        ));
    }
    Ok(cuts
        .iter()
        .map(|c| FeatureCuts { cuts: bytes_f32(c) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::train_on_nodes;
    use crate::hyperparams::Hyperparams;

    /// Rows with numeric features (some missing, many ties), a text feature
    /// and a text class; `y` a noisy regression target.
    fn data(n: usize, seed: u64) -> Dataset {
        let mut rng = crate::dense::Rng::new(seed);
        let colours = ["red", "green", "blue", "cyan", "plum"];
        let (mut a, mut b, mut c, mut t, mut y, mut class) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let x = rng.normal() as f32;
            let z = (rng.below(20) as f32) / 4.0;
            let w = if i % 13 == 0 {
                f32::NAN
            } else {
                rng.next_f64() as f32
            };
            let k = rng.below(colours.len());
            a.push(x);
            b.push(z);
            c.push(w);
            t.push(k as f32);
            let v = x * 1.5 + z.sin() + if k == 2 { 1.0 } else { 0.0 } + 0.3 * rng.normal() as f32;
            y.push(v);
            class.push(if v > 1.2 {
                0.0
            } else if v > 0.0 {
                1.0
            } else {
                2.0
            });
        }
        let levels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ds = Dataset::new(
            vec![
                Column::numeric("a", a),
                Column::numeric("b", b),
                Column::numeric("c", c),
                Column::categorical("colour", levels(&colours), t),
                Column::numeric("y", y),
                Column::categorical("class", levels(&["high", "mid", "low"]), class),
            ],
            None,
        );
        // Levels in order of first appearance, as a reader numbers them.
        crate::cluster::testing::shard(&ds, 0..n)
    }

    fn with_target(ds: &Dataset, target: &str, drop: &str) -> Dataset {
        let cols = ds
            .columns()
            .iter()
            .filter(|c| c.name != drop)
            .cloned()
            .collect();
        Dataset::new(cols, Some(target))
    }

    #[test]
    fn three_nodes_grow_the_trees_of_one() {
        let ds = data(3000, 4);
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (
                "y",
                "class",
                &[
                    ("objective", "reg:squarederror"),
                    ("num_round", "8"),
                    ("max_depth", "5"),
                ],
            ),
            (
                "class",
                "y",
                &[
                    ("objective", "multi:softprob"),
                    ("num_round", "5"),
                    ("subsample", "0.7"),
                    ("colsample_bytree", "0.7"),
                    ("min_child_weight", "2"),
                ],
            ),
        ];
        for (target, drop, hps) in cases {
            let train_ds = with_target(&ds, target, drop);
            let p = Params::from_hyperparameters(&Hyperparams::from_pairs(hps)).unwrap();
            let one = train(&p, &train_ds, None, &crate::model::TrainContext::quiet(2)).unwrap();
            assert!(one.trees.iter().all(|t| t.n_nodes() > 7));
            for cuts in [vec![0, 1000, 2900, 3000], vec![0, 17, 1500, 3000]] {
                let models = train_on_nodes(&train_ds, &cuts, |part, ctx| {
                    train(&p, part, None, ctx).unwrap()
                });
                for (r, m) in models.iter().enumerate() {
                    assert_eq!(m.base_margin, one.base_margin, "{target} {cuts:?} node {r}");
                    assert_eq!(m.feature_levels, one.feature_levels);
                    assert_eq!(m.classes, one.classes);
                    assert_eq!(m.trees, one.trees, "{target} {cuts:?} node {r}");
                }
                assert_eq!(models[0].metrics, one.metrics, "{target}");
            }
        }
    }

    #[test]
    fn the_main_node_decides_early_stopping_for_all() {
        let ds = with_target(&data(2400, 8), "class", "y");
        let valid = with_target(&data(500, 9), "class", "y");
        let p = Params::from_hyperparameters(&Hyperparams::from_pairs(&[
            ("objective", "multi:softprob"),
            ("num_round", "60"),
            ("eta", "0.5"),
            ("early_stopping_rounds", "3"),
        ]))
        .unwrap();
        let one = train(&p, &ds, Some(&valid), &crate::model::TrainContext::quiet(2)).unwrap();
        assert!(
            one.best_iteration.is_some_and(|b| b < 50),
            "{:?}",
            one.best_iteration
        );
        let models = train_on_nodes(&ds, &[0, 800, 2000, 2400], |part, ctx| {
            let v = ctx.cluster.is_main().then_some(&valid);
            train(&p, part, v, ctx).unwrap()
        });
        for m in &models {
            assert_eq!(m.best_iteration, one.best_iteration);
            assert_eq!(m.trees, one.trees);
        }
        assert_eq!(models[0].metrics, one.metrics);
    }
}
