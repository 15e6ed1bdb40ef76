//! Export to XGBoost's JSON model format (as written by XGBoost 3.x `save_model`).
//!
//! Our trees already use XGBoost's rules (go left when `value < threshold`,
//! learned default direction for NaN, leaf values with the learning rate
//! applied), so the export copies arrays. XGBoost stores `base_score` in
//! prediction space and maps it back to a margin on load; multiclass margins
//! are their own prediction space there.

use serde_json::{Value, json};

use super::model::GbdtModel;
use super::params::Objective;
use super::tree::Tree;

/// How XGBoost writes a float in its JSON strings (it reads any decimal form).
fn num(v: f64) -> String {
    format!("{:E}", v as f32)
}

fn tree_json(t: &Tree, id: usize, n_features: usize) -> Value {
    let n = t.n_nodes();
    let mut parents = vec![i32::MAX; n];
    for i in 0..n {
        if t.left[i] >= 0 {
            parents[t.left[i] as usize] = i as i32;
            parents[t.right[i] as usize] = i as i32;
        }
    }
    let conditions: Vec<f32> = (0..n)
        .map(|i| {
            if t.is_leaf(i) {
                t.value[i]
            } else {
                t.threshold[i]
            }
        })
        .collect();
    let empty: [i32; 0] = [];
    json!({
        "base_weights": t.value,
        "categories": empty,
        "categories_nodes": empty,
        "categories_segments": empty,
        "categories_sizes": empty,
        "default_left": t.default_left.iter().map(|&d| u8::from(d)).collect::<Vec<_>>(),
        "id": id,
        "left_children": t.left,
        "loss_changes": t.gain,
        "parents": parents,
        "right_children": t.right,
        "split_conditions": conditions,
        "split_indices": t.feature,
        "split_type": vec![0u8; n],
        "sum_hessian": t.cover,
        "tree_param": {
            "num_deleted": "0",
            "num_feature": n_features.to_string(),
            "num_nodes": n.to_string(),
            "size_leaf_vector": "1"
        }
    })
}

impl GbdtModel {
    /// The model in XGBoost's JSON format: `xgboost.Booster(model_file=...)` loads it
    /// and predicts what [`Model::predict`](crate::model::Model::predict) does,
    /// on a `DMatrix` with the same feature names.
    pub fn to_xgboost_json(&self) -> Value {
        self.xgboost_json(true)
    }

    /// The model as SageMaker's XGBoost container serves it (`xgboost-model`):
    /// without feature names, so that it predicts on a plain matrix whose
    /// columns are the features in training order.
    pub fn to_servable_xgboost_json(&self) -> Value {
        self.xgboost_json(false)
    }

    fn xgboost_json(&self, named: bool) -> Value {
        let k = self.n_outputs;
        let nf = self.feature_names.len();
        let base: Vec<String> = self
            .base_margin
            .iter()
            .map(|&m| {
                num(match self.objective {
                    Objective::BinaryLogistic | Objective::RegLogistic => 1.0 / (1.0 + (-m).exp()),
                    o if o.log_link() => m.exp(),
                    _ => m,
                })
            })
            .collect();
        // One output: a plain number, which every XGBoost version reads; several: a list (XGBoost 3.1+).
        let base_score = if base.len() == 1 {
            base[0].clone()
        } else {
            format!("[{}]", base.join(","))
        };
        let objective = match self.objective {
            Objective::MultiSoftprob | Objective::MultiSoftmax => json!({
                "name": self.objective.name(),
                "softmax_multiclass_param": {"num_class": k.to_string()}
            }),
            Objective::CountPoisson => json!({
                "name": self.objective.name(),
                "poisson_regression_param": {"max_delta_step": "0.7"}
            }),
            Objective::Tweedie => json!({
                "name": self.objective.name(),
                "tweedie_regression_param": {
                    "tweedie_variance_power": num(self.objective_param.unwrap_or(1.5))
                }
            }),
            Objective::PseudoHuber => json!({
                "name": self.objective.name(),
                "pseudo_huber_param": {"huber_slope": num(self.objective_param.unwrap_or(1.0))}
            }),
            Objective::SquaredLogError => json!({"name": self.objective.name()}),
            _ => json!({
                "name": self.objective.name(),
                "reg_loss_param": {"scale_pos_weight": "1"}
            }),
        };
        let rounds = self.n_rounds();
        let trees: Vec<Value> = self
            .trees
            .iter()
            .enumerate()
            .map(|(i, t)| tree_json(t, i, nf))
            .collect();
        let empty: [i32; 0] = [];
        json!({
            "version": [3, 1, 0],
            "learner": {
                "attributes": {},
                "feature_names": if named { self.feature_names.clone() } else { vec![] },
                "feature_types": vec!["float"; if named { nf } else { 0 }],
                "gradient_booster": {
                    "name": "gbtree",
                    "model": {
                        "cats": {"enc": empty, "feature_segments": empty, "sorted_idx": empty},
                        "gbtree_model_param": {
                            "num_parallel_tree": "1",
                            "num_trees": self.trees.len().to_string()
                        },
                        "iteration_indptr": (0..=rounds).map(|r| r * k).collect::<Vec<_>>(),
                        "tree_info": (0..self.trees.len()).map(|i| i % k).collect::<Vec<_>>(),
                        "trees": trees
                    }
                },
                "learner_model_param": {
                    "base_score": base_score,
                    "boost_from_average": "1",
                    "num_class": if self.objective.is_multiclass() { k.to_string() } else { "0".into() },
                    "num_feature": nf.to_string(),
                    "num_target": "1"
                },
                "objective": objective
            }
        })
    }
}
