//! The white-box view of a classifier: logits and loss gradients, with query accounting.

use std::cell::Cell;

use candle_core::{Device, Tensor};
use ruse_graph::backward::GradRequest;
use ruse_graph::Graph;

use crate::error::{AttackError, Result};
use crate::loss::Loss;

/// A classifier graph as attacks see it; counts forward and gradient evaluations (per sample).
pub struct Model<'a> {
    graph: &'a Graph,
    params: Vec<Tensor>,
    forwards: Cell<u64>,
    gradients: Cell<u64>,
}

impl<'a> Model<'a> {
    /// Wraps a graph whose output is a vector of class scores.
    pub fn new(graph: &'a Graph) -> Result<Self> {
        if graph.output_shape().len() != 1 || graph.output_len() < 2 {
            return Err(AttackError::Invalid(format!(
                "the model's output has shape {:?}, not a vector of ≥ 2 class scores",
                graph.output_shape()
            )));
        }
        Ok(Model {
            graph,
            params: graph.param_tensors(),
            forwards: Cell::new(0),
            gradients: Cell::new(0),
        })
    }

    /// Elements per input sample.
    pub fn input_len(&self) -> usize {
        self.graph.input_len()
    }

    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        self.graph.input_shape()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.graph.output_len()
    }

    /// The model's input domain.
    pub fn domain(&self) -> (f32, f32) {
        self.graph.input_domain
    }

    /// Forward evaluations so far (samples).
    pub fn forwards(&self) -> u64 {
        self.forwards.get()
    }

    /// Gradient evaluations so far (samples).
    pub fn gradients(&self) -> u64 {
        self.gradients.get()
    }

    fn tensor(&self, x: &[f32]) -> Result<Tensor> {
        let d = self.input_len();
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(AttackError::Invalid(format!(
                "{} numbers do not make whole samples of {d}",
                x.len()
            )));
        }
        let shape: Vec<usize> = std::iter::once(x.len() / d)
            .chain(self.graph.input_shape().iter().copied())
            .collect();
        Ok(Tensor::from_slice(x, shape, &Device::Cpu)?)
    }

    /// Logits of a batch (flat, B×classes).
    pub fn logits(&self, x: &[f32]) -> Result<Vec<f32>> {
        let t = self.tensor(x)?;
        self.forwards.set(self.forwards.get() + t.dim(0)? as u64);
        Ok(self
            .graph
            .forward_split(&self.params, &t)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Logits, per-sample losses and the input gradient of their sum.
    pub fn loss_grad(
        &self,
        x: &[f32],
        loss: &Loss,
        labels: &[usize],
        targets: Option<&[usize]>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let k = self.classes();
        self.objective_grad(x, |z| loss.per_sample(z, labels, targets, k))
    }

    /// Logits, per-sample values of `objective` (logits [B, k] → [B]) and the input gradient of
    /// their sum: for attacks whose objective is not one of the [`Loss`]es.
    pub fn objective_grad(
        &self,
        x: &[f32],
        objective: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let t = self.tensor(x)?;
        let b = t.dim(0)?;
        self.forwards.set(self.forwards.get() + b as u64);
        self.gradients.set(self.gradients.get() + b as u64);
        let per_sample = std::cell::RefCell::new(Vec::new());
        let (logits, _, grads) = self.graph.loss_and_gradients(
            &self.params,
            &t,
            |z| {
                let l = objective(z)?;
                *per_sample.borrow_mut() = l.to_vec1::<f32>()?;
                l.sum_all()
            },
            GradRequest::INPUT,
        )?;
        let g = grads
            .input
            .ok_or_else(|| AttackError::Invalid("the model gave no input gradient".into()))?;
        Ok((
            logits.flatten_all()?.to_vec1()?,
            per_sample.into_inner(),
            g.flatten_all()?.to_vec1()?,
        ))
    }

    /// Logits (B×k) and the input gradient of every logit (k rows of B×D): one forward pass and k
    /// backward passes, counted as B forward and k·B gradient evaluations.
    pub fn logit_jacobian(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let t = self.tensor(x)?;
        let b = t.dim(0)?;
        let k = self.classes();
        self.forwards.set(self.forwards.get() + b as u64);
        self.gradients.set(self.gradients.get() + (b * k) as u64);
        let tape = self.graph.forward_tape(&self.params, &t)?;
        let logits = tape.output()?.clone();
        let mut rows = Vec::with_capacity(k);
        for c in 0..k {
            let mut onehot = vec![0f32; b * k];
            onehot.iter_mut().skip(c).step_by(k).for_each(|v| *v = 1.0);
            let cot = Tensor::from_vec(onehot, logits.dims(), logits.device())?;
            let g = self
                .graph
                .backward(&tape, &self.params, &cot, GradRequest::INPUT)?
                .input
                .ok_or_else(|| AttackError::Invalid("the model gave no input gradient".into()))?;
            rows.push(g.flatten_all()?.to_vec1()?);
        }
        Ok((logits.flatten_all()?.to_vec1()?, rows))
    }
}

/// Index of the largest score in each row.
pub fn argmax_rows(logits: &[f32], k: usize) -> Vec<usize> {
    logits
        .chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}
