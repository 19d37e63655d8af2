//! Robust physical perturbations (RP2, Eykholt et al. 2018): a sticker confined to a mask on an
//! object's texture, optimised with Expectation over Transformation so that it fools the model
//! from many viewpoints, with a non-printability and a smoothness penalty. The same loop
//! optimises the universal patch of [`crate::patch`] (a texture that is all sticker).
//!
//! Each step draws a batch of random views, renders the stickered texture in each
//! ([`crate::eot::Scene`]), asks the model for the input gradient of a clipped margin loss, pulls
//! it back through the rendering to the texture, keeps the masked pixels, adds the penalties'
//! gradients and takes an Adam step on the sticker pixels in the input domain.

use std::time::Instant;

use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::adam::Adam;
use crate::eot::{Scene, View};
use crate::error::{AttackError, Result};
use crate::loss::Loss;
use crate::mask::Mask;
use crate::model::{argmax_rows, Model};
use crate::printability::{nps, palette, snap_to_palette, total_variation};

/// A view with the true class of what it shows.
#[derive(Debug, Clone)]
pub struct LabeledView {
    /// The view.
    pub view: View,
    /// True class of the object in it.
    pub label: usize,
}

/// Settings of the sticker optimisation (one small object, Foolbox style).
#[derive(Debug, Clone, PartialEq)]
pub struct StickerAttack {
    /// Adam steps.
    pub steps: usize,
    /// Random views per step (the EOT batch).
    pub views: usize,
    /// Adam step size on pixels in [0,1].
    pub lr: f32,
    /// Weight of the non-printability score.
    pub nps_weight: f32,
    /// Weight of the total variation.
    pub tv_weight: f32,
    /// The margin loss stops rewarding a view once its goal margin reaches κ, so the batch's
    /// gradient comes from the views not yet fooled.
    pub kappa: f32,
    /// Every this many steps the sticker is scored on the check views and the best one kept.
    pub check_every: usize,
    /// Independent runs from fresh random stickers; the best on the check views is returned
    /// (the loss over views is far from convex: one run can settle on a poor sticker).
    pub restarts: usize,
    /// Ascend cross-entropy (minus that of the target when targeted) instead of the margin.
    pub cross_entropy: bool,
}

impl Default for StickerAttack {
    fn default() -> Self {
        StickerAttack {
            steps: 300,
            views: 16,
            lr: 0.03,
            nps_weight: 0.05,
            tv_weight: 0.02,
            kappa: 5.0,
            check_every: 25,
            restarts: 1,
            cross_entropy: false,
        }
    }
}

/// What an optimisation returns.
#[derive(Debug, Clone)]
pub struct StickerRun {
    /// The best sticker (C×Ht×Wt; only masked pixels matter), by its goal rate on the check views.
    pub sticker: Vec<f32>,
    /// Goal rate of the returned sticker on the check views (drawn from the optimisation stream).
    pub check_rate: f32,
    /// Per check: (step, mean model loss of the last batch, goal rate on the check views).
    pub history: Vec<(usize, f32, f32)>,
    /// Forward evaluations (frames).
    pub forwards: u64,
    /// Gradient evaluations (frames).
    pub gradients: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The texture with the sticker painted in: `base` outside the mask, `sticker` inside.
pub fn apply_sticker(base: &[f32], sticker: &[f32], mask: &Mask) -> Vec<f32> {
    let hw = mask.inside.len();
    base.iter()
        .zip(sticker)
        .enumerate()
        .map(|(i, (b, s))| if mask.inside[i % hw] { *s } else { *b })
        .collect()
}

/// A control sticker: uniform random pixels in `domain` inside the mask (same area, no optimisation).
pub fn random_sticker(
    base: &[f32],
    mask: &Mask,
    domain: (f32, f32),
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let noise: Vec<f32> = (0..base.len())
        .map(|_| rng.random_range(domain.0..=domain.1))
        .collect();
    apply_sticker(base, &noise, mask)
}

/// The model's prediction for `texture` in each of `views`, `batch` frames per forward pass.
pub fn predict_views(
    model: &Model,
    scene: &Scene,
    texture: &[f32],
    views: &[LabeledView],
    batch: usize,
) -> Result<Vec<usize>> {
    let mut preds = Vec::with_capacity(views.len());
    for chunk in views.chunks(batch.max(1)) {
        let frames: Vec<f32> = chunk
            .iter()
            .flat_map(|v| scene.render(&scene.prepare(&v.view), texture).0)
            .collect();
        preds.extend(argmax_rows(&model.logits(&frames)?, model.classes()));
    }
    Ok(preds)
}

/// Share of views whose prediction reaches the goal: `target`, or (untargeted) not the label.
/// Views whose true label already is the target are not counted.
pub fn goal_rate(preds: &[usize], views: &[LabeledView], target: Option<usize>) -> f32 {
    let mut hit = 0usize;
    let mut counted = 0usize;
    for (p, v) in preds.iter().zip(views) {
        match target {
            Some(t) if v.label == t => continue,
            Some(t) => hit += usize::from(*p == t),
            None => hit += usize::from(*p != v.label),
        }
        counted += 1;
    }
    hit as f32 / counted.max(1) as f32
}

/// Per-frame objective to maximise: the goal margin (target over the rest, or the best other
/// class over the label), clipped at κ.
fn objective(
    z: &Tensor,
    labels: &[usize],
    target: Option<usize>,
    kappa: f32,
    cross_entropy: bool,
) -> candle_core::Result<Tensor> {
    let k = z.dim(1)?;
    let m = match (target, cross_entropy) {
        (Some(t), false) => Loss::Margin.per_sample(z, &vec![t; labels.len()], None, k)?,
        (None, false) => Loss::Margin.per_sample(z, labels, None, k)?.neg()?,
        (t, true) => {
            let t = t.map(|t| vec![t; labels.len()]);
            Loss::CrossEntropy.per_sample(z, labels, t.as_deref(), k)?
        }
    };
    m.minimum(kappa as f64)
}

impl StickerAttack {
    /// Name with its key settings.
    pub fn name(&self) -> String {
        format!("rp2-eot({} steps × {} views)", self.steps, self.views)
    }

