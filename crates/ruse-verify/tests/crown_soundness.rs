//! Soundness of CROWN, α-CROWN, β-CROWN split bounds and the dense fast path: sampled inputs
//! (corners included), evaluated by ruse's f32 forward pass, always satisfy the computed bounds;
//! α-CROWN is never looser than CROWN; the dense path agrees with the generic one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_graph::{Graph, Op};
use ruse_verify::crown::{self, Intermediate, OptimizeOptions};
use ruse_verify::dense::DenseNet;
use ruse_verify::ibp::Interval;

mod common;
use common::{fixtures_ops, outputs, samples};

fn interval(g: &Graph, lo: &[f64], hi: &[f64]) -> Interval {
    let mut shape = vec![1];
    shape.extend_from_slice(g.input_shape());
    Interval {
        lower: Tensor::from_slice(lo, shape.clone(), &Device::Cpu).unwrap(),
        upper: Tensor::from_slice(hi, shape, &Device::Cpu).unwrap(),
    }
}

/// Rows bounding every output from below (`Y_j`) and above (`−Y_j`), plus two differences.
fn rows(m: usize) -> (Tensor, Tensor, Vec<Vec<f64>>) {
    let mut r: Vec<Vec<f64>> = Vec::new();
    for j in 0..m {
        let mut a = vec![0.0; m];
        a[j] = 1.0;
        r.push(a.clone());
        a[j] = -1.0;
        r.push(a);
    }
    if m >= 2 {
        let mut a = vec![0.0; m];
        a[0] = 1.0;
        a[1] = -1.0;
        r.push(a);
    }
    let s = r.len();
    let c = Tensor::from_vec(r.concat(), (s, m), &Device::Cpu).unwrap();
    let d = Tensor::zeros(s, candle_core::DType::F64, &Device::Cpu).unwrap();
    (c, d, r)
}

/// Checks `lb[s] <= c_s · y` for every sample; returns the mean bound.
fn check(lb: &[f64], c: &[Vec<f64>], ys: &[Vec<f64>], what: &str) -> f64 {
    for (k, y) in ys.iter().enumerate() {
        for (s, row) in c.iter().enumerate() {
            let v: f64 = row.iter().zip(y).map(|(a, b)| a * b).sum();
            assert!(
                v >= lb[s],
                "{what}: sample {k}, row {s}: value {v} below the bound {}",
                lb[s]
            );
        }
    }
    lb.iter().sum::<f64>() / lb.len() as f64
}

#[test]
fn crown_and_alpha_crown_are_sound_on_zoo_models() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut checked = 0;
    for arch in Arch::ALL {
        for (input, eps) in [([1, 12, 12], 0.03), ([2, 12, 12], 0.01)] {
            let t0 = std::time::Instant::now();
            let g = build(
                arch,
                &ZooSpec {
                    input,
                    classes: 5,
                    normalize: Some((vec![0.4; input[0]], vec![0.3; input[0]])),
                    seed: 3,
                },
            )
            .unwrap();
            let n = g.input_len();
            let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let lo: Vec<f64> = x.iter().map(|v| (v - eps).max(0.0)).collect();
            let hi: Vec<f64> = x.iter().map(|v| (v + eps).min(1.0)).collect();
            let iv = interval(&g, &lo, &hi);
            let (c, d, cr) = rows(g.output_len());
            // Full CROWN on every layer of the two deepest conv nets costs minutes on a CPU;
            // there the intermediate layers use intervals (the backward rules are the same).
            let method = if matches!(arch, Arch::CnnLarge | Arch::ResnetSmall) {
                Intermediate::Ibp
            } else {
                Intermediate::Crown
            };
            let bounds = crown::compute_bounds(&g, &iv, method)
                .unwrap_or_else(|e| panic!("{arch} {input:?}: {e}"));
            let ys = outputs(&g, &samples(&lo, &hi, 60, &mut rng));
            let (lb, _) = crown::crown_spec(&g, &bounds, &iv, &c, &d, &Default::default()).unwrap();
            let lb = lb.to_vec2::<f64>().unwrap().remove(0);
            check(&lb, &cr, &ys, &format!("{arch} {input:?} CROWN"));
            let opt = crown::optimize_spec(
                &g,
                &bounds,
                &iv,
                &c,
                &d,
                None,
                None,
                None,
                OptimizeOptions {
                    iterations: 10,
                    ..Default::default()
                },
            )
            .unwrap();
            let la = opt.lower.to_vec2::<f64>().unwrap().remove(0);
            check(&la, &cr, &ys, &format!("{arch} {input:?} alpha-CROWN"));
            for (a, b) in la.iter().zip(&lb) {
                assert!(a >= b, "{arch}: α-CROWN {a} looser than CROWN {b}");
            }
            eprintln!("{arch} {input:?}: {:?}", t0.elapsed());
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * Arch::ALL.len(), "every zoo model is bounded");
}

