//! Minimal-perturbation attacks, FAB and box-constrained L-BFGS: FAB's hyperplane ∩ box projection
//! against brute force, exact distances on affine models, the bundled MNIST model (every success
//! re-checked by a forward pass), determinism, the ε criterion and errors.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_attack::attack::clearly_reached;
use ruse_attack::deepfool::{DeepFool, MinimalPerturbation};
use ruse_attack::fab::{project_onto_hyperplane, Fab};
use ruse_attack::lbfgs::Lbfgs;
use ruse_attack::model::argmax_rows;
use ruse_attack::suite::Suite;
use ruse_attack::{Attack, AttackOutcome, Goal, Model, Norm, ThreatModel};
use ruse_graph::{Graph, Op, Operand};

mod common;
use common::default_model;

fn data(n: usize) -> (Vec<f32>, Vec<usize>) {
    let d = ruse_data::bundled_mnist_test().unwrap();
    let idx: Vec<usize> = (0..n).collect();
    d.gather(&idx)
}

/// f(x) = W x + b on `dim` inputs and `classes` outputs, inside `domain`.
fn affine(w: Vec<f32>, b: Vec<f32>, dim: usize, domain: (f32, f32)) -> Graph {
    let classes = b.len();
    let mut g = Graph::new("affine", "x", vec![dim]);
    g.input_domain = domain;
    let w = Tensor::from_vec(w, (classes, dim), &Device::Cpu).unwrap();
    let b = Tensor::from_vec(b, classes, &Device::Cpu).unwrap();
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
    g
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn delta(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(p, q)| p - q).collect()
}

/// Every claimed success is misclassified (targeted: of the target class) by a fresh forward pass,
/// inside the domain, and its reported norm is its real norm.
fn check_successes(
    model: &Model,
    x: &[f32],
    y: &[usize],
    targets: Option<&[usize]>,
    m: &MinimalPerturbation,
    norm: Norm,
) {
    let (adv, success, norms) = (&m.adv, &m.success, &m.norms);
    let d = model.input_len();
    let k = model.classes();
    let logits = model.logits(adv).unwrap();
    let preds = argmax_rows(&logits, k);
    for i in 0..y.len() {
        if !success[i] {
            continue;
        }
        match targets {
            Some(t) => assert_eq!(preds[i], t[i], "sample {i}: not of its target class"),
            None => assert_ne!(
                preds[i], y[i],
                "sample {i}: claimed success not misclassified"
            ),
        }
        // Not decided by a hair: the same verdict survives another batch's rounding.
        if preds[i] != y[i] {
            assert!(
                clearly_reached(&logits[i * k..(i + 1) * k], y[i], targets.map(|t| t[i])),
                "sample {i}: adversarial by a razor-thin margin"
            );
        }
        let a = &adv[i * d..(i + 1) * d];
        assert!(
            a.iter().all(|v| (0.0..=1.0).contains(v)),
            "sample {i} outside the domain"
        );
        let n = norm.of(&delta(a, &x[i * d..(i + 1) * d]));
        assert!(
            (n - norms[i]).abs() <= 1e-4 * n.max(1.0),
            "sample {i}: norm {n} reported as {}",
            norms[i]
        );
    }
}

/// The smallest ‖δ‖ with wᵀδ = r and p + δ in the box, by scanning the first D − 1 coordinates
/// (D = 2 or 3) on a grid and solving for the last (None: no grid point reaches the hyperplane).
fn brute_force(norm: Norm, p: &[f32], w: &[f32], r: f32, lo: f32, hi: f32) -> Option<f32> {
    let dim = p.len();
    let steps: usize = if dim == 2 { 100_000 } else { 1500 };
    let grid =
        |s: usize, i: usize| lo as f64 + (hi - lo) as f64 * s as f64 / steps as f64 - p[i] as f64;
    let mut best: Option<f64> = None;
    let outer = if dim == 3 { steps } else { 0 };
    for s1 in 0..=outer {
        for s0 in 0..=steps {
            let mut dl = [0f64; 3];
            dl[0] = grid(s0, 0);
            if dim == 3 {
                dl[1] = grid(s1, 1);
            }
            let partial: f64 = (0..dim - 1).map(|i| dl[i] * w[i] as f64).sum();
            let last = (r as f64 - partial) / w[dim - 1] as f64;
            let z = p[dim - 1] as f64 + last;
            if z < lo as f64 - 1e-9 || z > hi as f64 + 1e-9 {
                continue;
            }
            dl[dim - 1] = last;
            let v = &dl[..dim];
            let n = match norm {
                Norm::Linf => v.iter().fold(0f64, |m, a| m.max(a.abs())),
                Norm::L2 => v.iter().map(|a| a * a).sum::<f64>().sqrt(),
                Norm::L1 => v.iter().map(|a| a.abs()).sum(),
            };
            if best.is_none_or(|b| n < b) {
                best = Some(n);
            }
        }
    }
    best.map(|b| b as f32)
}

