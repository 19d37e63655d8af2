//! Spatial attacks: rotations and translations instead of pixel noise (Engstrom et al. 2019,
//! "Exploring the Landscape of Spatial Robustness").
//!
//! The attacker picks, per image, a rotation θ ∈ [−θmax, θmax] about the image centre followed
//! by a shift (tx, ty) ∈ [−tmax, tmax]²; pixels rotated in from outside are the domain's lower
//! bound (black), as in the paper. Three searches over that box:
//! - [`Search::Grid`]: every point of a regular grid (the paper's exhaustive 31 × 5 × 5);
//! - [`Search::Random`]: worst of k uniform draws;
//! - [`Search::Gradient`]: projected signed-gradient ascent of the cross-entropy on (θ, tx, ty),
//!   the gradient chained from the model's input gradient through the bilinear warp's
//!   derivative w.r.t. the sampled point (exact almost everywhere), with random restarts.
//!
//! All three start with the identity, so a sample counts as robust only if it is correct
//! untransformed. A sample succeeds as soon as some transform misclassifies it; otherwise the
//! transform of highest loss is returned.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use ruse_data::warp::{rotate_translate, WarpPlan};

use crate::attack::{Attack, AttackOutcome, Goal, Tracker};
use crate::error::{AttackError, Result};
use crate::model::Model;
use crate::threat::ThreatModel;

/// One rotation + translation.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Transform {
    /// Rotation in degrees (positive = clockwise on screen).
    pub angle: f32,
    /// Horizontal shift in pixels (positive = right).
    pub tx: f32,
    /// Vertical shift in pixels (positive = down).
    pub ty: f32,
}

/// How the transformation box is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// All `angles` × `shifts` × `shifts` grid points, ends included.
    Grid {
        /// Grid points along the angle axis (odd counts include 0°).
        angles: usize,
        /// Grid points along each shift axis.
        shifts: usize,
    },
    /// The worst of `k` uniform random transforms (plus the identity).
    Random {
        /// Random draws per sample.
        k: usize,
    },
    /// Projected signed-gradient ascent on the three parameters.
    Gradient {
        /// Ascent steps per restart.
        steps: usize,
        /// Restarts; the first starts at the identity, the others uniformly in the box.
        restarts: usize,
    },
}

/// A spatial attack: the transformation box and how to search it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spatial {
    /// Largest rotation in degrees.
    pub max_angle: f32,
    /// Largest shift in pixels, per axis.
    pub max_shift: f32,
    /// The search.
    pub search: Search,
}

/// Per-sample result of a spatial attack.
#[derive(Debug, Clone)]
pub struct SpatialOutcome {
    /// The transformed inputs (flat, B×D): the first misclassified one, else the worst found.
    pub adv: Vec<f32>,
    /// The transform that produced each returned input.
    pub transforms: Vec<Transform>,
    /// Whether the returned input is misclassified (re-checked by a forward pass).
    pub success: Vec<bool>,
}

/// The paper's shift bound for an image of height `h`: 3 px at 28×28 (MNIST), scaled with size.
pub fn default_max_shift(h: usize) -> f32 {
    3.0 * h as f32 / 28.0
}

/// Applies `t` to a C×H×W image (`shape`), filling uncovered pixels with `fill`.
pub fn apply_transform(image: &[f32], shape: [usize; 3], t: &Transform, fill: f32) -> Vec<f32> {
    plan(shape, t).apply(image, fill)
}

fn plan(shape: [usize; 3], t: &Transform) -> WarpPlan {
    let [_, h, w] = shape;
    let m = rotate_translate(
        f64::from(t.angle).to_radians(),
        f64::from(t.tx),
        f64::from(t.ty),
        h,
        w,
    );
    WarpPlan::new(&m, [h, w], [h, w])
}

/// Cross-entropy of each row of logits w.r.t. its label.
fn cross_entropy(logits: &[f32], labels: &[usize], k: usize) -> Vec<f32> {
    logits
        .chunks(k)
        .zip(labels)
        .map(|(z, &y)| {
            let m = z.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            m + z.iter().map(|v| (v - m).exp()).sum::<f32>().ln() - z[y]
        })
        .collect()
}

impl Spatial {
    /// Engstrom et al.'s exhaustive grid: 31 angles × 5 × 5 shifts.
    pub fn grid(max_angle: f32, max_shift: f32) -> Self {
        Spatial {
            max_angle,
            max_shift,
            search: Search::Grid {
                angles: 31,
                shifts: 5,
            },
        }
    }

