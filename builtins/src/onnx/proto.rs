//! The part of ONNX's protobuf schema (`onnx.proto`) the exports need, and
//! its wire encoding.
//!
//! Only writing is needed, so the messages are plain structs with an
//! `encode` each; field numbers are those of `onnx.proto`. Repeated numbers
//! are written packed, which every protobuf reader accepts for proto2's
//! unpacked fields too.

/// `TensorProto.DataType` values used here.
pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED32: u32 = 5;
const LEN: u32 = 2;

/// A protobuf message being written.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u32) {
        self.raw_varint(u64::from((field << 3) | wire));
    }
    /// An integer field (negative numbers take ten bytes, as protobuf's `int64`).
    pub fn int(&mut self, field: u32, v: i64) {
        self.key(field, VARINT);
        self.raw_varint(v as u64);
    }
    pub fn float(&mut self, field: u32, v: f32) {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.raw_varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    /// A nested message, written by `f`.
    pub fn message(&mut self, field: u32, f: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        f(&mut inner);
        self.bytes(field, &inner.buf);
    }
    pub fn packed_floats(&mut self, field: u32, v: &[f32]) {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.bytes(field, &b);
    }
    pub fn packed_ints(&mut self, field: u32, v: &[i64]) {
        let mut inner = Writer::default();
        for &x in v {
            inner.raw_varint(x as u64);
        }
        self.bytes(field, &inner.buf);
    }
}

/// A constant tensor (an initializer or an attribute's value).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Float(Vec<f32>),
    Int64(Vec<i64>),
}

impl Tensor {
    pub fn floats(name: &str, dims: &[i64], data: Vec<f32>) -> Tensor {
        Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            data: TensorData::Float(data),
        }
    }
    pub fn int64s(name: &str, dims: &[i64], data: Vec<i64>) -> Tensor {
        Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            data: TensorData::Int64(data),
        }
    }
    fn encode(&self, w: &mut Writer) {
        w.packed_ints(1, &self.dims);
        match &self.data {
            TensorData::Float(v) => {
                w.int(2, i64::from(FLOAT));
                w.packed_floats(4, v);
            }
            TensorData::Int64(v) => {
                w.int(2, i64::from(INT64));
                w.packed_ints(7, v);
            }
        }
        w.string(8, &self.name);
    }
}

/// An attribute's value, one of `AttributeProto.AttributeType`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Float(f32),
    Int(i64),
    String(String),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Value,
}

impl Attribute {
    fn encode(&self, w: &mut Writer) {
        w.string(1, &self.name);
        let ty = match &self.value {
            Value::Float(f) => {
                w.float(2, *f);
                1
            }
            Value::Int(i) => {
                w.int(3, *i);
                2
            }
            Value::String(s) => {
                w.string(4, s);
                3
            }
            Value::Floats(v) => {
                w.packed_floats(7, v);
                6
            }
            Value::Ints(v) => {
                w.packed_ints(8, v);
                7
            }
            Value::Strings(v) => {
                for s in v {
                    w.string(9, s);
                }
                8
            }
        };
        w.int(20, ty);
    }
}

/// One operator application.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op_type: String,
    /// `""` for the default domain, `ai.onnx.ml` for the ML operators.
    pub domain: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

impl Node {
    /// A node of the default domain, named after its first output.
    pub fn new(op_type: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            op_type: op_type.to_string(),
            domain: String::new(),
            name: outputs
                .first()
                .map_or_else(String::new, |o| format!("{o}_{op_type}")),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes: Vec::new(),
        }
    }
    pub fn ml(mut self) -> Node {
        self.domain = ML_DOMAIN.to_string();
        self
    }
    pub fn attr(mut self, name: &str, value: Value) -> Node {
        self.attributes.push(Attribute {
            name: name.to_string(),
            value,
        });
        self
    }
    fn encode(&self, w: &mut Writer) {
        for i in &self.inputs {
            w.string(1, i);
        }
        for o in &self.outputs {
            w.string(2, o);
        }
        w.string(3, &self.name);
        w.string(4, &self.op_type);
        for a in &self.attributes {
            w.message(5, |w| a.encode(w));
        }
        if !self.domain.is_empty() {
            w.string(7, &self.domain);
        }
    }
}

/// A dimension of a declared shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    Fixed(i64),
    /// A size only known when the model runs (the number of rows).
    Named(String),
}

