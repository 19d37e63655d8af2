//! Bad ONNX input must give a clear error (naming the file, and the node and op where there is
//! one), never a panic and never a silently wrong graph.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::export::to_onnx_bytes;
use ruse_graph::import::{import_onnx, load_onnx};
use ruse_graph::onnx_proto::{
    attribute_type, data_type, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_graph::{Graph, GraphError};

/// The path passed to `import_onnx` in the in-memory cases; it must show up in every message.
const FAKE_PATH: &str = "/models/bad_model.onnx";

// ---- model building helpers ----------------------------------------------------------------

/// One axis of a declared input shape.
#[derive(Clone, Copy)]
enum D {
    /// A fixed size.
    N(i64),
    /// A symbolic size.
    Sym(&'static str),
}

fn value_info(name: &str, elem_type: i32, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            D::N(v) => Dimension {
                dim_value: Some(*v),
                dim_param: None,
            },
            D::Sym(s) => Dimension {
                dim_value: None,
                dim_param: Some((*s).into()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: String::new(),
    }
}

/// A float input "x" with a symbolic batch axis and the given per-sample shape.
fn input_x(per_sample: &[i64]) -> ValueInfoProto {
    let mut dims = vec![D::Sym("N")];
    dims.extend(per_sample.iter().map(|&d| D::N(d)));
    value_info("x", data_type::FLOAT, &dims)
}

/// An untyped graph output (import then does not check its declared shape).
fn output(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn with_attrs(mut n: NodeProto, attrs: Vec<AttributeProto>) -> NodeProto {
    n.attribute = attrs;
    n
}

fn a_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    }
}

fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn a_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::STRING,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A float initializer stored as raw little-endian bytes (n values of 0.5 for the given dims).
fn f32_init(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: (0..n).flat_map(|_| 0.5f32.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn i64_init(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: data_type::INT64,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// Everything that makes up a test model.
struct Spec {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    opset: i64,
}

impl Spec {
    /// One input "x" of per-sample shape `per_sample`, output "y", opset 13.
    fn new(per_sample: &[i64], nodes: Vec<NodeProto>) -> Self {
        Spec {
            nodes,
            inits: Vec::new(),
            inputs: vec![input_x(per_sample)],
            outputs: vec![output("y")],
            opset: 13,
        }
    }

    fn inits(mut self, inits: Vec<TensorProto>) -> Self {
        self.inits = inits;
        self
    }

    fn opset(mut self, opset: i64) -> Self {
        self.opset = opset;
        self
    }

    fn model(&self) -> ModelProto {
        ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "ruse-tests".into(),
            graph: Some(GraphProto {
                node: self.nodes.clone(),
                name: "test".into(),
                initializer: self.inits.clone(),
                input: self.inputs.clone(),
                output: self.outputs.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.model().encode_to_vec()
    }
}

// ---- checking helpers ----------------------------------------------------------------------

/// Imports `bytes`, requiring an error (not Ok, not a panic); returns (error, Display text).
fn import_err(bytes: &[u8], path: &Path) -> (GraphError, String) {
    let r = catch_unwind(AssertUnwindSafe(|| import_onnx(bytes, path)));
    match r {
        Err(_) => panic!(
            "import of {} panicked instead of returning Err",
            path.display()
        ),
        Ok(Ok(g)) => panic!(
            "import of {} succeeded but should fail (graph with {} nodes)",
            path.display(),
            g.nodes.len()
        ),
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "message does not name the file {}: {msg}",
                path.display()
            );
            (e, msg)
        }
    }
}

/// Like `import_err` through `load_onnx` on a file.
fn load_err(path: &Path) -> String {
    let r = catch_unwind(AssertUnwindSafe(|| load_onnx(path)));
    match r {
        Err(_) => panic!(
            "load of {} panicked instead of returning Err",
            path.display()
        ),
        Ok(Ok(_)) => panic!("load of {} succeeded but should fail", path.display()),
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "message does not name the file {}: {msg}",
                path.display()
            );
            msg
        }
    }
}

fn assert_mentions(msg: &str, words: &[&str]) {
    for w in words {
        assert!(
            msg.contains(w),
            "expected {w:?} in the error message: {msg}"
        );
    }
}

/// Checks a model that must fail with an error naming the file and all of `words`.
fn expect(spec: &Spec, words: &[&str]) -> GraphError {
    let (e, msg) = import_err(&spec.bytes(), Path::new(FAKE_PATH));
    assert_mentions(&msg, words);
    e
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ruse_import_errors_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

// ---- sanity: the helper builds models that do import ---------------------------------------

#[test]
fn helper_builds_valid_models() {
    let spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    let g = import_onnx(&spec.bytes(), Path::new(FAKE_PATH)).unwrap();
    assert_eq!(g.input_shape(), &[4]);
    assert_eq!(g.output_shape(), &[4]);

    let conv = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])])
        .inits(vec![f32_init("W", &[2, 1, 3, 3])]);
    let g = import_onnx(&conv.bytes(), Path::new(FAKE_PATH)).unwrap();
    assert_eq!(g.output_shape(), &[2, 3, 3]);
}

