//! Helpers shared by the attack test files: the bundled default model and its correctly
//! classified bundled images.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::attack::gather_rows;
use ruse_attack::model::argmax_rows;
use ruse_attack::{Attack, AttackOutcome, Goal, Model, ThreatModel};
use ruse_graph::Graph;

/// The bundled default MNIST CNN.
pub fn default_model() -> Graph {
    let bytes = include_bytes!("../../../../assets/models/mnist-cnn-pool.onnx");
    ruse_graph::import::import_onnx(bytes, std::path::Path::new("default")).unwrap()
}

/// The first `n` of the first 200 bundled test images the model classifies correctly.
pub fn correct(model: &Model, n: usize) -> (Vec<f32>, Vec<usize>) {
    let d = ruse_data::bundled_mnist_test().unwrap();
    let (x, y) = d.gather(&(0..200).collect::<Vec<_>>());
    let preds = argmax_rows(&model.logits(&x).unwrap(), model.classes());
    let keep: Vec<usize> = (0..y.len()).filter(|&i| preds[i] == y[i]).take(n).collect();
    (
        gather_rows(&x, &keep, model.input_len()),
        keep.iter().map(|&i| y[i]).collect(),
    )
}

/// Runs `attack` untargeted with `ChaCha8Rng` seeded by `seed`; returns its outcome and the model
/// forward evaluations it spent (measured on the model, to check the attack's own accounting).
pub fn run_counted(
    attack: &dyn Attack,
    model: &Model,
    x: &[f32],
    y: &[usize],
    threat: &ThreatModel,
    seed: u64,
) -> (AttackOutcome, u64) {
    let before = model.forwards();
    let out = attack
        .run(
            model,
            x,
            y,
            threat,
            &Goal::Untargeted,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
        .unwrap();
    (out, model.forwards() - before)
}
