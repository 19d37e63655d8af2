//! Falsification before proof: projected gradient descent inside each input box of a [`Spec`]
//! toward its unsafe outputs, from random starts. A candidate counts only after a fresh f32
//! forward pass of that single input violates the spec exactly ([`Spec::is_violated_by`]).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::backward::GradRequest;
use ruse_graph::Graph;

use crate::ibp::BoundError;
use crate::spec::{Case, Spec};
use crate::Counterexample;

/// Settings of the falsifier.
#[derive(Debug, Clone, Copy)]
pub struct FalsifyOptions {
    /// Starting points per round (random in the box; the first round also tries the centre).
    pub starts: usize,
    /// Gradient steps per round.
    pub steps: usize,
    /// Rounds (each with fresh random starts), stopped early by the deadline.
    pub rounds: usize,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for FalsifyOptions {
    fn default() -> Self {
        FalsifyOptions {
            starts: 64,
            steps: 50,
            rounds: 4,
            seed: 0,
        }
    }
}

/// The smallest f32 ≥ `v` (so that the f32 input stays inside a box bound given in f64).
pub(crate) fn f32_up(v: f64) -> f32 {
    let f = v as f32;
    if (f as f64) < v {
        f.next_up()
    } else {
        f
    }
}

/// The largest f32 ≤ `v`.
pub(crate) fn f32_down(v: f64) -> f32 {
    let f = v as f32;
    if (f as f64) > v {
        f.next_down()
    } else {
        f
    }
}

/// Runs `x` (flat, f32) through the network and returns the counterexample if it violates the
/// spec exactly.
pub fn recheck(
    graph: &Graph,
    spec: &Spec,
    x: &[f32],
) -> Result<Option<Counterexample>, BoundError> {
    let mut shape = vec![1];
    shape.extend_from_slice(graph.input_shape());
    let y = graph
        .forward(&Tensor::from_slice(x, shape, &Device::Cpu)?)
        .map_err(|e| BoundError::Input(format!("forward pass failed: {e}")))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    Ok(spec
        .is_violated_by(&x, &y)
        .then_some(Counterexample { x, y }))
}

/// Checks many flat f32 inputs at once; returns the first that violates the spec (re-checked
/// alone by [`recheck`]).
pub fn check_points(
    graph: &Graph,
    spec: &Spec,
    points: &[f32],
) -> Result<Option<Counterexample>, BoundError> {
    let n = graph.input_len();
    if points.is_empty() || n == 0 {
        return Ok(None);
    }
    let b = points.len() / n;
    let mut shape = vec![b];
    shape.extend_from_slice(graph.input_shape());
    let y = graph
        .forward(&Tensor::from_slice(points, shape, &Device::Cpu)?)
        .map_err(|e| BoundError::Input(format!("forward pass failed: {e}")))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let m = y.len() / b;
    for (i, row) in y.chunks(m).enumerate() {
        let x: Vec<f64> = points[i * n..(i + 1) * n]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let yy: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        if spec.is_violated_by(&x, &yy) {
            if let Some(ce) = recheck(graph, spec, &points[i * n..(i + 1) * n])? {
                return Ok(Some(ce));
            }
        }
    }
    Ok(None)
}

/// Searches every case of `spec` for a counterexample until `deadline`.
pub fn falsify(
    graph: &Graph,
    spec: &Spec,
    opts: &FalsifyOptions,
    deadline: Instant,
) -> Result<Option<Counterexample>, BoundError> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    for round in 0..opts.rounds.max(1) {
        for case in &spec.cases {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if let Some(ce) = falsify_case(graph, spec, case, opts, round == 0, &mut rng, deadline)?
            {
                return Ok(Some(ce));
            }
        }
    }
    Ok(None)
}

