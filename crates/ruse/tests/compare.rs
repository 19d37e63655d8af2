//! `ruse audit --compare`: several models side by side on the same data, radii, preset and seed,
//! and clear errors for models that do not fit the data.

use std::path::Path;

use candle_core::{Device, Tensor};
use ruse_graph::{Graph, Op, Operand};
use serde_json::Value;

mod common;
use common::{root, run};

#[test]
fn compare_shows_the_undefended_and_the_pgd_trained_model_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp");
    let pgdat = root().join("assets/models/mnist-pgdat.onnx");
    let o = run(&[
        "audit",
        "--compare",
        "default",
        pgdat.to_str().unwrap(),
        "--limit",
        "20",
        "--eps",
        "0.1,0.3",
        "--preset",
        "quick",
        "--certify-limit",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for needle in [
        "default",
        "mnist-pgdat.onnx",
        "clean",
        "robust ε = 0.3",
        "certified ε = 0.1",
    ] {
        assert!(stdout.contains(needle), "card lacks '{needle}':\n{stdout}");
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let models = json["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["name"], "default");
    for m in models {
        for key in ["name", "sha256", "clean", "robust", "certified", "warnings"] {
            assert!(m.get(key).is_some(), "model entry lacks {key}: {m}");
        }
        assert_eq!(m["sha256"].as_str().unwrap().len(), 64);
        let clean = m["clean"].as_f64().unwrap();
        let (r1, r3) = (
            m["robust"]["0.1"].as_f64().unwrap(),
            m["robust"]["0.3"].as_f64().unwrap(),
        );
        assert!(r3 <= r1 && r1 <= clean, "{m}");
        // Certified on the first 10 samples of 20: at most the robust count over all 20 allows.
        for eps in ["0.1", "0.3"] {
            let c = m["certified"][eps].as_f64().unwrap();
            let robust = m["robust"][eps].as_f64().unwrap();
            assert!(
                c * 10.0 <= robust * 20.0 + 1e-9,
                "certified above robust: {m}"
            );
        }
        assert_eq!(m["certified_n"], 10);
    }
    let robust_at = |i: usize| models[i]["robust"]["0.3"].as_f64().unwrap();
    assert!(
        robust_at(0) <= 0.05 && robust_at(1) >= 0.5,
        "undefended {} vs PGD-AT {} at ε = 0.3",
        robust_at(0),
        robust_at(1)
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<polyline").count(), 2, "one curve per model");
    assert!(html.contains("certified at ε = 0.1"));
}

/// A 1×28×28 → 5 linear model: fits MNIST images but scores fewer classes than MNIST has.
fn five_class_model(path: &Path) {
    let mut g = Graph::new("five", "input", vec![1, 28, 28]);
    let flat = g
        .add_node(
            "flatten",
            Op::Reshape { shape: vec![784] },
            vec![Operand::Value(0)],
        )
        .unwrap();
    let w = Tensor::zeros((5, 784), candle_core::DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap();
    let (w, b) = (g.add_param("w", w, true), g.add_param("b", b, true));
    g.add_node(
        "fc",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_b: true,
        },
        vec![Operand::Value(flat), Operand::Param(w), Operand::Param(b)],
    )
    .unwrap();
    ruse_graph::export::save_onnx(&g, path).unwrap();
}

#[test]
fn compare_rejects_models_that_do_not_fit_the_data_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let five = dir.path().join("five.onnx");
    five_class_model(&five);
    let relu = root().join("tests/fixtures/ops/relu.onnx");
    let missing = dir.path().join("missing.onnx");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["default", missing.to_str().unwrap()],
            "cannot read model file",
        ),
        (vec!["default", relu.to_str().unwrap()], "takes input"),
        (vec!["default", five.to_str().unwrap()], "scores 5 classes"),
    ];
    for (models, needle) in cases {
        let mut args = vec!["audit", "--limit", "5", "--compare"];
        args.extend(&models);
        let o = run(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{models:?}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.contains("--compare: model"),
            "{models:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    for (args, needle) in [
        (
            vec![
                "audit",
                "--compare",
                "default",
                "mnist-pgdat",
                "--certify-method",
                "alpha",
            ],
            "expected none, ibp or crown",
        ),
        (
            vec![
                "audit",
                "--compare",
                "default",
                "mnist-pgdat",
                "--norm",
                "l2",
            ],
            "--certify-method none",
        ),
    ] {
        let o = run(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // One model is no comparison; --model and --compare exclude each other (usage errors).
    for args in [
        vec!["audit", "--compare", "default"],
        vec![
            "audit",
            "--model",
            "default",
            "--compare",
            "default",
            "mnist-pgdat",
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}