// ---- unsupported ops and attributes --------------------------------------------------------

#[test]
fn unsupported_ops() {
    for op in ["Softplus", "LSTM", "Erf", "NonMaxSuppression"] {
        let name = format!("my_{}", op.to_lowercase());
        let spec = Spec::new(&[4], vec![node(&name, op, &["x"], &["y"])]);
        let e = expect(&spec, &[&name, op, "not supported"]);
        assert!(matches!(e, GraphError::UnsupportedOp { .. }), "{e:?}");
    }
}

#[test]
fn unsupported_op_domain() {
    let mut n = node("custom1", "Relu", &["x"], &["y"]);
    n.domain = "com.microsoft".into();
    let spec = Spec::new(&[4], vec![n]);
    expect(&spec, &["custom1", "com.microsoft", "Relu"]);
}

#[test]
fn unnamed_node_is_named_by_index_and_output() {
    let spec = Spec::new(
        &[4],
        vec![
            node("", "Relu", &["x"], &["h"]),
            node("", "Softplus", &["h"], &["y"]),
        ],
    );
    expect(&spec, &["#1", "y", "Softplus"]);
}

#[test]
fn conv_unknown_attribute() {
    let spec = Spec::new(
        &[1, 5, 5],
        vec![with_attrs(
            node("conv_bad", "Conv", &["x", "W"], &["y"]),
            vec![a_ints("kernel_shape", &[3, 3]), a_int("frobnicate", 1)],
        )],
    )
    .inits(vec![f32_init("W", &[2, 1, 3, 3])]);
    let e = expect(&spec, &["conv_bad", "Conv", "frobnicate"]);
    assert!(
        matches!(e, GraphError::UnsupportedAttribute { .. }),
        "{e:?}"
    );
}

#[test]
fn maxpool_storage_order() {
    let spec = Spec::new(
        &[1, 4, 4],
        vec![with_attrs(
            node("pool_so", "MaxPool", &["x"], &["y"]),
            vec![a_ints("kernel_shape", &[2, 2]), a_int("storage_order", 1)],
        )],
    );
    expect(&spec, &["pool_so", "MaxPool", "storage_order=1"]);
}

#[test]
fn pad_reflect_mode() {
    for mode in ["reflect", "edge", "wrap"] {
        let spec = Spec::new(
            &[1, 4, 4],
            vec![with_attrs(
                node("pad_r", "Pad", &["x", "pads"], &["y"]),
                vec![a_str("mode", mode)],
            )],
        )
        .inits(vec![i64_init("pads", &[0, 0, 1, 1, 0, 0, 1, 1])]);
        expect(&spec, &["pad_r", "Pad", mode]);
    }
    // Opset < 11: pads as attribute.
    let spec = Spec::new(
        &[1, 4, 4],
        vec![with_attrs(
            node("pad_old", "Pad", &["x"], &["y"]),
            vec![
                a_str("mode", "reflect"),
                a_ints("pads", &[0, 0, 1, 1, 0, 0, 1, 1]),
            ],
        )],
    )
    .opset(9);
    expect(&spec, &["pad_old", "Pad", "reflect"]);
}

#[test]
fn pad_batch_axis() {
    let spec = Spec::new(
        &[1, 4, 4],
        vec![node("pad_b", "Pad", &["x", "pads"], &["y"])],
    )
    .inits(vec![i64_init("pads", &[1, 0, 0, 0, 0, 0, 0, 0])]);
    expect(&spec, &["pad_b", "Pad", "batch"]);
}

