//! ONNX export (opset 13) of any graph ruse holds, with a symbolic batch axis "N".

use std::collections::HashSet;
use std::path::Path;

use prost::Message;

use crate::error::{GraphError, Result};
use crate::graph::{Graph, Operand};
use crate::import::META_INPUT_DOMAIN;
use crate::onnx_proto::{
    attribute_type, data_type, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto,
};
use crate::op::{Op, PoolAttrs};

/// The opset ruse writes.
pub const EXPORT_OPSET: i64 = 13;

fn ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.into_iter().collect(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: v,
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: data_type::INT64,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, per_sample: &[usize]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        dim_value: None,
        dim_param: Some("N".into()),
    }];
    dim.extend(per_sample.iter().map(|&d| Dimension {
        dim_value: Some(d as i64),
        dim_param: None,
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: String::new(),
    }
}

fn pool_attrs(p: &PoolAttrs, with_dilation: bool) -> Vec<AttributeProto> {
    let mut a = vec![
        ints("kernel_shape", p.kernel.iter().map(|&v| v as i64)),
        ints("strides", p.stride.iter().map(|&v| v as i64)),
        ints("pads", p.pads.iter().map(|&v| v as i64)),
        int("ceil_mode", p.ceil_mode as i64),
    ];
    if with_dilation {
        a.push(ints("dilations", p.dilation.iter().map(|&v| v as i64)));
    }
    a
}

/// Builds the ONNX model for a graph.
pub fn to_onnx(g: &Graph) -> Result<ModelProto> {
    // Unique tensor names: values first, then params; clashes get a suffix.
    let mut used = HashSet::new();
    let mut unique = |base: &str| {
        let base = if base.is_empty() { "t" } else { base };
        let mut n = base.to_string();
        let mut k = 1;
        while !used.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        n
    };
    let vnames: Vec<String> = g.values.iter().map(|v| unique(&v.name)).collect();
    let pnames: Vec<String> = g.params.iter().map(|p| unique(&p.name)).collect();
    let mut initializer = Vec::new();
    for (p, name) in g.params.iter().zip(&pnames) {
        let data: Vec<f32> = p.tensor.flatten_all()?.to_vec1()?;
        initializer.push(f32_tensor(name, p.tensor.dims(), &data));
    }
    let mut nodes = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let mut inputs: Vec<String> = n
            .inputs
            .iter()
            .map(|o| match o {
                Operand::Value(v) => vnames[*v].clone(),
                Operand::Param(p) => pnames[*p].clone(),
            })
            .collect();
        let mut extra = |suffix: &str, t: TensorProto| {
            let name = unique(&format!("{}_{suffix}", vnames[n.output]));
            initializer.push(TensorProto {
                name: name.clone(),
                ..t
            });
            name
        };
        let attribute = match &n.op {
            Op::Conv(c) => vec![
                ints("strides", c.stride.iter().map(|&v| v as i64)),
                ints("pads", c.pads.iter().map(|&v| v as i64)),
                ints("dilations", c.dilation.iter().map(|&v| v as i64)),
                int("group", c.groups as i64),
            ],
            Op::Gemm {
                alpha,
                beta,
                trans_b,
            } => vec![
                float("alpha", *alpha),
                float("beta", *beta),
                int("transB", *trans_b as i64),
            ],
            Op::LeakyRelu { alpha } => vec![float("alpha", *alpha)],
            Op::Softmax { axis } => vec![int("axis", *axis as i64 + 1)],
            Op::MaxPool(p) => pool_attrs(p, true),
            Op::AveragePool {
                pool,
                count_include_pad,
            } => {
                let mut a = pool_attrs(pool, false);
                a.push(int("count_include_pad", *count_include_pad as i64));
                a
            }
            Op::BatchNorm { epsilon } => vec![float("epsilon", *epsilon)],
            Op::Reshape { shape } => {
                let target: Vec<i64> = std::iter::once(-1)
                    .chain(shape.iter().map(|&d| d as i64))
                    .collect();
                inputs.push(extra("shape", i64_tensor("", &target)));
                vec![]
            }
            Op::Transpose { perm } => vec![ints(
                "perm",
                std::iter::once(0).chain(perm.iter().map(|&p| p as i64 + 1)),
            )],
            Op::Concat { axis } => vec![int("axis", *axis as i64 + 1)],
            Op::Pad { pads, value } => {
                let begins = std::iter::once(0).chain(pads.iter().map(|p| p.0 as i64));
                let ends = std::iter::once(0).chain(pads.iter().map(|p| p.1 as i64));
                let all: Vec<i64> = begins.chain(ends).collect();
                inputs.push(extra("pads", i64_tensor("", &all)));
                inputs.push(extra("value", f32_tensor("", &[], &[*value])));
                vec![AttributeProto {
                    name: "mode".into(),
                    r#type: attribute_type::STRING,
                    s: b"constant".to_vec(),
                    ..Default::default()
                }]
            }
            Op::Clip { min, max } => {
                inputs.push(extra("min", f32_tensor("", &[], &[*min])));
                inputs.push(extra("max", f32_tensor("", &[], &[*max])));
                vec![]
            }
            Op::MatMul
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::GlobalAveragePool
            | Op::Identity => vec![],
        };
        nodes.push(NodeProto {
            input: inputs,
            output: vec![vnames[n.output].clone()],
            name: if n.name.is_empty() {
                format!("node{i}")
            } else {
                n.name.clone()
            },
            op_type: n.op.onnx_type().into(),
            attribute,
            ..Default::default()
        });
    }
    let mut metadata_props = vec![StringStringEntryProto {
        key: META_INPUT_DOMAIN.into(),
        value: format!("{},{}", g.input_domain.0, g.input_domain.1),
    }];
    metadata_props.extend(g.metadata.iter().map(|(k, v)| StringStringEntryProto {
        key: k.clone(),
        value: v.clone(),
    }));
    Ok(ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: EXPORT_OPSET,
        }],
        producer_name: "ruse".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: nodes,
            name: g.name.clone(),
            initializer,
            input: vec![value_info(&vnames[0], g.input_shape())],
            output: vec![value_info(&vnames[g.output], g.output_shape())],
            ..Default::default()
        }),
        metadata_props,
        ..Default::default()
    })
}

/// Serialises a graph to ONNX bytes.
pub fn to_onnx_bytes(g: &Graph) -> Result<Vec<u8>> {
    Ok(to_onnx(g)?.encode_to_vec())
}

/// Writes a graph as an ONNX file (atomically: a temporary file renamed into place).
pub fn save_onnx(g: &Graph, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_onnx_bytes(g)?;
    let tmp = path.with_extension("onnx.tmp");
    let io = |source| GraphError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
