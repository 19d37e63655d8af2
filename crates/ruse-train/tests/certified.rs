//! Certified (IBP) training: the training bounds really bound the network, equal ruse-verify's
//! sound IBP up to rounding, IBP training buys verified accuracy that plain training lacks, and
//! the same seed gives the same model.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use ruse_data::bundled_mnist_test;
use ruse_graph::zoo::Arch;
use ruse_train::certified::{
    crown_ibp_margins, input_box, margin_lower_bounds, output_bounds, verified_accuracy,
};
use ruse_train::{Defense, TrainConfig};

mod common;
use common::{flat, model, rows, run, weights};

fn batch(n: usize) -> (Tensor, Tensor, Vec<u32>) {
    let d = bundled_mnist_test().unwrap();
    let x = Tensor::from_slice(&d.images[..n * 784], (n, 1, 28, 28), &Device::Cpu).unwrap();
    let ys: Vec<u32> = d.labels[..n].iter().map(|&l| l as u32).collect();
    let y = Tensor::from_slice(&ys, n, &Device::Cpu).unwrap();
    (x, y, ys)
}

#[test]
fn ibp_bounds_contain_the_logits_of_points_in_the_ball() {
    let g = model(Arch::CnnSmall, 3);
    let p = g.param_tensors();
    let (n, eps) = (4, 0.05f32);
    let (x, y, ys) = batch(n);
    let out = output_bounds(&g, &p, input_box(&g, &x, eps).unwrap()).unwrap();
    let (lo, hi) = (flat(&out.lower), flat(&out.upper));
    let m = flat(&margin_lower_bounds(&g, &p, input_box(&g, &x, eps).unwrap(), &y).unwrap());
    let x0 = flat(&x);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for trial in 0..40 {
        // Random points, half of them corners of the box (where bounds are most often hit).
        let pt: Vec<f32> = x0
            .iter()
            .map(|&c| {
                let d = if trial % 2 == 0 {
                    rng.random_range(-eps..=eps)
                } else if rng.random_bool(0.5) {
                    eps
                } else {
                    -eps
                };
                (c + d).clamp(0.0, 1.0)
            })
            .collect();
        let z = flat(
            &g.forward(&Tensor::from_vec(pt, (n, 1, 28, 28), &Device::Cpu).unwrap())
                .unwrap(),
        );
        for i in 0..n * 10 {
            let tol = 1e-4 * (1.0 + z[i].abs());
            assert!(
                lo[i] - tol <= z[i] && z[i] <= hi[i] + tol,
                "logit {i}: {} outside [{}, {}]",
                z[i],
                lo[i],
                hi[i]
            );
        }
        for (s, &yi) in ys.iter().enumerate() {
            for j in 0..10 {
                let margin = z[s * 10 + yi as usize] - z[s * 10 + j];
                let tol = 1e-4 * (1.0 + margin.abs());
                assert!(
                    m[s * 10 + j] <= margin + tol,
                    "sample {s}, class {j}: margin {margin} below its lower bound {}",
                    m[s * 10 + j]
                );
            }
        }
    }
    // The folded specification is at least as tight as the margin of the output intervals.
    for (s, &yi) in ys.iter().enumerate() {
        for j in 0..10 {
            let naive = if j == yi as usize {
                0.0
            } else {
                lo[s * 10 + yi as usize] - hi[s * 10 + j]
            };
            assert!(m[s * 10 + j] >= naive - 1e-4, "{} < {naive}", m[s * 10 + j]);
        }
    }
}