#[test]
fn averagepool_ceil_mode() {
    let spec = Spec::new(
        &[1, 5, 5],
        vec![with_attrs(
            node("avg_ceil", "AveragePool", &["x"], &["y"]),
            vec![
                a_ints("kernel_shape", &[2, 2]),
                a_ints("strides", &[2, 2]),
                a_int("ceil_mode", 1),
            ],
        )],
    );
    expect(&spec, &["avg_ceil", "AveragePool", "ceil_mode"]);
}

#[test]
fn gemm_trans_a() {
    let spec = Spec::new(
        &[4],
        vec![with_attrs(
            node("fc_ta", "Gemm", &["x", "B"], &["y"]),
            vec![a_int("transA", 1)],
        )],
    )
    .inits(vec![f32_init("B", &[4, 3])]);
    expect(&spec, &["fc_ta", "Gemm", "transA"]);
}

#[test]
fn gemm_weight_from_run_time_value() {
    let spec = Spec::new(
        &[4],
        vec![
            node("r", "Relu", &["x"], &["h"]),
            node("fc_dyn", "Gemm", &["x", "h"], &["y"]),
        ],
    );
    expect(&spec, &["fc_dyn", "Gemm", "constant"]);
}

#[test]
fn batchnorm_training_mode() {
    let spec = Spec::new(
        &[2, 3, 3],
        vec![with_attrs(
            node(
                "bn_train",
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                &["y"],
            ),
            vec![a_int("training_mode", 1)],
        )],
    )
    .inits(vec![
        f32_init("s", &[2]),
        f32_init("b", &[2]),
        f32_init("m", &[2]),
        f32_init("v", &[2]),
    ]);
    expect(&spec, &["bn_train", "BatchNormalization", "training_mode"]);
}

#[test]
fn conv_3d_weight() {
    let spec = Spec::new(
        &[1, 4, 4, 4],
        vec![node("conv3d", "Conv", &["x", "W"], &["y"])],
    )
    .inits(vec![f32_init("W", &[2, 1, 3, 3, 3])]);
    expect(&spec, &["conv3d", "Conv", "2-D"]);
}

#[test]
fn shape_mismatch_names_node() {
    // Conv weight expects 3 input channels; the input has 1.
    let spec = Spec::new(
        &[1, 5, 5],
        vec![node("conv_ch", "Conv", &["x", "W"], &["y"])],
    )
    .inits(vec![f32_init("W", &[2, 3, 3, 3])]);
    let e = expect(&spec, &["conv_ch", "Conv", "channels"]);
    assert!(matches!(e, GraphError::Shape { .. }), "{e:?}");
}

// ---- shapes ---------------------------------------------------------------------------------

#[test]
fn dynamic_non_batch_axis() {
    let mut spec = Spec::new(&[], vec![node("r", "Relu", &["x"], &["y"])]);
    spec.inputs = vec![value_info(
        "x",
        data_type::FLOAT,
        &[D::Sym("N"), D::Sym("C"), D::N(28), D::N(28)],
    )];
    expect(&spec, &["'x'", "axis 1", "dynamic", "C"]);

    // An axis with neither a value nor a name.
    spec.inputs = vec![ValueInfoProto {
        name: "x".into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension::default(),
                        Dimension {
                            dim_value: Some(3),
                            dim_param: None,
                        },
                        Dimension::default(),
                    ],
                }),
            }),
        }),
        doc_string: String::new(),
    }];
    expect(&spec, &["'x'", "axis 2", "dynamic"]);
}

#[test]
fn input_without_data_axis() {
    let mut spec = Spec::new(&[], vec![node("r", "Relu", &["x"], &["y"])]);
    spec.inputs = vec![value_info("x", data_type::FLOAT, &[D::Sym("N")])];
    expect(&spec, &["'x'", "rank 1"]);
}

#[test]
fn data_dependent_reshape() {
    // The target shape is computed from the input at run time.
    let spec = Spec::new(
        &[4],
        vec![
            node("r", "Relu", &["x"], &["h"]),
            node("reshape_dyn", "Reshape", &["x", "h"], &["y"]),
        ],
    );
    let e = expect(&spec, &["reshape_dyn", "Reshape", "data-dependent"]);
    assert!(matches!(e, GraphError::Shape { .. }), "{e:?}");
}

