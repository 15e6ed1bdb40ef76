//! Linear models (`algorithm: linear-learner`): logistic regression, softmax
//! regression and least squares, with L2 (`wd`) and L1 (`l1`) penalties.
//!
//! SageMaker's linear learner trains with distributed SGD; here the default
//! (`optimizer: auto`) is an exact full-batch method where one exists, because
//! on data that fits in memory it is both faster and reproducible to the last
//! digit: Newton's method for binary logistic regression and for least
//! squares (one step: the normal equations, solved by Cholesky), L-BFGS for
//! the softmax, and accelerated proximal gradient when `l1 > 0`. `sgd` and
//! `adam` remain available for SageMaker-like training.
//!
//! The objective is `mean loss + wd/2 |w|^2 + l1 |w|_1` on the standardised
//! features (with `normalize_data`); the bias is not penalised. scikit-learn's
//! `LogisticRegression(C)` minimises `C * sum loss + |w|^2 / 2`, which is the
//! same problem with `wd = 1 / (C n)` for `n` training rows.
//!
//! On several nodes the full-batch methods add their sums over the nodes:
//! the loss and gradient (L-BFGS, proximal) and the Hessian (Newton), as well
//! as the feature and label statistics, so every node takes the same steps
//! and ends at one node's weights up to rounding. `sgd` and `adam` are
//! single-node only.

mod labels;
mod model;
mod objective;
pub mod params;
mod solvers;

pub use model::LinearModel;
pub use params::{Loss, Optimizer, Params, PredictorType};

use std::collections::BTreeMap;

use crate::cluster::shard_offset;
use crate::dataset::Dataset;
use crate::dense::{FeatureStats, empty_data, reject_infinite, with_threads};
use crate::error::BuiltinError;
use crate::model::{Model, TrainContext};

use model::Fitted;
use objective::Problem;

/// Trains on `train`; with `validation`, its loss and accuracy (or RMSE for
/// a regressor) are recorded among the training metrics.
pub fn train(
    params: &Params,
    train: &Dataset,
    validation: Option<&Dataset>,
    ctx: &TrainContext,
) -> Result<LinearModel, BuiltinError> {
    let cluster = ctx.cluster;
    let (_, n_total) = shard_offset(cluster, train.n_rows())?;
    if n_total == 0 {
        return Err(empty_data("train data", "no rows"));
    }
    if cluster.size() > 1 && matches!(params.optimizer, Optimizer::Sgd | Optimizer::Adam) {
        return Err(BuiltinError::hyperparameter(
            "optimizer",
            Some(if params.optimizer == Optimizer::Sgd {
                "sgd"
            } else {
                "adam"
            }),
            "trains on one node only; on several nodes use auto, lbfgs or proximal",
        ));
    }
    if train.n_features() == 0 {
        return Err(empty_data("train data", "no feature columns"));
    }
    crate::hyperparams::check_feature_dim(params.feature_dim, train.n_features())?;
    reject_infinite(train, "train data")?;
    let num_classes = match (params.predictor_type, params.num_classes) {
        (PredictorType::Multiclass, 0) => labels::count_classes(train, cluster.size())?,
        (_, k) => k,
    };
    let lab = labels::labels(train, params.predictor_type, num_classes, "train data")?;
    with_threads(ctx.threads, || {
        let stats = FeatureStats::of_shards(train, cluster)?;
        let x = stats.matrix(train, params.normalize_data);
        (ctx.log)(&format!(
            "linear-learner: {} rows of {} features ready",
            train.n_rows(),
            train.n_features()
        ));
        let (label_mean, label_scale, y) = if params.normalize_label {
            let n = n_total as f64;
            let mut sum = [lab.y.iter().map(|&v| v as f64).sum::<f64>()];
            cluster.allreduce_sum_f64(&mut sum)?;
            let mean = sum[0] / n;
            let mut ss = [lab
                .y
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()];
            cluster.allreduce_sum_f64(&mut ss)?;
            let var = ss[0] / n;
            let sd = if var.sqrt() > 1e-12 * mean.abs().max(1.0) {
                var.sqrt()
            } else {
                1.0
            };
            let y = lab
                .y
                .iter()
                .map(|&v| ((v as f64 - mean) / sd) as f32)
                .collect();
            (mean, sd, y)
        } else {
            (0.0, 1.0, lab.y.clone())
        };
        let c = match params.predictor_type {
            PredictorType::Multiclass => num_classes,
            _ => 1,
        };
        let problem = Problem {
            x: &x,
            y: &y,
            n: train.n_rows(),
            d: train.n_features(),
            c,
            loss: params.loss,
            wd: params.wd,
            use_bias: params.use_bias,
            cluster,
            n_total,
            failure: std::sync::Mutex::new(None),
        };
        let sol = match params.optimizer {
            // The tolerance scikit-learn's benchmark runs use; Newton converges
            // quadratically, so the answer is then within about 1e-12 of the optimum.
            Optimizer::Exact => solvers::newton(&problem, 1e-6, ctx.log),
            Optimizer::Lbfgs => solvers::lbfgs(&problem, 1e-7, 1000, ctx.log),
            Optimizer::Proximal => solvers::fista(&problem, params.l1, 1e-7, 10_000, ctx.log),
            Optimizer::Sgd | Optimizer::Adam => solvers::minibatch(
                &problem,
                &solvers::MiniBatch {
                    adam: params.optimizer == Optimizer::Adam,
                    epochs: params.epochs,
                    batch: params.mini_batch_size,
                    learning_rate: params.learning_rate,
                    momentum: params.momentum,
                    beta_1: params.beta_1,
                    beta_2: params.beta_2,
                    l1: params.l1,
                    seed: params.seed,
                    early_stopping: params
                        .early_stopping_patience
                        .map(|p| (p, params.early_stopping_tolerance)),
                },
                ctx.log,
            ),
        };
        if let Some(e) = problem
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        if !sol.theta.iter().all(|v| v.is_finite()) {
            return Err(BuiltinError::failed(
                "train linear-learner: the weights diverged to infinity; lower `learning_rate` or keep `normalize_data` on",
            ));
        }
        (ctx.log)(&format!(
            "linear-learner: objective {:.10e} after {} iterations",
            sol.objective, sol.iterations
        ));
        let mut model = LinearModel::new(Fitted {
            predictor_type: params.predictor_type,
            classes: lab.classes.clone(),
            features: stats,
            normalize_data: params.normalize_data,
            theta: sol.theta,
            label_mean,
            label_scale,
            objective: sol.objective,
            iterations: sol.iterations,
        });
        if let Some(v) = validation {
            let m = validation_metrics(&model, params.predictor_type, v)?;
            model.set_validation(m);
        }
        Ok(model)
    })
}