#[test]
fn training_bounds_equal_ruse_verify_ibp_up_to_rounding() {
    for arch in [Arch::CnnSmall, Arch::Mlp, Arch::CnnPool] {
        let g = model(arch, 5);
        let p = g.param_tensors();
        let (n, eps) = (3, 0.02f32);
        let (x, _, _) = batch(n);
        let out = output_bounds(&g, &p, input_box(&g, &x, eps).unwrap()).unwrap();
        let (lo, hi) = (flat(&out.lower), flat(&out.upper));
        let x0 = flat(&x);
        for s in 0..n {
            let c = &x0[s * 784..(s + 1) * 784];
            let l: Vec<f64> = c.iter().map(|&v| (v - eps).max(0.0) as f64).collect();
            let u: Vec<f64> = c.iter().map(|&v| (v + eps).min(1.0) as f64).collect();
            let (vl, vu) = ruse_verify::ibp::ibp(&g, &l, &u).unwrap();
            for j in 0..10 {
                let (a, b) = (lo[s * 10 + j] as f64, vl[j]);
                let (c2, d2) = (hi[s * 10 + j] as f64, vu[j]);
                let tol = 1e-3 * (1.0 + b.abs().max(d2.abs()));
                assert!(
                    (a - b).abs() <= tol && (c2 - d2).abs() <= tol,
                    "{arch}: sample {s}, logit {j}: training [{a}, {c2}] vs ruse-verify [{b}, {d2}]"
                );
                // ruse-verify's sound bounds are (slightly) wider.
                assert!(b <= a + 1e-6 * (1.0 + a.abs()) && d2 >= c2 - 1e-6 * (1.0 + c2.abs()));
            }
        }
    }
}

#[test]
fn crown_ibp_bounds_are_sound_tighter_than_ibp_and_equal_ruse_verify() {
    use ruse_verify::crown::{compute_bounds, crown_spec, Dual, Intermediate};
    use ruse_verify::ibp::Interval;
    for arch in [Arch::CnnSmall, Arch::Mlp] {
        let g = model(arch, 7);
        let p = g.param_tensors();
        let (n, eps) = (3, 0.01f32);
        let (x, y, ys) = batch(n);
        let mc = flat(&crown_ibp_margins(&g, &p, input_box(&g, &x, eps).unwrap(), &y).unwrap());
        let mi = flat(&margin_lower_bounds(&g, &p, input_box(&g, &x, eps).unwrap(), &y).unwrap());
        let x0 = flat(&x);
        let z = flat(&g.forward(&x).unwrap());
        let mut tighter = 0;
        for (s, &yi) in ys.iter().enumerate() {
            let c = &x0[s * 784..(s + 1) * 784];
            let l: Vec<f64> = c.iter().map(|&v| (v - eps).max(0.0) as f64).collect();
            let u: Vec<f64> = c.iter().map(|&v| (v + eps).min(1.0) as f64).collect();
            let dev = Device::Cpu;
            let input = Interval {
                lower: Tensor::from_vec(l, (1, 1, 28, 28), &dev).unwrap(),
                upper: Tensor::from_vec(u, (1, 1, 28, 28), &dev).unwrap(),
            };
            let bounds = compute_bounds(&g, &input, Intermediate::Ibp).unwrap();
            let mut cm = vec![0f64; 100];
            for j in 0..10 {
                cm[j * 10 + yi as usize] += 1.0;
                cm[j * 10 + j] -= 1.0;
            }
            let cm = Tensor::from_vec(cm, (10, 10), &dev).unwrap();
            let d = Tensor::zeros(10, candle_core::DType::F64, &dev).unwrap();
            let (lb, _) = crown_spec(&g, &bounds, &input, &cm, &d, &Dual::default()).unwrap();
            let lb: Vec<f64> = lb.flatten_all().unwrap().to_vec1().unwrap();
            for j in 0..10 {
                let ours = mc[s * 10 + j] as f64;
                // ruse-verify widens every layer by its f32 rounding allowance (larger for the
                // MLP's 784-wide first layer), so its sound bound sits slightly below.
                let tol = 5e-3 * (1.0 + lb[j].abs());
                assert!(
                    (ours - lb[j]).abs() <= tol && lb[j] <= ours + 1e-5,
                    "{arch}: sample {s}, class {j}: CROWN-IBP {ours} vs ruse-verify {}",
                    lb[j]
                );
                let margin = z[s * 10 + yi as usize] - z[s * 10 + j];
                assert!(mc[s * 10 + j] <= margin + 1e-4 * (1.0 + margin.abs()));
                if mc[s * 10 + j] > mi[s * 10 + j] + 1e-3 {
                    tighter += 1;
                }
            }
        }
        assert!(tighter > 0, "{arch}: CROWN-IBP never beats IBP");
    }
}

/// `common::config` with 200 validation samples (verified accuracy on the whole validation set).
fn config(defense: Defense, epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        val_attack_limit: 200,
        ..common::config(defense, epochs, seed)
    }
}

