//! Gradient ascent from noise on the log-probability of the target class (as in Nguyen et al.
//! 2015 and, with regularisation, Simonyan et al. 2014 / Yosinski et al. 2015): normalised
//! gradient steps, optional L2 decay towards the domain's middle, optional periodic Gaussian
//! blur; the most confident image seen is returned.

use rand_chacha::ChaCha8Rng;

use super::evolve::uniform;
use super::{check_classes, softmax_rows, FoolingImage};
use crate::error::{AttackError, Result};
use crate::loss::Loss;
use crate::model::Model;

/// Gradient-ascent settings.
#[derive(Debug, Clone)]
pub struct Ascent {
    /// Maximum gradient steps per image.
    pub steps: usize,
    /// L2 length of each step, as a share of the domain's width times √(input size).
    pub step_size: f32,
    /// Per-step shrink of the image towards the domain's middle (0 = none).
    pub l2_decay: f32,
    /// Blur the image every this many steps (0 = never).
    pub blur_every: usize,
    /// Gaussian blur σ in pixels.
    pub blur_sigma: f32,
    /// Confidence at which an image stops.
    pub threshold: f32,
}

impl Default for Ascent {
    fn default() -> Self {
        Ascent {
            steps: 200,
            step_size: 0.02,
            l2_decay: 0.0,
            blur_every: 0,
            blur_sigma: 0.5,
            threshold: super::FOOLING_CONFIDENCE,
        }
    }
}

impl Ascent {
    /// One image per class of `classes`, each grown from uniform noise.
    pub fn run(
        &self,
        model: &Model,
        classes: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<FoolingImage>> {
        let k = model.classes();
        check_classes(classes, k)?;
        if !(self.step_size > 0.0 && (0.0..1.0).contains(&self.l2_decay)) {
            return Err(AttackError::Invalid(
                "gradient ascent needs a step size > 0 and an L2 decay in [0, 1)".into(),
            ));
        }
        let d = model.input_len();
        let (lo, hi) = model.domain();
        let mid = 0.5 * (lo + hi);
        let n = classes.len();
        let mut x: Vec<f32> = (0..n * d).map(|_| uniform((lo, hi), rng)).collect();
        let step = self.step_size * (hi - lo) * (d as f32).sqrt();
        let mut conf = vec![0f32; n];
        // The most confident image so far per class: a fixed step can bounce past the best point.
        let mut best = vec![f32::NEG_INFINITY; n];
        let mut best_x = x.clone();
        let mut steps_to = vec![None::<usize>; n];
        for t in 0..=self.steps {
            let open: Vec<usize> = (0..n).filter(|&i| steps_to[i].is_none()).collect();
            if open.is_empty() {
                break;
            }
            let xs: Vec<f32> = open
                .iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                .collect();
            let targets: Vec<usize> = open.iter().map(|&i| classes[i]).collect();
            // Larger is better: the targeted cross-entropy loss is log p(target).
            let (logits, _, grad) =
                model.loss_grad(&xs, &Loss::CrossEntropy, &targets, Some(&targets))?;
            let probs = softmax_rows(&logits, k);
            for (j, &i) in open.iter().enumerate() {
                conf[i] = probs[j][classes[i]];
                if conf[i] > best[i] {
                    best[i] = conf[i];
                    best_x[i * d..(i + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
                }
                if conf[i] >= self.threshold {
                    steps_to[i] = Some(t);
                    continue;
                }
                if t == self.steps {
                    continue;
                }
                let g = &grad[j * d..(j + 1) * d];
                let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                let xi = &mut x[i * d..(i + 1) * d];
                for (v, gv) in xi.iter_mut().zip(g) {
                    let moved = *v + step * gv / norm;
                    *v = (mid + (1.0 - self.l2_decay) * (moved - mid)).clamp(lo, hi);
                }
                if self.blur_every > 0 && (t + 1) % self.blur_every == 0 {
                    blur(xi, model.input_shape(), self.blur_sigma);
                }
            }
        }
        // A fresh forward pass gives the reported confidences.
        let probs = softmax_rows(&model.logits(&best_x)?, k);
        Ok((0..n)
            .map(|i| {
                let c = probs[i][classes[i]];
                FoolingImage {
                    class: classes[i],
                    image: best_x[i * d..(i + 1) * d].to_vec(),
                    confidence: c,
                    queries: steps_to[i].unwrap_or(self.steps) as u64 + 1,
                    steps: steps_to[i].unwrap_or(self.steps),
                    success: c >= self.threshold,
                }
            })
            .collect())
    }
}

/// In-place Gaussian blur of each H×W plane of an image of shape C×H×W (edges repeated);
/// other shapes are left alone.
fn blur(x: &mut [f32], shape: &[usize], sigma: f32) {
    let [_, h, w] = match shape {
        [c, h, w] => [*c, *h, *w],
        _ => return,
    };
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.into_iter().map(|v| v / s).collect();
    let at = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    for plane in x.chunks_mut(h * w) {
        let mut tmp = vec![0f32; h * w];
        for y in 0..h {
            for xx in 0..w {
                tmp[y * w + xx] = (-r..=r)
                    .map(|o| k[(o + r) as usize] * plane[y * w + at(xx as isize + o, w)])
                    .sum();
            }
        }
        for y in 0..h {
            for xx in 0..w {
                plane[y * w + xx] = (-r..=r)
                    .map(|o| k[(o + r) as usize] * tmp[at(y as isize + o, h) * w + xx])
                    .sum();
            }
        }
    }
}
