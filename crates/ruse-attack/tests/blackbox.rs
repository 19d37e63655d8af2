//! Query-based attacks on the bundled default model: HopSkipJump's adversarials stay
//! misclassified while their distance shrinks, SimBA and Square stop at their budgets, and every
//! attack's per-sample query counts add up to the model's own forward count.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::hopskipjump::HopSkipJump;
use ruse_attack::model::argmax_rows;
use ruse_attack::simba::{Simba, SimbaBasis};
use ruse_attack::square::Square;
use ruse_attack::{Attack, Goal, Model, Norm, ThreatModel};

mod common;
use common::{correct, default_model, run_counted};

#[test]
fn hopskipjump_stays_adversarial_while_its_distance_shrinks() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 4);
    let d = model.input_len();
    for norm in [Norm::L2, Norm::Linf] {
        let budget = 1500u64;
        let attack = HopSkipJump {
            query_budget: Some(budget as usize),
            ..HopSkipJump::default()
        };
        let before = model.forwards();
        let m = attack
            .minimal(
                &model,
                &x,
                &y,
                &Goal::Untargeted,
                norm,
                (0.0, 1.0),
                &mut ChaCha8Rng::seed_from_u64(0),
            )
            .unwrap();
        let spent = model.forwards() - before;
        assert_eq!(
            m.queries.iter().sum::<u64>(),
            spent,
            "{norm}: exact query count"
        );
        let preds = argmax_rows(&model.logits(&m.adv).unwrap(), model.classes());
        for i in 0..y.len() {
            assert!(m.found[i], "{norm}: no start found for sample {i}");
            assert!(m.queries[i] <= budget);
            assert_ne!(
                preds[i], y[i],
                "{norm}: sample {i} is not misclassified on re-check"
            );
            let a = &m.adv[i * d..(i + 1) * d];
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
            let h: Vec<f32> = m.history[i].iter().map(|(_, dist)| *dist).collect();
            assert!(
                h.len() >= 3,
                "{norm}: only {} iterations in budget",
                h.len()
            );
            assert!(
                h.windows(2).all(|w| w[1] <= w[0]),
                "{norm}: distance grew: {h:?}"
            );
            assert!(
                h[h.len() - 1] < 0.8 * h[0],
                "{norm}: distance barely shrank, {h:?}"
            );
            let dist = norm.of(&a
                .iter()
                .zip(&x[i * d..(i + 1) * d])
                .map(|(p, q)| p - q)
                .collect::<Vec<_>>());
            assert!((dist - h[h.len() - 1]).abs() <= 1e-4 * dist.max(1.0));
            let q: Vec<u64> = m.history[i].iter().map(|(q, _)| *q).collect();
            assert!(q.windows(2).all(|w| w[1] > w[0]) && q[q.len() - 1] <= m.queries[i]);
        }
    }
}

#[test]
fn hopskipjump_succeeds_only_inside_the_ball() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 4);
    let attack = HopSkipJump {
        query_budget: Some(800),
        ..HopSkipJump::default()
    };
    let tiny = ThreatModel::new(Norm::L2, 1e-3, (0.0, 1.0)).unwrap();
    let out = attack
        .run(
            &model,
            &x,
            &y,
            &tiny,
            &Goal::Untargeted,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
    assert!(
        out.success.iter().all(|&s| !s),
        "an L2 radius of 0.001 cannot hold an adversarial"
    );
    assert!(out.norms.iter().all(|&n| n <= 1e-3 * 1.001));
    // A wide ball (L2 6): every sample succeeds, and stops spending queries once inside it.
    let wide = ThreatModel::new(Norm::L2, 6.0, (0.0, 1.0)).unwrap();
    let out = attack
        .run(
            &model,
            &x,
            &y,
            &wide,
            &Goal::Untargeted,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
    let preds = argmax_rows(&model.logits(&out.adv).unwrap(), model.classes());
    for i in 0..y.len() {
        assert!(
            out.success[i] && preds[i] != y[i] && out.norms[i] <= 6.0,
            "sample {i}: success {} norm {} queries {}",
            out.success[i],
            out.norms[i],
            out.queries[i]
        );
        assert!(
            out.queries[i] < 800,
            "sample {i} spent its whole budget inside the ball"
        );
    }
}

#[test]
fn simba_respects_its_budget_and_counts_exactly() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 8);
    let d = model.input_len();
    let wide = ThreatModel::new(Norm::L2, 1e3, (0.0, 1.0)).unwrap();
    let mut fooled = Vec::new();
    for basis in [SimbaBasis::Dct, SimbaBasis::Pixel] {
        let budget = 1000u64;
        let attack = Simba {
            basis,
            step: 0.3,
            query_budget: budget as usize,
            freq: None,
        };
        let (out, spent) = run_counted(&attack, &model, &x, &y, &wide, 0);
        assert_eq!(
            out.queries.iter().sum::<u64>(),
            spent,
            "{basis:?}: exact query count"
        );
        assert_eq!(out.forwards, spent);
        let preds = argmax_rows(&model.logits(&out.adv).unwrap(), model.classes());
        for i in 0..y.len() {
            assert!(
                out.queries[i] <= budget,
                "{basis:?}: {} > {budget}",
                out.queries[i]
            );
            if out.success[i] {
                assert_ne!(preds[i], y[i], "{basis:?}: claimed success not re-checked");
            } else {
                // A sample that was not fooled ran until its budget or its basis ran out.
                assert!(out.queries[i] == budget || out.queries[i] >= d as u64);
            }
        }
        fooled.push(out.success.iter().filter(|&&s| s).count());
    }
    assert!(
        fooled[0] >= 2,
        "SimBA-DCT fooled only {} of 8 in 1000 queries",
        fooled[0]
    );
}

#[test]
fn square_honours_its_budget_per_sample() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 8);
    let threat = ThreatModel::new(Norm::Linf, 0.3, (0.0, 1.0)).unwrap();
    let attack = Square {
        queries: 200,
        ..Square::default()
    };
    let (out, spent) = run_counted(&attack, &model, &x, &y, &threat, 0);
    assert_eq!(out.queries.iter().sum::<u64>(), spent);
    for i in 0..y.len() {
        assert!(out.queries[i] <= 200);
        if !out.success[i] {
            assert_eq!(out.queries[i], 200);
        }
    }
}
