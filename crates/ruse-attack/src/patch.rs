//! The universal adversarial patch (Brown et al. 2017): one patch, pasted anywhere on any image
//! at a random position, rotation and scale, that makes the model answer a target class. It is a
//! sticker whose texture is all sticker: the scene's texture is the patch, its alpha the patch
//! shape, and the backgrounds are the images it is pasted on, so [`StickerAttack`] optimises it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use ruse_data::warp::Homography;

use crate::eot::{Scene, View};
use crate::error::{AttackError, Result};
use crate::mask::Mask;
use crate::sticker::{LabeledView, StickerAttack};

/// Outline of the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchShape {
    /// A square.
    Square,
    /// A disc (Brown et al.'s round sticker).
    Disc,
}

impl std::str::FromStr for PatchShape {
    type Err = AttackError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "square" => Ok(PatchShape::Square),
            "disc" | "circle" => Ok(PatchShape::Disc),
            other => Err(AttackError::Invalid(format!(
                "unknown patch shape '{other}': use square or disc"
            ))),
        }
    }
}

/// Settings of a universal patch.
#[derive(Debug, Clone, PartialEq)]
pub struct UniversalPatch {
    /// Share of the image area the patch covers at scale 1.
    pub area: f32,
    /// Outline.
    pub shape: PatchShape,
    /// Random scale of each placement: (min, max).
    pub scale: (f32, f32),
    /// Largest random rotation of each placement, degrees (either way).
    pub rotation_deg: f32,
    /// The optimiser (steps, placements per step, step size, penalties).
    pub attack: StickerAttack,
}

impl Default for UniversalPatch {
    fn default() -> Self {
        UniversalPatch {
            area: 0.1,
            shape: PatchShape::Disc,
            scale: (0.8, 1.2),
            rotation_deg: 30.0,
            attack: StickerAttack {
                steps: 300,
                views: 32,
                lr: 0.03,
                nps_weight: 0.0,
                tv_weight: 0.0,
                kappa: 5.0,
                check_every: 25,
                restarts: 1,
                cross_entropy: false,
            },
        }
    }
}

/// A patch ready to paste: its scene (texture = patch, backgrounds = images) and shape mask.
pub struct PatchScene {
    /// Texture = patch, alpha = shape, backgrounds = the images.
    pub scene: Scene,
    /// Pixels of the patch canvas inside the shape.
    pub mask: Mask,
    /// Side of the patch canvas in pixels.
    pub side: usize,
}

impl UniversalPatch {
    /// Name with its key settings.
    pub fn name(&self) -> String {
        format!(
            "universal-patch({:?}, {:.0}% area, {} steps × {})",
            self.shape,
            100.0 * self.area,
            self.attack.steps,
            self.attack.views
        )
    }

    /// The patch scene over `images` (N×C×H×W, `shape` = [C, H, W]) in `domain`.
    pub fn scene(
        &self,
        images: &[f32],
        shape: [usize; 3],
        domain: (f32, f32),
    ) -> Result<PatchScene> {
        let [c, h, w] = shape;
        if !(self.area > 0.0 && self.area < 1.0) {
            return Err(AttackError::Invalid(format!(
                "patch area {} must be a share of the image in (0, 1)",
                self.area
            )));
        }
        if !(self.scale.0 > 0.0 && self.scale.0 <= self.scale.1) {
            return Err(AttackError::Invalid(
                "patch scale range must satisfy 0 < min ≤ max".into(),
            ));
        }
        let d = c * h * w;
        if d == 0 || images.is_empty() || !images.len().is_multiple_of(d) {
            return Err(AttackError::Invalid(format!(
                "{} numbers are not whole {c}×{h}×{w} images",
                images.len()
            )));
        }
        let hw = (h * w) as f32;
        let side = match self.shape {
            PatchShape::Square => (self.area * hw).sqrt(),
            PatchShape::Disc => (4.0 * self.area * hw / std::f32::consts::PI).sqrt(),
        }
        .round()
        .max(2.0) as usize;
        let r = side as f32 / 2.0;
        let alpha: Vec<f32> = (0..side * side)
            .map(|i| {
                let (y, x) = ((i / side) as f32 + 0.5 - r, (i % side) as f32 + 0.5 - r);
                match self.shape {
                    PatchShape::Square => 1.0,
                    PatchShape::Disc => f32::from(u8::from(x * x + y * y <= r * r)),
                }
            })
            .collect();
        let mask = Mask {
            height: side,
            width: side,
            inside: alpha.iter().map(|&a| a > 0.5).collect(),
        };
        Ok(PatchScene {
            scene: Scene {
                channels: c,
                tex_hw: [side, side],
                alpha,
                out_hw: [h, w],
                backgrounds: images.chunks(d).map(<[f32]>::to_vec).collect(),
                domain,
                supersample: 1,
            },
            mask,
            side,
        })
    }

    /// A random placement of the patch on image `index` (true class `label`): scale, rotation and
    /// a position that keeps the patch inside the frame.
    pub fn place(
        &self,
        ps: &PatchScene,
        index: usize,
        label: usize,
        rng: &mut ChaCha8Rng,
    ) -> LabeledView {
        let [h, w] = ps.scene.out_hw;
        let s = if self.scale.1 > self.scale.0 {
            rng.random_range(self.scale.0..self.scale.1)
        } else {
            self.scale.0
        };
        let angle = if self.rotation_deg > 0.0 {
            rng.random_range(-self.rotation_deg..self.rotation_deg)
        } else {
            0.0
        };
        // Half the extent of the rotated, scaled patch: the centre stays this far from the edge.
        let half = 0.5
            * s
            * ps.side as f32
            * (angle.to_radians().cos().abs() + angle.to_radians().sin().abs());
        let pick = |rng: &mut ChaCha8Rng, n: usize| {
            let (lo, hi) = (half - 0.5, n as f32 - 0.5 - half);
            if hi > lo {
                rng.random_range(lo..hi)
            } else {
                (n as f32 - 1.0) / 2.0
            }
        };
        let (cx, cy) = (pick(rng, w), pick(rng, h));
        let c0 = (ps.side as f64 - 1.0) / 2.0;
        let homography = Homography::translation(f64::from(cx), f64::from(cy))
            .after(&Homography::rotation(f64::from(angle).to_radians()))
            .after(&Homography::scale(f64::from(s), f64::from(s)))
            .after(&Homography::translation(-c0, -c0));
        LabeledView {
            view: View {
                homography,
                gain: vec![1.0; ps.scene.channels],
                offset: 0.0,
                blur: 0.0,
                noise: 0.0,
                noise_seed: 0,
                background: index,
            },
            label,
        }
    }
}
