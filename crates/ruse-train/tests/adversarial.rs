//! Adversarial training on the bundled 1000 MNIST test images (first 800 train, last 200
//! validate): every defense trains and is seeded, PGD-AT buys robustness that plain training
//! lacks, degenerate settings reduce to clean training, the ε ramp, and resume under a defense.

use ruse_data::{bundled_mnist_test, Dataset};
use ruse_graph::zoo::Arch;
use ruse_train::checkpoint::Checkpoint;
use ruse_train::train::NoProgress;
use ruse_train::{evaluate, evaluate_pgd, train, Defense, OptimizerKind, TrainConfig};

mod common;
use common::{config, model, rows, run, weights};

/// (train: first `n` of the bundled images, val: the last 200).
fn data(n: usize) -> (Dataset, Dataset) {
    let d = bundled_mnist_test().unwrap();
    (rows(&d, 0, n.min(800)), rows(&d, 800, 1000))
}

fn pgd_at(eps: f32, steps: usize) -> Defense {
    Defense::PgdAt {
        eps,
        steps,
        step_size: 2.5 * eps / steps as f32,
        random_start: true,
    }
}

fn every_defense() -> Vec<Defense> {
    vec![
        Defense::None,
        pgd_at(0.1, 3),
        Defense::Trades {
            eps: 0.1,
            steps: 3,
            step_size: 0.04,
            beta: 6.0,
        },
        Defense::FgsmAt {
            eps: 0.1,
            alpha: 0.125,
        },
    ]
}

#[test]
fn every_defense_trains_and_the_same_seed_gives_the_same_model() {
    let (tr, val) = data(256);
    for d in every_defense() {
        let cfg = config(d.clone(), 1, 3);
        let (a, ra) = run(Arch::Mlp, &cfg, &tr, Some(&val));
        let (b, _) = run(Arch::Mlp, &cfg, &tr, Some(&val));
        assert!(
            weights(&a) == weights(&b),
            "{d}: same seed, different model"
        );
        let (c, _) = run(Arch::Mlp, &config(d.clone(), 1, 4), &tr, Some(&val));
        assert!(weights(&a) != weights(&c), "{d}: the seed changes nothing");
        let s = &ra.history[0];
        assert!(s.loss.is_finite() && s.val_accuracy.is_some(), "{d}: {s:?}");
        match d.eps() {
            Some(eps) => {
                assert_eq!(s.train_eps, Some(eps as f64), "{d}: {s:?}");
                let r = s.val_robust_accuracy.expect("robust validation");
                assert!(r <= s.val_accuracy.unwrap() + 1e-9, "{d}: {s:?}");
            }
            None => assert!(s.train_eps.is_none() && s.val_robust_accuracy.is_none()),
        }
    }
}

#[test]
fn pgd_at_is_more_robust_under_pgd_than_plain_training() {
    let (tr, val) = data(800);
    let eps = 0.15;
    let robust = |d: Defense| {
        let (g, _) = run(Arch::CnnSmall, &config(d, 4, 1), &tr, None);
        let clean = evaluate(&g, &val, 200, |_, _| {}).unwrap().accuracy;
        (clean, evaluate_pgd(&g, &val, eps, 20, 9, 200).unwrap())
    };
    let (plain_clean, plain) = robust(Defense::None);
    let (at_clean, at) = robust(pgd_at(eps, 5));
    eprintln!(
        "clean / PGD-20 at ε {eps}: plain {plain_clean:.3} / {plain:.3}, PGD-AT {at_clean:.3} / {at:.3}"
    );
    assert!(plain_clean > 0.8, "plain training failed: {plain_clean}");
    assert!(
        at > plain + 0.2,
        "PGD-AT robust accuracy {at} is not clearly above plain training's {plain}"
    );
}

