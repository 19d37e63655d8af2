//! Optimisers (PyTorch semantics): SGD with momentum and Adam, L2 weight decay added to the gradient.

use std::str::FromStr;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Which optimiser and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// v = μ·v + g; p −= lr·v.
    Sgd {
        /// Momentum μ.
        momentum: f64,
    },
    /// Adam (Kingma & Ba 2015) with bias correction.
    Adam {
        /// β1.
        beta1: f64,
        /// β2.
        beta2: f64,
        /// ε.
        eps: f64,
    },
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd { momentum: 0.9 }),
            "adam" => Ok(OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            }),
            _ => Err(format!("unknown optimizer '{s}': use sgd or adam")),
        }
    }
}

/// An optimiser with its per-parameter state.
pub struct Optimizer {
    /// Kind and hyper-parameters.
    pub kind: OptimizerKind,
    /// L2 penalty added to gradients.
    pub weight_decay: f64,
    /// Steps taken so far.
    pub step: u64,
    /// First moment (momentum buffer) per parameter.
    pub m: Vec<Tensor>,
    /// Second moment per parameter (Adam only; empty for SGD).
    pub v: Vec<Tensor>,
}

impl Optimizer {
    /// A fresh optimiser for these variables.
    pub fn new(kind: OptimizerKind, weight_decay: f64, vars: &[Var]) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = match kind {
            OptimizerKind::Adam { .. } => m.clone(),
            OptimizerKind::Sgd { .. } => Vec::new(),
        };
        Ok(Optimizer {
            kind,
            weight_decay,
            step: 0,
            m,
            v,
        })
    }

    /// One update of every variable from its gradient (None = no gradient, left unchanged).
    pub fn step(&mut self, vars: &[Var], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step += 1;
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            let g = if self.weight_decay != 0.0 {
                (g + (var.as_tensor() * self.weight_decay)?)?
            } else {
                g.clone()
            };
            match self.kind {
                OptimizerKind::Sgd { momentum } => {
                    let buf = if self.step == 1 {
                        g
                    } else {
                        ((&self.m[i] * momentum)? + g)?
                    };
                    var.set(&(var.as_tensor() - (&buf * lr)?)?)?;
                    self.m[i] = buf;
                }
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    let m = ((&self.m[i] * beta1)? + (&g * (1.0 - beta1))?)?;
                    let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                    let t = self.step as i32;
                    let mhat = (&m / (1.0 - beta1.powi(t)))?;
                    let vhat = (&v / (1.0 - beta2.powi(t)))?;
                    let upd = mhat.div(&(vhat.sqrt()? + eps)?)?;
                    var.set(&(var.as_tensor() - (upd * lr)?)?)?;
                    self.m[i] = m;
                    self.v[i] = v;
                }
            }
        }
        Ok(())
    }
}