#[test]
fn reshape_that_mixes_batch_axis() {
    let spec = Spec::new(
        &[4],
        vec![node("reshape_mix", "Reshape", &["x", "shape"], &["y"])],
    )
    .inits(vec![i64_init("shape", &[2, -1])]);
    expect(&spec, &["reshape_mix", "Reshape", "batch"]);
}

// ---- broken files ---------------------------------------------------------------------------

/// A valid model's bytes (a small zoo CNN exported by ruse).
fn valid_model_bytes() -> Vec<u8> {
    let g = build(
        Arch::CnnSmall,
        &ZooSpec {
            input: [1, 28, 28],
            classes: 10,
            normalize: Some((vec![0.1307], vec![0.3081])),
            seed: 3,
        },
    )
    .unwrap();
    to_onnx_bytes(&g).unwrap()
}

#[test]
fn truncated_files() {
    let bytes = valid_model_bytes();
    let n = bytes.len();
    // The untruncated file loads.
    let full = temp_path("full.onnx");
    std::fs::write(&full, &bytes).unwrap();
    load_onnx(&full).unwrap();

    let mut cuts = vec![1, 2, n / 2, n - 3, n - 1];
    cuts.extend((1..20).map(|k| n * k / 20));
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        let p = temp_path(&format!("truncated_{cut}.onnx"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let msg = load_err(&p);
        assert!(
            msg.contains("truncated") || msg.contains("corrupt"),
            "cut at {cut}/{n}: message does not say the file is truncated: {msg}"
        );
        std::fs::remove_file(&p).unwrap();
    }
    std::fs::remove_file(&full).unwrap();
}

#[test]
fn empty_file() {
    let p = temp_path("empty.onnx");
    std::fs::write(&p, b"").unwrap();
    load_err(&p);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn garbage_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for (i, len) in [1usize, 7, 64, 1000, 100_000]
        .iter()
        .cycle()
        .take(40)
        .enumerate()
    {
        let bytes: Vec<u8> = (0..*len).map(|_| rng.random()).collect();
        let p = temp_path(&format!("garbage_{i}.onnx"));
        std::fs::write(&p, &bytes).unwrap();
        load_err(&p);
        std::fs::remove_file(&p).unwrap();
    }
    // Text that is not a model at all.
    import_err(b"this is not an onnx model\n", Path::new(FAKE_PATH));
}

#[test]
fn missing_file() {
    let p = temp_path("does_not_exist.onnx");
    let _ = std::fs::remove_file(&p);
    let msg = load_err(&p);
    assert_mentions(&msg, &["cannot read"]);
}

#[test]
fn opset_out_of_range() {
    for opset in [3, 6, 22, 30] {
        let spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]).opset(opset);
        expect(
            &spec,
            &[&format!("opset {opset}"), "not supported", "7", "21"],
        );
    }
    for opset in [7, 21] {
        let spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]).opset(opset);
        import_onnx(&spec.bytes(), Path::new(FAKE_PATH)).unwrap();
    }
}

#[test]
fn no_opset_and_no_graph() {
    let spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    let mut m = spec.model();
    m.opset_import.clear();
    let (_, msg) = import_err(&m.encode_to_vec(), Path::new(FAKE_PATH));
    assert_mentions(&msg, &["opset"]);

    let mut m = spec.model();
    m.graph = None;
    let (_, msg) = import_err(&m.encode_to_vec(), Path::new(FAKE_PATH));
    assert_mentions(&msg, &["no graph"]);
}

#[test]
fn two_data_inputs() {
    let mut spec = Spec::new(&[4], vec![node("add", "Add", &["x", "x2"], &["y"])]);
    spec.inputs
        .push(value_info("x2", data_type::FLOAT, &[D::Sym("N"), D::N(4)]));
    expect(&spec, &["exactly one data input", "2", "x, x2"]);
}

#[test]
fn no_data_input() {
    let mut spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    spec.inputs.clear();
    expect(&spec, &["exactly one data input", "0"]);
}

#[test]
fn initializer_listed_as_input_is_not_a_data_input() {
    // Older exporters list initializers among the graph inputs; that is fine.
    let mut spec = Spec::new(&[4], vec![node("fc", "Gemm", &["x", "B"], &["y"])])
        .inits(vec![f32_init("B", &[4, 3])]);
    spec.inputs
        .push(value_info("B", data_type::FLOAT, &[D::N(4), D::N(3)]));
    let g = import_onnx(&spec.bytes(), Path::new(FAKE_PATH)).unwrap();
    assert_eq!(g.output_shape(), &[3]);
}

