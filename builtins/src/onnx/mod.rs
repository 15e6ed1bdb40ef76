//! ONNX export of the built-in models (`pipeline export ... --format onnx`).
//!
//! Every graph takes one float tensor `input` of shape `[N, n_features]`,
//! the features in training order (a text feature as its level code, the
//! levels in the order of the model's `levels` metadata), missing values as
//! NaN. The outputs per algorithm are documented in docs/models/*.md; the
//! model's `metadata_props` name the algorithm, the features, the levels of
//! text features and the classes. The protobuf is written by `proto.rs`.

mod dense;
mod gbdt;
pub mod proto;

use std::path::Path;

use crate::error::{BuiltinError, DataError};
use proto::{Dim, Graph, ModelProto, Node, Tensor, ValueInfo};

pub use dense::{kmeans, linear, pca};
pub use gbdt::gbdt;

/// The algorithms that can be exported.
pub const ALGORITHMS: [&str; 4] = ["gbdt", "linear-learner", "kmeans", "pca"];

/// The ONNX file of the model saved in `dir` (a train step's `model` output).
pub fn export_dir(dir: &Path) -> Result<Vec<u8>, BuiltinError> {
    let algorithm = crate::model::saved_algorithm(dir)?;
    let model = match algorithm.as_str() {
        "gbdt" => gbdt(&crate::gbdt::GbdtModel::load(dir)?),
        "linear-learner" => linear(&crate::linear::LinearModel::load(dir)?),
        "kmeans" => kmeans(&crate::kmeans::KMeansModel::load(dir)?),
        "pca" => pca(&crate::pca::PcaModel::load(dir)?),
        other => Err(unsupported(format!(
            "a `{other}` model has no ONNX export (the exported algorithms are {})",
            ALGORITHMS.join(", ")
        ))),
    };
    model.map(|m| m.encode()).map_err(|e| match e {
        BuiltinError::Data(mut d) if d.file.as_os_str().is_empty() => {
            d.file = dir.join("model.json");
            BuiltinError::Data(d)
        }
        e => e,
    })
}

/// A model this export cannot write (the caller adds the file it came from).
pub(crate) fn unsupported(message: String) -> BuiltinError {
    BuiltinError::Data(
        DataError::new("", message)
            .hint("export the model without `--format onnx` and serve it with `pipeline predict`"),
    )
}

/// The graph's one input, `[N, n_features]`.
pub(crate) fn input(n_features: usize) -> ValueInfo {
    ValueInfo::new(
        "input",
        proto::FLOAT,
        vec![Dim::Named("N".into()), Dim::Fixed(n_features as i64)],
        "the features in training order, missing values as NaN",
    )
}

pub(crate) fn rows(extra: &[i64]) -> Vec<Dim> {
    let mut d = vec![Dim::Named("N".into())];
    d.extend(extra.iter().map(|&n| Dim::Fixed(n)));
    d
}

/// Adds `name = a OP b` with `b` a constant tensor.
pub(crate) fn with_constant(g: &mut Graph, op: &str, a: &str, b: Tensor, out: &str) {
    g.nodes.push(Node::new(op, &[a, &b.name], &[out]));
    g.initializers.push(b);
}

/// Appends the nodes that turn `[N, C]` probabilities into the class index (`label`).
pub(crate) fn label_of(g: &mut Graph, probabilities: &str) {
    g.nodes.push(
        Node::new("ArgMax", &[probabilities], &["label"])
            .attr("axis", proto::Value::Int(1))
            .attr("keepdims", proto::Value::Int(0)),
    );
    g.outputs.push(ValueInfo::new(
        "label",
        proto::INT64,
        rows(&[]),
        "the index of the most probable class in the `classes` metadata",
    ));
}

/// Appends `probabilities = [1 - p, p]` for the positive-class probability `p` (`[N, 1]`).
pub(crate) fn two_class_probabilities(g: &mut Graph, p: &str) {
    g.initializers
        .push(Tensor::floats("one", &[1, 1], vec![1.0]));
    g.nodes.push(Node::new("Sub", &["one", p], &["p_negative"]));
    g.nodes.push(
        Node::new("Concat", &["p_negative", p], &["probabilities"])
            .attr("axis", proto::Value::Int(1)),
    );
    g.outputs.push(ValueInfo::new(
        "probabilities",
        proto::FLOAT,
        rows(&[2]),
        "the probability of each class, in the order of the `classes` metadata",
    ));
}

/// A model around `graph` with the metadata users need to feed it.
pub(crate) fn model(
    algorithm: &str,
    graph: Graph,
    features: &[String],
    levels: Option<&[Option<Vec<String>>]>,
    classes: Option<&[String]>,
) -> ModelProto {
    let mut metadata = vec![
        ("algorithm".to_string(), algorithm.to_string()),
        (
            "features".to_string(),
            serde_json::to_string(features).expect("strings serialise"),
        ),
    ];
    if let Some(levels) = levels {
        let map: serde_json::Map<String, serde_json::Value> = features
            .iter()
            .zip(levels)
            .filter_map(|(f, l)| l.as_ref().map(|l| (f.clone(), l.clone().into())))
            .collect();
        if !map.is_empty() {
            metadata.push((
                "levels".to_string(),
                serde_json::Value::Object(map).to_string(),
            ));
        }
    }
    if let Some(c) = classes {
        metadata.push((
            "classes".to_string(),
            serde_json::to_string(c).expect("strings serialise"),
        ));
    }
    ModelProto {
        graph,
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc: format!(
            "{algorithm} model exported by pipeline; input `input` is [N, {}] in the order of the `features` metadata",
            features.len()
        ),
        metadata,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::proto::Graph;

    /// The operator types of a graph, in order.
    pub fn ops(g: &Graph) -> Vec<&str> {
        g.nodes.iter().map(|n| n.op_type.as_str()).collect()
    }

    pub fn outputs(g: &Graph) -> Vec<&str> {
        g.outputs.iter().map(|o| o.name.as_str()).collect()
    }

    /// Every node input is the graph input, an initializer or an earlier node's output.
    pub fn check_wiring(g: &Graph) {
        let mut known: Vec<&str> = g.inputs.iter().map(|i| i.name.as_str()).collect();
        known.extend(g.initializers.iter().map(|t| t.name.as_str()));
        for n in &g.nodes {
            for i in &n.inputs {
                assert!(
                    known.contains(&i.as_str()),
                    "{} reads unknown `{i}`",
                    n.op_type
                );
            }
            known.extend(n.outputs.iter().map(String::as_str));
        }
        for o in &g.outputs {
            assert!(
                known.contains(&o.name.as_str()),
                "output `{}` is never computed",
                o.name
            );
        }
    }
}