fn validation_metrics(
    model: &LinearModel,
    kind: PredictorType,
    v: &Dataset,
) -> Result<BTreeMap<String, f64>, BuiltinError> {
    let p = model.predict(v)?;
    let n = v.n_rows().max(1) as f64;
    let mut out = BTreeMap::new();
    match kind {
        PredictorType::Regressor => {
            let t = v
                .target()
                .ok_or_else(|| empty_data("validation data", "no target column"))?;
            if let Some(i) = t.values.iter().position(|x| !x.is_finite()) {
                return Err(BuiltinError::Data(crate::error::DataError::new(
                    "validation data",
                    format!("data row {}: the label is missing", i + 1),
                )));
            }
            let mse: f64 = p
                .values
                .iter()
                .zip(&t.values)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                / n;
            let mae: f64 = p
                .values
                .iter()
                .zip(&t.values)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / n;
            out.insert("validation_rmse".to_string(), mse.sqrt());
            out.insert("validation_mae".to_string(), mae);
        }
        PredictorType::Binary | PredictorType::Multiclass => {
            let idx = model.class_indices(v, "validation data")?;
            let (mut loss, mut hits) = (0.0, 0usize);
            let mut positive = Vec::new();
            let mut scores = Vec::new();
            for (i, &k) in idx.iter().enumerate() {
                let probs: Vec<f64> = if p.width == 1 {
                    let q = p.values[i] as f64;
                    vec![1.0 - q, q]
                } else {
                    p.row(i).iter().map(|&q| q as f64).collect()
                };
                loss -= probs[k].max(1e-15).ln();
                let best = (0..probs.len())
                    .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
                    .unwrap_or(0);
                hits += usize::from(best == k);
                if kind == PredictorType::Binary {
                    positive.push(k == 1);
                    scores.push(probs[1]);
                }
            }
            // Under XGBoost's names too, so that a search can rank either
            // built-in by the same metric.
            let accuracy = hits as f64 / n;
            if kind == PredictorType::Binary {
                out.insert("validation_error".to_string(), 1.0 - accuracy);
                if let Some(auc) = crate::metrics::ranking::roc_auc(&positive, &scores) {
                    out.insert("validation_auc".to_string(), auc);
                }
            } else {
                out.insert("validation_mlogloss".to_string(), loss / n);
                out.insert("validation_merror".to_string(), 1.0 - accuracy);
            }
            out.insert("validation_logloss".to_string(), loss / n);
            out.insert("validation_accuracy".to_string(), accuracy);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