#[test]
fn two_outputs() {
    let mut spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    spec.outputs.push(output("x"));
    expect(&spec, &["exactly one output"]);
}

#[test]
fn output_never_computed() {
    let mut spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    spec.outputs = vec![output("nowhere")];
    expect(&spec, &["nowhere", "never computed"]);
}

#[test]
fn declared_output_shape_mismatch() {
    let mut spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    spec.outputs = vec![value_info("y", data_type::FLOAT, &[D::Sym("N"), D::N(5)])];
    expect(&spec, &["'y'", "[Some(5)]", "[4]"]);
}

#[test]
fn short_initializer() {
    // raw_data holds 10 floats but the dims say 18.
    let mut w = f32_init("W", &[2, 1, 3, 3]);
    w.raw_data.truncate(10 * 4);
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "40 bytes", "[2, 1, 3, 3]", "72"]);

    // raw_data whose length is not a multiple of 4.
    let mut w = f32_init("W", &[2, 1, 3, 3]);
    w.raw_data.truncate(18 * 4 - 1);
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "[2, 1, 3, 3]", "truncated or corrupt"]);

    // float_data too short.
    let w = TensorProto {
        name: "W".into(),
        dims: vec![2, 1, 3, 3],
        data_type: data_type::FLOAT,
        float_data: vec![1.0; 17],
        ..Default::default()
    };
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "17 elements"]);

    // Short int64 shape tensor.
    let shape = TensorProto {
        name: "shape".into(),
        dims: vec![2],
        data_type: data_type::INT64,
        raw_data: vec![0; 12],
        ..Default::default()
    };
    let spec =
        Spec::new(&[4], vec![node("rs", "Reshape", &["x", "shape"], &["y"])]).inits(vec![shape]);
    expect(&spec, &["'shape'", "truncated or corrupt"]);
}

#[test]
fn negative_and_absurd_initializer_dims() {
    let w = TensorProto {
        name: "W".into(),
        dims: vec![2, -1, 3, 3],
        data_type: data_type::FLOAT,
        ..Default::default()
    };
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "negative dimension -1"]);

    let w = TensorProto {
        name: "W".into(),
        dims: vec![1 << 20, 1 << 20, 1 << 20],
        data_type: data_type::FLOAT,
        ..Default::default()
    };
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "absurd shape"]);
}

#[test]
fn unsupported_initializer_type() {
    let w = TensorProto {
        name: "W".into(),
        dims: vec![2, 1, 3, 3],
        data_type: data_type::FLOAT16,
        raw_data: vec![0; 36],
        ..Default::default()
    };
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "element type 10"]);
}

#[test]
fn undefined_tensor_name() {
    let spec = Spec::new(
        &[4],
        vec![node("add_ghost", "Add", &["x", "ghost"], &["y"])],
    );
    let e = expect(
        &spec,
        &["add_ghost", "Add", "'ghost'", "before it is defined"],
    );
    assert!(matches!(e, GraphError::Shape { .. }), "{e:?}");

    // Used before the node that defines it (not topologically sorted).
    let spec = Spec::new(
        &[4],
        vec![
            node("second", "Relu", &["h"], &["y"]),
            node("first", "Relu", &["x"], &["h"]),
        ],
    );
    expect(&spec, &["second", "Relu", "'h'"]);
}

#[test]
fn missing_required_input() {
    let spec = Spec::new(&[4], vec![node("fc_noB", "Gemm", &["x"], &["y"])]);
    expect(&spec, &["fc_noB", "Gemm", "missing input 1"]);
}

#[test]
fn external_data() {
    let w = TensorProto {
        name: "W".into(),
        dims: vec![2, 1, 3, 3],
        data_type: data_type::FLOAT,
        data_location: 1,
        ..Default::default()
    };
    let spec = Spec::new(&[1, 5, 5], vec![node("c", "Conv", &["x", "W"], &["y"])]).inits(vec![w]);
    expect(&spec, &["'W'", "external data"]);

    // Also inside a Constant node.
    let mut n = node("k", "Constant", &[], &["k"]);
    n.attribute = vec![AttributeProto {
        name: "value".into(),
        r#type: attribute_type::TENSOR,
        t: Some(TensorProto {
            name: "kt".into(),
            dims: vec![4],
            data_type: data_type::FLOAT,
            data_location: 1,
            ..Default::default()
        }),
        ..Default::default()
    }];
    let spec = Spec::new(&[4], vec![n, node("add", "Add", &["x", "k"], &["y"])]);
    expect(&spec, &["'kt'", "external data"]);
}