    /// Optimises a sticker inside `mask` on `base` (the clean C×Ht×Wt texture) so that the
    /// rendered views reach the goal (`target`, or any wrong class). `draw` samples a training
    /// view; `check` are fixed views, from the same stream as `draw`, that pick the best sticker.
    #[allow(clippy::too_many_arguments)]
    pub fn optimise(
        &self,
        model: &Model,
        scene: &Scene,
        base: &[f32],
        mask: &Mask,
        mut draw: impl FnMut(&mut ChaCha8Rng) -> LabeledView,
        check: &[LabeledView],
        target: Option<usize>,
        rng: &mut ChaCha8Rng,
    ) -> Result<StickerRun> {
        let c = scene.channels;
        let [th, tw] = scene.tex_hw;
        if model.input_shape() != [c, scene.out_hw[0], scene.out_hw[1]] {
            return Err(AttackError::Invalid(format!(
                "the model takes input {:?} but views are {c}×{}×{}",
                model.input_shape(),
                scene.out_hw[0],
                scene.out_hw[1]
            )));
        }
        if base.len() != c * th * tw || mask.height != th || mask.width != tw {
            return Err(AttackError::Invalid(format!(
                "texture ({} numbers) and mask ({}×{}) do not fit a {c}×{th}×{tw} texture",
                base.len(),
                mask.width,
                mask.height
            )));
        }
        if let Some(t) = target {
            if t >= model.classes() {
                return Err(AttackError::Invalid(format!(
                    "target class {t} is not one of the model's {} classes",
                    model.classes()
                )));
            }
        }
        if self.steps == 0 || self.views == 0 || self.check_every == 0 {
            return Err(AttackError::Invalid(
                "sticker steps, views per step and check interval must be ≥ 1".into(),
            ));
        }
        let t0 = Instant::now();
        let (f0, g0) = (model.forwards(), model.gradients());
        let (lo, hi) = scene.domain;
        let pal = palette(c);
        let mut best = (f32::NEG_INFINITY, base.to_vec());
        let mut history = Vec::new();
        let hw = th * tw;
        for restart in 0..self.restarts.max(1) {
            let mut sticker: Vec<f32> =
                (0..base.len()).map(|_| rng.random_range(lo..=hi)).collect();
            let mut adam = Adam::new(sticker.len(), self.lr);
            for step in 1..=self.steps {
                let batch: Vec<LabeledView> = (0..self.views).map(|_| draw(rng)).collect();
                let tex = apply_sticker(base, &sticker, mask);
                let prepared: Vec<_> = batch.iter().map(|v| scene.prepare(&v.view)).collect();
                let rendered: Vec<(Vec<f32>, Vec<f32>)> =
                    prepared.iter().map(|pv| scene.render(pv, &tex)).collect();
                let frames: Vec<f32> = rendered.iter().flat_map(|r| r.0.iter().copied()).collect();
                let labels: Vec<usize> = batch.iter().map(|v| v.label).collect();
                let (_, losses, grad) = model.objective_grad(&frames, |z| {
                    objective(z, &labels, target, self.kappa, self.cross_entropy)
                })?;
                // Descent direction of −mean(objective) + penalties, pulled back to the texture.
                let d = scene.frame_len();
                let mut g = vec![0f32; base.len()];
                for (i, (pv, r)) in prepared.iter().zip(&rendered).enumerate() {
                    let gi = scene.adjoint(pv, &r.1, &grad[i * d..(i + 1) * d]);
                    g.iter_mut()
                        .zip(gi)
                        .for_each(|(a, b)| *a -= b / self.views as f32);
                }
                if self.nps_weight > 0.0 {
                    let (_, gn) = nps(&sticker, c, &mask.inside, &pal);
                    g.iter_mut()
                        .zip(gn)
                        .for_each(|(a, b)| *a += self.nps_weight * b);
                }
                if self.tv_weight > 0.0 {
                    let (_, gt) = total_variation(&sticker, c, th, tw, &mask.inside);
                    g.iter_mut()
                        .zip(gt)
                        .for_each(|(a, b)| *a += self.tv_weight * b);
                }
                for (i, v) in g.iter_mut().enumerate() {
                    if !mask.inside[i % hw] {
                        *v = 0.0;
                    }
                }
                adam.step(&mut sticker, &g, lo, hi);
                if step % self.check_every == 0 || step == self.steps {
                    let tex = apply_sticker(base, &sticker, mask);
                    let preds = predict_views(model, scene, &tex, check, 64)?;
                    let rate = goal_rate(&preds, check, target);
                    let mean_loss = losses.iter().sum::<f32>() / losses.len().max(1) as f32;
                    history.push((restart * self.steps + step, mean_loss, rate));
                    if rate >= best.0 {
                        best = (rate, sticker.clone());
                    }
                }
            }
        }
        Ok(StickerRun {
            sticker: best.1,
            check_rate: best.0,
            history,
            forwards: model.forwards() - f0,
            gradients: model.gradients() - g0,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// The sticker as printed: masked pixels snapped to the printable palette.
pub fn printed(sticker: &[f32], channels: usize, mask: &Mask) -> Vec<f32> {
    let mut s = sticker.to_vec();
    snap_to_palette(&mut s, channels, &mask.inside, &palette(channels));
    s
}
