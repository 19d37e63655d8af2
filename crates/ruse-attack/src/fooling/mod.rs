//! Fooling images (Nguyen, Yosinski & Clune 2015): inputs unrecognisable to people that the model
//! labels as a chosen class with ≥ 99% confidence, grown from noise by evolution (a direct pixel
//! encoding or a CPPN encoding, selected MAP-Elites style with one elite per class) or by
//! gradient ascent on the class log-probability with optional regularisation.

pub mod ascent;
pub mod cppn;
pub mod direct;
pub mod evolve;

pub use ascent::Ascent;
pub use cppn::Cppn;
pub use direct::DirectImage;
pub use evolve::{Evolution, Genome};

use crate::error::{AttackError, Result};
use crate::model::Model;

/// The confidence the paper calls fooled.
pub const FOOLING_CONFIDENCE: f32 = 0.99;

/// One fooling image and how it was found.
#[derive(Debug, Clone)]
pub struct FoolingImage {
    /// The class it is meant to be labelled.
    pub class: usize,
    /// Pixels in the model's input domain, flat in the model's input shape.
    pub image: Vec<f32>,
    /// Softmax probability of `class` on `image`, from a fresh forward pass.
    pub confidence: f32,
    /// Per-sample model evaluations spent until it first reached the threshold (or in total).
    pub queries: u64,
    /// Generations (evolution) or gradient steps (ascent) until then.
    pub steps: usize,
    /// Whether `confidence` reached the search's threshold.
    pub success: bool,
}

/// Softmax of each row of `k` logits.
pub fn softmax_rows(logits: &[f32], k: usize) -> Vec<Vec<f32>> {
    logits
        .chunks(k)
        .map(|r| {
            let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = r.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        })
        .collect()
}

/// Rejects an empty or duplicate class list and classes the model does not score.
pub fn check_classes(classes: &[usize], k: usize) -> Result<()> {
    if classes.is_empty() {
        return Err(AttackError::Invalid("no target class given".into()));
    }
    if let Some(c) = classes.iter().find(|&&c| c >= k) {
        return Err(AttackError::Invalid(format!(
            "class {c} is not a class of this model (it scores classes 0..={})",
            k - 1
        )));
    }
    let mut sorted = classes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != classes.len() {
        return Err(AttackError::Invalid(
            "a target class is listed twice".into(),
        ));
    }
    Ok(())
}

/// Confidence of each `classes[i]` on image `i` of `images`, from one forward pass.
pub fn confidences(model: &Model, images: &[f32], classes: &[usize]) -> Result<Vec<f32>> {
    let k = model.classes();
    let p = softmax_rows(&model.logits(images)?, k);
    Ok(p.iter().zip(classes).map(|(row, &c)| row[c]).collect())
}
