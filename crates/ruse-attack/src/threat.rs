//! Threat models: an Lp ball of radius ε around each input, intersected with the input domain.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{AttackError, Result};

/// The norm of the perturbation ball.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    /// max |δ_i|.
    Linf,
    /// sqrt(Σ δ_i²).
    L2,
    /// Σ |δ_i|.
    L1,
}

impl FromStr for Norm {
    type Err = AttackError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "linf" | "inf" | "l_inf" => Ok(Norm::Linf),
            "l2" => Ok(Norm::L2),
            "l1" => Ok(Norm::L1),
            _ => Err(AttackError::Invalid(format!(
                "unknown norm '{s}': use linf, l2 or l1"
            ))),
        }
    }
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
            Norm::L1 => "l1",
        })
    }
}

impl Norm {
    /// The norm of a vector.
    pub fn of(self, d: &[f32]) -> f32 {
        match self {
            Norm::Linf => d.iter().fold(0f32, |m, v| m.max(v.abs())),
            Norm::L2 => d.iter().map(|v| v * v).sum::<f32>().sqrt(),
            Norm::L1 => d.iter().map(|v| v.abs()).sum(),
        }
    }
}

/// An Lp ball of radius `eps` around each clean input, clipped to the input domain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThreatModel {
    /// The norm.
    pub norm: Norm,
    /// The radius.
    pub eps: f32,
    /// Valid range of every input element.
    pub domain: (f32, f32),
}

impl ThreatModel {
    /// A threat model after checking ε against the domain (ε ≥ 0, finite, not absurdly large).
    pub fn new(norm: Norm, eps: f32, domain: (f32, f32)) -> Result<Self> {
        if !eps.is_finite() || eps < 0.0 {
            return Err(AttackError::Invalid(format!(
                "ε = {eps} must be a finite number ≥ 0"
            )));
        }
        let (lo, hi) = domain;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(AttackError::Invalid(format!(
                "input domain [{lo}, {hi}] is empty or not finite"
            )));
        }
        if norm == Norm::Linf && eps > hi - lo {
            return Err(AttackError::Invalid(format!(
                "ε = {eps} exceeds the width of the input domain [{lo}, {hi}]: every input would be reachable"
            )));
        }
        Ok(ThreatModel { norm, eps, domain })
    }

    /// Projects `x` (one sample) onto the ball around `x0` and the domain, in place.
    pub fn project(&self, x: &mut [f32], x0: &[f32]) {
        let (lo, hi) = self.domain;
        match self.norm {
            Norm::Linf => {
                for (v, &c) in x.iter_mut().zip(x0) {
                    *v = v.clamp(c - self.eps, c + self.eps).clamp(lo, hi);
                }
            }
            Norm::L2 => {
                // Clamping to the box after scaling only shrinks the perturbation, so the result stays in the ball.
                let n = x
                    .iter()
                    .zip(x0)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                let s = if n > self.eps { self.eps / n } else { 1.0 };
                for (v, &c) in x.iter_mut().zip(x0) {
                    *v = (c + (*v - c) * s).clamp(lo, hi);
                }
            }
            Norm::L1 => {
                let mut d: Vec<f32> = x.iter().zip(x0).map(|(a, b)| a - b).collect();
                project_l1(&mut d, self.eps);
                for ((v, &c), dv) in x.iter_mut().zip(x0).zip(d) {
                    *v = (c + dv).clamp(lo, hi);
                }
            }
        }
    }

    /// A random start inside the ball (and the domain) around `x0`: uniform for L∞ and L2 (radius
    /// ε·U^(1/D)); for L1 a random direction at radius ε·U (not uniform, just diverse).
    pub fn random_start(&self, x0: &[f32], rng: &mut impl Rng) -> Vec<f32> {
        let mut x: Vec<f32> = match self.norm {
            Norm::Linf => x0
                .iter()
                .map(|&c| c + rng.random_range(-1.0f32..=1.0) * self.eps)
                .collect(),
            Norm::L2 | Norm::L1 => {
                // A random direction scaled to a random radius inside the ball.
                let d: Vec<f32> = x0.iter().map(|_| gaussian(rng)).collect();
                let n = self.norm.of(&d).max(1e-12);
                let u: f32 = rng.random();
                let r = match self.norm {
                    Norm::L2 => self.eps * u.powf(1.0 / x0.len().max(1) as f32),
                    _ => self.eps * u,
                };
                x0.iter().zip(&d).map(|(&c, &v)| c + v / n * r).collect()
            }
        };
        self.project(&mut x, x0);
        x
    }
}

/// A standard normal sample (Box–Muller).
pub fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-12);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Euclidean projection onto the L1 ball of radius `eps` (Duchi et al. 2008), in place.
fn project_l1(d: &mut [f32], eps: f32) {
    let n1: f32 = d.iter().map(|v| v.abs()).sum();
    if n1 <= eps {
        return;
    }
    let mut u: Vec<f32> = d.iter().map(|v| v.abs()).collect();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut cum, mut theta) = (0f32, 0f32);
    for (i, &ui) in u.iter().enumerate() {
        cum += ui;
        let t = (cum - eps) / (i + 1) as f32;
        if ui > t {
            theta = t;
        }
    }
    for v in d.iter_mut() {
        *v = v.signum() * (v.abs() - theta).max(0.0);
    }
}