    /// Worst of 10 random transforms.
    pub fn random(max_angle: f32, max_shift: f32) -> Self {
        Spatial {
            max_angle,
            max_shift,
            search: Search::Random { k: 10 },
        }
    }

    /// Gradient ascent, 10 steps × 3 restarts (on MNIST and signs, 10 steps of PGD's step size
    /// 2.5·range/steps fooled more than 20 smaller ones: the loss over the box is far from concave).
    pub fn gradient(max_angle: f32, max_shift: f32) -> Self {
        Spatial {
            max_angle,
            max_shift,
            search: Search::Gradient {
                steps: 10,
                restarts: 3,
            },
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(AttackError::Invalid(m));
        if !(self.max_angle.is_finite() && (0.0..=180.0).contains(&self.max_angle)) {
            return bad(format!("max angle {}° must lie in 0..=180", self.max_angle));
        }
        if !(self.max_shift.is_finite() && self.max_shift >= 0.0) {
            return bad(format!("max shift {} px must be ≥ 0", self.max_shift));
        }
        match self.search {
            Search::Grid { angles, shifts } if angles == 0 || shifts == 0 => {
                bad("the grid needs ≥ 1 angle and ≥ 1 shift".into())
            }
            Search::Random { k: 0 } => bad("worst-of-k needs k ≥ 1".into()),
            Search::Gradient { steps, restarts } if steps == 0 || restarts == 0 => {
                bad("the gradient attack needs ≥ 1 step and ≥ 1 restart".into())
            }
            _ => Ok(()),
        }
    }

    /// The candidate transforms of a grid or random search (identity first).
    fn candidates(&self, rng: &mut ChaCha8Rng) -> Vec<Transform> {
        let axis = |n: usize, max: f32| -> Vec<f32> {
            if n == 1 {
                vec![0.0]
            } else {
                (0..n)
                    .map(|i| -max + 2.0 * max * i as f32 / (n - 1) as f32)
                    .collect()
            }
        };
        let mut out = vec![Transform::default()];
        match self.search {
            Search::Grid { angles, shifts } => {
                for &angle in &axis(angles, self.max_angle) {
                    for &tx in &axis(shifts, self.max_shift) {
                        for &ty in &axis(shifts, self.max_shift) {
                            out.push(Transform { angle, tx, ty });
                        }
                    }
                }
            }
            Search::Random { k } => {
                for _ in 0..k {
                    out.push(self.uniform(rng));
                }
            }
            Search::Gradient { .. } => {}
        }
        out
    }

    fn uniform(&self, rng: &mut ChaCha8Rng) -> Transform {
        let mut u = |m: f32| {
            if m > 0.0 {
                rng.random_range(-m..=m)
            } else {
                0.0
            }
        };
        Transform {
            angle: u(self.max_angle),
            tx: u(self.max_shift),
            ty: u(self.max_shift),
        }
    }

    /// Attacks a batch `x` (flat, B×D, the model's input shape C×H×W) with true `labels`.
    /// Untargeted. The same candidates are tried for every sample of the batch.
    pub fn attack(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<SpatialOutcome> {
        self.check()?;
        let shape: [usize; 3] = model.input_shape().try_into().map_err(|_| {
            AttackError::Invalid(format!(
                "spatial attacks need C×H×W image inputs, the model takes {:?}",
                model.input_shape()
            ))
        })?;
        let (d, k, b) = (model.input_len(), model.classes(), labels.len());
        if x.len() != b * d {
            return Err(AttackError::Invalid(format!(
                "{} labels for {} numbers of {d} per sample",
                b,
                x.len()
            )));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= k) {
            return Err(AttackError::Invalid(format!(
                "label {l} is out of range for a model with {k} classes"
            )));
        }
        let fill = model.domain().0;
        let mut best = Best {
            adv: x.to_vec(),
            transforms: vec![Transform::default(); b],
            loss: vec![f32::NEG_INFINITY; b],
            success: vec![false; b],
            d,
        };
        match self.search {
            Search::Grid { .. } | Search::Random { .. } => {
                for t in self.candidates(rng) {
                    let active: Vec<usize> = (0..b).filter(|&i| !best.success[i]).collect();
                    if active.is_empty() {
                        break;
                    }
                    let p = plan(shape, &t);
                    let xs: Vec<f32> = active
                        .iter()
                        .flat_map(|&i| p.apply(&x[i * d..(i + 1) * d], fill))
                        .collect();
                    let ys: Vec<usize> = active.iter().map(|&i| labels[i]).collect();
                    let logits = model.logits(&xs)?;
                    best.observe(&active, &xs, &logits, &ys, k, &[t].repeat(active.len()));
                }
            }
            Search::Gradient { steps, restarts } => {
                self.ascend(
                    model, x, labels, shape, fill, steps, restarts, rng, &mut best,
                )?;
            }
        }
        // Re-check every returned input with a fresh forward pass over the whole batch.
        let logits = model.logits(&best.adv)?;
        let preds = crate::model::argmax_rows(&logits, k);
        let success = (0..b).map(|i| preds[i] != labels[i]).collect();
        Ok(SpatialOutcome {
            adv: best.adv,
            transforms: best.transforms,
            success,
        })
    }

    /// Cross-entropy of one C×H×W `image` with true `label` after transform `t`, and its
    /// gradient w.r.t. (angle in degrees, tx, ty), returned as a [`Transform`] of partials.
    pub fn loss_gradient(
        model: &Model,
        image: &[f32],
        label: usize,
        t: &Transform,
    ) -> Result<(f32, Transform)> {
        let shape: [usize; 3] = model.input_shape().try_into().map_err(|_| {
            AttackError::Invalid(format!(
                "spatial attacks need C×H×W image inputs, the model takes {:?}",
                model.input_shape()
            ))
        })?;
        let [_, h, w] = shape;
        let fill = model.domain().0;
        let p = plan(shape, t);
        let xs = p.apply(image, fill);
        let (_, loss, g) =
            model.loss_grad(&xs, &crate::loss::Loss::CrossEntropy, &[label], None)?;
        let centre = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let (ga, gx, gy) = param_gradient(&p, image, &g, fill, t, centre, w);
        Ok((
            loss[0],
            Transform {
                angle: ga,
                tx: gx,
                ty: gy,
            },
        ))
    }

    /// Projected signed-gradient ascent on (θ, tx, ty) per sample.
    #[allow(clippy::too_many_arguments)]
    fn ascend(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        shape: [usize; 3],
        fill: f32,
        steps: usize,
        restarts: usize,
        rng: &mut ChaCha8Rng,
        best: &mut Best,
    ) -> Result<()> {
        let (d, k) = (model.input_len(), model.classes());
        let [_, h, w] = shape;
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        // PGD's step rule (Madry et al.): 2.5 × range / steps per coordinate, signed.
        let step_angle = 2.5 * self.max_angle / steps as f32;
        let step_shift = 2.5 * self.max_shift / steps as f32;
        let clamp = |t: &mut Transform| {
            t.angle = t.angle.clamp(-self.max_angle, self.max_angle);
            t.tx = t.tx.clamp(-self.max_shift, self.max_shift);
            t.ty = t.ty.clamp(-self.max_shift, self.max_shift);
        };
        for r in 0..restarts {
            let active: Vec<usize> = (0..best.success.len())
                .filter(|&i| !best.success[i])
                .collect();
            if active.is_empty() {
                break;
            }
            let ys: Vec<usize> = active.iter().map(|&i| labels[i]).collect();
            let mut params: Vec<Transform> = active
                .iter()
                .map(|_| {
                    if r == 0 {
                        Transform::default()
                    } else {
                        self.uniform(rng)
                    }
                })
                .collect();
            for step in 0..=steps {
                let plans: Vec<WarpPlan> = params.iter().map(|t| plan(shape, t)).collect();
                let xs: Vec<f32> = active
                    .iter()
                    .zip(&plans)
                    .flat_map(|(&i, p)| p.apply(&x[i * d..(i + 1) * d], fill))
                    .collect();
                if step == steps {
                    // The last iterate is only evaluated, not stepped from.
                    let logits = model.logits(&xs)?;
                    best.observe(&active, &xs, &logits, &ys, k, &params);
                    break;
                }
                let (logits, _, g) =
                    model.loss_grad(&xs, &crate::loss::Loss::CrossEntropy, &ys, None)?;
                best.observe(&active, &xs, &logits, &ys, k, &params);
                for (j, (&i, p)) in active.iter().zip(&plans).enumerate() {
                    if best.success[i] {
                        continue;
                    }
                    let t = &mut params[j];
                    let (ga, gx, gy) = param_gradient(
                        p,
                        &x[i * d..(i + 1) * d],
                        &g[j * d..(j + 1) * d],
                        fill,
                        t,
                        (cx, cy),
                        w,
                    );
                    t.angle += step_angle * ga.signum() * f32::from(ga != 0.0);
                    t.tx += step_shift * gx.signum() * f32::from(gx != 0.0);
                    t.ty += step_shift * gy.signum() * f32::from(gy != 0.0);
                    clamp(t);
                }
            }
        }
        Ok(())
    }
}

/// ∂L/∂(angle in degrees, tx, ty) of one sample, given ∂L/∂(warped image) `g`.
///
/// Output pixel p samples the source at s = R(−θ)(p − c − t) + c; with q = p − c − t,
/// ∂s/∂θ = (−sinθ·qx + cosθ·qy, −cosθ·qx − sinθ·qy), ∂s/∂tx = −(cosθ, −sinθ),
/// ∂s/∂ty = −(sinθ, cosθ); the warp gives ∂out/∂s.
fn param_gradient(
    p: &WarpPlan,
    image: &[f32],
    g: &[f32],
    fill: f32,
    t: &Transform,
    (cx, cy): (f32, f32),
    w: usize,
) -> (f32, f32, f32) {
    let (gsx, gsy) = p.point_gradient(image, fill);
    let on = p.out_hw()[0] * p.out_hw()[1];
    let (sin, cos) = t.angle.to_radians().sin_cos();
    let (mut ga, mut gx, mut gy) = (0f32, 0f32, 0f32);
    for (idx, ((&gi, &dx), &dy)) in g.iter().zip(&gsx).zip(&gsy).enumerate() {
        if gi == 0.0 {
            continue;
        }
        let o = idx % on;
        let (px, py) = ((o % w) as f32, (o / w) as f32);
        let (qx, qy) = (px - cx - t.tx, py - cy - t.ty);
        let (ax, ay) = (gi * dx, gi * dy);
        ga += ax * (-sin * qx + cos * qy) + ay * (-cos * qx - sin * qy);
        gx += -(ax * cos - ay * sin);
        gy += -(ax * sin + ay * cos);
    }
    (ga * std::f32::consts::PI / 180.0, gx, gy)
}

/// Per-sample best transform so far.
struct Best {
    adv: Vec<f32>,
    transforms: Vec<Transform>,
    loss: Vec<f32>,
    success: Vec<bool>,
    d: usize,
}

impl Best {
    /// Looks at candidates `xs` (rows for samples `active`) made by transforms `ts`: keeps the first
    /// misclassified one, else the one of highest cross-entropy.
    fn observe(
        &mut self,
        active: &[usize],
        xs: &[f32],
        logits: &[f32],
        ys: &[usize],
        k: usize,
        ts: &[Transform],
    ) {
        let d = self.d;
        let ce = cross_entropy(logits, ys, k);
        let preds = crate::model::argmax_rows(logits, k);
        for (j, &i) in active.iter().enumerate() {
            if self.success[i] {
                continue;
            }
            let fooled = preds[j] != ys[j];
            if fooled || ce[j] > self.loss[i] {
                self.loss[i] = ce[j];
                self.transforms[i] = ts[j];
                self.adv[i * d..(i + 1) * d].copy_from_slice(&xs[j * d..(j + 1) * d]);
                self.success[i] = fooled;
            }
        }
    }
}

impl Attack for Spatial {
    fn name(&self) -> String {
        let what = match self.search {
            Search::Grid { angles, shifts } => format!("spatial-grid({angles}×{shifts}×{shifts}"),
            Search::Random { k } => format!("spatial-random(worst of {k}"),
            Search::Gradient { steps, restarts } => {
                format!("spatial-grad({steps} steps × {restarts} restarts")
            }
        };
        format!("{what}, ±{}°, ±{:.1} px)", self.max_angle, self.max_shift)
    }

    /// Runs [`Spatial::attack`]; the threat model's norm and ε are ignored (only its domain
    /// matters, through the model's), and `norms` hold the norm of the pixel change.
    fn run(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        threat: &ThreatModel,
        goal: &Goal,
        rng: &mut ChaCha8Rng,
    ) -> Result<AttackOutcome> {
        if goal.targets().is_some() {
            return Err(AttackError::Invalid(
                "spatial attacks are untargeted; drop --target".into(),
            ));
        }
        let mut tr = Tracker::start(model, x, labels, goal)?;
        let out = self.attack(model, x, labels, rng)?;
        let d = model.input_len();
        for (i, &ok) in out.success.iter().enumerate() {
            if ok {
                tr.record(i, &out.adv[i * d..(i + 1) * d]);
            }
        }
        Ok(tr.finish(x, &out.adv, threat, model))
    }
}