#[test]
fn hyperplane_box_projection_matches_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (lo, hi) = (0.0f32, 1.0f32);
    let mut feasible_seen = [0usize; 2];
    for case in 0..60 {
        let dim = if case % 3 == 2 { 3 } else { 2 };
        let p: Vec<f32> = (0..dim).map(|_| rng.random_range(lo..hi)).collect();
        let w: Vec<f32> = (0..dim)
            .map(|_| {
                let v: f32 = rng.random_range(-2.0..2.0);
                if v.abs() < 0.2 {
                    v.signum() * 0.2
                } else {
                    v
                }
            })
            .collect();
        let r: f32 = rng.random_range(-1.5..1.5);
        for norm in [Norm::Linf, Norm::L2, Norm::L1] {
            let dl = project_onto_hyperplane(norm, &p, &w, r, (lo, hi));
            assert!(
                p.iter().zip(&dl).all(|(a, b)| (lo..=hi).contains(&(a + b))),
                "case {case} {norm}: outside the box"
            );
            let reached: f32 = dl.iter().zip(&w).map(|(a, b)| a * b).sum();
            let brute = brute_force(norm, &p, &w, r, lo, hi);
            let got = norm.of(&dl);
            match brute {
                Some(want) => {
                    feasible_seen[0] += 1;
                    assert!(
                        (reached - r).abs() < 1e-4,
                        "case {case} {norm}: wᵀδ = {reached}, want {r}"
                    );
                    let tol = 2e-3 * (1.0 + want) * if dim == 3 { 5.0 } else { 1.0 };
                    assert!(
                        got <= want + tol && got >= want - tol,
                        "case {case} {norm}: projection norm {got}, brute force {want} (p {p:?}, w {w:?}, r {r})"
                    );
                }
                None => {
                    feasible_seen[1] += 1;
                    // Out of reach: every coordinate pushed to the bound that helps most.
                    let max_reach: f32 = p
                        .iter()
                        .zip(&w)
                        .map(|(&pi, &wi)| {
                            if wi * r.signum() > 0.0 {
                                wi * (hi - pi)
                            } else {
                                wi * (lo - pi)
                            }
                        })
                        .sum();
                    assert!(
                        (reached - max_reach).abs() < 1e-4 && max_reach.abs() <= r.abs() + 1e-3,
                        "case {case} {norm}: infeasible case reaches {reached}, box allows {max_reach}, want {r}"
                    );
                }
            }
        }
    }
    assert!(
        feasible_seen[0] > 50 && feasible_seen[1] > 5,
        "cases: {feasible_seen:?}"
    );
}

