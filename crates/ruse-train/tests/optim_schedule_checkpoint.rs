//! Optimiser arithmetic against hand-computed PyTorch semantics, schedule parsing, and a
//! checkpoint round trip.

use candle_core::{Device, Tensor, Var};
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_train::checkpoint::Checkpoint;
use ruse_train::{Defense, LrSchedule, Optimizer, OptimizerKind, TrainConfig};

fn scalar_var(v: f32) -> Var {
    Var::from_tensor(&Tensor::new(&[v], &Device::Cpu).unwrap()).unwrap()
}

fn value(v: &Var) -> f32 {
    v.as_tensor().to_vec1::<f32>().unwrap()[0]
}

#[test]
fn sgd_momentum_matches_pytorch() {
    // PyTorch SGD(lr=0.1, momentum=0.9, weight_decay=0.01): buf = g + wd·p on step 1, then μ·buf + g'.
    let p = scalar_var(1.0);
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd { momentum: 0.9 },
        0.01,
        std::slice::from_ref(&p),
    )
    .unwrap();
    let g = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
    opt.step(std::slice::from_ref(&p), &[Some(g.clone())], 0.1)
        .unwrap();
    let (mut pv, mut buf) = (1.0f64, 0.5 + 0.01);
    pv -= 0.1 * buf;
    assert!((value(&p) as f64 - pv).abs() < 1e-6);
    opt.step(std::slice::from_ref(&p), &[Some(g)], 0.1).unwrap();
    buf = 0.9 * buf + (0.5 + 0.01 * pv);
    pv -= 0.1 * buf;
    assert!(
        (value(&p) as f64 - pv).abs() < 1e-6,
        "{} vs {pv}",
        value(&p)
    );
}

#[test]
fn adam_matches_pytorch() {
    let p = scalar_var(1.0);
    let kind = OptimizerKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut opt = Optimizer::new(kind, 0.0, std::slice::from_ref(&p)).unwrap();
    let (mut m, mut v, mut pv) = (0f64, 0f64, 1f64);
    for (t, gv) in [0.5f64, -0.25, 1.0].iter().enumerate() {
        let g = Tensor::new(&[*gv as f32], &Device::Cpu).unwrap();
        opt.step(std::slice::from_ref(&p), &[Some(g)], 0.01)
            .unwrap();
        m = 0.9 * m + 0.1 * gv;
        v = 0.999 * v + 0.001 * gv * gv;
        let t = (t + 1) as i32;
        let (mh, vh) = (m / (1.0 - 0.9f64.powi(t)), v / (1.0 - 0.999f64.powi(t)));
        pv -= 0.01 * mh / (vh.sqrt() + 1e-8);
        assert!(
            (value(&p) as f64 - pv).abs() < 1e-6,
            "step {t}: {} vs {pv}",
            value(&p)
        );
    }
}

#[test]
fn a_missing_gradient_leaves_the_parameter_alone() {
    let p = scalar_var(2.0);
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd { momentum: 0.9 },
        0.0,
        std::slice::from_ref(&p),
    )
    .unwrap();
    opt.step(std::slice::from_ref(&p), &[None], 0.1).unwrap();
    assert_eq!(value(&p), 2.0);
}

#[test]
fn schedules_parse_and_decay() {
    assert_eq!(
        "constant".parse::<LrSchedule>().unwrap(),
        LrSchedule::Constant
    );
    let step: LrSchedule = "step:2:0.5".parse().unwrap();
    assert_eq!(step.rate(1.0, 1, 0.0, 6), 1.0);
    assert_eq!(step.rate(1.0, 3, 0.0, 6), 0.5);
    assert_eq!(step.rate(1.0, 5, 0.0, 6), 0.25);
    let cos: LrSchedule = "cosine".parse().unwrap();
    assert!((cos.rate(1.0, 1, 0.0, 4) - 1.0).abs() < 1e-12);
    assert!((cos.rate(1.0, 3, 0.0, 4) - 0.5).abs() < 1e-12);
    for bad in ["step:0:0.5", "step:2:1.5", "step:x:0.5", "linear", "step:2"] {
        assert!(
            bad.parse::<LrSchedule>().is_err(),
            "{bad} should be rejected"
        );
    }
}

#[test]
fn invalid_settings_are_rejected() {
    let ok = TrainConfig {
        epochs: 1,
        batch_size: 8,
        lr: 0.01,
        schedule: LrSchedule::Constant,
        optimizer: OptimizerKind::Sgd { momentum: 0.9 },
        weight_decay: 0.0,
        seed: 0,
        checkpoint: None,
        defense: Defense::None,
        eps_ramp_epochs: 0,
        warmup_epochs: 0,
        val_attack_limit: 1000,
        extra: serde_json::Value::Null,
    };
    assert!(ok.validate().is_ok());
    for bad in [
        TrainConfig {
            epochs: 0,
            ..ok.clone()
        },
        TrainConfig {
            batch_size: 0,
            ..ok.clone()
        },
        TrainConfig {
            lr: f64::NAN,
            ..ok.clone()
        },
        TrainConfig {
            lr: -1.0,
            ..ok.clone()
        },
        TrainConfig {
            weight_decay: 2.0,
            ..ok.clone()
        },
        TrainConfig {
            eps_ramp_epochs: 2,
            ..ok.clone()
        },
        TrainConfig {
            defense: Defense::PgdAt {
                eps: -0.1,
                steps: 10,
                step_size: 0.01,
                random_start: true,
            },
            ..ok.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn checkpoint_round_trip_keeps_weights_and_state() {
    let g = build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 4, 4],
            classes: 3,
            normalize: None,
            seed: 7,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx.ckpt");
    let m: Vec<Tensor> = g
        .trainable_params()
        .iter()
        .map(|&i| (g.params[i].tensor.clone() * 0.5).unwrap())
        .collect();
    let ck = Checkpoint {
        epoch: 2,
        step: 17,
        params: g.param_tensors(),
        m: m.clone(),
        v: Vec::new(),
        history: Vec::new(),
        config: TrainConfig {
            epochs: 3,
            batch_size: 4,
            lr: 0.1,
            schedule: LrSchedule::Cosine,
            optimizer: OptimizerKind::Sgd { momentum: 0.9 },
            weight_decay: 0.0,
            seed: 5,
            checkpoint: Some(path.clone()),
            defense: Defense::Trades {
                eps: 0.3,
                steps: 7,
                step_size: 0.05,
                beta: 6.0,
            },
            eps_ramp_epochs: 2,
            warmup_epochs: 0,
            val_attack_limit: 100,
            extra: serde_json::json!({"data": "mnist:x"}),
        },
        extra: serde_json::json!({"data": "mnist:x"}),
    };
    ck.save(&path, &g).unwrap();
    let (back, g2) = Checkpoint::load(&path).unwrap();
    assert_eq!((back.epoch, back.step), (2, 17));
    assert_eq!(back.config, ck.config);
    assert_eq!(back.extra["data"], "mnist:x");
    for (a, b) in g.param_tensors().iter().zip(g2.param_tensors()) {
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    for (a, b) in m.iter().zip(&back.m) {
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    // A damaged checkpoint is an error naming the file, not a panic.
    std::fs::write(&path, "{not json").unwrap();
    let e = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(e.contains("m.onnx.ckpt"), "{e}");
}
