//! Attack losses on logits (to be maximised): cross-entropy and the difference of logits ratio.

use candle_core::{Device, Tensor, D};
use ruse_graph::loss::{cross_entropy_per_sample, one_hot};

/// Which loss an attack ascends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Cross-entropy of the true label (untargeted) or minus that of the target (targeted).
    CrossEntropy,
    /// Difference of logits ratio (Croce & Hein 2020), shift- and scale-invariant.
    Dlr,
    /// The raw logit of the class given per sample in `targets` (for DeepFool's Jacobian rows).
    Logit,
    /// Margin z_y − max_{j≠y} z_j (positive while correctly classified; C&W minimises it).
    Margin,
}

impl Loss {
    /// Per-sample loss [B] of logits [B, k]; larger means closer to the attack's goal.
    pub fn per_sample(
        &self,
        z: &Tensor,
        labels: &[usize],
        targets: Option<&[usize]>,
        k: usize,
    ) -> candle_core::Result<Tensor> {
        let dev = z.device();
        let ids = |v: &[usize]| {
            Tensor::from_vec(
                v.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                v.len(),
                dev,
            )
        };
        let y = ids(labels)?;
        match (self, targets) {
            (Loss::CrossEntropy, None) => cross_entropy_per_sample(z, &y),
            (Loss::CrossEntropy, Some(t)) => cross_entropy_per_sample(z, &ids(t)?)?.neg(),
            (Loss::Dlr, targets) => {
                // DLR's scale term needs the 3rd (untargeted) or 4th (targeted) largest logit.
                let need = if targets.is_some() { 4 } else { 3 };
                if k < need {
                    candle_core::bail!(
                        "the DLR loss needs at least {need} classes, the model has {k}"
                    );
                }
                dlr(z, labels, targets, k, dev)
            }
            (Loss::Margin, _) => {
                let y1 = one_hot(&y, k)?;
                let zy = (z * &y1)?.sum(D::Minus1)?;
                let other = (z + ((&y1 * 1e9f64)?.neg())?)?.max(D::Minus1)?;
                zy - other
            }
            (Loss::Logit, t) => (z * one_hot(&ids(t.unwrap_or(labels))?, k)?)?.sum(D::Minus1),
        }
    }
}

/// DLR: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3); targeted: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2).
fn dlr(
    z: &Tensor,
    labels: &[usize],
    targets: Option<&[usize]>,
    k: usize,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let ids = |v: &[usize]| {
        Tensor::from_vec(
            v.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            v.len(),
            dev,
        )
    };
    let y1 = one_hot(&ids(labels)?, k)?;
    let zy = (z * &y1)?.sum(D::Minus1)?;
    // Sorted logits for the scale term (values only; gradients flow through the chosen entries).
    let sorted = z.detach().to_vec2::<f32>()?;
    let pick = |rank: usize| -> candle_core::Result<Tensor> {
        let idx: Vec<usize> = sorted
            .iter()
            .map(|row| {
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                order[rank.min(row.len() - 1)]
            })
            .collect();
        (z * one_hot(&ids(&idx)?, k)?)?.sum(D::Minus1)
    };
    let (p1, p3) = (pick(0)?, pick(2)?);
    match targets {
        None => {
            let big = ((&y1 * 1e9f64)?.neg())?;
            let other = (z + big)?.max(D::Minus1)?;
            let den = ((p1 - p3)? + 1e-12)?;
            ((zy - other)? / den)?.neg()
        }
        Some(t) => {
            let zt = (z * one_hot(&ids(t)?, k)?)?.sum(D::Minus1)?;
            let p4 = pick(3)?;
            let den = ((p1 - ((p3 + p4)? * 0.5)?)? + 1e-12)?;
            ((zy - zt)? / den)?.neg()
        }
    }
}
