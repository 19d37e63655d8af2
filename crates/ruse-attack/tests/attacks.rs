//! Attacks on the bundled default model and MNIST subset: validity of every adversarial (inside
//! the ball and the domain, re-checked by a forward pass), strength ordering, determinism, errors.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::apgd::{Apgd, ApgdTargeted};
use ruse_attack::fgsm::Fgsm;
use ruse_attack::loss::Loss;
use ruse_attack::model::argmax_rows;
use ruse_attack::pgd::Pgd;
use ruse_attack::suite::{Suite, SuiteSettings};
use ruse_attack::{Attack, AttackOutcome, Goal, Model, Norm, ThreatModel};
use ruse_graph::Graph;

mod common;
use common::default_model;

fn data(n: usize) -> (Vec<f32>, Vec<usize>) {
    let d = ruse_data::bundled_mnist_test().unwrap();
    let idx: Vec<usize> = (0..n).collect();
    d.gather(&idx)
}

fn check_valid(
    out: &AttackOutcome,
    x: &[f32],
    labels: &[usize],
    threat: &ThreatModel,
    model: &Model,
) {
    let d = model.input_len();
    let preds = argmax_rows(&model.logits(&out.adv).unwrap(), model.classes());
    for i in 0..labels.len() {
        let a = &out.adv[i * d..(i + 1) * d];
        let delta: Vec<f32> = a
            .iter()
            .zip(&x[i * d..(i + 1) * d])
            .map(|(p, q)| p - q)
            .collect();
        assert!(
            threat.norm.of(&delta) <= threat.eps * (1.0 + 1e-4) + 1e-6,
            "sample {i} outside the ball"
        );
        assert!(
            a.iter().all(|v| (0.0..=1.0).contains(v)),
            "sample {i} outside the domain"
        );
        if out.success[i] {
            assert_ne!(
                preds[i], labels[i],
                "sample {i}: claimed success is not misclassified"
            );
        }
    }
}

fn rate(out: &AttackOutcome) -> f64 {
    out.success.iter().filter(|&&s| s).count() as f64 / out.success.len() as f64
}

#[test]
fn stronger_attacks_fool_more_and_every_adversarial_is_valid() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(64);
    let threat = ThreatModel::new(Norm::Linf, 0.3, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let fgsm = Fgsm
        .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
        .unwrap();
    let pgd = Pgd {
        steps: 20,
        ..Pgd::default()
    }
    .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
    .unwrap();
    let apgd = Apgd::new(Loss::CrossEntropy, 20)
        .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
        .unwrap();
    for out in [&fgsm, &pgd, &apgd] {
        check_valid(out, &x, &y, &threat, &model);
    }
    // An undefended MNIST CNN at ε = 0.3 is almost always fooled by PGD (Madry et al.).
    assert!(rate(&pgd) >= 0.95, "pgd success {}", rate(&pgd));
    assert!(rate(&apgd) >= 0.95, "apgd success {}", rate(&apgd));
    assert!(
        rate(&fgsm) <= rate(&pgd),
        "fgsm {} > pgd {}",
        rate(&fgsm),
        rate(&pgd)
    );
    // Every sample takes the first step; fooled samples then leave the batch, so the count lies
    // between one step's and all steps' worth and, with most samples fooled, well below the top.
    assert!(
        pgd.gradients >= 64 && pgd.gradients < 20 * 64,
        "gradient evaluations {} (one step: 64, every step: {})",
        pgd.gradients,
        20 * 64
    );
}

#[test]
fn l2_and_l1_attacks_stay_in_their_balls() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(16);
    for (norm, eps) in [(Norm::L2, 2.0), (Norm::L1, 10.0)] {
        let threat = ThreatModel::new(norm, eps, (0.0, 1.0)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = Pgd {
            steps: 20,
            ..Pgd::default()
        }
        .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
        .unwrap();
        check_valid(&out, &x, &y, &threat, &model);
        assert!(rate(&out) > 0.0, "{norm}: nothing fooled at ε = {eps}");
    }
}

