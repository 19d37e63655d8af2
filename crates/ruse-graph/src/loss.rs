//! Losses used by training and attacks.

use candle_core::{DType, Tensor, D};

/// Mean cross-entropy of logits [B, C] against integer labels (u32 tensor [B]).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let log_probs = log_softmax(logits)?;
    let c = logits.dim(D::Minus1)?;
    let onehot = one_hot(labels, c)?;
    (log_probs * onehot)?.sum(D::Minus1)?.neg()?.mean_all()
}

/// Per-sample cross-entropy [B] (for attacks that need each sample's loss).
pub fn cross_entropy_per_sample(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let log_probs = log_softmax(logits)?;
    let onehot = one_hot(labels, logits.dim(D::Minus1)?)?;
    (log_probs * onehot)?.sum(D::Minus1)?.neg()
}

/// log-softmax along the last axis, stabilised by the (detached) row maximum.
pub fn log_softmax(logits: &Tensor) -> candle_core::Result<Tensor> {
    let m = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// One-hot f32 matrix [B, classes] from u32 labels [B].
pub fn one_hot(labels: &Tensor, classes: usize) -> candle_core::Result<Tensor> {
    let ids = Tensor::arange(0u32, classes as u32, labels.device())?;
    labels
        .unsqueeze(1)?
        .broadcast_eq(&ids.unsqueeze(0)?)?
        .to_dtype(DType::F32)
}