#[test]
fn crown_is_no_looser_than_ibp_on_linear_nets_and_tighter_on_mlps() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let g = build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 6, 6],
            classes: 4,
            normalize: None,
            seed: 5,
        },
    )
    .unwrap();
    let n = g.input_len();
    let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let (c, d, cr) = rows(g.output_len());
    for eps in [0.01, 0.1] {
        let lo: Vec<f64> = x.iter().map(|v| v - eps).collect();
        let hi: Vec<f64> = x.iter().map(|v| v + eps).collect();
        let iv = interval(&g, &lo, &hi);
        let b = crown::compute_bounds(&g, &iv, Intermediate::Crown).unwrap();
        let (lb, _) = crown::crown_spec(&g, &b, &iv, &c, &d, &Default::default()).unwrap();
        let lb = lb.to_vec2::<f64>().unwrap().remove(0);
        let (il, iu) = ruse_verify::ibp::ibp(&g, &lo, &hi).unwrap();
        let ibp_lb: Vec<f64> = cr
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, &a)| if a > 0.0 { a * il[j] } else { a * iu[j] })
                    .sum()
            })
            .collect();
        let (sc, si): (f64, f64) = (lb.iter().sum(), ibp_lb.iter().sum());
        assert!(
            sc > si,
            "eps {eps}: CROWN sum {sc} not tighter than IBP {si}"
        );
    }
    // Without nonlinearities CROWN is exact up to rounding margins, so never looser than IBP.
    let lin = ruse_graph::import::load_onnx(fixtures_ops().join("gemm.onnx"));
    if let Ok(lin) = lin {
        let n = lin.input_len();
        let lo: Vec<f64> = (0..n).map(|i| -0.5 + 0.01 * i as f64).collect();
        let hi: Vec<f64> = lo.iter().map(|v| v + 0.3).collect();
        let iv = interval(&lin, &lo, &hi);
        let (c, d, cr) = rows(lin.output_len());
        let b = crown::compute_bounds(&lin, &iv, Intermediate::Crown).unwrap();
        let (lb, _) = crown::crown_spec(&lin, &b, &iv, &c, &d, &Default::default()).unwrap();
        let lb = lb.to_vec2::<f64>().unwrap().remove(0);
        let (il, iu) = ruse_verify::ibp::ibp(&lin, &lo, &hi).unwrap();
        for (s, r) in cr.iter().enumerate() {
            let ib: f64 = r
                .iter()
                .enumerate()
                .map(|(j, &a)| if a > 0.0 { a * il[j] } else { a * iu[j] })
                .sum();
            assert!(
                lb[s] >= ib - 1e-9 * (1.0 + ib.abs()),
                "row {s}: {} < {ib}",
                lb[s]
            );
        }
    }
}

