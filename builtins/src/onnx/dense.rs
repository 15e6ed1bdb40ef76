//! linear-learner, kmeans and pca: standard ONNX operators over the imputed
//! feature matrix (a missing value becomes the feature's training mean, as
//! in `FeatureStats::matrix`).

use super::proto::{self, Graph, ModelProto, Node, Tensor, Value, ValueInfo};
use super::{input, label_of, rows, two_class_probabilities, unsupported, with_constant};
use crate::dense::FeatureStats;
use crate::error::BuiltinError;
use crate::kmeans::KMeansModel;
use crate::linear::{LinearModel, PredictorType};
use crate::pca::PcaModel;

/// A graph whose input's missing values are replaced by the training means
/// (`imputed`); refuses a model without features.
fn imputed_graph(name: &str, stats: &FeatureStats) -> Result<Graph, BuiltinError> {
    let d = stats.n_features();
    if d == 0 {
        return Err(unsupported(format!(
            "the {name} model has no features, so an ONNX graph would have no input"
        )));
    }
    let mut g = Graph {
        name: name.into(),
        inputs: vec![input(d)],
        ..Graph::default()
    };
    g.nodes.push(Node::new("IsNaN", &["input"], &["missing"]));
    g.initializers.push(Tensor::floats(
        "mean",
        &[d as i64],
        stats.mean.iter().map(|&m| m as f32).collect(),
    ));
    g.nodes.push(Node::new(
        "Where",
        &["missing", "mean", "input"],
        &["imputed"],
    ));
    Ok(g)
}

/// The ONNX model of a linear learner: `MatMul` and `Add`, then `Sigmoid`
/// (binary), `Softmax` (multiclass) or the label's scale and mean (regressor).
pub fn linear(m: &LinearModel) -> Result<ModelProto, BuiltinError> {
    let stats = m.features();
    let d = stats.n_features();
    let c = m.bias().len();
    let mut g = imputed_graph("linear-learner", stats)?;
    let mut x = "imputed";
    if m.normalize_data() {
        // The same two f32 steps as training's standardisation: `(v - mean) * (1 / scale)`.
        x = "standardised";
        g.nodes
            .push(Node::new("Sub", &["imputed", "mean"], &["centred"]));
        with_constant(
            &mut g,
            "Mul",
            "centred",
            Tensor::floats(
                "inverse_scale",
                &[d as i64],
                stats.scale.iter().map(|&s| (1.0 / s) as f32).collect(),
            ),
            x,
        );
    }
    with_constant(
        &mut g,
        "MatMul",
        x,
        Tensor::floats(
            "weights",
            &[d as i64, c as i64],
            m.weights().iter().map(|&w| w as f32).collect(),
        ),
        "xw",
    );
    with_constant(
        &mut g,
        "Add",
        "xw",
        Tensor::floats(
            "bias",
            &[c as i64],
            m.bias().iter().map(|&b| b as f32).collect(),
        ),
        "score",
    );
    let classes = match m.kind() {
        PredictorType::Binary => {
            g.nodes
                .push(Node::new("Sigmoid", &["score"], &["p_positive"]));
            two_class_probabilities(&mut g, "p_positive");
            label_of(&mut g, "probabilities");
            Some(m.classes())
        }
        PredictorType::Multiclass => {
            g.nodes.push(
                Node::new("Softmax", &["score"], &["probabilities"]).attr("axis", Value::Int(1)),
            );
            g.outputs.push(ValueInfo::new(
                "probabilities",
                proto::FLOAT,
                rows(&[c as i64]),
                "the probability of each class, in the order of the `classes` metadata",
            ));
            label_of(&mut g, "probabilities");
            Some(m.classes())
        }
        PredictorType::Regressor => {
            let (scale, mean) = m.label_transform();
            with_constant(
                &mut g,
                "Mul",
                "score",
                Tensor::floats("label_scale", &[1], vec![scale as f32]),
                "scaled",
            );
            with_constant(
                &mut g,
                "Add",
                "scaled",
                Tensor::floats("label_mean", &[1], vec![mean as f32]),
                "prediction",
            );
            g.outputs.push(ValueInfo::new(
                "prediction",
                proto::FLOAT,
                rows(&[1]),
                "the predicted value (as `pipeline predict`'s `prediction`)",
            ));
            None
        }
    };
    Ok(super::model(
        "linear-learner",
        g,
        &stats.names,
        None,
        classes,
    ))
}

/// The ONNX model of k-means: the distance to every centre, the closest one
/// (`ArgMin`) and the distance to it (`ReduceMin`).
pub fn kmeans(m: &KMeansModel) -> Result<ModelProto, BuiltinError> {
    let stats = m.stats();
    let d = stats.n_features();
    let k = m.k();
    let mut g = imputed_graph("kmeans", stats)?;
    g.initializers.push(Tensor::int64s("axis_1", &[1], vec![1]));
    g.nodes
        .push(Node::new("Unsqueeze", &["imputed", "axis_1"], &["row"]));
    // [N, 1, d] - [k, d] broadcasts to [N, k, d].
    with_constant(
        &mut g,
        "Sub",
        "row",
        Tensor::floats("centres", &[k as i64, d as i64], m.centres().to_vec()),
        "difference",
    );
    g.nodes.push(Node::new(
        "Mul",
        &["difference", "difference"],
        &["squared"],
    ));
    g.initializers.push(Tensor::int64s("axis_2", &[1], vec![2]));
    g.nodes.push(
        Node::new("ReduceSum", &["squared", "axis_2"], &["squared_distances"])
            .attr("keepdims", Value::Int(0)),
    );
    g.nodes
        .push(Node::new("Sqrt", &["squared_distances"], &["distances"]));
    g.nodes.push(
        Node::new("ArgMin", &["distances"], &["closest_cluster"])
            .attr("axis", Value::Int(1))
            .attr("keepdims", Value::Int(0)),
    );
    g.nodes.push(
        Node::new("ReduceMin", &["distances"], &["distance_to_cluster"])
            .attr("axes", Value::Ints(vec![1]))
            .attr("keepdims", Value::Int(0)),
    );
    g.outputs = vec![
        ValueInfo::new(
            "closest_cluster",
            proto::INT64,
            rows(&[]),
            "the index of the closest centre",
        ),
        ValueInfo::new(
            "distance_to_cluster",
            proto::FLOAT,
            rows(&[]),
            "the Euclidean distance to the closest centre",
        ),
        ValueInfo::new(
            "distances",
            proto::FLOAT,
            rows(&[k as i64]),
            "the Euclidean distance to every centre",
        ),
    ];
    Ok(super::model("kmeans", g, &stats.names, None, None))
}