#[test]
fn fab_finds_the_exact_distance_to_an_affine_classifier() {
    // Four classes on six inputs; the box is far away, so the exact minimal distance is
    // min over c ≠ y of |f_c − f_y| / ‖w_c − w_y‖_dual.
    let dim = 6;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w: Vec<f32> = (0..4 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..4).map(|_| rng.random_range(-0.5..0.5)).collect();
    let g = affine(w.clone(), b.clone(), dim, (-100.0, 100.0));
    let model = Model::new(&g).unwrap();
    let n = 8;
    let x: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y = argmax_rows(&model.logits(&x).unwrap(), 4);
    for (norm, dual) in [
        (Norm::L2, Norm::L2),
        (Norm::Linf, Norm::L1),
        (Norm::L1, Norm::Linf),
    ] {
        let exact: Vec<f32> = (0..n)
            .map(|i| {
                let xi = &x[i * dim..(i + 1) * dim];
                let z = |c: usize| -> f32 {
                    w[c * dim..(c + 1) * dim]
                        .iter()
                        .zip(xi)
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        + b[c]
                };
                (0..4)
                    .filter(|&c| c != y[i])
                    .map(|c| {
                        let dw: Vec<f32> = (0..dim)
                            .map(|t| w[c * dim + t] - w[y[i] * dim + t])
                            .collect();
                        (z(y[i]) - z(c)) / dual.of(&dw)
                    })
                    .fold(f32::INFINITY, f32::min)
            })
            .collect();
        for fab in [Fab::default(), Fab::targeted(3)] {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let m = fab
                .minimal(&model, &x, &y, norm, g.input_domain, 1.0, &mut rng)
                .unwrap();
            for (i, &want) in exact.iter().enumerate() {
                assert!(m.success[i], "{norm} {}: sample {i} not fooled", fab.name());
                assert!(
                    m.norms[i] >= want * 0.999 && m.norms[i] <= want * 1.03 + 1e-4,
                    "{norm} {}: sample {i} at {} vs exact {want}",
                    fab.name(),
                    m.norms[i],
                );
            }
        }
        if norm != Norm::L1 {
            // DeepFool (overshoot 2%) on the same model lands within its own bounds, FAB at or below it.
            let df = DeepFool::default()
                .minimal(&model, &x, &y, norm, g.input_domain)
                .unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let m = Fab::default()
                .minimal(&model, &x, &y, norm, g.input_domain, 1.0, &mut rng)
                .unwrap();
            for i in 0..n {
                if df.success[i] {
                    assert!(
                        m.norms[i] <= df.norms[i] * 1.001 + 1e-5,
                        "{norm}: FAB {} > DeepFool {}",
                        m.norms[i],
                        df.norms[i]
                    );
                }
            }
        }
    }
}

#[test]
fn fab_respects_the_box_on_an_affine_classifier() {
    // Two classes, and the coordinate that matters most (x₃, weight 3) has only 0.1 of room before
    // the box stops it: the exact answer is the hyperplane ∩ box projection of the clean input.
    let w = vec![1.0f32, 0.5, -2.0, 0.25, -1.0, 0.0, 1.0, 0.0];
    let b = vec![2.0f32, 0.0];
    let g = affine(w, b, 4, (0.0, 1.0));
    let model = Model::new(&g).unwrap();
    let x = vec![0.5f32, 0.5, 0.9, 0.5];
    let z = model.logits(&x).unwrap();
    assert!(z[0] > z[1]);
    // Boundary z_1 − z_0 = 0 with ∇(z_1 − z_0) = (−2, −0.5, 3, −0.25).
    let wd = [-2.0f32, -0.5, 3.0, -0.25];
    for norm in [Norm::L2, Norm::Linf, Norm::L1] {
        let want = norm.of(&project_onto_hyperplane(
            norm,
            &x,
            &wd,
            z[0] - z[1],
            (0.0, 1.0),
        ));
        let unconstrained = (z[0] - z[1])
            / match norm {
                Norm::L2 => Norm::L2.of(&wd),
                Norm::Linf => Norm::L1.of(&wd),
                Norm::L1 => Norm::Linf.of(&wd),
            };
        assert!(
            want > unconstrained * 1.05,
            "{norm}: the box should matter here"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let m = Fab::default()
            .minimal(&model, &x, &[0], norm, (0.0, 1.0), 0.5, &mut rng)
            .unwrap();
        assert!(m.success[0]);
        assert!(
            m.norms[0] >= want * 0.999 && m.norms[0] <= want * 1.03 + 1e-4,
            "{norm}: {} vs exact {want}",
            m.norms[0]
        );
        check_successes(&model, &x, &[0], None, &m, norm);
    }
}

#[test]
fn fab_beats_deepfool_on_the_mnist_model() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(12);
    for norm in [Norm::L2, Norm::Linf] {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let fab = Fab {
            steps: 30,
            ..Fab::default()
        };
        let m = fab
            .minimal(&model, &x, &y, norm, (0.0, 1.0), 0.3, &mut rng)
            .unwrap();
        check_successes(&model, &x, &y, None, &m, norm);
        let fooled = m.success.iter().filter(|&&s| s).count();
        assert_eq!(fooled, 12, "{norm}: FAB fooled {fooled} of 12");
        let df = DeepFool::default()
            .minimal(&model, &x, &y, norm, (0.0, 1.0))
            .unwrap();
        let ok: Vec<usize> = (0..12).filter(|&i| df.success[i]).collect();
        let fab_med = median(ok.iter().map(|&i| m.norms[i]).collect());
        let df_med = median(ok.iter().map(|&i| df.norms[i]).collect());
        eprintln!("{norm}: FAB median {fab_med}, DeepFool {df_med}");
        assert!(
            fab_med <= df_med,
            "{norm}: FAB median {fab_med} vs DeepFool {df_med}"
        );
    }
}