#[test]
fn sigmoid_and_tanh_relaxations_bound_the_function() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 400;
    let l: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 12.0 - 8.0).collect();
    let u: Vec<f64> = l
        .iter()
        .map(|v| v + rng.random::<f64>().powi(3) * 10.0)
        .collect();
    let iv = Interval {
        lower: Tensor::from_slice(&l, (1, n), &Device::Cpu).unwrap(),
        upper: Tensor::from_slice(&u, (1, n), &Device::Cpu).unwrap(),
    };
    for op in [
        Op::Sigmoid,
        Op::Tanh,
        Op::Relu,
        Op::Clip {
            min: -1.0,
            max: 2.0,
        },
    ] {
        let r = crown::relax(&op, &iv).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let (ls, li, us, ui) = (
            v(&r.lower_slope),
            v(&r.lower_icpt),
            v(&r.upper_slope),
            v(&r.upper_icpt),
        );
        for j in 0..n {
            for t in 0..=50 {
                let x = l[j] + (u[j] - l[j]) * t as f64 / 50.0;
                let fx = match op {
                    Op::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                    Op::Tanh => x.tanh(),
                    Op::Relu => x.max(0.0),
                    _ => x.clamp(-1.0, 2.0),
                };
                assert!(
                    ls[j] * x + li[j] <= fx + 1e-12 && fx <= us[j] * x + ui[j] + 1e-12,
                    "{op:?} on [{}, {}] at {x}",
                    l[j],
                    u[j]
                );
            }
        }
    }
}

/// Pre-activations of a dense chain in f64 (to sort samples by ReLU phase).
fn pre_activations(net: &DenseNet, x: &[f64]) -> Vec<Vec<f64>> {
    let mut a = x.to_vec();
    let mut out = Vec::new();
    for (k, l) in net.layers.iter().enumerate() {
        let z: Vec<f64> = (0..l.n_out)
            .map(|o| {
                l.b[o]
                    + l.w[o * l.n_in..(o + 1) * l.n_in]
                        .iter()
                        .zip(&a)
                        .map(|(w, v)| w * v)
                        .sum::<f64>()
            })
            .collect();
        a = if k + 1 < net.layers.len() || net.final_relu {
            z.iter().map(|v| v.max(0.0)).collect()
        } else {
            z.clone()
        };
        out.push(z);
    }
    out
}

#[test]
fn beta_crown_split_bounds_hold_on_their_sub_domains() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let g = build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 5, 5],
            classes: 3,
            normalize: None,
            seed: 9,
        },
    )
    .unwrap();
    let net = DenseNet::from_graph(&g)
        .unwrap()
        .expect("an MLP is a dense chain");
    let n = g.input_len();
    let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let lo: Vec<f64> = x.iter().map(|v| v - 0.15).collect();
    let hi: Vec<f64> = x.iter().map(|v| v + 0.15).collect();
    let iv = interval(&g, &lo, &hi);
    let bounds = crown::compute_bounds(&g, &iv, Intermediate::Crown).unwrap();
    let relu_nodes: Vec<usize> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, nd)| matches!(nd.op, Op::Relu))
        .map(|(i, _)| i)
        .collect();
    // Split up to three unstable neurons of the first ReLU layer each way.
    let first = relu_nodes[0];
    let r = &bounds.relax[&first];
    let unstable: Vec<f64> = r
        .unstable
        .as_ref()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let picks: Vec<usize> = (0..unstable.len())
        .filter(|&j| unstable[j] > 0.5)
        .take(3)
        .collect();
    assert!(!picks.is_empty(), "no unstable neuron to split");
    let (c, d, cr) = rows(g.output_len());
    let pts = samples(&lo, &hi, 400, &mut rng);
    let ys = outputs(&g, &pts);
    let zs: Vec<Vec<Vec<f64>>> = pts
        .chunks(n)
        .map(|p| pre_activations(&net, &p.iter().map(|&v| v as f64).collect::<Vec<_>>()))
        .collect();
    for mask in 0..(1usize << picks.len()) {
        let m = unstable.len();
        let mut sign = vec![0.0; m];
        let mut b2 = bounds.clone();
        let ruse_graph::Operand::Value(v0) = g.nodes[first].inputs[0] else {
            panic!("ReLU of a constant")
        };
        let iv0 = b2.values[v0].clone().unwrap();
        let mut l0: Vec<f64> = iv0.lower.flatten_all().unwrap().to_vec1().unwrap();
        let mut u0: Vec<f64> = iv0.upper.flatten_all().unwrap().to_vec1().unwrap();
        for (t, &j) in picks.iter().enumerate() {
            if mask >> t & 1 == 1 {
                sign[j] = -1.0;
                l0[j] = 0.0;
            } else {
                sign[j] = 1.0;
                u0[j] = 0.0;
            }
        }
        let split_iv = Interval {
            lower: Tensor::from_vec(l0, (1, m), &Device::Cpu).unwrap(),
            upper: Tensor::from_vec(u0, (1, m), &Device::Cpu).unwrap(),
        };
        b2.relax
            .insert(first, crown::relax(&Op::Relu, &split_iv).unwrap());
        let mut splits = HashMap::new();
        splits.insert(
            first,
            Tensor::from_vec(sign.clone(), (1, m), &Device::Cpu).unwrap(),
        );
        let opt = crown::optimize_spec(
            &g,
            &b2,
            &iv,
            &c,
            &d,
            None,
            Some(&splits),
            None,
            OptimizeOptions {
                iterations: 15,
                ..Default::default()
            },
        )
        .unwrap();
        let lb = opt.lower.to_vec2::<f64>().unwrap().remove(0);
        // Samples in this sub-domain (clear of the kink, where f32 and f64 may disagree).
        let inside: Vec<Vec<f64>> = ys
            .iter()
            .zip(&zs)
            .filter(|(_, z)| {
                picks.iter().all(|&j| {
                    let v = z[0][j];
                    if sign[j] < 0.0 {
                        v > 1e-6
                    } else {
                        v < -1e-6
                    }
                })
            })
            .map(|(y, _)| y.clone())
            .collect();
        check(&lb, &cr, &inside, &format!("split mask {mask}"));
    }
}