/// The ONNX model of PCA: `(x - mean) W^T` (no subtraction without `subtract_mean`).
pub fn pca(m: &PcaModel) -> Result<ModelProto, BuiltinError> {
    let stats = m.features();
    let d = stats.n_features();
    let k = m.num_components();
    let mut g = imputed_graph("pca", stats)?;
    let shift = m.shift();
    let mut x = "imputed";
    if shift.iter().any(|&s| s != 0.0) {
        x = "centred";
        with_constant(
            &mut g,
            "Sub",
            "imputed",
            Tensor::floats("shift", &[d as i64], shift),
            x,
        );
    }
    // The components are `k x d`, row-major; MatMul wants them `d x k`.
    let comps = m.components();
    let transposed: Vec<f32> = (0..d)
        .flat_map(|j| (0..k).map(move |i| comps[i * d + j]))
        .collect();
    with_constant(
        &mut g,
        "MatMul",
        x,
        Tensor::floats("components", &[d as i64, k as i64], transposed),
        "projection",
    );
    g.outputs.push(ValueInfo::new(
        "projection",
        proto::FLOAT,
        rows(&[k as i64]),
        "the projection on each component (as `pipeline predict`'s `projection_I`)",
    ));
    Ok(super::model("pca", g, &stats.names, None, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Column, Dataset};
    use crate::model::{Model, TrainContext};
    use crate::onnx::tests::{check_wiring, ops, outputs};

    fn data(with_target: Option<Vec<f32>>) -> Dataset {
        let a: Vec<f32> = (0..40).map(|i| (i % 7) as f32).collect();
        let b: Vec<f32> = (0..40).map(|i| ((i * 3) % 11) as f32 * 0.5).collect();
        let mut cols = vec![
            Column::numeric("a".to_string(), a),
            Column::numeric("b".to_string(), b),
        ];
        let target = with_target.map(|y| {
            cols.push(Column::numeric("y".to_string(), y));
            "y"
        });
        Dataset::new(cols, target)
    }

    #[test]
    fn linear_graphs_end_in_their_predictor_types_link() {
        let y: Vec<f32> = (0..40).map(|i| (i % 2) as f32).collect();
        for (kind, want_ops, want_out) in [
            (
                "binary_classifier",
                vec![
                    "IsNaN", "Where", "Sub", "Mul", "MatMul", "Add", "Sigmoid", "Sub", "Concat",
                    "ArgMax",
                ],
                vec!["probabilities", "label"],
            ),
            (
                "regressor",
                vec![
                    "IsNaN", "Where", "Sub", "Mul", "MatMul", "Add", "Mul", "Add",
                ],
                vec!["prediction"],
            ),
        ] {
            let hp = crate::Hyperparams::from_pairs(&[("predictor_type", kind)]);
            let params = crate::linear::Params::from_hyperparameters(&hp).unwrap();
            let m = crate::linear::train(
                &params,
                &data(Some(y.clone())),
                None,
                &TrainContext::quiet(1),
            )
            .unwrap();
            let onnx = linear(&m).unwrap();
            assert_eq!(ops(&onnx.graph), want_ops, "{kind}");
            assert_eq!(outputs(&onnx.graph), want_out, "{kind}");
            check_wiring(&onnx.graph);
            assert_eq!(onnx.graph.inputs[0].name, "input");
        }
    }

    #[test]
    fn kmeans_gives_the_closest_cluster_and_distances() {
        let hp = crate::Hyperparams::from_pairs(&[("k", "3")]);
        let params = crate::kmeans::Params::from_hyperparameters(&hp).unwrap();
        let m = crate::kmeans::train(&params, &data(None), None, &TrainContext::quiet(1)).unwrap();
        let onnx = kmeans(&m).unwrap();
        assert_eq!(
            outputs(&onnx.graph),
            ["closest_cluster", "distance_to_cluster", "distances"]
        );
        assert!(ops(&onnx.graph).contains(&"ArgMin"));
        check_wiring(&onnx.graph);
        assert_eq!(m.predict(&data(None)).unwrap().width, 2);
    }

    #[test]
    fn pca_projects_with_the_transposed_components() {
        let hp = crate::Hyperparams::from_pairs(&[("num_components", "1")]);
        let params = crate::pca::Params::from_hyperparameters(&hp).unwrap();
        let m = crate::pca::train(&params, &data(None), None, &TrainContext::quiet(1)).unwrap();
        let onnx = pca(&m).unwrap();
        assert_eq!(ops(&onnx.graph), ["IsNaN", "Where", "Sub", "MatMul"]);
        assert_eq!(outputs(&onnx.graph), ["projection"]);
        check_wiring(&onnx.graph);
        let comps = onnx
            .graph
            .initializers
            .iter()
            .find(|t| t.name == "components")
            .unwrap();
        assert_eq!(comps.dims, [2, 1]);
    }
}