/// The per-sample objective `min over conjunctions of max over their rows of (c·y + d)`: the
/// spec is violated where it is ≤ 0.
fn objective(y: &Tensor, case: &Case) -> candle_core::Result<Tensor> {
    let m = y.dim(1)?;
    let mut per_conj = Vec::with_capacity(case.output.len());
    for conj in &case.output {
        let mut rows = Vec::with_capacity(conj.constraints.len());
        for r in &conj.constraints {
            let mut c = vec![0f32; m];
            for &(j, v) in &r.coeffs {
                if j < m {
                    c[j] += v as f32;
                }
            }
            let c = Tensor::from_vec(c, (m, 1), &Device::Cpu)?;
            rows.push((y.matmul(&c)? + r.constant)?);
        }
        if rows.is_empty() {
            // An empty conjunction holds everywhere.
            per_conj.push((y.narrow(1, 0, 1)?.zeros_like()? - 1.0)?);
            continue;
        }
        let refs: Vec<&Tensor> = rows.iter().collect();
        per_conj.push(Tensor::cat(&refs, 1)?.max_keepdim(1)?);
    }
    let refs: Vec<&Tensor> = per_conj.iter().collect();
    Tensor::cat(&refs, 1)?.min(1)
}

fn falsify_case(
    graph: &Graph,
    spec: &Spec,
    case: &Case,
    opts: &FalsifyOptions,
    with_centre: bool,
    rng: &mut ChaCha8Rng,
    deadline: Instant,
) -> Result<Option<Counterexample>, BoundError> {
    let n = graph.input_len();
    if case.input.len() != n || case.output.is_empty() {
        return Ok(None);
    }
    let lo: Vec<f32> = case.input.lower.iter().map(|&v| f32_up(v)).collect();
    let hi: Vec<f32> = case.input.upper.iter().map(|&v| f32_down(v)).collect();
    if lo.iter().zip(&hi).any(|(l, h)| l > h) {
        return Ok(None);
    }
    let b = opts.starts.max(1);
    let mut x: Vec<f32> = Vec::with_capacity(b * n);
    for s in 0..b {
        for i in 0..n {
            let v = if s == 0 && with_centre {
                0.5 * (lo[i] + hi[i])
            } else {
                lo[i] + (hi[i] - lo[i]) * rng.random::<f32>()
            };
            x.push(v.clamp(lo[i], hi[i]));
        }
    }
    let params = graph.param_tensors();
    let mut shape = vec![b];
    shape.extend_from_slice(graph.input_shape());
    let steps = opts.steps.max(1);
    for step in 0..=steps {
        if Instant::now() >= deadline {
            break;
        }
        let xt = Tensor::from_slice(&x, shape.clone(), &Device::Cpu)?;
        let (logits, _, grads) = graph
            .loss_and_gradients(
                &params,
                &xt,
                |y| objective(&y.flatten_from(1)?, case)?.sum_all(),
                GradRequest::INPUT,
            )
            .map_err(|e| BoundError::Input(format!("gradient failed: {e}")))?;
        let obj =
            objective(&logits.flatten_from(1)?.to_dtype(DType::F32)?, case)?.to_vec1::<f32>()?;
        for (i, &o) in obj.iter().enumerate() {
            if o <= 0.0 {
                if let Some(ce) = recheck(graph, spec, &x[i * n..(i + 1) * n])? {
                    return Ok(Some(ce));
                }
            }
        }
        if step == steps {
            break;
        }
        let Some(g) = grads.input else { break };
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        // Sign steps shrinking from 1/4 to 1/200 of the box width (the box is an L∞ ball).
        let frac = 0.25 * (0.02f32).powf(step as f32 / steps as f32);
        for (k, v) in x.iter_mut().enumerate() {
            let i = k % n;
            let d = g[k].signum() * frac * (hi[i] - lo[i]);
            if g[k] != 0.0 && d.is_finite() {
                *v = (*v - d).clamp(lo[i], hi[i]);
            }
        }
    }
    Ok(None)
}
