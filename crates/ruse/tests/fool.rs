//! Fooling images (`ruse fool` and ruse_attack::fooling) on the bundled default MNIST model:
//! gradient ascent and evolution reach ≥ 99% confidence from noise (re-checked by a fresh forward
//! pass, and through the written PNG by `ruse predict`), CPPN search is seeded, and bad classes
//! are clear errors.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::fooling::{softmax_rows, Ascent, Cppn, DirectImage, Evolution, Genome};
use ruse_attack::Model;
use ruse_graph::Graph;
use serde_json::Value;

mod common;
use common::{ok, run};

fn default_graph() -> Graph {
    let bytes = include_bytes!("../../../assets/models/mnist-cnn-pool.onnx");
    ruse_graph::import::import_onnx(bytes, Path::new("mnist-cnn-pool.onnx")).expect("bundled model")
}

/// Softmax probabilities of one image from the graph itself (not through the attack's `Model`).
fn probs(g: &Graph, x: &[f32]) -> Vec<f32> {
    let shape: Vec<usize> = std::iter::once(1)
        .chain(g.input_shape().iter().copied())
        .collect();
    let t = Tensor::from_slice(x, shape, &Device::Cpu).expect("tensor");
    let z: Vec<f32> = g
        .forward(&t)
        .expect("forward")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    softmax_rows(&z, z.len()).remove(0)
}

#[test]
fn gradient_ascent_reaches_99_percent_from_noise_in_bounded_steps() {
    let g = default_graph();
    let model = Model::new(&g).expect("model");
    let (lo, hi) = g.input_domain;
    for class in [3usize, 7] {
        let ascent = Ascent {
            steps: 100,
            ..Ascent::default()
        };
        let out = ascent
            .run(&model, &[class], &mut ChaCha8Rng::seed_from_u64(1))
            .expect("ascent");
        let f = &out[0];
        assert!(
            f.success,
            "class {class}: only {:.4} after {} steps",
            f.confidence, f.steps
        );
        assert!(
            f.steps >= 1 && f.steps <= 100,
            "class {class}: {} steps",
            f.steps
        );
        assert!(
            f.image.iter().all(|v| (lo..=hi).contains(v)),
            "left the input domain"
        );
        let p = probs(&g, &f.image);
        assert!(
            p[class] >= 0.99,
            "re-check: class {class} has p = {}",
            p[class]
        );
        assert!((p[class] - f.confidence).abs() < 1e-4);
    }
}

#[test]
fn direct_evolution_reaches_99_percent_within_its_budget() {
    let g = default_graph();
    let model = Model::new(&g).expect("model");
    let d = model.input_len();
    let domain = model.domain();
    let evo = Evolution {
        max_queries: 20_000,
        ..Evolution::default()
    };
    let out = evo
        .run(
            &model,
            &[2],
            |r| DirectImage::random(d, domain, r),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .expect("evolution");
    let f = &out[0];
    assert!(
        f.success && f.queries <= 20_000,
        "p = {} after {} queries",
        f.confidence,
        f.queries
    );
    assert!(probs(&g, &f.image)[2] >= 0.99);
}

#[test]
fn cppn_images_are_deterministic_under_a_seed() {
    let a = Cppn::random(8, 1, &mut ChaCha8Rng::seed_from_u64(4));
    let b = Cppn::random(8, 1, &mut ChaCha8Rng::seed_from_u64(4));
    let c = Cppn::random(8, 1, &mut ChaCha8Rng::seed_from_u64(5));
    let shape = [1usize, 28, 28];
    assert_eq!(a.render(&shape, (0.0, 1.0)), b.render(&shape, (0.0, 1.0)));
    assert_ne!(a.render(&shape, (0.0, 1.0)), c.render(&shape, (0.0, 1.0)));
    let ma = a.mutate(&mut ChaCha8Rng::seed_from_u64(9));
    let mb = b.mutate(&mut ChaCha8Rng::seed_from_u64(9));
    assert_eq!(ma, mb);
    assert_ne!(ma, a, "mutation changed nothing");
    assert!(a
        .render(&shape, (0.0, 1.0))
        .iter()
        .all(|v| (0.0..=1.0).contains(v)));

    // The whole search through the CLI: same seed, same PNG and the same numbers.
    let dir = tempfile::tempdir().expect("tempdir");
    let outs: Vec<_> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    for o in &outs {
        ok(&[
            "fool",
            "--method",
            "cppn",
            "--class",
            "4",
            "--seed",
            "5",
            "--out",
            o.to_str().unwrap(),
        ]);
    }
    let png = |o: &Path| std::fs::read(o.join("class_4.png")).expect("class_4.png");
    assert_eq!(
        png(&outs[0]),
        png(&outs[1]),
        "CPPN images differ under the same seed"
    );
    let report = |o: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(o.join("fool.json")).unwrap()).unwrap()
    };
    let (ra, rb) = (report(&outs[0]), report(&outs[1]));
    assert_eq!(ra["classes"], rb["classes"]);
    let c4 = &ra["classes"][0];
    assert_eq!(c4["class"], 4);
    assert_eq!(c4["success"], true, "{ra}");
    assert!(c4["confidence"].as_f64().unwrap() >= 0.99);
    // `ruse predict` on the written PNG agrees: class 4 at ≥ 99%.
    let pred: Value = serde_json::from_str(&ok(&[
        "predict",
        "--image",
        outs[0].join("class_4.png").to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(pred["class"], 4);
    let z: Vec<f32> = pred["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert!(softmax_rows(&z, z.len())[0][4] >= 0.99);
}

#[test]
fn all_classes_grid_and_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().unwrap();
    ok(&[
        "fool", "--method", "gradient", "--class", "all", "--out", out,
    ]);
    for k in 0..10 {
        assert!(
            dir.path().join(format!("class_{k}.png")).is_file(),
            "class_{k}.png missing"
        );
    }
    assert!(dir.path().join("grid.png").is_file());
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("fool.json")).unwrap())
            .unwrap();
    assert_eq!(r["classes"].as_array().unwrap().len(), 10);
    assert_eq!(r["fooled"], 10, "{r}");
}

#[test]
fn bad_classes_and_methods_are_clear_errors() {
    for (args, want) in [
        (
            vec!["--class", "10"],
            "--class 10 is not a class of this model",
        ),
        (vec!["--class", "seven"], "neither a class number nor 'all'"),
        (vec!["--method", "genetic"], "unknown --method 'genetic'"),
    ] {
        let mut a = vec!["fool", "--out", "/nonexistent/never-written"];
        a.extend(args);
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{a:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let g = default_graph();
    let model = Model::new(&g).expect("model");
    let e = Ascent::default()
        .run(&model, &[12], &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("class 12 is not a class of this model"), "{e}");
}

#[test]
fn audit_fooling_section_fools_every_class_of_the_default_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().unwrap();
    ok(&[
        "audit",
        "--sections",
        "fooling",
        "--limit",
        "20",
        "--eps",
        "0.01",
        "--out",
        out,
    ]);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let s = r["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "fooling")
        .expect("fooling section");
    for method in ["gradient", "direct", "cppn"] {
        let m = &s["numbers"][method];
        assert_eq!(m["fooled"], 10, "{method}: {m}");
        for c in m["per_class"].as_array().unwrap() {
            assert!(c["confidence"].as_f64().unwrap() >= 0.99, "{method}: {c}");
        }
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("cppn: one image per class"));
}
