//! Speed benchmark: forward, one PGD step and one training step of the cnn-pool network
//! (conv32-conv64-fc128-fc10 on 1×28×28), batch 128, printed as images/second in one JSON line.
//! `bench/run.sh` runs it next to the PyTorch reference (bench/pytorch_ref.py) and prints ratios.
//!
//! Usage: ruse-bench [--threads N] [--batch B] [--seconds S] [--repeats R] [--stock-candle]

use std::time::Instant;

#[path = "../alloc.rs"]
mod alloc;

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::backward::GradRequest;
use ruse_graph::loss::cross_entropy;
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_train::{Optimizer, OptimizerKind};

struct Opts {
    threads: usize,
    batch: usize,
    seconds: f64,
    repeats: usize,
}

fn parse() -> anyhow::Result<Opts> {
    let mut o = Opts {
        threads: 2,
        batch: 128,
        seconds: 3.0,
        repeats: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).map(String::as_str).unwrap_or("");
        match args[i].as_str() {
            "--threads" => o.threads = v.parse()?,
            "--batch" => o.batch = v.parse()?,
            "--seconds" => o.seconds = v.parse()?,
            "--repeats" => o.repeats = v.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 2;
    }
    Ok(o)
}

/// Median images/second of `repeats` runs of about `seconds` each, after warm-up.
fn measure(o: &Opts, mut step: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..3 {
        step()?;
    }
    let t0 = Instant::now();
    step()?;
    let one = t0.elapsed().as_secs_f64().max(1e-6);
    let iters = ((o.seconds / one) as usize).max(1);
    let mut rates = Vec::new();
    for _ in 0..o.repeats {
        let t0 = Instant::now();
        for _ in 0..iters {
            step()?;
        }
        rates.push((iters * o.batch) as f64 / t0.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    Ok(rates[rates.len() / 2])
}

fn main() -> anyhow::Result<()> {
    alloc::tune();
    let o = parse()?;
    std::env::set_var("RAYON_NUM_THREADS", o.threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build_global()?;
    let g = build(
        Arch::CnnPool,
        &ZooSpec {
            input: [1, 28, 28],
            classes: 10,
            normalize: None,
            seed: 0,
        },
    )?;
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x0: Vec<f32> = (0..o.batch * 784).map(|_| rng.random()).collect();
    let x0 = Tensor::from_vec(x0, (o.batch, 1, 28, 28), &dev)?;
    let y: Vec<u32> = (0..o.batch).map(|_| rng.random_range(0..10)).collect();
    let y = Tensor::from_vec(y, o.batch, &dev)?;

    let forward = measure(&o, || {
        g.forward(&x0)?;
        Ok(())
    })?;

    let params = g.param_tensors();
    let mut x = x0.clone();
    let pgd = measure(&o, || {
        let (_, _, gr) =
            g.loss_and_gradients(&params, &x, |l| cross_entropy(l, &y), GradRequest::INPUT)?;
        let gx = gr
            .input
            .ok_or_else(|| anyhow::anyhow!("no input gradient"))?;
        x = (&x + (gx.sign()? * 0.01)?)?.clamp(0f32, 1f32)?;
        Ok(())
    })?;

    // The same step through candle's autodiff (the library path, kept for comparison).
    let mut x = x0.clone();
    let pgd_candle = measure(&o, || {
        let xv = Var::from_tensor(&x)?;
        let loss = cross_entropy(&g.forward(xv.as_tensor())?, &y)?;
        let grads = loss.backward()?;
        let gx = grads
            .get(xv.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no input gradient"))?;
        x = (xv.as_tensor() + (gx.sign()? * 0.01)?)?
            .clamp(0f32, 1f32)?
            .detach();
        Ok(())
    })?;

    let trainable = g.trainable_params();
    let vars: Vec<Var> = trainable
        .iter()
        .map(|&i| Var::from_tensor(&g.params[i].tensor))
        .collect::<Result<_, _>>()?;
    let mut opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.9 }, 0.0, &vars)?;
    let train = measure(&o, || {
        let mut params = g.param_tensors();
        for (v, &i) in vars.iter().zip(&trainable) {
            params[i] = v.as_tensor().clone();
        }
        let (_, _, gr) =
            g.loss_and_gradients(&params, &x0, |l| cross_entropy(l, &y), GradRequest::PARAMS)?;
        let gs: Vec<Option<Tensor>> = trainable.iter().map(|&i| gr.params[i].clone()).collect();
        opt.step(&vars, &gs, 0.01)?;
        Ok(())
    })?;

    println!(
        "{}",
        serde_json::json!({
            "impl": "ruse",
            "threads": o.threads,
            "batch": o.batch,
            "forward_ips": (forward * 10.0).round() / 10.0,
            "pgd_step_ips": (pgd * 10.0).round() / 10.0,
            "train_step_ips": (train * 10.0).round() / 10.0,
            "pgd_step_candle_autodiff_ips": (pgd_candle * 10.0).round() / 10.0,
        })
    );
    Ok(())
}