#[test]
fn dense_path_agrees_with_the_generic_path_and_is_sound() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vnncomp");
    if !root.is_dir() {
        eprintln!("note: ../shared/vnncomp not found; skipping");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let cases = [
        (
            "acasxu/onnx/ACASXU_run2a_2_3_batch_2000.onnx",
            "acasxu/vnnlib/prop_2.vnnlib",
        ),
        (
            "mnist_fc/onnx/mnist-net_256x4.onnx",
            "mnist_fc/vnnlib/prop_3_0.03.vnnlib",
        ),
        (
            "eran/nets/mnist_relu_9_200.onnx",
            "eran/specs/mnist/mnist_spec_idx_1013_eps_0.01500.vnnlib",
        ),
    ];
    for (net, spec) in cases {
        let g = ruse_graph::import::load_onnx(root.join(net)).unwrap();
        let s = ruse_verify::parse_vnnlib_file(&root.join(spec)).unwrap();
        let dense = DenseNet::from_graph(&g).unwrap().expect("a dense chain");
        let case = &s.cases[0];
        let (lo, hi) = (&case.input.lower, &case.input.upper);
        // A sub-box too, where both paths have unstable neurons left.
        for shrink in [1.0, 0.25] {
            let lo2: Vec<f64> = lo
                .iter()
                .zip(hi)
                .map(|(l, h)| 0.5 * (l + h) - shrink * 0.5 * (h - l))
                .collect();
            let hi2: Vec<f64> = lo
                .iter()
                .zip(hi)
                .map(|(l, h)| 0.5 * (l + h) + shrink * 0.5 * (h - l))
                .collect();
            let (c, d, cr) = rows(g.output_len());
            let cv: Vec<f64> = cr.concat();
            let dv = vec![0.0; cr.len()];
            let fast = dense.crown(&lo2, &hi2, &cv, &dv);
            let iv = interval(&g, &lo2, &hi2);
            let b = crown::compute_bounds(&g, &iv, Intermediate::Crown).unwrap();
            let (lb, _) = crown::crown_spec(&g, &b, &iv, &c, &d, &Default::default()).unwrap();
            let lb = lb.to_vec2::<f64>().unwrap().remove(0);
            for (s, (a, b)) in fast.lower.iter().zip(&lb).enumerate() {
                // Both are sound; they differ only in how rounding allowances are booked.
                let tol = 1e-3 * (1.0 + a.abs().max(b.abs()));
                assert!(
                    (a - b).abs() <= tol,
                    "{net} row {s}: dense {a} vs generic {b}"
                );
            }
            let ys = outputs(&g, &samples(&lo2, &hi2, 200, &mut rng));
            check(&fast.lower, &cr, &ys, net);
        }
    }
}