#[test]
fn non_float_input() {
    for (t, name) in [
        (data_type::INT64, "7"),
        (data_type::DOUBLE, "11"),
        (data_type::UINT8, "2"),
    ] {
        let mut spec = Spec::new(&[], vec![node("r", "Relu", &["x"], &["y"])]);
        spec.inputs = vec![value_info("x", t, &[D::Sym("N"), D::N(4)])];
        expect(&spec, &["'x'", &format!("element type {name}"), "float32"]);
    }
}

#[test]
fn cast_of_run_time_value_to_int() {
    let spec = Spec::new(
        &[4],
        vec![with_attrs(
            node("to_int", "Cast", &["x"], &["y"]),
            vec![a_int("to", data_type::INT64 as i64)],
        )],
    );
    expect(&spec, &["to_int", "Cast", "float32"]);
}

#[test]
fn output_is_constant() {
    let spec = Spec::new(&[4], vec![node("sh", "Shape", &["x"], &["y"])]);
    expect(&spec, &["'y'", "does not depend on the input"]);
}

#[test]
fn bad_input_domain_metadata() {
    let spec = Spec::new(&[4], vec![node("r", "Relu", &["x"], &["y"])]);
    let mut m = spec.model();
    m.metadata_props
        .push(ruse_graph::onnx_proto::StringStringEntryProto {
            key: ruse_graph::import::META_INPUT_DOMAIN.into(),
            value: "1,0".into(),
        });
    let (_, msg) = import_err(&m.encode_to_vec(), Path::new(FAKE_PATH));
    assert_mentions(&msg, &["ruse.input_domain", "'1,0'"]);
}

// ---- forward with a wrongly shaped input ----------------------------------------------------

fn small_graph() -> Graph {
    let spec = Spec::new(
        &[1, 5, 5],
        vec![
            node("c", "Conv", &["x", "W"], &["h"]),
            node("r", "Relu", &["h"], &["y"]),
        ],
    )
    .inits(vec![f32_init("W", &[2, 1, 3, 3])]);
    import_onnx(&spec.bytes(), Path::new(FAKE_PATH)).unwrap()
}

#[test]
fn forward_rejects_wrong_input_shape() {
    let g = small_graph();
    let ok = Tensor::zeros((2, 1, 5, 5), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(g.forward(&ok).unwrap().dims(), &[2, 2, 3, 3]);
    let bad_shapes: [&[usize]; 5] = [
        &[2, 1, 5, 6],
        &[2, 2, 5, 5],
        &[1, 5, 5],
        &[2, 1, 5, 5, 1],
        &[25],
    ];
    for dims in bad_shapes {
        let x = Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| g.forward(&x)));
        match r {
            Err(_) => panic!("forward on {dims:?} panicked"),
            Ok(Ok(y)) => panic!("forward on {dims:?} gave Ok {:?}", y.dims()),
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(matches!(e, GraphError::Input(_)), "{e:?}");
                assert_mentions(&msg, &["[B, 1, 5, 5]", &format!("{dims:?}")]);
            }
        }
    }
    // Wrong element type.
    let x = Tensor::zeros((2, 1, 5, 5), DType::F64, &Device::Cpu).unwrap();
    let e = g.forward(&x).unwrap_err();
    assert_mentions(&e.to_string(), &["f32"]);
    // Wrong number of parameter tensors.
    let e = g.forward_with(&[], &ok).unwrap_err();
    assert_mentions(&e.to_string(), &["0 parameter tensors for 1"]);
}

#[test]
fn conv_zero_sized_weight() {
    let spec = Spec::new(&[1, 5, 5], vec![node("conv0", "Conv", &["x", "W"], &["y"])])
        .inits(vec![f32_init("W", &[2, 1, 0, 3])]);
    expect(&spec, &["conv0", "Conv", "[2, 1, 0, 3]"]);
}

#[test]
fn zero_sized_input_axis() {
    let spec = Spec::new(&[1, 0, 5], vec![node("r", "Relu", &["x"], &["y"])]);
    expect(&spec, &["'x'", "axis 2"]);
}
