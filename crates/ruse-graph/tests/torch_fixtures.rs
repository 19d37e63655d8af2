//! Forward outputs, input gradients and parameter gradients of every op against PyTorch
//! (fixtures made by tools/make_fixtures.py, committed under tests/fixtures).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use ruse_graph::backward::GradRequest;
use ruse_graph::import::load_onnx;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    input_shape: Vec<usize>,
    input: Vec<f32>,
    output_shape: Vec<usize>,
    output: Vec<f32>,
    cotangent: Vec<f32>,
    input_grad: Vec<f32>,
    #[serde(default)]
    param_grads: HashMap<String, Vec<f32>>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Max abs difference relative to the reference's scale (at least 1).
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale
}

fn check(onnx: &Path) -> Vec<String> {
    let json = onnx.with_extension("json");
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let g = load_onnx(onnx).unwrap_or_else(|e| panic!("{e}"));
    let x = Var::from_tensor(
        &Tensor::from_vec(fx.input.clone(), fx.input_shape.clone(), &Device::Cpu).unwrap(),
    )
    .unwrap();
    let vars: Vec<Var> = g
        .params
        .iter()
        .map(|p| Var::from_tensor(&p.tensor).unwrap())
        .collect();
    let ps: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = g
        .forward_with(&ps, x.as_tensor())
        .unwrap_or_else(|e| panic!("{}: {e}", onnx.display()));
    assert_eq!(y.dims(), fx.output_shape.as_slice(), "{}", onnx.display());
    let cot =
        Tensor::from_vec(fx.cotangent.clone(), fx.output_shape.clone(), &Device::Cpu).unwrap();
    let loss = (&y * &cot).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut failures = Vec::new();
    let name = onnx.file_stem().unwrap().to_string_lossy().to_string();
    let out: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    let e = rel_err(&out, &fx.output);
    if e >= 1e-4 {
        failures.push(format!("{name}: output rel err {e:e}"));
    }
    let gx: Vec<f32> = grads
        .get(x.as_tensor())
        .map(|g| g.flatten_all().unwrap().to_vec1().unwrap())
        .unwrap_or_else(|| vec![0.0; fx.input.len()]);
    let e = rel_err(&gx, &fx.input_grad);
    if e >= 1e-4 {
        failures.push(format!("{name}: input grad rel err {e:e}"));
    }
    for (pname, want) in &fx.param_grads {
        let Some(i) = g.params.iter().position(|p| &p.name == pname) else {
            failures.push(format!("{name}: no parameter '{pname}'"));
            continue;
        };
        let got: Vec<f32> = grads
            .get(vars[i].as_tensor())
            .map(|g| g.flatten_all().unwrap().to_vec1().unwrap())
            .unwrap_or_else(|| vec![0.0; want.len()]);
        let e = rel_err(&got, want);
        if e >= 1e-4 {
            failures.push(format!("{name}: grad of '{pname}' rel err {e:e}"));
        }
    }
    // The graph's own reverse mode must agree with PyTorch too.
    let ps = g.param_tensors();
    let tape = g.forward_tape(&ps, x.as_tensor()).unwrap();
    let all = GradRequest {
        input: true,
        params: true,
    };
    let gr = g
        .backward(&tape, &ps, &cot, all)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let gx: Vec<f32> = gr
        .input
        .map(|t| t.flatten_all().unwrap().to_vec1().unwrap())
        .unwrap_or_else(|| vec![0.0; fx.input.len()]);
    let e = rel_err(&gx, &fx.input_grad);
    if e >= 1e-4 {
        failures.push(format!("{name}: tape input grad rel err {e:e}"));
    }
    for (pname, want) in &fx.param_grads {
        let Some(i) = g.params.iter().position(|p| &p.name == pname) else {
            continue;
        };
        if !g.params[i].trainable {
            continue;
        }
        let got: Vec<f32> = gr.params[i]
            .as_ref()
            .map(|t| t.flatten_all().unwrap().to_vec1().unwrap())
            .unwrap_or_else(|| vec![0.0; want.len()]);
        let e = rel_err(&got, want);
        if e >= 1e-4 {
            failures.push(format!("{name}: tape grad of '{pname}' rel err {e:e}"));
        }
    }
    failures
}

#[test]
fn every_op_matches_pytorch_forward_and_gradients() {
    let dir = fixtures_dir().join("ops");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "expected the op fixtures in {}",
        dir.display()
    );
    let failures: Vec<String> = files.iter().flat_map(|f| check(f)).collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn pytorch_cnn_export_matches_logits_and_input_gradients() {
    let failures = check(&fixtures_dir().join("torch_cnn.onnx"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let g = load_onnx(fixtures_dir().join("torch_cnn.onnx")).unwrap();
    let ops = g.op_histogram();
    for op in [
        "BatchNormalization",
        "MaxPool",
        "AveragePool",
        "Add",
        "Gemm",
        "Conv",
    ] {
        assert!(ops.contains_key(op), "fixture lost its {op}: {ops:?}");
    }
}
