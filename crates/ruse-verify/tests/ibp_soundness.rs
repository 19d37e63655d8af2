//! IBP soundness: points sampled inside the input box (corners included) always evaluate, with
//! ruse's f32 forward pass, to outputs inside the computed bounds; ops without a rule are errors.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_graph::Graph;
use ruse_verify::ibp::ibp;

mod common;
use common::{fixtures_ops, outputs, samples, vnncomp};

/// Checks `n_samples` random points (plus both corners) of [lo, hi]; returns the mean bound width.
fn check_sound(
    g: &Graph,
    lo: &[f64],
    hi: &[f64],
    n_samples: usize,
    rng: &mut ChaCha8Rng,
    what: &str,
) -> f64 {
    let (bl, bu) = ibp(g, lo, hi).unwrap_or_else(|e| panic!("{what}: {e}"));
    let ys = outputs(g, &samples(lo, hi, n_samples, rng));
    let k = bl.len();
    for (s, row) in ys.iter().enumerate() {
        assert_eq!(row.len(), k, "{what}: sample {s} has {} outputs", row.len());
        for (j, &v) in row.iter().enumerate() {
            assert!(
                v >= bl[j] && v <= bu[j],
                "{what}: sample {s} output {j} = {v} outside [{}, {}]",
                bl[j],
                bu[j]
            );
        }
    }
    bl.iter().zip(&bu).map(|(l, u)| u - l).sum::<f64>() / k as f64
}

#[test]
fn zoo_models_are_bounded_soundly() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for arch in Arch::ALL {
        for (input, norm) in [
            ([1, 28, 28], Some((vec![0.13], vec![0.31]))),
            ([3, 16, 16], None),
        ] {
            let g = build(
                arch,
                &ZooSpec {
                    input,
                    classes: 10,
                    normalize: norm.clone(),
                    seed: 1,
                },
            )
            .unwrap();
            let n: usize = input.iter().product();
            let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let lo: Vec<f64> = x.iter().map(|v| (v - 0.02).max(0.0)).collect();
            let hi: Vec<f64> = x.iter().map(|v| (v + 0.02).min(1.0)).collect();
            check_sound(&g, &lo, &hi, 40, &mut rng, &format!("{arch} {input:?}"));
            // A zero-width box leaves only the rigorous f32 rounding allowance (γ_n·Σ|w·x| per
            // layer, worst case); in shallow nets it stays small. (In deep random nets IBP
            // amplifies it layer by layer, as it amplifies any width.)
            let w = check_sound(&g, &x, &x, 0, &mut rng, &format!("{arch} point"));
            if matches!(arch, Arch::Mlp | Arch::CnnSmall | Arch::CnnPool) {
                assert!(w < 0.1, "{arch}: point box gives width {w}");
            }
        }
    }
}

#[test]
fn vnncomp_networks_are_bounded_soundly_on_their_spec_boxes() {
    let Some(root) = vnncomp() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cases = [
        (
            "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx",
            "acasxu/vnnlib/prop_1.vnnlib",
        ),
        (
            "acasxu/onnx/ACASXU_run2a_3_3_batch_2000.onnx",
            "acasxu/vnnlib/prop_3.vnnlib",
        ),
        (
            "mnist_fc/onnx/mnist-net_256x2.onnx",
            "mnist_fc/vnnlib/prop_0_0.03.vnnlib",
        ),
        (
            "mnist_fc/onnx/mnist-net_256x6.onnx",
            "mnist_fc/vnnlib/prop_1_0.05.vnnlib",
        ),
        (
            "eran/nets/mnist_relu_9_200.onnx",
            "eran/specs/mnist/mnist_spec_idx_1013_eps_0.01500.vnnlib",
        ),
        (
            "eran/nets/ffnnSIGMOID__Point_6x200.onnx",
            "eran/specs/mnist/mnist_spec_idx_1013_eps_0.01500.vnnlib",
        ),
    ];
    let mut checked = 0;
    for (net, spec) in cases {
        let (net, spec) = (root.join(net), root.join(spec));
        if !spec.exists() {
            eprintln!("note: {} missing; skipped", spec.display());
            continue;
        }
        let g = ruse_graph::import::load_onnx(&net).unwrap();
        let s = ruse_verify::parse_vnnlib_file(&spec).unwrap();
        for case in &s.cases {
            check_sound(
                &g,
                &case.input.lower,
                &case.input.upper,
                100,
                &mut rng,
                &net.display().to_string(),
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} spec boxes checked");
}

#[test]
fn fixtures_are_bounded_or_refused_by_name() {
    let dir = fixtures_ops();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut ok, mut refused) = (0, 0);
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "onnx") {
            continue;
        }
        let g = ruse_graph::import::load_onnx(&p).unwrap();
        let n = g.input_len();
        let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
        let lo: Vec<f64> = x.iter().map(|v| v - 0.1).collect();
        let hi: Vec<f64> = x.iter().map(|v| v + 0.1).collect();
        match ruse_verify::ibp::ibp(&g, &lo, &hi) {
            Ok(_) => {
                check_sound(&g, &lo, &hi, 50, &mut rng, &p.display().to_string());
                ok += 1;
            }
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("no bound rule for"), "{}: {m}", p.display());
                refused += 1;
            }
        }
    }
    assert!(ok >= 20, "only {ok} fixtures bounded ({refused} refused)");
}

#[test]
fn bad_boxes_are_errors() {
    let g = build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 2, 2],
            classes: 3,
            normalize: None,
            seed: 0,
        },
    )
    .unwrap();
    assert!(ibp(&g, &[0.0; 3], &[1.0; 4]).is_err());
    assert!(ibp(&g, &[0.5; 4], &[0.4; 4]).is_err());
    assert!(ibp(&g, &[f64::NAN; 4], &[1.0; 4]).is_err());
}