#[test]
fn ibp_training_certifies_far_more_than_plain_training() {
    let d = bundled_mnist_test().unwrap();
    let (tr, val) = (rows(&d, 0, 800), rows(&d, 800, 1000));
    let eps = 0.05;
    let plain_cfg = config(Defense::None, 6, 1);
    let ibp_cfg = TrainConfig {
        eps_ramp_epochs: 3,
        warmup_epochs: 1,
        ..config(
            Defense::Ibp {
                eps,
                kappa_end: 0.5,
            },
            6,
            1,
        )
    };
    let (plain, _) = run(Arch::Mlp, &plain_cfg, &tr, None);
    let (ibp, r) = run(Arch::Mlp, &ibp_cfg, &tr, Some(&val));
    let vp = verified_accuracy(&plain, &val, eps, 200).unwrap();
    let vi = verified_accuracy(&ibp, &val, eps, 200).unwrap();
    let last = r.history.last().unwrap();
    eprintln!("IBP-verified at ε {eps}: plain {vp:.3}, IBP-trained {vi:.3}; last epoch {last:?}");
    assert_eq!(last.val_verified_accuracy, Some(vi));
    assert!(
        vi > vp + 0.2,
        "IBP training certifies {vi}, plain training {vp}"
    );
    // The warm-up epoch trains at ε = 0, then the ramp.
    let eps_per_epoch: Vec<f64> = r.history.iter().map(|s| s.train_eps.unwrap()).collect();
    assert_eq!(eps_per_epoch[0], 0.0, "{eps_per_epoch:?}");
    assert!(
        (eps_per_epoch[1] - eps as f64 / 3.0).abs() < 1e-6,
        "{eps_per_epoch:?}"
    );
    assert!(
        (eps_per_epoch[5] - eps as f64).abs() < 1e-6,
        "{eps_per_epoch:?}"
    );
}

#[test]
fn ibp_training_is_seeded() {
    let d = bundled_mnist_test().unwrap();
    let tr = rows(&d, 0, 128);
    let ibp = Defense::Ibp {
        eps: 0.1,
        kappa_end: 0.5,
    };
    let (a, _) = run(Arch::CnnSmall, &config(ibp.clone(), 1, 3), &tr, None);
    let (b, _) = run(Arch::CnnSmall, &config(ibp.clone(), 1, 3), &tr, None);
    assert!(weights(&a) == weights(&b), "same seed, different model");
    let (c, _) = run(Arch::CnnSmall, &config(Defense::None, 1, 3), &tr, None);
    assert!(weights(&a) != weights(&c), "IBP training changed nothing");
    // CROWN-IBP (β = 1 − t over a 2-epoch ramp: CROWN bounds in play) is seeded too, and differs.
    let crown = TrainConfig {
        eps_ramp_epochs: 2,
        ..config(
            Defense::CrownIbp {
                eps: 0.1,
                kappa_end: 0.5,
            },
            1,
            3,
        )
    };
    let (d1, r) = run(Arch::CnnSmall, &crown, &tr, None);
    let (d2, _) = run(Arch::CnnSmall, &crown, &tr, None);
    assert!(
        weights(&d1) == weights(&d2),
        "CROWN-IBP: same seed, different model"
    );
    assert!(r.history[0].loss.is_finite());
    let ramped_ibp = TrainConfig {
        defense: ibp,
        ..crown.clone()
    };
    let (e, _) = run(Arch::CnnSmall, &ramped_ibp, &tr, None);
    assert!(weights(&d1) != weights(&e), "CROWN-IBP trains as IBP does");
}

#[test]
fn unsupported_ops_and_bad_settings_are_refused() {
    let mut g = model(Arch::Mlp, 0);
    // A softmax at the end has no interval rule here.
    let out = g.output;
    g.add_node(
        "probs",
        ruse_graph::Op::Softmax { axis: 0 },
        vec![ruse_graph::Operand::Value(out)],
    )
    .unwrap();
    let (x, _, _) = batch(2);
    let e = output_bounds(&g, &g.param_tensors(), input_box(&g, &x, 0.1).unwrap()).unwrap_err();
    assert!(e.to_string().contains("Softmax"), "{e}");
    let bad = TrainConfig {
        warmup_epochs: 1,
        ..config(Defense::None, 1, 0)
    };
    assert!(bad.validate().unwrap_err().to_string().contains("warm-up"));
}
