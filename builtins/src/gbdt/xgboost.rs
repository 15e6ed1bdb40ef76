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

/// Reading a model XGBoost wrote (`save_model` to a `.json` file, as
/// SageMaker's XGBoost container saves `xgboost-model` in JSON): the gbtree
/// booster with numeric splits, one tree a round and output. Its features
/// are unnamed when XGBoost had no names: `feature_names` is then empty and
/// the training data's names are taken when the widths agree.
impl GbdtModel {
    pub fn from_xgboost_json(text: &str) -> Result<GbdtModel, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("not an XGBoost JSON model: {e}"))?;
        let learner = v
            .get("learner")
            .ok_or("not an XGBoost JSON model: no `learner`")?;
        let str_of = |v: &Value, what: &str| -> Result<String, String> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("`{what}` is missing or not a string")),
            }
        };
        let num_of = |s: &str, what: &str| -> Result<f64, String> {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{what}` is `{s}`, not a number"))
        };
        let lmp = &learner["learner_model_param"];
        let n_features =
            num_of(&str_of(&lmp["num_feature"], "num_feature")?, "num_feature")? as usize;
        let num_class = num_of(&str_of(&lmp["num_class"], "num_class")?, "num_class")? as usize;
        let obj_name = str_of(&learner["objective"]["name"], "objective.name")?;
        let objective = Objective::from_name(&obj_name)
            .ok_or_else(|| format!("the objective `{obj_name}` is not one gbdt trains"))?;
        let k = if objective.is_multiclass() {
            num_class.max(1)
        } else {
            1
        };
        let booster = &learner["gradient_booster"];
        let booster_name = str_of(&booster["name"], "gradient_booster.name")?;
        if booster_name != "gbtree" {
            return Err(format!(
                "the booster is `{booster_name}`; only `gbtree` models continue here"
            ));
        }
        let model = &booster["model"];
        let parallel = model["gbtree_model_param"]["num_parallel_tree"]
            .as_str()
            .unwrap_or("1");
        if parallel.trim() != "1" {
            return Err(format!(
                "the model grows {parallel} trees a round (num_parallel_tree); only 1 continues here"
            ));
        }
        let objective_param = match objective {
            Objective::Tweedie => {
                learner["objective"]["tweedie_regression_param"]["tweedie_variance_power"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
            }
            Objective::PseudoHuber => learner["objective"]["pseudo_huber_param"]["huber_slope"]
                .as_str()
                .and_then(|s| s.parse().ok()),
            _ => None,
        };
        // `base_score` is in prediction space (a list, one an output, from 3.1).
        let base_text = str_of(&lmp["base_score"], "base_score")?;
        let base: Vec<f64> = base_text
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| num_of(s, "base_score"))
            .collect::<Result<_, _>>()?;
        let to_margin = |p: f64| match objective {
            Objective::BinaryLogistic | Objective::RegLogistic => (p / (1.0 - p)).ln(),
            o if o.log_link() => p.ln(),
            _ => p,
        };
        let base_margin: Vec<f64> = match base.len() {
            1 => vec![to_margin(base[0]); k],
            n if n == k => base.iter().map(|&p| to_margin(p)).collect(),
            n => return Err(format!("`base_score` has {n} values for {k} outputs")),
        };
        let trees_json = model["trees"]
            .as_array()
            .ok_or("the model has no `trees`")?;
        let info = model["tree_info"]
            .as_array()
            .ok_or("the model has no `tree_info`")?;
        if info.len() != trees_json.len() || !trees_json.len().is_multiple_of(k) {
            return Err(format!(
                "{} trees for {} entries of tree_info and {k} outputs",
                trees_json.len(),
                info.len()
            ));
        }
        let mut trees = Vec::with_capacity(trees_json.len());
        for (i, t) in trees_json.iter().enumerate() {
            if info[i].as_u64() != Some((i % k) as u64) {
                return Err(format!(
                    "tree {i} is for output {}, not {} as a round-by-round model has it",
                    info[i],
                    i % k
                ));
            }
            trees.push(tree_from_json(t).map_err(|m| format!("tree {i}: {m}"))?);
        }
        let feature_names: Vec<String> = learner["feature_names"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !feature_names.is_empty() && feature_names.len() != n_features {
            return Err(format!(
                "{} feature names for {n_features} features",
                feature_names.len()
            ));
        }
        for (i, t) in trees.iter().enumerate() {
            t.validate(n_features)
                .map_err(|m| format!("tree {i}: {m}"))?;
        }
        Ok(GbdtModel {
            objective,
            n_outputs: k,
            base_margin,
            feature_levels: vec![None; n_features.max(feature_names.len())],
            feature_names,
            classes: None,
            trees,
            best_iteration: None,
            metrics: Default::default(),
            objective_param,
        })
    }
}

fn tree_from_json(t: &Value) -> Result<Tree, String> {
    fn ints(t: &Value, key: &str) -> Result<Vec<i64>, String> {
        t[key]
            .as_array()
            .ok_or_else(|| format!("no `{key}`"))?
            .iter()
            .map(|x| {
                x.as_i64()
                    .ok_or_else(|| format!("`{key}` holds {x}, not an integer"))
            })
            .collect()
    }
    fn floats(t: &Value, key: &str) -> Result<Vec<f32>, String> {
        t[key]
            .as_array()
            .ok_or_else(|| format!("no `{key}`"))?
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| format!("`{key}` holds {x}, not a number"))
            })
            .collect()
    }
    let left = ints(t, "left_children")?;
    let right = ints(t, "right_children")?;
    let feature = ints(t, "split_indices")?;
    let conditions = floats(t, "split_conditions")?;
    let weights = floats(t, "base_weights")?;
    let default_left = ints(t, "default_left")?;
    let gain = floats(t, "loss_changes")?;
    let cover = floats(t, "sum_hessian")?;
    if let Some(types) = t["split_type"].as_array()
        && types.iter().any(|x| x.as_i64() != Some(0))
    {
        return Err("it has categorical splits, which gbdt does not make".into());
    }
    let n = left.len();
    if [
        right.len(),
        feature.len(),
        conditions.len(),
        default_left.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err("node arrays of unequal length".into());
    }
    let fit = |x: i64| i32::try_from(x).map_err(|_| format!("child {x} is out of range"));
    let leaf = |i: usize| left[i] < 0;
    Ok(Tree {
        left: left.iter().map(|&x| fit(x)).collect::<Result<_, _>>()?,
        right: right.iter().map(|&x| fit(x)).collect::<Result<_, _>>()?,
        feature: (0..n)
            .map(|i| {
                if leaf(i) {
                    Ok(0)
                } else {
                    u32::try_from(feature[i])
                        .map_err(|_| format!("feature {} is out of range", feature[i]))
                }
            })
            .collect::<Result<_, _>>()?,
        threshold: (0..n)
            .map(|i| if leaf(i) { 0.0 } else { conditions[i] })
            .collect(),
        default_left: default_left.iter().map(|&d| d != 0).collect(),
        // A leaf's output is its split condition; a split's, its weight.
        value: (0..n)
            .map(|i| {
                if leaf(i) {
                    conditions[i]
                } else {
                    weights.get(i).copied().unwrap_or(0.0)
                }
            })
            .collect(),
        gain: (0..n)
            .map(|i| gain.get(i).copied().unwrap_or(0.0))
            .collect(),
        cover: (0..n)
            .map(|i| cover.get(i).copied().unwrap_or(0.0))
            .collect(),
    })
}

#[cfg(test)]
mod read_tests {
    use super::*;
    use crate::dataset::Dataset;
    use crate::model::Model;

    #[test]
    fn our_export_reads_back_the_same_model() {
        let rows: Vec<Vec<f32>> = (0..200)
            .map(|i| vec![(i % 17) as f32, ((i * 7) % 11) as f32 / 3.0])
            .collect();
        let labels: Vec<f32> = rows.iter().map(|r| f32::from(r[0] + r[1] > 9.0)).collect();
        let ds = Dataset::from_rows(&rows, Some(&labels));
        let params = crate::gbdt::Params::from_hyperparameters(
            &crate::hyperparams::Hyperparams::from_pairs(&[
                ("objective", "binary:logistic"),
                ("num_round", "8"),
            ]),
        )
        .unwrap();
        let model =
            crate::gbdt::train(&params, &ds, None, &crate::model::TrainContext::quiet(1)).unwrap();
        for named in [true, false] {
            let text = model.xgboost_json(named).to_string();
            let mut back = GbdtModel::from_xgboost_json(&text).unwrap();
            if !named {
                assert!(back.feature_names.is_empty());
                back.feature_names = model.feature_names.clone();
            }
            assert_eq!(back.trees.len(), model.trees.len());
            let a = model.predict(&ds).unwrap().values;
            let b = back.predict(&ds).unwrap().values;
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-6, "{x} {y}");
            }
        }
    }

    #[test]
    fn what_cannot_continue_is_refused_with_a_reason() {
        for (text, want) in [
            ("{}", "no `learner`"),
            ("not json", "not an XGBoost JSON model"),
            (
                r#"{"learner": {"learner_model_param": {"num_feature": "2", "num_class": "0", "base_score": "5E-1"}, "objective": {"name": "rank:pairwise"}, "gradient_booster": {"name": "gbtree"}}}"#,
                "not one gbdt trains",
            ),
            (
                r#"{"learner": {"learner_model_param": {"num_feature": "2", "num_class": "0", "base_score": "5E-1"}, "objective": {"name": "binary:logistic"}, "gradient_booster": {"name": "dart"}}}"#,
                "only `gbtree`",
            ),
        ] {
            let e = GbdtModel::from_xgboost_json(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