#[test]
fn fab_t_in_a_threat_model_succeeds_iff_within_eps() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(16);
    let fab_t = Fab {
        steps: 20,
        ..Fab::targeted(3)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let m = fab_t
        .minimal(&model, &x, &y, Norm::Linf, (0.0, 1.0), 0.1, &mut rng)
        .unwrap();
    check_successes(&model, &x, &y, None, &m, Norm::Linf);
    let eps = median(m.norms.clone());
    let threat = ThreatModel::new(Norm::Linf, eps, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let out: AttackOutcome = fab_t
        .run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)
        .unwrap();
    let preds = argmax_rows(&model.logits(&out.adv).unwrap(), 10);
    for i in 0..16 {
        let n = Norm::Linf.of(&delta(
            &out.adv[i * 784..(i + 1) * 784],
            &x[i * 784..(i + 1) * 784],
        ));
        assert!(
            n <= eps * (1.0 + 1e-5) + 1e-7,
            "sample {i} outside the ball"
        );
        assert_eq!(
            out.success[i],
            preds[i] != y[i],
            "sample {i}: success not re-checked"
        );
        if m.success[i] && m.norms[i] <= eps {
            assert!(
                out.success[i],
                "sample {i}: a minimal adversarial within ε was not counted"
            );
        }
    }
    assert!(out.gradients > 0 && out.forwards > 0);
}

#[test]
fn fab_with_restarts_is_seeded() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(4);
    let fab = Fab {
        steps: 10,
        restarts: 2,
        ..Fab::default()
    };
    let run = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        fab.minimal(&model, &x, &y, Norm::L2, (0.0, 1.0), 1.0, &mut rng)
            .unwrap()
    };
    let (a, b) = (run(9), run(9));
    assert_eq!(a.adv, b.adv);
    assert_eq!(a.norms, b.norms);
}

#[test]
fn lbfgs_targeted_fools_the_mnist_model_with_small_l2_norms() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(12);
    let targets: Vec<usize> = y.iter().map(|l| (l + 1) % 10).collect();
    let lbfgs = Lbfgs::default();
    let m = lbfgs
        .minimal(&model, &x, &y, Some(&targets), (0.0, 1.0))
        .unwrap();
    check_successes(&model, &x, &y, Some(&targets), &m, Norm::L2);
    let fooled = m.success.iter().filter(|&&s| s).count();
    assert!(fooled >= 11, "L-BFGS reached the target on {fooled} of 12");
    let med = median(
        (0..12)
            .filter(|&i| m.success[i])
            .map(|i| m.norms[i])
            .collect(),
    );
    eprintln!("lbfgs targeted median {med}: {:?}", m.norms);
    assert!(med < 2.5, "median targeted L2 perturbation {med}");
}

