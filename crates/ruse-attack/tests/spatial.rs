//! Spatial attacks (rotation + translation) on the bundled MNIST model: every reported success is
//! the stated transform of the input, inside the box, and misclassified; the parameter gradient
//! matches finite differences; the searches are seeded.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::spatial::{apply_transform, Search, Spatial, Transform};
use ruse_attack::Model;

mod common;
use common::default_model;

fn data(n: usize) -> (Vec<f32>, Vec<usize>) {
    let d = ruse_data::bundled_mnist_test().unwrap().take(n);
    (d.images, d.labels)
}

fn accuracy(model: &Model, x: &[f32], y: &[usize]) -> usize {
    accuracy_k(model, x, y, 10)
}

#[test]
fn searches_fool_with_the_transforms_they_report() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(60);
    let clean = accuracy(&model, &x, &y);
    let mut fooled = Vec::new();
    for search in [
        Search::Grid {
            angles: 7,
            shifts: 3,
        },
        Search::Random { k: 10 },
        Search::Gradient {
            steps: 10,
            restarts: 2,
        },
    ] {
        let attack = Spatial {
            max_angle: 30.0,
            max_shift: 3.0,
            search,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let out = attack.attack(&model, &x, &y, &mut rng).unwrap();
        let logits = model.logits(&out.adv).unwrap();
        let preds = ruse_attack::model::argmax_rows(&logits, 10);
        for i in 0..y.len() {
            let t = &out.transforms[i];
            assert!(
                t.angle.abs() <= 30.0 && t.tx.abs() <= 3.0 && t.ty.abs() <= 3.0,
                "{t:?}"
            );
            let expect = apply_transform(&x[i * 784..(i + 1) * 784], [1, 28, 28], t, 0.0);
            assert_eq!(
                &out.adv[i * 784..(i + 1) * 784],
                &expect[..],
                "{search:?} sample {i}"
            );
            assert_eq!(out.success[i], preds[i] != y[i], "{search:?} sample {i}");
        }
        let n_fooled = out.success.iter().filter(|&&s| s).count();
        // Every clean error counts (the identity is tried first), and rotations find more.
        assert!(n_fooled > y.len() - clean, "{search:?}: fooled {n_fooled}");
        fooled.push(n_fooled);
    }
    // The 7×3×3 grid is a strictly larger search than 10 random draws on this model.
    assert!(fooled[0] >= fooled[1], "{fooled:?}");
}

#[test]
fn an_empty_box_changes_nothing() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(30);
    let attack = Spatial {
        max_angle: 0.0,
        max_shift: 0.0,
        search: Search::Grid {
            angles: 3,
            shifts: 3,
        },
    };
    let out = attack
        .attack(&model, &x, &y, &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap();
    for (a, b) in out.adv.iter().zip(&x) {
        assert!((a - b).abs() < 1e-6);
    }
    let wrong = y.len() - accuracy(&model, &x, &y);
    assert_eq!(out.success.iter().filter(|&&s| s).count(), wrong);
}

#[test]
fn parameter_gradient_matches_finite_differences() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(3);
    for i in 0..3 {
        let img = &x[i * 784..(i + 1) * 784];
        // A large transform, so the loss is far from saturated and its gradient is sizeable.
        let t = Transform {
            angle: 24.3,
            tx: 2.41,
            ty: -1.77,
        };
        let (_, grad) = Spatial::loss_gradient(&model, img, y[i], &t).unwrap();
        let loss = |t: Transform| Spatial::loss_gradient(&model, img, y[i], &t).unwrap().0;
        let h = 0.01;
        let fd = [
            (loss(Transform {
                angle: t.angle + h,
                ..t
            }) - loss(Transform {
                angle: t.angle - h,
                ..t
            })) / (2.0 * h),
            (loss(Transform { tx: t.tx + h, ..t }) - loss(Transform { tx: t.tx - h, ..t }))
                / (2.0 * h),
            (loss(Transform { ty: t.ty + h, ..t }) - loss(Transform { ty: t.ty - h, ..t }))
                / (2.0 * h),
        ];
        assert!(
            fd.iter().any(|v| v.abs() > 0.01),
            "sample {i}: flat loss {fd:?}"
        );
        for (a, b) in [grad.angle, grad.tx, grad.ty].iter().zip(fd) {
            assert!(
                (a - b).abs() <= 0.1 * b.abs().max(a.abs()) + 1e-3,
                "sample {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn seeded_and_checked() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(20);
    let run = |seed| {
        Spatial::random(30.0, 3.0)
            .attack(&model, &x, &y, &mut ChaCha8Rng::seed_from_u64(seed))
            .unwrap()
    };
    let (a, b, c) = (run(4), run(4), run(5));
    assert_eq!(a.transforms, b.transforms);
    assert_eq!(a.adv, b.adv);
    assert_ne!(a.transforms, c.transforms);
    let bad = Spatial {
        max_angle: 30.0,
        max_shift: 3.0,
        search: Search::Random { k: 0 },
    };
    let err = bad
        .attack(&model, &x, &y, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_err();
    assert!(err.to_string().contains("k ≥ 1"), "{err}");
    let bad = Spatial {
        max_angle: f32::NAN,
        ..Spatial::grid(30.0, 3.0)
    };
    assert!(bad
        .attack(&model, &x, &y, &mut ChaCha8Rng::seed_from_u64(0))
        .is_err());
}

#[test]
fn bundled_signs_model_is_accurate_and_rotations_hurt_it() {
    // Ties the bundled model to the renderer: a change to signs.rs that shifts the images shows here.
    let bytes = include_bytes!("../../../assets/models/signs-cnn.onnx");
    let g = ruse_graph::import::import_onnx(bytes, std::path::Path::new("signs")).unwrap();
    let model = Model::new(&g).unwrap();
    let spec: ruse_data::DataSpec = "signs:0".parse().unwrap();
    let d = ruse_data::load(&spec, ruse_data::Split::Test, Some(600)).unwrap();
    let correct = accuracy_k(&model, &d.images, &d.labels, 12);
    assert!(correct * 100 >= 97 * d.len(), "{correct}/{}", d.len());
    let (x, y) = (&d.images[..120 * 3072], &d.labels[..120]);
    let out = Spatial::random(30.0, 3.4)
        .attack(&model, x, y, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    let robust = out.success.iter().filter(|&&s| !s).count();
    assert!(robust < accuracy_k(&model, x, y, 12), "{robust}");
}

fn accuracy_k(model: &Model, x: &[f32], y: &[usize], k: usize) -> usize {
    let logits = model.logits(x).unwrap();
    ruse_attack::model::argmax_rows(&logits, k)
        .iter()
        .zip(y)
        .filter(|(p, l)| p == l)
        .count()
}
