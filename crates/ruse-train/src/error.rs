//! Errors of training and evaluation.

use std::path::PathBuf;

/// What can go wrong while training or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The graph failed.
    #[error(transparent)]
    Graph(#[from] ruse_graph::GraphError),
    /// An attack (adversarial validation) failed.
    #[error(transparent)]
    Attack(#[from] ruse_attack::AttackError),
    /// A tensor op failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Model and data do not fit together.
    #[error("model and data do not fit: {0}")]
    Mismatch(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Training diverged.
    #[error("training diverged: loss is {loss} at epoch {epoch}, batch {batch}; lower the learning rate (the last checkpoint is kept)")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch (1-based).
        batch: usize,
        /// The loss value.
        loss: f32,
    },
    /// A checkpoint could not be read or written.
    #[error("{path}: checkpoint: {reason}")]
    Checkpoint {
        /// Checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Shorthand result type of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
