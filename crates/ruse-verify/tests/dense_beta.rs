//! The hand-written β-CROWN of `dense_beta` (branch and bound on affine/ReLU chains) against
//! the generic tensor path (`crown::optimize_spec` with splits): the same bound for the same α
//! and β, the same optimised bound, and sound on sampled points of two complementary split
//! domains that together cover the box.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_graph::{Graph, Op, Operand};
use ruse_verify::crown::{self, Bounds, Intermediate, OptimizeOptions};
use ruse_verify::dense::DenseNet;
use ruse_verify::dense_beta::SplitDomain;
use ruse_verify::ibp::Interval;

mod common;
use common::{outputs, samples};

fn interval(g: &Graph, lo: &[f64], hi: &[f64]) -> Interval {
    let mut shape = vec![1];
    shape.extend_from_slice(g.input_shape());
    Interval {
        lower: Tensor::from_slice(lo, shape.clone(), &Device::Cpu).unwrap(),
        upper: Tensor::from_slice(hi, shape, &Device::Cpu).unwrap(),
    }
}

/// One split domain's data, owned.
struct Dom {
    lo: Vec<Vec<f64>>,
    hi: Vec<Vec<f64>>,
    sign: Vec<Vec<f64>>,
    alpha: Vec<Vec<f32>>,
    beta: Vec<Vec<f32>>,
}

/// The generic path's bound of one domain (as branch and bound builds it).
#[allow(clippy::too_many_arguments)]
fn generic(
    g: &Graph,
    root: &Bounds,
    relus: &[(usize, Vec<usize>)],
    iv: &Interval,
    c: &Tensor,
    d: &Tensor,
    dom: &Dom,
    iterations: usize,
) -> Vec<f64> {
    let s = c.dim(0).unwrap();
    let mut relax = HashMap::new();
    let mut alpha = HashMap::new();
    let mut beta = HashMap::new();
    let mut splits = HashMap::new();
    for (k, (idx, shape)) in relus.iter().enumerate() {
        let mut full = vec![1];
        full.extend_from_slice(shape);
        let t = |v: &[f64], sh: &[usize]| Tensor::from_slice(v, sh, &Device::Cpu).unwrap();
        let ivk = Interval {
            lower: t(&dom.lo[k], &full),
            upper: t(&dom.hi[k], &full),
        };
        relax.insert(*idx, crown::relax(&Op::Relu, &ivk).unwrap());
        splits.insert(*idx, t(&dom.sign[k], &full));
        let mut sfull = vec![1, s];
        sfull.extend_from_slice(shape);
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        alpha.insert(*idx, t(&f(&dom.alpha[k]), &sfull));
        beta.insert(*idx, t(&f(&dom.beta[k]), &sfull));
    }
    let bounds = Bounds {
        values: root.values.clone(),
        relax,
        allowance: root.allowance.clone(),
    };
    let opt = crown::optimize_spec(
        g,
        &bounds,
        iv,
        c,
        d,
        Some(&alpha),
        Some(&splits),
        Some(&beta),
        OptimizeOptions {
            iterations,
            ..Default::default()
        },
    )
    .unwrap();
    opt.lower.to_vec2::<f64>().unwrap().remove(0)
}

