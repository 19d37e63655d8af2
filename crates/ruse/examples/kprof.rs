use std::time::Instant;
#[path = "../src/alloc.rs"]
mod alloc;
use candle_core::{Device, Tensor};
use ruse_graph::kernels::{conv::*, pointwise::*, pool::*};
use ruse_graph::op::{ConvAttrs, PoolAttrs};

fn t<F: FnMut() -> candle_core::Result<Tensor>>(name: &str, n: usize, mut f: F) {
    for _ in 0..3 {
        f().unwrap();
    }
    let t0 = Instant::now();
    for _ in 0..n {
        f().unwrap();
    }
    println!(
        "{name:30} {:8.3} ms",
        t0.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}

fn main() {
    alloc::tune();
    std::env::set_var("RAYON_NUM_THREADS", "2");
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .unwrap();
    let d = Device::Cpu;
    let b = 128;
    let x1 = Tensor::rand(0f32, 1f32, (b, 1, 28, 28), &d).unwrap();
    let w1 = Tensor::rand(-0.3f32, 0.3f32, (32, 1, 3, 3), &d).unwrap();
    let b1 = Tensor::rand(-0.3f32, 0.3f32, 32, &d).unwrap();
    let a = ConvAttrs {
        stride: [1, 1],
        pads: [1; 4],
        dilation: [1, 1],
        groups: 1,
    };
    let y1 = conv2d(&x1, &w1, Some(&b1), &a).unwrap();
    if std::env::var("ONLY_POOL").is_ok() {
        let p = PoolAttrs {
            kernel: [2, 2],
            stride: [2, 2],
            pads: [0; 4],
            dilation: [1, 1],
            ceil_mode: false,
        };
        t("maxpool fwd", 200, || {
            max_pool2d_with_argmax(&y1, &p).map(|r| r.0)
        });
        let v: Vec<f32> = y1.flatten_all().unwrap().to_vec1().unwrap();
        let t0 = Instant::now();
        let mut out = vec![0f32; v.len() / 4];
        for _ in 0..50 {
            for pl in 0..(128 * 32) {
                let xp = &v[pl * 784..][..784];
                let o = &mut out[pl * 196..][..196];
                for oy in 0..14 {
                    for ox in 0..14 {
                        let b = 2 * oy * 28 + 2 * ox;
                        o[oy * 14 + ox] = xp[b].max(xp[b + 1]).max(xp[b + 28]).max(xp[b + 29]);
                    }
                }
            }
        }
        println!(
            "plain {:.3} ms {}",
            t0.elapsed().as_secs_f64() * 1000.0 / 50.0,
            out[5]
        );
        return;
    }
    t("conv1 fwd (+bias)", 20, || conv2d(&x1, &w1, Some(&b1), &a));
    t("conv1 fwd (no bias)", 20, || conv2d(&x1, &w1, None, &a));
    t("conv1 bwd weight", 20, || {
        conv2d_backward_weight(&x1, &y1, &a, &[32, 1, 3, 3])
    });
    t("bias grad sum", 20, || y1.sum(3)?.sum(2)?.sum(0));
    t("relu fwd", 20, || pointwise(&y1, Pointwise::Relu));
    t("relu bwd", 20, || {
        pointwise_backward(&y1, &y1, Pointwise::Relu)
    });
    let p = PoolAttrs {
        kernel: [2, 2],
        stride: [2, 2],
        pads: [0; 4],
        dilation: [1, 1],
        ceil_mode: false,
    };
    t("maxpool fwd", 20, || {
        max_pool2d_with_argmax(&y1, &p).map(|r| r.0)
    });
    let (p1, am) = max_pool2d_with_argmax(&y1, &p).unwrap();
    t("maxpool bwd", 20, || {
        max_pool2d_backward(&y1, &p1, &p, am.clone())
    });
    let w2 = Tensor::rand(-0.3f32, 0.3f32, (64, 32, 3, 3), &d).unwrap();
    let y2 = conv2d(&p1, &w2, None, &a).unwrap();
    t("conv2 fwd", 20, || conv2d(&p1, &w2, None, &a));
    t("conv2 bwd input", 20, || {
        conv2d_backward_input(&y2, &w2, &a, p1.dims())
    });
    t("conv2 bwd weight", 20, || {
        conv2d_backward_weight(&p1, &y2, &a, &[64, 32, 3, 3])
    });
    let f = Tensor::rand(0f32, 1f32, (b, 3136), &d).unwrap();
    let wf = Tensor::rand(0f32, 1f32, (128, 3136), &d).unwrap();
    t("fc1 fwd", 20, || f.matmul(&wf.t()?));
    let gf = Tensor::rand(0f32, 1f32, (b, 128), &d).unwrap();
    t("fc1 bwd in", 20, || gf.matmul(&wf));
    t("fc1 bwd w", 20, || gf.t()?.matmul(&f));
    t("add big", 20, || &y1 + &y1);
    t("zeros big", 20, || y1.zeros_like());
}