/// A graph input or output: its name, element type and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    pub dims: Vec<Dim>,
    pub doc: String,
}

impl ValueInfo {
    pub fn new(name: &str, elem_type: i32, dims: Vec<Dim>, doc: &str) -> ValueInfo {
        ValueInfo {
            name: name.to_string(),
            elem_type,
            dims,
            doc: doc.to_string(),
        }
    }
    fn encode(&self, w: &mut Writer) {
        w.string(1, &self.name);
        w.message(2, |w| {
            w.message(1, |w| {
                w.int(1, i64::from(self.elem_type));
                w.message(2, |w| {
                    for d in &self.dims {
                        w.message(1, |w| match d {
                            Dim::Fixed(n) => w.int(1, *n),
                            Dim::Named(s) => w.string(2, s),
                        });
                    }
                });
            });
        });
        if !self.doc.is_empty() {
            w.string(3, &self.doc);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub doc: String,
}

impl Graph {
    fn encode(&self, w: &mut Writer) {
        for n in &self.nodes {
            w.message(1, |w| n.encode(w));
        }
        w.string(2, &self.name);
        for t in &self.initializers {
            w.message(5, |w| t.encode(w));
        }
        if !self.doc.is_empty() {
            w.string(10, &self.doc);
        }
        for i in &self.inputs {
            w.message(11, |w| i.encode(w));
        }
        for o in &self.outputs {
            w.message(12, |w| o.encode(w));
        }
    }
}

/// The domain of ONNX's traditional-ML operators (the tree ensembles).
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// ONNX's IR version 8 (ONNX 1.12), the one that goes with opset 17.
pub const IR_VERSION: i64 = 8;
/// Operator set of the default domain: ReduceSum takes its axes as an input
/// (from 13) and ReduceMin still as an attribute (until 18).
pub const OPSET: i64 = 17;
/// `ai.onnx.ml` operator set: TreeEnsembleRegressor and TreeEnsembleClassifier
/// as they are in version 3 (version 5 deprecates them for TreeEnsemble).
pub const ML_OPSET: i64 = 3;

/// A whole model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProto {
    pub graph: Graph,
    pub producer_version: String,
    pub doc: String,
    /// `(key, value)` pairs of `metadata_props`.
    pub metadata: Vec<(String, String)>,
}

impl ModelProto {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.int(1, IR_VERSION);
        w.string(2, "pipeline");
        w.string(3, &self.producer_version);
        if !self.doc.is_empty() {
            w.string(6, &self.doc);
        }
        w.message(7, |w| self.graph.encode(w));
        w.message(8, |w| {
            w.string(1, "");
            w.int(2, OPSET);
        });
        if self.graph.nodes.iter().any(|n| n.domain == ML_DOMAIN) {
            w.message(8, |w| {
                w.string(1, ML_DOMAIN);
                w.int(2, ML_OPSET);
            });
        }
        for (k, v) in &self.metadata {
            w.message(14, |w| {
                w.string(1, k);
                w.string(2, v);
            });
        }
        w.buf
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One field as read back: its number and either an integer or its bytes.
    #[derive(Debug, PartialEq)]
    pub enum Field {
        Int(u64),
        Fixed32(u32),
        Bytes(Vec<u8>),
    }

