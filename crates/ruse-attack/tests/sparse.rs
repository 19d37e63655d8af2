//! Sparse attacks on the bundled default model: one-pixel DE and Sparse-RS find adversarials that
//! change at most k pixels (re-checked by a fresh forward pass), count their queries exactly,
//! stop at their budget and repeat themselves under the same seed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::model::argmax_rows;
use ruse_attack::onepixel::OnePixel;
use ruse_attack::query::changed_pixels;
use ruse_attack::sparse_rs::SparseRs;
use ruse_attack::{Attack, AttackOutcome, Goal, Model, Norm, ThreatModel};

mod common;
use common::{correct, default_model, run_counted};

/// Every claimed success is misclassified on a fresh forward pass, changes ≤ k pixels, stays in
/// the domain; the per-sample queries add up to the model's forward count and respect `budget`.
fn check(
    out: &AttackOutcome,
    x: &[f32],
    y: &[usize],
    k: usize,
    budget: u64,
    model: &Model,
    forwards: u64,
) {
    let d = model.input_len();
    let preds = argmax_rows(&model.logits(&out.adv).unwrap(), model.classes());
    for i in 0..y.len() {
        let a = &out.adv[i * d..(i + 1) * d];
        let px = changed_pixels(a, &x[i * d..(i + 1) * d], [1, 28, 28]);
        assert!(
            px <= k,
            "sample {i}: {px} pixels changed, more than k = {k}"
        );
        assert_eq!(out.norms[i], px as f32, "norms are pixel counts");
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        if out.success[i] {
            assert_ne!(preds[i], y[i], "sample {i}: claimed success not re-checked");
        }
        assert!(
            out.queries[i] <= budget,
            "sample {i} spent {} > {budget}",
            out.queries[i]
        );
    }
    assert_eq!(
        out.queries.iter().sum::<u64>(),
        forwards,
        "queries per sample are exact"
    );
    assert_eq!(out.forwards, forwards);
}

#[test]
fn sparse_rs_fools_with_few_pixels_and_more_pixels_fool_more() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 24);
    let threat = ThreatModel::new(Norm::Linf, 1.0, (0.0, 1.0)).unwrap();
    let mut rates = Vec::new();
    for k in [3usize, 20] {
        let attack = SparseRs {
            pixels: k,
            queries: 300,
            ..SparseRs::default()
        };
        let (out, spent) = run_counted(&attack, &model, &x, &y, &threat, 1);
        check(&out, &x, &y, k, 300, &model, spent);
        rates.push(out.success.iter().filter(|&&s| s).count());
    }
    assert!(
        rates[1] >= rates[0],
        "k = 20 fooled fewer than k = 3: {rates:?}"
    );
    assert!(
        rates[1] >= 12,
        "Sparse-RS with 20 pixels fooled only {} of 24",
        rates[1]
    );
}

#[test]
fn sparse_rs_is_deterministic_per_seed() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 6);
    let threat = ThreatModel::new(Norm::Linf, 1.0, (0.0, 1.0)).unwrap();
    let attack = SparseRs {
        pixels: 5,
        queries: 100,
        ..SparseRs::default()
    };
    let run = |s| {
        attack
            .run(
                &model,
                &x,
                &y,
                &threat,
                &Goal::Untargeted,
                &mut ChaCha8Rng::seed_from_u64(s),
            )
            .unwrap()
    };
    let (a, b) = (run(3), run(3));
    assert_eq!(a.adv, b.adv);
    assert_eq!(a.queries, b.queries);
}

#[test]
fn one_pixel_de_finds_few_pixel_adversarials_within_budget() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let threat = ThreatModel::new(Norm::Linf, 1.0, (0.0, 1.0)).unwrap();
    let (k, budget) = (5usize, 2000u64);
    // Most MNIST digits resist 5 pixels; attack those Sparse-RS shows a 5-pixel adversarial for.
    let (x0, y0) = correct(&model, 40);
    let scout = SparseRs {
        pixels: k,
        queries: 500,
        ..SparseRs::default()
    }
    .run(
        &model,
        &x0,
        &y0,
        &threat,
        &Goal::Untargeted,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    let d = model.input_len();
    let weak: Vec<usize> = (0..y0.len())
        .filter(|&i| scout.success[i])
        .take(6)
        .collect();
    assert!(
        weak.len() >= 3,
        "Sparse-RS found only {} 5-pixel adversarials",
        weak.len()
    );
    let x: Vec<f32> = weak
        .iter()
        .flat_map(|&i| x0[i * d..(i + 1) * d].to_vec())
        .collect();
    let y: Vec<usize> = weak.iter().map(|&i| y0[i]).collect();
    let attack = OnePixel {
        pixels: k,
        population: 100,
        generations: 100,
        query_budget: Some(budget as usize),
        ..OnePixel::default()
    };
    let (out, spent) = run_counted(&attack, &model, &x, &y, &threat, 0);
    check(&out, &x, &y, k, budget, &model, spent);
    let fooled = out.success.iter().filter(|&&s| s).count();
    assert!(
        fooled >= 1,
        "5-pixel DE fooled none of {} vulnerable digits",
        y.len()
    );
    // With binomial crossover the constraint and the counts hold as well.
    let crossed = OnePixel {
        crossover: Some(0.5),
        query_budget: Some(1000),
        ..attack.clone()
    };
    let (out2, spent2) = run_counted(&crossed, &model, &x, &y, &threat, 0);
    check(&out2, &x, &y, k, 1000, &model, spent2);
    // Failures spend whole populations up to the budget: 100 + 19·100 = 2000.
    for i in 0..y.len() {
        if !out.success[i] {
            assert_eq!(out.queries[i], budget);
        } else {
            assert_eq!(out.queries[i] % 100, 0, "queries come in whole populations");
        }
    }
}

#[test]
fn one_pixel_rejects_a_budget_below_one_population() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = correct(&model, 1);
    let threat = ThreatModel::new(Norm::Linf, 1.0, (0.0, 1.0)).unwrap();
    let attack = OnePixel {
        query_budget: Some(10),
        ..OnePixel::default()
    };
    let err = attack
        .run(
            &model,
            &x,
            &y,
            &threat,
            &Goal::Untargeted,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap_err();
    assert!(err.to_string().contains("population"), "{err}");
}
