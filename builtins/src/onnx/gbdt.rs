//! gbdt as `ai.onnx.ml` TreeEnsembleRegressor plus its objective's link.
//!
//! The ensemble sums the margins (one target an output, the base margins as
//! `base_values`); the link is a standard operator after it. Classification
//! uses the regressor too: TreeEnsembleClassifier's two-class case is left
//! vague by the ONNX specification (runtimes treat its base values and
//! scores in their own ways), whereas Sigmoid and Softmax over the margins
//! are exactly the model's own transform.

use super::proto::{self, Graph, ModelProto, Node, Value, ValueInfo};
use super::{input, label_of, rows, two_class_probabilities, unsupported};
use crate::error::BuiltinError;
use crate::gbdt::GbdtModel;
use crate::gbdt::params::Objective;

/// The ONNX model of a gbdt booster.
pub fn gbdt(m: &GbdtModel) -> Result<ModelProto, BuiltinError> {
    let nf = m.feature_names.len();
    let k = m.n_outputs;
    if nf == 0 {
        return Err(unsupported(
            "the gbdt model has no features, so an ONNX graph would have no input".into(),
        ));
    }
    if k == 0 || m.trees.is_empty() {
        return Err(unsupported("the gbdt model has no trees".into()));
    }
    let mut g = Graph {
        name: "gbdt".into(),
        inputs: vec![input(nf)],
        ..Graph::default()
    };
    let margin = match m.objective {
        Objective::SquaredError | Objective::PseudoHuber | Objective::SquaredLogError => {
            "prediction"
        }
        _ => "margin",
    };
    g.nodes.push(ensemble(m, margin));
    match m.objective {
        Objective::SquaredError | Objective::PseudoHuber | Objective::SquaredLogError => {
            g.outputs.push(prediction());
        }
        Objective::CountPoisson | Objective::Gamma | Objective::Tweedie => {
            g.nodes.push(Node::new("Exp", &["margin"], &["prediction"]));
            g.outputs.push(prediction());
        }
        Objective::RegLogistic => {
            g.nodes
                .push(Node::new("Sigmoid", &["margin"], &["prediction"]));
            g.outputs.push(prediction());
        }
        Objective::BinaryLogistic => {
            g.nodes
                .push(Node::new("Sigmoid", &["margin"], &["p_positive"]));
            two_class_probabilities(&mut g, "p_positive");
            label_of(&mut g, "probabilities");
        }
        Objective::MultiSoftprob | Objective::MultiSoftmax => {
            g.nodes.push(
                Node::new("Softmax", &["margin"], &["probabilities"]).attr("axis", Value::Int(1)),
            );
            g.outputs.push(ValueInfo::new(
                "probabilities",
                proto::FLOAT,
                rows(&[k as i64]),
                "the probability of each class, in the order of the `classes` metadata",
            ));
            label_of(&mut g, "probabilities");
        }
    }
    let classes = match (&m.classes, m.objective) {
        (Some(c), _) => Some(c.clone()),
        (None, Objective::BinaryLogistic) => Some(vec!["0".into(), "1".into()]),
        (None, Objective::MultiSoftprob | Objective::MultiSoftmax) => {
            Some((0..k).map(|i| i.to_string()).collect())
        }
        _ => None,
    };
    Ok(super::model(
        "gbdt",
        g,
        &m.feature_names,
        Some(&m.feature_levels),
        classes.as_deref(),
    ))
}

fn prediction() -> ValueInfo {
    ValueInfo::new(
        "prediction",
        proto::FLOAT,
        rows(&[1]),
        "the predicted value (as `pipeline predict`'s `prediction`)",
    )
}

