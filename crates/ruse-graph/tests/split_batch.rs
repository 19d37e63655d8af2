//! The row-block path (a batch cut across threads, used for input gradients and plain forward
//! passes) gives what the one-block pass gives: same logits, losses and input gradients.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::backward::GradRequest;
use ruse_graph::loss::cross_entropy_per_sample;
use ruse_graph::zoo::{build, Arch, ZooSpec};

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

#[test]
fn split_batches_match_the_single_pass() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for arch in [Arch::Mlp, Arch::CnnPool, Arch::ResnetSmall] {
        let spec = ZooSpec {
            input: [1, 28, 28],
            classes: 10,
            normalize: Some((vec![0.13], vec![0.31])),
            seed: 2,
        };
        let g = build(arch, &spec).unwrap();
        let ps = g.param_tensors();
        // 150 rows: cut into three blocks (50 each); 200 rows: four.
        for b in [150usize, 200] {
            let x: Vec<f32> = (0..b * 784).map(|_| rng.random::<f32>()).collect();
            let labels: Vec<u32> = (0..b).map(|_| rng.random_range(0..10u32)).collect();
            let x = Tensor::from_vec(x, (b, 1, 28, 28), &Device::Cpu).unwrap();
            let y = Tensor::from_vec(labels, b, &Device::Cpu).unwrap();
            let loss = |z: &Tensor| cross_entropy_per_sample(z, &y)?.sum_all();
            let (logits, l, grads) = g
                .loss_and_gradients(&ps, &x, loss, GradRequest::INPUT)
                .unwrap();
            // Reference: one taped pass over the whole batch, the loss gradient by hand.
            let tape = g.forward_tape(&ps, &x).unwrap();
            let want_logits = tape.output().unwrap().clone();
            let p = candle_nn_softmax(&want_logits);
            let onehot = onehot(&y, b);
            let cot = (p - onehot).unwrap();
            let want_gx = g
                .backward(&tape, &ps, &cot, GradRequest::INPUT)
                .unwrap()
                .input
                .unwrap();
            let want_l = cross_entropy_per_sample(&want_logits, &y)
                .unwrap()
                .sum_all()
                .unwrap();
            let name = arch.name();
            assert!(
                max_rel(&logits, &want_logits) < 1e-5,
                "{name} B={b}: logits"
            );
            assert!(max_rel(&l, &want_l) < 1e-5, "{name} B={b}: loss");
            let gx = grads.input.unwrap();
            assert_eq!(gx.dims(), x.dims(), "{name} B={b}: gradient shape");
            assert!(
                max_rel(&gx, &want_gx) < 1e-4,
                "{name} B={b}: input gradient"
            );
            let fwd = g.forward_split(&ps, &x).unwrap();
            assert!(
                max_rel(&fwd, &want_logits) < 1e-5,
                "{name} B={b}: forward_split"
            );
        }
    }
}

fn candle_nn_softmax(z: &Tensor) -> Tensor {
    let m = z.max_keepdim(1).unwrap();
    let e = z.broadcast_sub(&m).unwrap().exp().unwrap();
    e.broadcast_div(&e.sum_keepdim(1).unwrap()).unwrap()
}

fn onehot(y: &Tensor, b: usize) -> Tensor {
    let y: Vec<u32> = y.to_vec1().unwrap();
    let mut v = vec![0f32; b * 10];
    for (i, &c) in y.iter().enumerate() {
        v[i * 10 + c as usize] = 1.0;
    }
    Tensor::from_vec(v, (b, 10), &Device::Cpu).unwrap()
}
