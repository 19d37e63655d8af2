//! The training loop: seeded shuffling, mini-batch cross-entropy (on clean inputs, or hardened by
//! a [`Defense`]), an optimiser step per batch, validation (clean, and under PGD for a defense)
//! and a checkpoint after every epoch.

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var, D};
use ruse_data::Dataset;
use ruse_graph::Graph;
use serde::{Deserialize, Serialize};

use crate::batch::{batch, check_fit, epoch_order};
use crate::checkpoint::Checkpoint;
use crate::defense::{batch_loss, batch_rng, ramp_factor, Defense};
use crate::error::{Result, TrainError};
use crate::eval::{evaluate, evaluate_pgd, VAL_PGD_STEPS};
use crate::optim::{Optimizer, OptimizerKind};
use crate::schedule::LrSchedule;

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total epochs (a resumed run continues up to this number).
    pub epochs: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Seed of the shuffling.
    pub seed: u64,
    /// Where to write a checkpoint after each epoch (None = no checkpoints).
    pub checkpoint: Option<PathBuf>,
    /// Adversarial training (default: none, clean inputs).
    #[serde(default)]
    pub defense: Defense,
    /// Epochs over which the defense's ε (and step sizes) grow linearly from 0 (0 = full ε at once).
    #[serde(default)]
    pub eps_ramp_epochs: usize,
    /// Epochs of clean training (ε = 0, κ = 1) before the ε ramp starts.
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Validation samples (the first ones) attacked with PGD after each epoch under a defense,
    /// and under IBP training also checked with sound IBP (0 = no robust validation).
    #[serde(default = "default_val_attack_limit")]
    pub val_attack_limit: usize,
    /// Caller's settings (e.g. the CLI's data spec), stored verbatim in checkpoints.
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Default of [`TrainConfig::val_attack_limit`].
pub const DEFAULT_VAL_ATTACK_LIMIT: usize = 1000;

fn default_val_attack_limit() -> usize {
    DEFAULT_VAL_ATTACK_LIMIT
}

impl TrainConfig {
    /// Rejects settings that cannot train.
    pub fn validate(&self) -> Result<()> {
        self.defense.validate()?;
        if self.eps_ramp_epochs > 0 && self.defense == Defense::None {
            return Err(TrainError::Config(
                "an ε ramp needs a defense (there is no ε to ramp)".into(),
            ));
        }
        if self.warmup_epochs > 0 && self.defense == Defense::None {
            return Err(TrainError::Config(
                "a warm-up needs a defense (plain training has nothing to warm up for)".into(),
            ));
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(TrainError::Config(
                "epochs and batch size must be ≥ 1".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.lr < 100.0) {
            return Err(TrainError::Config(format!(
                "learning rate {} must be in (0, 100)",
                self.lr
            )));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay < 1.0) {
            return Err(TrainError::Config(format!(
                "weight decay {} must be in [0, 1)",
                self.weight_decay
            )));
        }
        Ok(())
    }
}

/// Summary of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (on the fly, while weights change) on the inputs trained on: clean ones,
    /// or under a defense the adversarial ones (x′ for TRADES).
    pub train_accuracy: f64,
    /// Validation accuracy, if a validation set was given.
    pub val_accuracy: Option<f64>,
    /// The defense's ε at the end of the epoch (after the ramp), if training under a defense.
    #[serde(default)]
    pub train_eps: Option<f64>,
    /// Validation accuracy under PGD at the defense's full ε (see [`crate::VAL_PGD_STEPS`]) on
    /// the first `val_attack_limit` validation samples, if any.
    #[serde(default)]
    pub val_robust_accuracy: Option<f64>,
    /// Verified accuracy at the defense's full ε on the first `val_attack_limit` validation
    /// samples under certified training: proved by ruse-verify's sound IBP, or else by its CROWN
    /// pass with interval intermediate bounds (see [`crate::certified::verified_accuracy`]).
    #[serde(default)]
    pub val_verified_accuracy: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// Result of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// One entry per epoch, including epochs done before a resume.
    pub history: Vec<EpochStats>,
}

/// Receives progress while training (the CLI renders it; the library never prints).
pub trait Progress {
    /// After each batch: epoch, batches done, batches per epoch, running loss and accuracy.
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, accuracy: f64);
    /// After each epoch.
    fn epoch(&mut self, stats: &EpochStats);
}

/// A progress sink that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn batch(&mut self, _: usize, _: usize, _: usize, _: f64, _: f64) {}
    fn epoch(&mut self, _: &EpochStats) {}
}