/// The TreeEnsembleRegressor summing every tree into `out` (`[N, n_outputs]`).
fn ensemble(m: &GbdtModel, out: &str) -> Node {
    let k = m.n_outputs;
    let total: usize = m.trees.iter().map(|t| t.n_nodes()).sum();
    let mut tree_ids = Vec::with_capacity(total);
    let mut node_ids = Vec::with_capacity(total);
    let mut features = Vec::with_capacity(total);
    let mut modes = Vec::with_capacity(total);
    let mut thresholds = Vec::with_capacity(total);
    let mut true_ids = Vec::with_capacity(total);
    let mut false_ids = Vec::with_capacity(total);
    let mut missing_true = Vec::with_capacity(total);
    let (mut leaf_trees, mut leaf_nodes, mut leaf_targets, mut leaf_weights) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (t, tree) in m.trees.iter().enumerate() {
        for n in 0..tree.n_nodes() {
            tree_ids.push(t as i64);
            node_ids.push(n as i64);
            if tree.is_leaf(n) {
                features.push(0);
                modes.push("LEAF".to_string());
                thresholds.push(0.0);
                true_ids.push(0);
                false_ids.push(0);
                missing_true.push(0);
                leaf_trees.push(t as i64);
                leaf_nodes.push(n as i64);
                leaf_targets.push((t % k) as i64);
                leaf_weights.push(tree.value[n]);
            } else {
                // A row goes left when `value < threshold`, a NaN where `default_left` says.
                features.push(i64::from(tree.feature[n]));
                modes.push("BRANCH_LT".to_string());
                thresholds.push(tree.threshold[n]);
                true_ids.push(i64::from(tree.left[n]));
                false_ids.push(i64::from(tree.right[n]));
                missing_true.push(i64::from(tree.default_left[n]));
            }
        }
    }
    Node::new("TreeEnsembleRegressor", &["input"], &[out])
        .ml()
        .attr("aggregate_function", Value::String("SUM".into()))
        .attr("post_transform", Value::String("NONE".into()))
        .attr("n_targets", Value::Int(k as i64))
        .attr(
            "base_values",
            Value::Floats(m.base_margin.iter().map(|&b| b as f32).collect()),
        )
        .attr("nodes_treeids", Value::Ints(tree_ids))
        .attr("nodes_nodeids", Value::Ints(node_ids))
        .attr("nodes_featureids", Value::Ints(features))
        .attr("nodes_modes", Value::Strings(modes))
        .attr("nodes_values", Value::Floats(thresholds))
        .attr("nodes_truenodeids", Value::Ints(true_ids))
        .attr("nodes_falsenodeids", Value::Ints(false_ids))
        .attr("nodes_missing_value_tracks_true", Value::Ints(missing_true))
        .attr("target_treeids", Value::Ints(leaf_trees))
        .attr("target_nodeids", Value::Ints(leaf_nodes))
        .attr("target_ids", Value::Ints(leaf_targets))
        .attr("target_weights", Value::Floats(leaf_weights))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::tree::Tree;
    use crate::onnx::tests::{check_wiring, ops, outputs};
    use std::collections::BTreeMap;

    fn booster(objective: Objective, k: usize) -> GbdtModel {
        let mut trees = Vec::new();
        for c in 0..k {
            let mut t = Tree::default();
            t.push_leaf(0.0, 10.0);
            t.split(0, 1, 2.5, true, 1.0, (-1.0 - c as f32, 4.0), (1.0, 6.0));
            trees.push(t);
        }
        GbdtModel {
            objective,
            n_outputs: k,
            base_margin: vec![0.5; k],
            feature_names: vec!["a".into(), "b".into()],
            feature_levels: vec![None, Some(vec!["x".into(), "y".into()])],
            classes: None,
            trees,
            best_iteration: None,
            metrics: BTreeMap::new(),
            objective_param: None,
        }
    }

    fn attr<'a>(n: &'a Node, name: &str) -> &'a Value {
        &n.attributes.iter().find(|a| a.name == name).unwrap().value
    }

    #[test]
    fn trees_keep_the_split_rule_and_missing_direction() {
        let m = gbdt(&booster(Objective::SquaredError, 1)).unwrap();
        let g = &m.graph;
        assert_eq!(ops(g), ["TreeEnsembleRegressor"]);
        assert_eq!(outputs(g), ["prediction"]);
        check_wiring(g);
        let e = &g.nodes[0];
        assert_eq!(e.domain, "ai.onnx.ml");
        assert_eq!(
            attr(e, "nodes_modes"),
            &Value::Strings(vec!["BRANCH_LT".into(), "LEAF".into(), "LEAF".into()])
        );
        assert_eq!(attr(e, "nodes_featureids"), &Value::Ints(vec![1, 0, 0]));
        assert_eq!(attr(e, "nodes_values"), &Value::Floats(vec![2.5, 0.0, 0.0]));
        assert_eq!(attr(e, "nodes_truenodeids"), &Value::Ints(vec![1, 0, 0]));
        assert_eq!(attr(e, "nodes_falsenodeids"), &Value::Ints(vec![2, 0, 0]));
        assert_eq!(
            attr(e, "nodes_missing_value_tracks_true"),
            &Value::Ints(vec![1, 0, 0])
        );
        assert_eq!(attr(e, "target_nodeids"), &Value::Ints(vec![1, 2]));
        assert_eq!(attr(e, "target_weights"), &Value::Floats(vec![-1.0, 1.0]));
        assert_eq!(attr(e, "base_values"), &Value::Floats(vec![0.5]));
        let levels = m.metadata.iter().find(|(k, _)| k == "levels").unwrap();
        assert_eq!(levels.1, r#"{"b":["x","y"]}"#);
    }

    #[test]
    fn each_objective_gets_its_link() {
        for (obj, k, want_ops, want_out) in [
            (
                Objective::CountPoisson,
                1,
                vec!["TreeEnsembleRegressor", "Exp"],
                vec!["prediction"],
            ),
            (
                Objective::RegLogistic,
                1,
                vec!["TreeEnsembleRegressor", "Sigmoid"],
                vec!["prediction"],
            ),
            (
                Objective::BinaryLogistic,
                1,
                vec![
                    "TreeEnsembleRegressor",
                    "Sigmoid",
                    "Sub",
                    "Concat",
                    "ArgMax",
                ],
                vec!["probabilities", "label"],
            ),
            (
                Objective::MultiSoftprob,
                3,
                vec!["TreeEnsembleRegressor", "Softmax", "ArgMax"],
                vec!["probabilities", "label"],
            ),
        ] {
            let m = gbdt(&booster(obj, k)).unwrap();
            assert_eq!(ops(&m.graph), want_ops, "{obj:?}");
            assert_eq!(outputs(&m.graph), want_out, "{obj:?}");
            check_wiring(&m.graph);
        }
        let m = gbdt(&booster(Objective::MultiSoftmax, 3)).unwrap();
        let e = &m.graph.nodes[0];
        assert_eq!(attr(e, "n_targets"), &Value::Int(3));
        assert_eq!(attr(e, "target_ids"), &Value::Ints(vec![0, 0, 1, 1, 2, 2]));
        let classes = m.metadata.iter().find(|(k, _)| k == "classes").unwrap();
        assert_eq!(classes.1, r#"["0","1","2"]"#);
    }

    #[test]
    fn a_model_without_features_is_refused() {
        let mut b = booster(Objective::SquaredError, 1);
        b.feature_names.clear();
        b.feature_levels.clear();
        let e = gbdt(&b).unwrap_err();
        assert!(e.to_string().contains("no features"), "{e}");
        assert!(e.is_invalid_input());
    }
}
