//! The standard training loop: seeded shuffling, mini-batch cross-entropy, an optimiser step per
//! batch, validation and a checkpoint after every epoch.

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var, D};
use ruse_data::Dataset;
use ruse_graph::backward::GradRequest;
use ruse_graph::{loss::cross_entropy, Graph};
use serde::{Deserialize, Serialize};

use crate::batch::{batch, check_fit, epoch_order};
use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};
use crate::eval::evaluate;
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
    /// Caller's settings (e.g. the CLI's data spec), stored verbatim in checkpoints.
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl TrainConfig {
    /// Rejects settings that cannot train.
    pub fn validate(&self) -> Result<()> {
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
    /// Training accuracy (on the fly, while weights change).
    pub train_accuracy: f64,
    /// Validation accuracy, if a validation set was given.
    pub val_accuracy: Option<f64>,
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
    let n = data.len();
    let batches = n.div_ceil(cfg.batch_size);
    for epoch in start..=cfg.epochs {
        let t0 = std::time::Instant::now();
        let order = epoch_order(n, cfg.seed, epoch);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (bi, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let (x, y) = batch(data, chunk, &device)?;
            let mut params = graph.param_tensors();
            for (v, &i) in vars.iter().zip(&trainable) {
                params[i] = v.as_tensor().clone();
            }
            let (logits, loss, grads) = graph.loss_and_gradients(
                &params,
                &x,
                |l| cross_entropy(l, &y),
                GradRequest::PARAMS,
            )?;
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
        let stats = EpochStats {
            epoch,
            loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_accuracy,
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