#[test]
fn zero_radius_pgd_at_and_zero_beta_trades_are_clean_training() {
    let (tr, _) = data(256);
    let sgd = |d: Defense| TrainConfig {
        optimizer: OptimizerKind::Sgd { momentum: 0.9 },
        lr: 0.02,
        ..config(d, 1, 5)
    };
    let (plain, _) = run(Arch::Mlp, &sgd(Defense::None), &tr, None);
    // ε = 0: the adversarial batch is the clean batch, bit for bit.
    let zero_eps = Defense::PgdAt {
        eps: 0.0,
        steps: 3,
        step_size: 0.05,
        random_start: true,
    };
    let (zero, _) = run(Arch::Mlp, &sgd(zero_eps), &tr, None);
    assert!(weights(&plain) == weights(&zero), "PGD-AT at ε = 0 differs");
    // β = 0: the KL term drops out; the gradient comes from CE on clean inputs alone (computed
    // on a batch twice as long, so equal up to float summation order).
    let trades = Defense::Trades {
        eps: 0.3,
        steps: 3,
        step_size: 0.1,
        beta: 0.0,
    };
    let (t0, _) = run(Arch::Mlp, &sgd(trades), &tr, None);
    let mut worst = 0f32;
    for (a, b) in weights(&plain).iter().zip(weights(&t0)) {
        for (p, q) in a.iter().zip(b) {
            worst = worst.max((p - q).abs());
        }
    }
    assert!(
        worst < 1e-4,
        "TRADES β = 0 drifts from clean training by {worst}"
    );
    // β > 0 trains a different model.
    let trades6 = Defense::Trades {
        eps: 0.3,
        steps: 3,
        step_size: 0.1,
        beta: 6.0,
    };
    let (t6, _) = run(Arch::Mlp, &sgd(trades6), &tr, None);
    assert!(weights(&plain) != weights(&t6));
}

#[test]
fn the_eps_ramp_grows_linearly_over_its_epochs() {
    let (tr, _) = data(64);
    let cfg = TrainConfig {
        eps_ramp_epochs: 2,
        ..config(pgd_at(0.2, 2), 3, 1)
    };
    let (_, r) = run(Arch::Mlp, &cfg, &tr, None);
    let eps: Vec<f64> = r.history.iter().map(|s| s.train_eps.unwrap()).collect();
    for (got, want) in eps.iter().zip([0.1, 0.2, 0.2]) {
        assert!((got - want).abs() < 1e-6, "ε per epoch {eps:?}");
    }
}

#[test]
fn resuming_under_a_defense_reproduces_the_straight_run() {
    let (tr, val) = data(128);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("m.onnx.ckpt");
    let d = Defense::Trades {
        eps: 0.1,
        steps: 2,
        step_size: 0.05,
        beta: 3.0,
    };
    let cfg = |epochs, checkpoint| TrainConfig {
        eps_ramp_epochs: 2,
        checkpoint,
        ..config(d.clone(), epochs, 2)
    };
    let (straight, rs) = run(Arch::Mlp, &cfg(2, None), &tr, Some(&val));
    run(Arch::Mlp, &cfg(1, Some(ck.clone())), &tr, Some(&val));
    let (c, mut g) = Checkpoint::load(&ck).unwrap();
    assert_eq!(c.config.defense, d, "the checkpoint lost the defense");
    assert_eq!(c.config.eps_ramp_epochs, 2);
    let more = TrainConfig {
        epochs: 2,
        ..c.config.clone()
    };
    let rr = train(&mut g, &tr, Some(&val), &more, Some(c), &mut NoProgress).unwrap();
    assert!(weights(&g) == weights(&straight), "1 + resume ≠ 2 epochs");
    assert_eq!(
        rr.history[1].val_robust_accuracy,
        rs.history[1].val_robust_accuracy
    );
}

#[test]
fn eps_wider_than_the_input_domain_is_refused() {
    let (tr, _) = data(32);
    let mut g = model(Arch::Mlp, 0);
    let e = train(
        &mut g,
        &tr,
        None,
        &config(pgd_at(1.5, 2), 1, 0),
        None,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("input domain"), "{e}");
}