#[test]
fn fixtures_are_bounded_by_crown_or_refused_by_name() {
    let dir = fixtures_ops();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut ok, mut refused) = (0, Vec::new());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.extension().is_none_or(|x| x != "onnx") {
            continue;
        }
        let g = ruse_graph::import::load_onnx(&p).unwrap();
        let n = g.input_len();
        let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
        let lo: Vec<f64> = x.iter().map(|v| v - 0.1).collect();
        let hi: Vec<f64> = x.iter().map(|v| v + 0.1).collect();
        let iv = interval(&g, &lo, &hi);
        let (c, d, cr) = rows(g.output_len());
        let res = crown::compute_bounds(&g, &iv, Intermediate::Crown)
            .and_then(|b| crown::crown_spec(&g, &b, &iv, &c, &d, &Default::default()));
        match res {
            Ok((lb, _)) => {
                let lb = lb.to_vec2::<f64>().unwrap().remove(0);
                let ys = outputs(&g, &samples(&lo, &hi, 50, &mut rng));
                check(&lb, &cr, &ys, &p.display().to_string());
                ok += 1;
            }
            Err(e) => {
                let m = e.to_string();
                assert!(
                    m.contains("no ") && m.contains("rule"),
                    "{}: {m}",
                    p.display()
                );
                refused.push(p.file_name().unwrap().to_string_lossy().to_string());
            }
        }
    }
    eprintln!("CROWN bounded {ok} fixtures; refused {refused:?}");
    assert!(ok >= 18, "only {ok} fixtures bounded (refused {refused:?})");
}

/// A random 3-hidden-layer MLP (8 → 16 → 16 → 16 → 4) with `act` after every hidden layer.
fn s_curve_mlp(act: Op, seed: u64) -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = Graph::new("s-curve-mlp", "input", vec![8]);
    let mut v = 0;
    let dims = [8, 16, 16, 16, 4];
    for (i, w) in dims.windows(2).enumerate() {
        let (n_in, n_out) = (w[0], w[1]);
        // Wide weights push the pre-activations across the curves' bends.
        let wt: Vec<f32> = (0..n_in * n_out)
            .map(|_| (rng.random::<f32>() - 0.5) * 3.0)
            .collect();
        let bt: Vec<f32> = (0..n_out).map(|_| rng.random::<f32>() - 0.5).collect();
        let wp = g.add_param(
            format!("w{i}"),
            Tensor::from_vec(wt, (n_out, n_in), &Device::Cpu).unwrap(),
            false,
        );
        let bp = g.add_param(
            format!("b{i}"),
            Tensor::from_vec(bt, n_out, &Device::Cpu).unwrap(),
            false,
        );
        v = g
            .add_node(
                format!("fc{i}"),
                Op::Gemm {
                    alpha: 1.0,
                    beta: 1.0,
                    trans_b: true,
                },
                vec![
                    ruse_graph::Operand::Value(v),
                    ruse_graph::Operand::Param(wp),
                    ruse_graph::Operand::Param(bp),
                ],
            )
            .unwrap();
        if i + 2 < dims.len() {
            v = g
                .add_node(
                    format!("act{i}"),
                    act.clone(),
                    vec![ruse_graph::Operand::Value(v)],
                )
                .unwrap();
        }
    }
    g.output = v;
    g
}