#[test]
fn zero_epsilon_fools_nothing_that_is_classified_right() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(32);
    let threat = ThreatModel::new(Norm::Linf, 0.0, (0.0, 1.0)).unwrap();
    let clean = argmax_rows(&model.logits(&x).unwrap(), 10);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let out = Pgd::default()
        .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
        .unwrap();
    for i in 0..y.len() {
        assert_eq!(out.success[i], clean[i] != y[i]);
    }
}

#[test]
fn targeted_attacks_reach_their_targets() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(32);
    let targets: Vec<usize> = y.iter().map(|l| (l + 1) % 10).collect();
    let threat = ThreatModel::new(Norm::Linf, 0.3, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let goal = Goal::Targeted(targets.clone());
    let out = Pgd {
        steps: 40,
        ..Pgd::default()
    }
    .run(&model, &x, &y, &threat, &goal, &mut rng)
    .unwrap();
    let preds = argmax_rows(&model.logits(&out.adv).unwrap(), 10);
    let hits = (0..y.len())
        .filter(|&i| out.success[i])
        .inspect(|&i| assert_eq!(preds[i], targets[i]))
        .count();
    assert!(
        hits as f64 >= 0.8 * y.len() as f64,
        "only {hits} of {} reached their target",
        y.len()
    );
}

#[test]
fn same_seed_same_adversarials() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(8);
    let threat = ThreatModel::new(Norm::Linf, 0.1, (0.0, 1.0)).unwrap();
    let run = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Apgd::new(Loss::Dlr, 10)
            .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
            .unwrap()
            .adv
    };
    assert_eq!(run(7), run(7));
}

#[test]
fn suite_keeps_the_per_sample_worst_case() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(48);
    let threat = ThreatModel::new(Norm::Linf, 0.1, (0.0, 1.0)).unwrap();
    let suite = Suite {
        attacks: vec![
            Box::new(Fgsm),
            Box::new(Pgd {
                steps: 10,
                ..Pgd::default()
            }),
            Box::new(ApgdTargeted {
                steps: 10,
                top_k: 3,
            }),
        ],
    };
    let settings = SuiteSettings {
        threat,
        seed: 5,
        batch: 16,
    };
    let r = suite.run(&model, &x, &y, &settings, |_, _| {}).unwrap();
    assert!(r.robust_accuracy <= r.clean_accuracy);
    let mut prev = r.clean_accuracy;
    for row in &r.rows {
        assert!(
            row.robust_accuracy <= prev,
            "robust accuracy rose after {}",
            row.attack
        );
        prev = row.robust_accuracy;
    }
    assert_eq!(prev, r.robust_accuracy);
    // Every sample counted as fooled has a re-checked misclassified adversarial in the ball.
    let preds = argmax_rows(&model.logits(&r.adv).unwrap(), 10);
    for i in 0..y.len() {
        if r.fooled_by[i].is_some() {
            assert_ne!(preds[i], y[i]);
            let delta: Vec<f32> = r.adv[i * 784..(i + 1) * 784]
                .iter()
                .zip(&x[i * 784..(i + 1) * 784])
                .map(|(a, b)| a - b)
                .collect();
            assert!(Norm::Linf.of(&delta) <= 0.1 + 1e-6);
        }
    }
    // Same seed, same verdicts.
    let again = suite.run(&model, &x, &y, &settings, |_, _| {}).unwrap();
    assert_eq!(again.fooled_by, r.fooled_by);
}

#[test]
fn apgd_checkpoints_follow_the_paper() {
    assert_eq!(
        Apgd::checkpoints(100),
        vec![0, 22, 41, 57, 70, 80, 87, 93, 99]
    );
}

