//! Helpers shared by ruse-train's integration tests: slices of the bundled MNIST images, a zoo
//! model, a short Adam training configuration, and training a fresh model with it.
//!
//! Each test binary uses only some of them.
#![allow(dead_code)]

use candle_core::Tensor;
use ruse_data::Dataset;
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_graph::Graph;
use ruse_train::train::NoProgress;
use ruse_train::{train, Defense, LrSchedule, OptimizerKind, TrainConfig, TrainReport};

/// Rows `from..to` of `d`.
pub fn rows(d: &Dataset, from: usize, to: usize) -> Dataset {
    let n = d.sample_len();
    Dataset {
        images: d.images[from * n..to * n].to_vec(),
        labels: d.labels[from..to].to_vec(),
        ..d.clone()
    }
}

/// A fresh MNIST-shaped (1×28×28 → 10, normalised) zoo model of `arch`, initialised from `seed`.
pub fn model(arch: Arch, seed: u64) -> Graph {
    build(
        arch,
        &ZooSpec {
            input: [1, 28, 28],
            classes: 10,
            normalize: Some((vec![0.13], vec![0.31])),
            seed,
        },
    )
    .unwrap()
}

/// A tensor's values, flattened.
pub fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Every parameter's values, flattened (for comparing models).
pub fn weights(g: &Graph) -> Vec<Vec<f32>> {
    g.param_tensors().iter().map(flat).collect()
}

/// Adam at 1e-3, batch 32, constant rate, no ramp or warm-up, 100 validation samples attacked.
pub fn config(defense: Defense, epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        optimizer: OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        weight_decay: 0.0,
        seed,
        checkpoint: None,
        defense,
        eps_ramp_epochs: 0,
        warmup_epochs: 0,
        val_attack_limit: 100,
        extra: serde_json::Value::Null,
    }
}

/// Trains a fresh `model(arch, cfg.seed)` under `cfg`; returns it and the report.
pub fn run(
    arch: Arch,
    cfg: &TrainConfig,
    train_set: &Dataset,
    val: Option<&Dataset>,
) -> (Graph, TrainReport) {
    let mut g = model(arch, cfg.seed);
    let r = train(&mut g, train_set, val, cfg, None, &mut NoProgress).unwrap();
    (g, r)
}