    /// Splits a message into its fields (a reader for the tests only).
    pub fn fields(mut b: &[u8]) -> Vec<(u32, Field)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    break;
                }
            }
            v
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u32);
            let f = match wire {
                VARINT => Field::Int(varint(&mut b)),
                FIXED32 => {
                    let v = u32::from_le_bytes(b[..4].try_into().unwrap());
                    b = &b[4..];
                    Field::Fixed32(v)
                }
                LEN => {
                    let n = varint(&mut b) as usize;
                    let v = b[..n].to_vec();
                    b = &b[n..];
                    Field::Bytes(v)
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((field, f));
        }
        out
    }

    pub fn bytes_of(fields: &[(u32, Field)], n: u32) -> Vec<&[u8]> {
        fields
            .iter()
            .filter(|(f, _)| *f == n)
            .filter_map(|(_, v)| match v {
                Field::Bytes(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn varints_follow_the_wire_format() {
        let mut w = Writer::default();
        w.int(1, 150);
        assert_eq!(w.buf, [0x08, 0x96, 0x01]);
        let mut w = Writer::default();
        w.int(1, -1);
        assert_eq!(w.buf.len(), 11, "a negative int64 takes ten bytes");
        assert_eq!(fields(&w.buf), [(1, Field::Int(u64::MAX))]);
        let mut w = Writer::default();
        w.int(20, 7);
        assert_eq!(
            w.buf,
            [0xa0, 0x01, 0x07],
            "a field number above 15 takes two key bytes"
        );
    }

    #[test]
    fn strings_floats_and_packed_numbers() {
        let mut w = Writer::default();
        w.string(2, "testing");
        assert_eq!(w.buf, b"\x12\x07testing");
        let mut w = Writer::default();
        w.float(2, 1.0);
        assert_eq!(w.buf, [0x15, 0x00, 0x00, 0x80, 0x3f]);
        let mut w = Writer::default();
        w.packed_ints(4, &[3, 270, 86942]);
        assert_eq!(w.buf, [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
        let mut w = Writer::default();
        w.packed_floats(7, &[1.0, -2.0]);
        assert_eq!(w.buf, [0x3a, 8, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    }

    #[test]
    fn a_model_names_its_version_graph_and_operator_sets() {
        let graph = Graph {
            name: "g".into(),
            nodes: vec![Node::new("Identity", &["x"], &["y"])],
            inputs: vec![ValueInfo::new(
                "x",
                FLOAT,
                vec![Dim::Named("N".into()), Dim::Fixed(3)],
                "",
            )],
            outputs: vec![ValueInfo::new("y", FLOAT, vec![Dim::Named("N".into())], "")],
            ..Graph::default()
        };
        let m = ModelProto {
            graph,
            producer_version: "0.1.0".into(),
            doc: String::new(),
            metadata: vec![("k".into(), "v".into())],
        };
        let top = fields(&m.encode());
        assert_eq!(top[0], (1, Field::Int(IR_VERSION as u64)));
        assert_eq!(bytes_of(&top, 2), [b"pipeline".as_slice()]);
        let opsets = bytes_of(&top, 8);
        assert_eq!(opsets.len(), 1, "no ML operator, no ai.onnx.ml opset");
        assert_eq!(
            fields(opsets[0]),
            [(1, Field::Bytes(vec![])), (2, Field::Int(OPSET as u64))]
        );
        let graph = fields(bytes_of(&top, 7)[0]);
        let node = fields(bytes_of(&graph, 1)[0]);
        assert_eq!(bytes_of(&node, 4), [b"Identity".as_slice()]);
        assert_eq!(bytes_of(&node, 1), [b"x".as_slice()]);
        let input = fields(bytes_of(&graph, 11)[0]);
        let tensor_type = fields(bytes_of(&fields(bytes_of(&input, 2)[0]), 1)[0]);
        assert_eq!(tensor_type[0], (1, Field::Int(FLOAT as u64)));
        let dims = bytes_of(&fields(bytes_of(&tensor_type, 2)[0]), 1)
            .into_iter()
            .map(fields)
            .collect::<Vec<_>>();
        assert_eq!(
            dims,
            [
                vec![(2, Field::Bytes(b"N".to_vec()))],
                vec![(1, Field::Int(3))]
            ]
        );
        let meta = fields(bytes_of(&top, 14)[0]);
        assert_eq!(bytes_of(&meta, 1), [b"k".as_slice()]);
    }

    #[test]
    fn attributes_carry_their_type() {
        let n = Node::new("TreeEnsembleRegressor", &["x"], &["y"])
            .ml()
            .attr("n_targets", Value::Int(1))
            .attr("nodes_modes", Value::Strings(vec!["LEAF".into()]))
            .attr("base_values", Value::Floats(vec![0.5]));
        let mut w = Writer::default();
        n.encode(&mut w);
        let f = fields(&w.buf);
        assert_eq!(bytes_of(&f, 7), [b"ai.onnx.ml".as_slice()]);
        let attrs: Vec<_> = bytes_of(&f, 5).into_iter().map(fields).collect();
        let types: Vec<&Field> = attrs
            .iter()
            .map(|a| &a.iter().find(|(n, _)| *n == 20).unwrap().1)
            .collect();
        assert_eq!(types, [&Field::Int(2), &Field::Int(8), &Field::Int(6)]);
        assert_eq!(bytes_of(&attrs[1], 9), [b"LEAF".as_slice()]);
    }
}
