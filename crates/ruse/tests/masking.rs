//! The gradient-masking guard: a model whose apparent robustness comes from masked gradients
//! must be flagged by the audit's honesty checks, and the plain model must not be.
//!
//! The masked model is the bundled default CNN behind a quantising input layer: a staircase of
//! ten steep clipped ramps (1×1 convolution with slope 10⁴ → Clip(0, 1) → mean), so the network
//! sees each pixel rounded to a multiple of 0.1. Its function is almost the default model's, so it
//! is just as fooled by a query-only attack (Square), but its input gradient is exactly zero
//! except within 5·10⁻⁵ of a step: FGSM, PGD and APGD make no progress.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use ruse_graph::{ConvAttrs, Graph, Op, Operand};
use serde_json::Value;

/// Steps of the staircase.
const LEVELS: usize = 10;
/// Slope of each ramp: the gradient is non-zero only within 1/(2·SLOPE) of a step.
const SLOPE: f32 = 1e4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default model with the quantising layer in front of it.
fn masked_default_model() -> Graph {
    let inner = ruse_graph::import::load_onnx(root().join("assets/models/mnist-cnn-pool.onnx"))
        .expect("the bundled default model");
    let shape = inner.input_shape().to_vec();
    assert_eq!(shape, [1, 28, 28]);
    let mut g = Graph::new("masked-default", "input", shape);
    g.input_domain = inner.input_domain;
    let conv = ConvAttrs {
        stride: [1, 1],
        pads: [0; 4],
        dilation: [1, 1],
        groups: 1,
    };
    let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s, &Device::Cpu).unwrap();
    // Channel j: SLOPE · (x − (j + ½)/LEVELS), clipped to [0, 1] — a step at (j + ½)/LEVELS.
    let w1 = g.add_param(
        "steps.weight",
        t(vec![SLOPE; LEVELS], &[LEVELS, 1, 1, 1]),
        false,
    );
    let b1 = g.add_param(
        "steps.bias",
        t(
            (0..LEVELS)
                .map(|j| -SLOPE * (j as f32 + 0.5) / LEVELS as f32)
                .collect(),
            &[LEVELS],
        ),
        false,
    );
    let v = g
        .add_node(
            "steps",
            Op::Conv(conv.clone()),
            vec![Operand::Value(0), Operand::Param(w1), Operand::Param(b1)],
        )
        .unwrap();
    let v = g
        .add_node(
            "clip",
            Op::Clip { min: 0.0, max: 1.0 },
            vec![Operand::Value(v)],
        )
        .unwrap();
    let w2 = g.add_param(
        "mean.weight",
        t(vec![1.0 / LEVELS as f32; LEVELS], &[1, LEVELS, 1, 1]),
        false,
    );
    let b2 = g.add_param("mean.bias", t(vec![0.0], &[1]), false);
    let quantised = g
        .add_node(
            "mean",
            Op::Conv(conv),
            vec![Operand::Value(v), Operand::Param(w2), Operand::Param(b2)],
        )
        .unwrap();
    // Then the default model's nodes, its input replaced by the quantised image.
    let param_base = g.params.len();
    g.params.extend(inner.params.iter().cloned());
    let mut value_map = vec![quantised; inner.values.len()];
    for node in &inner.nodes {
        let inputs = node
            .inputs
            .iter()
            .map(|o| match *o {
                Operand::Value(v) => Operand::Value(value_map[v]),
                Operand::Param(p) => Operand::Param(param_base + p),
            })
            .collect();
        value_map[node.output] = g
            .add_node(format!("inner.{}", node.name), node.op.clone(), inputs)
            .unwrap();
    }
    g.output = value_map[inner.output];
    g
}

/// Audits MODEL on the first 20 bundled images at ε = 0.3 with the quick suite; report.json.
fn audit(model: &Path, out: &Path) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args(["--threads", "2", "audit", "--model"])
        .arg(model)
        .args([
            "--limit", "20", "--eps", "0.3", "--preset", "quick", "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn fired(report: &Value, check: &str) -> Option<String> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["check"] == check)
        .map(|w| w["evidence"].as_str().unwrap().to_string())
}

/// The checks that point at masked gradients.
const MASKING_CHECKS: [&str; 3] = [
    "zero or NaN gradients",
    "black-box beats white-box",
    "unbounded attack does not reach 0%",
];

#[test]
fn a_quantised_input_layer_is_flagged_as_gradient_masking_and_the_plain_model_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let masked_path = dir.path().join("masked.onnx");
    ruse_graph::export::save_onnx(&masked_default_model(), &masked_path).unwrap();

    let masked = audit(&masked_path, &dir.path().join("masked"));
    // The layer keeps the model's function: clean accuracy stays high.
    let clean = masked["clean_accuracy"].as_f64().unwrap();
    assert!(clean >= 0.9, "the quantised model scores only {clean}");
    // The gradient attacks make (almost) no progress, Square does.
    let rows = masked["results"][0]["attacks"].as_array().unwrap();
    let after = |prefix: &str| {
        rows.iter()
            .find(|r| r["attack"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} row in {rows:?}"))["robust_accuracy"]
            .as_f64()
            .unwrap()
    };
    let (white, black) = (after("apgd"), after("square"));
    println!(
        "masked: clean {clean}, robust after apgd {white}, after square {black}; warnings {}",
        masked["warnings"]
    );
    assert!(
        white >= 0.5 * clean && black < white,
        "robust after the gradient attacks {white}, after Square {black}"
    );
    let zero = fired(&masked, "zero or NaN gradients")
        .unwrap_or_else(|| panic!("no zero-gradient flag: {}", masked["warnings"]));
    assert!(zero.contains("all-zero gradient"), "{zero}");
    let bb = fired(&masked, "black-box beats white-box")
        .unwrap_or_else(|| panic!("no black-box flag: {}", masked["warnings"]));
    assert!(bb.contains("square") && bb.contains("more samples"), "{bb}");

    let plain = audit(
        &root().join("assets/models/mnist-cnn-pool.onnx"),
        &dir.path().join("plain"),
    );
    for check in MASKING_CHECKS {
        assert!(
            fired(&plain, check).is_none(),
            "'{check}' fired on the plain default model: {}",
            plain["warnings"]
        );
    }
}