#[test]
fn lbfgs_is_deterministic_and_counts_success_only_within_eps() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(4);
    let targets: Vec<usize> = y.iter().map(|l| (l + 3) % 10).collect();
    let lbfgs = Lbfgs {
        search_steps: 5,
        ..Lbfgs::default()
    };
    let m = lbfgs
        .minimal(&model, &x, &y, Some(&targets), (0.0, 1.0))
        .unwrap();
    // Same input, same output (the attack has no randomness).
    let again = lbfgs
        .minimal(&model, &x, &y, Some(&targets), (0.0, 1.0))
        .unwrap();
    assert_eq!(again.adv, m.adv);
    // In a threat model: success iff the targeted perturbation fits in the ball, re-checked.
    let eps = median(m.norms.clone());
    let threat = ThreatModel::new(Norm::L2, eps, (0.0, 1.0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let goal = Goal::Targeted(targets.clone());
    let out = lbfgs.run(&model, &x, &y, &threat, &goal, &mut rng).unwrap();
    let preds = argmax_rows(&model.logits(&out.adv).unwrap(), 10);
    for i in 0..4 {
        assert!(
            out.norms[i] <= eps * (1.0 + 1e-5) + 1e-6,
            "sample {i} outside the ball"
        );
        assert_eq!(out.success[i], preds[i] == targets[i]);
        if m.success[i] && m.norms[i] <= eps {
            assert!(
                out.success[i],
                "sample {i}: an adversarial within ε was not counted"
            );
        }
    }
    assert!(out.success.iter().any(|&s| s) && out.gradients > 0);
}

#[test]
fn lbfgs_untargeted_is_not_worse_than_its_targeted_form() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(8);
    let lbfgs = Lbfgs {
        search_steps: 6,
        ..Lbfgs::default()
    };
    let m = lbfgs.minimal(&model, &x, &y, None, (0.0, 1.0)).unwrap();
    check_successes(&model, &x, &y, None, &m, Norm::L2);
    assert!(
        m.success.iter().all(|&s| s),
        "untargeted L-BFGS missed a sample"
    );
    let df = DeepFool::default()
        .minimal(&model, &x, &y, Norm::L2, (0.0, 1.0))
        .unwrap();
    let (l_med, d_med) = (median(m.norms.clone()), median(df.norms.clone()));
    eprintln!("lbfgs untargeted median {l_med}, deepfool {d_med}");
    assert!(
        l_med <= d_med * 1.25,
        "L-BFGS median {l_med} vs DeepFool {d_med}"
    );
}

#[test]
fn a_clear_margin_is_relative_to_the_logits() {
    // Untargeted: the best wrong class must beat the label by 1e-4·max(1, max|z|).
    assert!(clearly_reached(&[1.0, 1.01, 0.0], 0, None));
    assert!(!clearly_reached(&[1.0, 1.00001, 0.0], 0, None));
    assert!(!clearly_reached(&[2.0, 1.0, 0.0], 0, None));
    assert!(!clearly_reached(&[100.0, 100.005, 0.0], 0, None));
    assert!(clearly_reached(&[100.0, 100.05, 0.0], 0, None));
    // Targeted: the target must beat every other class.
    assert!(clearly_reached(&[1.0, 0.5, 1.1], 0, Some(2)));
    assert!(!clearly_reached(&[1.0, 1.2, 1.1], 0, Some(2)));
}

#[test]
fn the_standard_preset_has_fab_t_as_in_autoattack() {
    let names: Vec<String> = Suite::standard(Norm::Linf)
        .attacks
        .iter()
        .map(|a| a.name())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names[0].starts_with("apgd-ce") && names[1].starts_with("apgd-t"));
    assert!(
        names[2].starts_with("fab-t(100 steps × 9 targets)"),
        "{names:?}"
    );
    assert!(names[3].starts_with("square"));
    let l2: Vec<String> = Suite::standard(Norm::L2)
        .attacks
        .iter()
        .map(|a| a.name())
        .collect();
    assert!(l2.iter().any(|n| n.starts_with("fab-t")), "{l2:?}");
}

#[test]
fn bad_settings_are_clear_errors() {
    let g = default_model();
    let model = Model::new(&g).unwrap();
    let (x, y) = data(2);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let linf = ThreatModel::new(Norm::Linf, 0.1, (0.0, 1.0)).unwrap();
    let e = Lbfgs::default()
        .run(&model, &x, &y, &linf, &Goal::Untargeted, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("L2"), "{e}");
    let e = Fab::default()
        .run(&model, &x, &y, &linf, &Goal::Targeted(vec![1, 2]), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("untargeted"), "{e}");
    let e = Fab {
        steps: 0,
        ..Fab::default()
    }
    .run(&model, &x, &y, &linf, &Goal::Untargeted, &mut rng)
    .unwrap_err()
    .to_string();
    assert!(e.contains("step"), "{e}");
    assert!(Fab::default()
        .run(&model, &x, &[3, 12], &linf, &Goal::Untargeted, &mut rng)
        .is_err());
}