#[test]
fn bad_settings_are_clear_errors() {
    assert!(ThreatModel::new(Norm::Linf, -0.1, (0.0, 1.0)).is_err());
    assert!(ThreatModel::new(Norm::Linf, f32::NAN, (0.0, 1.0)).is_err());
    assert!(ThreatModel::new(Norm::Linf, 2.0, (0.0, 1.0))
        .unwrap_err()
        .to_string()
        .contains("exceeds"));
    assert!("l7".parse::<Norm>().is_err());
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, _) = data(2);
    let threat = ThreatModel::new(Norm::Linf, 0.1, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let e = Fgsm
        .run(&model, &x, &[3, 12], &threat, &Goal::Untargeted, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12"), "{e}");
    let e = Fgsm
        .run(&model, &x, &[3], &threat, &Goal::Untargeted, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels"), "{e}");
    assert!(Suite::preset("huge", Norm::Linf).is_err());
}

#[test]
fn deepfool_finds_the_exact_distance_to_a_linear_boundary() {
    use candle_core::{Device, Tensor};
    use ruse_attack::deepfool::DeepFool;
    use ruse_graph::{Op, Operand};
    // f(x) = W x + b with two classes: the boundary is the hyperplane (w1 − w0)·x + (b1 − b0) = 0.
    let mut g = Graph::new("linear", "x", vec![4]);
    g.input_domain = (-100.0, 100.0);
    let w = Tensor::from_vec(
        vec![1.0f32, -2.0, 0.5, 3.0, -1.0, 1.0, 2.0, 0.0],
        (2, 4),
        &Device::Cpu,
    )
    .unwrap();
    let b = Tensor::from_vec(vec![0.3f32, -0.1], 2, &Device::Cpu).unwrap();
    let (w, b) = (g.add_param("w", w, true), g.add_param("b", b, true));
    g.add_node(
        "fc",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_b: true,
        },
        vec![Operand::Value(0), Operand::Param(w), Operand::Param(b)],
    )
    .unwrap();
    let model = Model::new(&g).unwrap();
    let x = vec![0.5f32, 0.2, -0.3, 0.4];
    let z = model.logits(&x).unwrap();
    let label = if z[0] > z[1] { 0 } else { 1 };
    let dw: Vec<f32> = (0..4)
        .map(|j| [-1.0f32, 1.0, 2.0, 0.0][j] - [1.0f32, -2.0, 0.5, 3.0][j])
        .collect();
    let margin = (z[0] - z[1]).abs();
    let df = DeepFool::default();
    for (norm, dual) in [
        (Norm::L2, dw.iter().map(|v| v * v).sum::<f32>().sqrt()),
        (Norm::Linf, dw.iter().map(|v| v.abs()).sum::<f32>()),
    ] {
        let m = df
            .minimal(&model, &x, &[label], norm, g.input_domain)
            .unwrap();
        assert!(m.success[0], "{norm}: boundary not crossed");
        let want = margin / dual;
        assert!(
            m.norms[0] >= want * 0.999 && m.norms[0] <= want * 1.03 + 1e-3,
            "{norm}: {} vs exact {want}",
            m.norms[0]
        );
    }
}

#[test]
fn deepfool_fools_the_mnist_model_and_respects_the_ball() {
    use ruse_attack::deepfool::DeepFool;
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(24);
    let m = DeepFool::default()
        .minimal(&model, &x, &y, Norm::L2, (0.0, 1.0))
        .unwrap();
    let preds = argmax_rows(&model.logits(&m.adv).unwrap(), 10);
    let fooled = (0..24)
        .filter(|&i| m.success[i])
        .inspect(|&i| assert_ne!(preds[i], y[i]))
        .count();
    assert!(fooled >= 22, "DeepFool fooled only {fooled} of 24");
    let threat = ThreatModel::new(Norm::L2, 1.0, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = DeepFool::default()
        .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
        .unwrap();
    check_valid(&out, &x, &y, &threat, &model);
}

#[test]
fn apgd_t_fools_like_autoattack_counts_it() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(32);
    let threat = ThreatModel::new(Norm::Linf, 0.3, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let out = ApgdTargeted {
        steps: 20,
        top_k: 3,
    }
    .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
    .unwrap();
    check_valid(&out, &x, &y, &threat, &model);
    assert!(rate(&out) >= 0.9, "apgd-t success {}", rate(&out));
}

#[test]
fn dlr_refuses_models_with_too_few_classes() {
    use candle_core::{Device, Tensor};
    use ruse_graph::{Op, Operand};
    let mut g = Graph::new("binary", "x", vec![2]);
    let w = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], (2, 2), &Device::Cpu).unwrap();
    let w = g.add_param("w", w, true);
    g.add_node(
        "fc",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_b: true,
        },
        vec![Operand::Value(0), Operand::Param(w)],
    )
    .unwrap();
    let model = Model::new(&g).unwrap();
    let threat = ThreatModel::new(Norm::Linf, 0.1, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let e = Apgd::new(Loss::Dlr, 5)
        .run(
            &model,
            &[0.2, 0.7],
            &[1],
            &threat,
            &Goal::Untargeted,
            &mut rng,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 3 classes"), "{e}");
}

#[test]
fn square_is_black_box_and_fools_the_mnist_model() {
    use ruse_attack::square::Square;
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(32);
    let threat = ThreatModel::new(Norm::Linf, 0.3, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let out = Square {
        queries: 300,
        p_init: 0.8,
    }
    .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
    .unwrap();
    check_valid(&out, &x, &y, &threat, &model);
    assert_eq!(
        out.gradients, 0,
        "a black-box attack must not use gradients"
    );
    assert!(
        out.forwards <= 300 * 32,
        "query budget exceeded: {}",
        out.forwards
    );
    assert!(rate(&out) >= 0.8, "square success {}", rate(&out));
    let l2 = ThreatModel::new(Norm::L2, 1.0, (0.0, 1.0)).unwrap();
    assert!(Square::default()
        .run(&model, &x, &y, &l2, &Goal::Untargeted, &mut rng)
        .is_err());
}

#[test]
fn carlini_wagner_finds_small_l2_perturbations() {
    use ruse_attack::cw::CarliniWagner;
    use ruse_attack::deepfool::DeepFool;
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(16);
    let cw = CarliniWagner {
        steps: 60,
        binary_steps: 5,
        ..CarliniWagner::default()
    };
    let (adv, success, norms) = cw.minimal(&model, &x, &y, (0.0, 1.0)).unwrap();
    let preds = argmax_rows(&model.logits(&adv).unwrap(), 10);
    let fooled: Vec<usize> = (0..16).filter(|&i| success[i]).collect();
    assert!(fooled.len() >= 14, "C&W fooled {} of 16", fooled.len());
    for &i in &fooled {
        assert_ne!(preds[i], y[i]);
        let n = Norm::L2.of(&adv[i * 784..(i + 1) * 784]
            .iter()
            .zip(&x[i * 784..(i + 1) * 784])
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>());
        assert!(
            (n - norms[i]).abs() < 1e-3
                && adv[i * 784..(i + 1) * 784]
                    .iter()
                    .all(|v| (0.0..=1.0).contains(v))
        );
    }
    // C&W optimises the norm; its median should not be far above DeepFool's.
    let df = DeepFool::default()
        .minimal(&model, &x, &y, Norm::L2, (0.0, 1.0))
        .unwrap();
    let med = |mut v: Vec<f32>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let cw_med = med(fooled.iter().map(|&i| norms[i]).collect());
    let df_med = med((0..16)
        .filter(|&i| df.success[i])
        .map(|i| df.norms[i])
        .collect());
    assert!(
        cw_med <= df_med * 1.25,
        "C&W median {cw_med} vs DeepFool {df_med}"
    );
}

#[test]
fn a_model_without_class_scores_is_refused() {
    use ruse_graph::{Op, Operand};
    let mut g = Graph::new("image-out", "x", vec![1, 4, 4]);
    g.add_node("id", Op::Relu, vec![Operand::Value(0)]).unwrap();
    let e = Model::new(&g)
        .err()
        .expect("an image-to-image model is not a classifier")
        .to_string();
    assert!(e.contains("not a vector"), "{e}");
}