#[test]
fn dense_beta_crown_agrees_with_the_generic_path_and_is_sound() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let g = build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 6, 6],
            classes: 4,
            normalize: None,
            seed: 4,
        },
    )
    .unwrap();
    let n = g.input_len();
    let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let lo: Vec<f64> = x.iter().map(|v| (v - 0.08).max(0.0)).collect();
    let hi: Vec<f64> = x.iter().map(|v| (v + 0.08).min(1.0)).collect();
    let iv = interval(&g, &lo, &hi);
    let root = crown::compute_bounds(&g, &iv, Intermediate::Crown).unwrap();
    let relus: Vec<(usize, Vec<usize>)> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, nd)| matches!(nd.op, Op::Relu))
        .map(|(i, nd)| {
            let Operand::Value(v) = nd.inputs[0] else {
                panic!("ReLU of a constant")
            };
            (i, g.values[v].shape.clone())
        })
        .collect();
    let sizes: Vec<usize> = relus.iter().map(|(_, s)| s.iter().product()).collect();
    let net = DenseNet::from_graph(&g)
        .unwrap()
        .expect("an MLP is a dense chain");
    assert!(net.fits_relu_layers(&sizes));
    let (mut rlo, mut rhi) = (Vec::new(), Vec::new());
    for (idx, _) in &relus {
        let Operand::Value(v) = g.nodes[*idx].inputs[0] else {
            unreachable!()
        };
        let b = root.values[v].as_ref().unwrap();
        rlo.push(b.lower.flatten_all().unwrap().to_vec1::<f64>().unwrap());
        rhi.push(b.upper.flatten_all().unwrap().to_vec1::<f64>().unwrap());
    }
    // Spec rows y_0 − y_j.
    let m = g.output_len();
    let s = m - 1;
    let mut cv = vec![0.0; s * m];
    for j in 1..m {
        cv[(j - 1) * m] = 1.0;
        cv[(j - 1) * m + j] = -1.0;
    }
    let dv = vec![0.05; s];
    let c = Tensor::from_slice(&cv, (s, m), &Device::Cpu).unwrap();
    let d = Tensor::from_slice(&dv, s, &Device::Cpu).unwrap();
    // Two complementary domains: the first unstable neuron of the first and of the last ReLU
    // layer split active/inactive, and inactive/active.
    let unstable = |k: usize| {
        (0..sizes[k])
            .find(|&j| rlo[k][j] < 0.0 && rhi[k][j] > 0.0)
            .expect("an unstable neuron")
    };
    let last = sizes.len() - 1;
    let picks = [(0, unstable(0)), (last, unstable(last))];
    let dom = |first_active: bool, rng: &mut ChaCha8Rng| {
        let mut d = Dom {
            lo: rlo.clone(),
            hi: rhi.clone(),
            sign: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            alpha: sizes
                .iter()
                .map(|&n| (0..s * n).map(|_| rng.random::<f32>()).collect())
                .collect(),
            beta: sizes
                .iter()
                .map(|&n| (0..s * n).map(|_| 0.5 * rng.random::<f32>()).collect())
                .collect(),
        };
        for (t, &(k, j)) in picks.iter().enumerate() {
            if (t == 0) == first_active {
                d.lo[k][j] = d.lo[k][j].max(0.0);
                d.sign[k][j] = -1.0;
            } else {
                d.hi[k][j] = d.hi[k][j].min(0.0);
                d.sign[k][j] = 1.0;
            }
        }
        d
    };
    let doms = [dom(true, &mut rng), dom(false, &mut rng)];
    let deltas = net.allowances(&lo, &hi, &rhi);
    let views: Vec<SplitDomain> = doms
        .iter()
        .map(|d| SplitDomain {
            lo: &d.lo,
            hi: &d.hi,
            sign: &d.sign,
            alpha: &d.alpha,
            beta: &d.beta,
        })
        .collect();
    let run = |iterations: usize| {
        net.beta_crown(
            &lo,
            &hi,
            &cv,
            &dv,
            &deltas,
            &views,
            OptimizeOptions {
                iterations,
                ..Default::default()
            },
        )
    };
    let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()));
    // One pass: the bound of the given α and β.
    let one = run(1);
    for (t, dm) in doms.iter().enumerate() {
        let want = generic(&g, &root, &relus, &iv, &c, &d, dm, 1);
        for r in 0..s {
            let got = one.lower[t * s + r];
            assert!(
                close(got, want[r], 1e-6),
                "domain {t} row {r}: dense {got}, generic {want:?}"
            );
        }
    }
    // Optimised: the same Adam trajectory (same gradient), the best bound never below the start.
    let opt = run(20);
    for (t, dm) in doms.iter().enumerate() {
        let want = generic(&g, &root, &relus, &iv, &c, &d, dm, 20);
        for r in 0..s {
            let (got, start) = (opt.lower[t * s + r], one.lower[t * s + r]);
            assert!(
                got >= start,
                "domain {t} row {r}: optimised {got} below its start {start}"
            );
            assert!(
                close(got, want[r], 1e-4),
                "domain {t} row {r}: dense {got}, generic {want:?}"
            );
        }
    }
    assert!(
        (0..2 * s).any(|q| opt.lower[q] > one.lower[q] + 1e-6),
        "optimisation raised some bound"
    );
    // Every sampled point lies in one of the two domains, so it is above the smaller bound.
    let ys = outputs(&g, &samples(&lo, &hi, 200, &mut rng));
    for y in &ys {
        for r in 0..s {
            let v = y[0] - y[r + 1] + dv[r];
            let lb = opt.lower[r].min(opt.lower[s + r]);
            assert!(v >= lb, "row {r}: value {v} below the bound {lb}");
        }
    }
}