#[test]
fn optimised_sigmoid_and_tanh_slopes_are_sound_and_no_looser_than_crown() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut gained = 0.0;
    for act in [Op::Sigmoid, Op::Tanh] {
        for seed in 0..4 {
            let g = s_curve_mlp(act.clone(), seed);
            for eps in [0.05, 0.3] {
                let x: Vec<f64> = (0..8).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
                let lo: Vec<f64> = x.iter().map(|v| v - eps).collect();
                let hi: Vec<f64> = x.iter().map(|v| v + eps).collect();
                let iv = interval(&g, &lo, &hi);
                let (c, d, cr) = rows(g.output_len());
                let ys = outputs(&g, &samples(&lo, &hi, 300, &mut rng));
                let what = format!("{} seed {seed} eps {eps}", act.onnx_type());
                let bounds = crown::compute_bounds(&g, &iv, Intermediate::Crown).unwrap();
                let (lb, _) =
                    crown::crown_spec(&g, &bounds, &iv, &c, &d, &Default::default()).unwrap();
                let lb = lb.to_vec2::<f64>().unwrap().remove(0);
                let m_crown = check(&lb, &cr, &ys, &format!("{what} CROWN"));
                let opts = OptimizeOptions {
                    iterations: 30,
                    ..Default::default()
                };
                let opt =
                    crown::optimize_spec(&g, &bounds, &iv, &c, &d, None, None, None, opts).unwrap();
                let la = opt.lower.to_vec2::<f64>().unwrap().remove(0);
                let m_alpha = check(&la, &cr, &ys, &format!("{what} α-CROWN"));
                for (a, b) in la.iter().zip(&lb) {
                    assert!(a >= b, "{what}: α-CROWN {a} looser than CROWN {b}");
                }
                // Optimised slopes on the intermediate layers too.
                let tight =
                    crown::compute_bounds(&g, &iv, Intermediate::Alpha { iterations: 10 }).unwrap();
                let opt2 =
                    crown::optimize_spec(&g, &tight, &iv, &c, &d, None, None, None, opts).unwrap();
                let l2 = opt2.lower.to_vec2::<f64>().unwrap().remove(0);
                check(&l2, &cr, &ys, &format!("{what} α-CROWN, α intermediate"));
                gained += m_alpha - m_crown;
            }
        }
    }
    // The slopes are really optimised: the mean bound rises over the 16 cases.
    assert!(
        gained > 0.1,
        "α-CROWN gained only {gained} over CROWN on S-curve nets"
    );
}

#[test]
fn select_rows_keeps_exactly_the_chosen_spec_rows() {
    // Branch and bound runs one tree per open conjunction, warm-started from the root's state
    // restricted to that conjunction's rows; every field must carry those rows and no others.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let g = build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 6, 6],
            classes: 4,
            normalize: None,
            seed: 2,
        },
    )
    .unwrap();
    let n = g.input_len();
    let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let lo: Vec<f64> = x.iter().map(|v| (v - 0.05).max(0.0)).collect();
    let hi: Vec<f64> = x.iter().map(|v| (v + 0.05).min(1.0)).collect();
    let iv = interval(&g, &lo, &hi);
    let (c, d, _) = rows(g.output_len());
    let s = c.dim(0).unwrap();
    assert!(s >= 3, "the test needs several rows");
    let bounds = crown::compute_bounds(&g, &iv, Intermediate::Crown).unwrap();
    let opt = crown::optimize_spec(
        &g,
        &bounds,
        &iv,
        &c,
        &d,
        None,
        None,
        None,
        OptimizeOptions {
            iterations: 5,
            ..Default::default()
        },
    )
    .unwrap();
    let pick = [s - 1, 0];
    let idx = Tensor::from_vec(pick.iter().map(|&r| r as u32).collect(), 2, &Device::Cpu).unwrap();
    let sub = opt.select_rows(&idx).unwrap();
    let full = opt.lower.to_vec2::<f64>().unwrap().remove(0);
    let part = sub.lower.to_vec2::<f64>().unwrap().remove(0);
    assert_eq!(part, vec![full[pick[0]], full[pick[1]]]);
    let full_a = opt.a_in.to_vec3::<f64>().unwrap().remove(0);
    let part_a = sub.a_in.to_vec3::<f64>().unwrap().remove(0);
    assert_eq!(
        part_a,
        vec![full_a[pick[0]].clone(), full_a[pick[1]].clone()]
    );
    assert!(!opt.alpha.is_empty(), "an MLP has ReLU slopes");
    for map in [
        (&opt.alpha, &sub.alpha),
        (&opt.relu_coeffs, &sub.relu_coeffs),
    ] {
        assert_eq!(map.0.len(), map.1.len());
        for (k, t) in map.0 {
            let want: Vec<f64> = pick
                .iter()
                .flat_map(|&r| {
                    t.get(0)
                        .unwrap()
                        .get(r)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                })
                .collect();
            let got = map.1[k].flatten_all().unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(got, want, "node {k}");
        }
    }
}