/// Trains `graph` in place on `data`; validates on `val` after each epoch; resumes from `resume`.
pub fn train(
    graph: &mut Graph,
    data: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    resume: Option<Checkpoint>,
    progress: &mut dyn Progress,
) -> Result<TrainReport> {
    cfg.validate()?;
    check_fit(graph, data)?;
    if let Some(eps) = cfg.defense.eps() {
        let (lo, hi) = graph.input_domain;
        if eps > hi - lo {
            return Err(TrainError::Config(format!(
                "ε = {eps} exceeds the width of the model's input domain [{lo}, {hi}]"
            )));
        }
    }
    if let Some(v) = val {
        check_fit(graph, v)?;
    }
    if data.is_empty() {
        return Err(TrainError::Config(format!(
            "'{}' has no samples",
            data.name
        )));
    }
    let trainable = graph.trainable_params();
    let device = Device::Cpu;
    let (vars, mut opt, mut history, start) = match resume {
        Some(ck) => {
            graph.set_params(&ck.params)?;
            let vars = trainable
                .iter()
                .map(|&i| Var::from_tensor(&graph.params[i].tensor))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let mut opt = Optimizer::new(cfg.optimizer.clone(), cfg.weight_decay, &vars)?;
            if ck.m.len() != vars.len() || (!ck.v.is_empty() && ck.v.len() != vars.len()) {
                return Err(TrainError::Checkpoint {
                    path: cfg.checkpoint.clone().unwrap_or_default(),
                    reason: "optimizer state does not match the model".into(),
                });
            }
            opt.m = ck.m;
            opt.v = ck.v;
            opt.step = ck.step;
            (vars, opt, ck.history, ck.epoch + 1)
        }
        None => {
            let vars = trainable
                .iter()
                .map(|&i| Var::from_tensor(&graph.params[i].tensor))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let opt = Optimizer::new(cfg.optimizer.clone(), cfg.weight_decay, &vars)?;
            (vars, opt, Vec::new(), 1)
        }
    };
    // Robust validation attacks the first `val_attack_limit` validation samples.
    let robust_val = match val {
        Some(v) if cfg.defense.eps().is_some() && cfg.val_attack_limit > 0 => {
            Some(v.clone().take(cfg.val_attack_limit))
        }
        _ => None,
    };
    let n = data.len();
    let batches = n.div_ceil(cfg.batch_size);
    for epoch in start..=cfg.epochs {
        let t0 = std::time::Instant::now();
        let order = epoch_order(n, cfg.seed, epoch);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        let mut defense = cfg.defense.clone();
        for (bi, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let (x, y) = batch(data, chunk, &device)?;
            let mut params = graph.param_tensors();
            for (v, &i) in vars.iter().zip(&trainable) {
                params[i] = v.as_tensor().clone();
            }
            let t = ramp_factor(
                cfg.warmup_epochs,
                cfg.eps_ramp_epochs,
                epoch,
                (bi + 1) as f64 / batches as f64,
            );
            defense = cfg.defense.scaled(t);
            let mut rng = batch_rng(cfg.seed, epoch, bi);
            let (logits, loss, grads) = batch_loss(&defense, t, graph, &params, &x, &y, &mut rng)?;
            let lval: f32 = loss.to_scalar()?;
            if !lval.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: bi + 1,
                    loss: lval,
                });
            }
            let g: Vec<Option<Tensor>> =
                trainable.iter().map(|&i| grads.params[i].clone()).collect();
            lr = cfg
                .schedule
                .rate(cfg.lr, epoch, bi as f64 / batches as f64, cfg.epochs);
            opt.step(&vars, &g, lr)?;
            let pred = logits.argmax(D::Minus1)?;
            correct += pred
                .eq(&y)?
                .to_dtype(candle_core::DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()? as usize;
            loss_sum += lval as f64 * chunk.len() as f64;
            seen += chunk.len();
            progress.batch(
                epoch,
                bi + 1,
                batches,
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
            );
        }
        let mut params = graph.param_tensors();
        for (v, &i) in vars.iter().zip(&trainable) {
            params[i] = v.as_tensor().clone();
        }
        graph.set_params(&params)?;
        let val_accuracy = match val {
            Some(v) => Some(evaluate(graph, v, 500, |_, _| {})?.accuracy),
            None => None,
        };
        let val_robust_accuracy = match (&robust_val, cfg.defense.eps()) {
            (Some(v), Some(eps)) => {
                Some(evaluate_pgd(graph, v, eps, VAL_PGD_STEPS, cfg.seed, 250)?)
            }
            _ => None,
        };
        let val_verified_accuracy = match (&robust_val, &cfg.defense) {
            (Some(v), Defense::Ibp { eps, .. } | Defense::CrownIbp { eps, .. }) => {
                Some(crate::certified::verified_accuracy(graph, v, *eps, 250)?)
            }
            _ => None,
        };
        let stats = EpochStats {
            epoch,
            loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_accuracy,
            train_eps: defense.eps().map(f64::from),
            val_robust_accuracy,
            val_verified_accuracy,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress.epoch(&stats);
        history.push(stats);
        if let Some(path) = &cfg.checkpoint {
            Checkpoint {
                epoch,
                step: opt.step,
                params: graph.param_tensors(),
                m: opt.m.clone(),
                v: opt.v.clone(),
                history: history.clone(),
                config: cfg.clone(),
                extra: cfg.extra.clone(),
            }
            .save(path, graph)?;
        }
    }
    Ok(TrainReport { history })
}
