//! Adversarial training: what each training batch is hardened with.
//!
//! - PGD-AT (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks"):
//!   train on the cross-entropy at the L∞ PGD maximiser of the cross-entropy.
//! - TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
//!   Accuracy"): CE(f(x), y) + β·KL(f(x) ‖ f(x′)), with x′ the PGD maximiser of the KL started at
//!   x + 0.001·N(0, 1).
//! - FGSM-AT (Wong et al. 2020, "Fast is better than free"): a uniform random start in the ε-ball,
//!   one signed-gradient step of size α, projection.
//!
//! - Gaussian data augmentation (Cohen et al. 2019, "Certified Adversarial Robustness via
//!   Randomized Smoothing"): train on x + N(0, σ²I), unclamped, so the base classifier does well
//!   on the noisy copies that smoothing classifies; certify with `ruse certify --smoothing σ`.
//!
//! Every inner attack walks the graph's own reverse mode (input gradient only), is seeded per batch
//! and stays inside the ε-ball ∩ the model's input domain.

use std::fmt;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::threat::{gaussian, Norm, ThreatModel};
use ruse_graph::backward::{GradRequest, Gradients};
use ruse_graph::loss::{cross_entropy, cross_entropy_per_sample, log_softmax};
use ruse_graph::Graph;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// How training inputs are hardened (L∞ threat model, in the model's input units).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Defense {
    /// Plain training on clean inputs.
    #[default]
    None,
    /// PGD adversarial training (Madry et al. 2018).
    PgdAt {
        /// Radius of the L∞ ball.
        eps: f32,
        /// PGD iterations per batch.
        steps: usize,
        /// Signed-gradient step size.
        step_size: f32,
        /// Start from a uniform random point of the ball (else from the clean input).
        random_start: bool,
    },
    /// TRADES (Zhang et al. 2019).
    Trades {
        /// Radius of the L∞ ball.
        eps: f32,
        /// PGD iterations on the KL per batch.
        steps: usize,
        /// Signed-gradient step size.
        step_size: f32,
        /// Weight of the robustness (KL) term.
        beta: f32,
    },
    /// Fast FGSM adversarial training with a random start (Wong et al. 2020).
    FgsmAt {
        /// Radius of the L∞ ball.
        eps: f32,
        /// FGSM step size (the paper: 1.25 ε).
        alpha: f32,
    },
    /// Gaussian data augmentation for randomized smoothing (Cohen et al. 2019): each training
    /// input gets fresh N(0, σ²) noise per pixel, not clamped to the input domain.
    GaussianNoise {
        /// Standard deviation of the noise, in input units.
        sigma: f32,
    },
    /// Certified training with interval bound propagation (Gowal et al. 2018): κ·CE(clean) +
    /// (1 − κ)·CE(worst-case logits from the interval bounds of the margins), see
    /// [`crate::certified`].
    Ibp {
        /// Radius of the L∞ ball.
        eps: f32,
        /// κ at the end of the ramp (κ goes from 1 down to it; the paper: 0.5).
        kappa_end: f32,
    },
    /// CROWN-IBP (Zhang et al. 2020): as IBP, with the margin bounds β·CROWN-IBP + (1 − β)·IBP,
    /// β going from 1 to 0 over the ε ramp.
    CrownIbp {
        /// Radius of the L∞ ball.
        eps: f32,
        /// κ at the end of the ramp.
        kappa_end: f32,
    },
}

impl Defense {
    /// The defense's radius (None for plain training).
    pub fn eps(&self) -> Option<f32> {
        match *self {
            Defense::None | Defense::GaussianNoise { .. } => None,
            Defense::PgdAt { eps, .. }
            | Defense::Trades { eps, .. }
            | Defense::FgsmAt { eps, .. }
            | Defense::Ibp { eps, .. }
            | Defense::CrownIbp { eps, .. } => Some(eps),
        }
    }

    /// The command-line name: none, pgd-at, trades, fgsm-at, ibp, crown-ibp.
    pub fn name(&self) -> &'static str {
        match self {
            Defense::None => "none",
            Defense::PgdAt { .. } => "pgd-at",
            Defense::Trades { .. } => "trades",
            Defense::FgsmAt { .. } => "fgsm-at",
            Defense::GaussianNoise { .. } => "gaussian",
            Defense::Ibp { .. } => "ibp",
            Defense::CrownIbp { .. } => "crown-ibp",
        }
    }

    /// Rejects settings that cannot harden anything (negative or non-finite numbers, no steps).
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32, need: &str| {
            Err(TrainError::Config(format!(
                "{}: {what} = {v} must be {need}",
                self.name()
            )))
        };
        if let Some(eps) = self.eps() {
            if !(eps.is_finite() && eps >= 0.0) {
                return bad("ε", eps, "a finite number ≥ 0");
            }
        }
        match *self {
            Defense::None => {}
            Defense::PgdAt {
                steps, step_size, ..
            }
            | Defense::Trades {
                steps, step_size, ..
            } => {
                if steps == 0 {
                    return Err(TrainError::Config(format!(
                        "{}: the inner attack needs ≥ 1 step",
                        self.name()
                    )));
                }
                if !(step_size.is_finite() && step_size > 0.0) {
                    return bad("step size", step_size, "a finite number > 0");
                }
            }
            Defense::FgsmAt { alpha, .. } => {
                if !(alpha.is_finite() && alpha > 0.0) {
                    return bad("α", alpha, "a finite number > 0");
                }
            }
            Defense::GaussianNoise { sigma } => {
                if !(sigma.is_finite() && sigma > 0.0) {
                    return bad("σ", sigma, "a finite number > 0");
                }
            }
            Defense::Ibp { kappa_end, .. } | Defense::CrownIbp { kappa_end, .. } => {
                if !(0.0..=1.0).contains(&kappa_end) {
                    return bad("κ_end", kappa_end, "in [0, 1]");
                }
            }
        }
        if let Defense::Trades { beta, .. } = *self {
            if !(beta.is_finite() && beta >= 0.0) {
                return bad("β", beta, "a finite number ≥ 0");
            }
        }
        Ok(())
    }

    /// The same defense with ε and the step sizes multiplied by `t` (the ε ramp).
    pub fn scaled(&self, t: f32) -> Defense {
        let mut d = self.clone();
        match &mut d {
            // σ is the smoothing classifier's own noise level: a ramp would train a different one.
            Defense::None | Defense::GaussianNoise { .. } => {}
            Defense::PgdAt { eps, step_size, .. } | Defense::Trades { eps, step_size, .. } => {
                *eps *= t;
                *step_size *= t;
            }
            Defense::FgsmAt { eps, alpha } => {
                *eps *= t;
                *alpha *= t;
            }
            Defense::Ibp { eps, .. } | Defense::CrownIbp { eps, .. } => *eps *= t,
        }
        d
    }
}

impl fmt::Display for Defense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Defense::None => f.write_str("none (clean training)"),
            Defense::PgdAt {
                eps,
                steps,
                step_size,
                random_start,
            } => write!(
                f,
                "PGD-AT (L∞ ε {eps}, {steps} steps of {step_size}{})",
                if random_start { ", random start" } else { "" }
            ),
            Defense::Trades {
                eps,
                steps,
                step_size,
                beta,
            } => write!(
                f,
                "TRADES (L∞ ε {eps}, β {beta}, {steps} steps of {step_size})"
            ),
            Defense::GaussianNoise { sigma } => {
                write!(f, "Gaussian noise augmentation (σ {sigma}, for smoothing)")
            }
            Defense::FgsmAt { eps, alpha } => {
                write!(f, "FGSM-AT (L∞ ε {eps}, random start, step α {alpha})")
            }
            Defense::Ibp { eps, kappa_end } => {
                write!(f, "IBP (L∞ ε {eps}, κ from 1 to {kappa_end})")
            }
            Defense::CrownIbp { eps, kappa_end } => write!(
                f,
                "CROWN-IBP (L∞ ε {eps}, κ from 1 to {kappa_end}, β from 1 to 0)"
            ),
        }
    }
}

/// The ε-ramp factor in [0, 1] after `done` of epoch `epoch` (1-based, `done` in (0, 1]): 0 during
/// the first `warmup_epochs` epochs, then linear from 0 to 1 over the next `ramp_epochs` epochs,
/// then 1 (1 right after the warm-up when `ramp_epochs` is 0).
pub fn ramp_factor(warmup_epochs: usize, ramp_epochs: usize, epoch: usize, done: f64) -> f32 {
    let t = (epoch.saturating_sub(1)) as f64 + done - warmup_epochs as f64;
    if t <= 0.0 && warmup_epochs > 0 {
        return 0.0;
    }
    if ramp_epochs == 0 {
        return 1.0;
    }
    (t / ramp_epochs as f64).clamp(0.0, 1.0) as f32
}

/// The loss of one training batch under `defense` (already ramped by `t`, the ramp factor, which
/// also drives IBP's κ): the logits of the inputs the model was trained on (adversarial ones under
/// an attack defense; for TRADES x′; clean ones under IBP), the loss and the parameter gradients.
pub(crate) fn batch_loss(
    defense: &Defense,
    t: f32,
    graph: &Graph,
    params: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, Tensor, Gradients)> {
    let ce = |l: &Tensor| cross_entropy(l, y);
    let inner = |eps, steps, step_size| Inner::new(graph, params, eps, steps, step_size);
    match *defense {
        Defense::None => Ok(graph.loss_and_gradients(params, x, ce, GradRequest::PARAMS)?),
        Defense::GaussianNoise { sigma } => {
            let xn = noisy(x, sigma, rng)?;
            Ok(graph.loss_and_gradients(params, &xn, ce, GradRequest::PARAMS)?)
        }
        Defense::Ibp { eps, kappa_end } | Defense::CrownIbp { eps, kappa_end } => {
            let kappa = crate::certified::kappa_at(kappa_end, t);
            if kappa >= 1.0 || eps == 0.0 {
                // Warm-up (or ε = 0): the robust term is the clean loss or has no weight.
                return Ok(graph.loss_and_gradients(params, x, ce, GradRequest::PARAMS)?);
            }
            let beta = match defense {
                Defense::CrownIbp { .. } => 1.0 - t,
                _ => 0.0,
            };
            crate::certified::ibp_loss(graph, params, x, y, eps, kappa, beta)
        }
        Defense::PgdAt {
            eps,
            steps,
            step_size,
            random_start,
        } => {
            let xa = inner(eps, steps, step_size)?.pgd_ce(x, y, random_start, rng)?;
            Ok(graph.loss_and_gradients(params, &xa, ce, GradRequest::PARAMS)?)
        }
        Defense::FgsmAt { eps, alpha } => {
            let xa = inner(eps, 1, alpha)?.pgd_ce(x, y, true, rng)?;
            Ok(graph.loss_and_gradients(params, &xa, ce, GradRequest::PARAMS)?)
        }
        Defense::Trades {
            eps,
            steps,
            step_size,
            beta,
        } => {
            let xa = inner(eps, steps, step_size)?.trades_point(x, rng)?;
            let b = x.dim(0)?;
            let both = Tensor::cat(&[x, &xa], 0)?;
            let (logits, loss, grads) = graph.loss_and_gradients(
                params,
                &both,
                |z| {
                    let (zn, za) = (z.narrow(0, 0, b)?, z.narrow(0, b, b)?);
                    let kl = kl_sum(&log_softmax(&zn)?, &za)?;
                    cross_entropy(&zn, y)? + ((kl / b as f64)? * beta as f64)?
                },
                GradRequest::PARAMS,
            )?;
            Ok((logits.narrow(0, b, b)?, loss, grads))
        }
    }
}

/// `x` plus independent N(0, σ²) noise per element, unclamped (smoothing's noisy copies are not
/// clamped either, and training must see the same distribution).
fn noisy(x: &Tensor, sigma: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let noise: Vec<f32> = (0..x.elem_count()).map(|_| sigma * gaussian(rng)).collect();
    Ok((x + Tensor::from_vec(noise, x.shape(), x.device())?)?)
}

/// Σ over the batch of KL(p ‖ softmax(z)), with `log_p` the log-probabilities of p.
fn kl_sum(log_p: &Tensor, z: &Tensor) -> candle_core::Result<Tensor> {
    (log_p.exp()? * (log_p - log_softmax(z)?)?)?.sum_all()
}

/// An inner maximisation: the model at its current weights, the L∞ ball and the signed steps.
struct Inner<'a> {
    graph: &'a Graph,
    params: &'a [Tensor],
    threat: ThreatModel,
    steps: usize,
    step_size: f32,
}

impl<'a> Inner<'a> {
    fn new(
        graph: &'a Graph,
        params: &'a [Tensor],
        eps: f32,
        steps: usize,
        step_size: f32,
    ) -> Result<Self> {
        let threat = ThreatModel::new(Norm::Linf, eps, graph.input_domain)
            .map_err(|e| TrainError::Config(format!("adversarial training: {e}")))?;
        Ok(Inner {
            graph,
            params,
            threat,
            steps,
            step_size,
        })
    }

    /// Projects every sample of `cur` onto the ball around its clean sample in `clean` ∩ the domain.
    fn project(&self, cur: &mut [f32], clean: &[f32]) {
        let d = self.graph.input_len();
        for (c, c0) in cur.chunks_mut(d).zip(clean.chunks(d)) {
            self.threat.project(c, c0);
        }
    }

    /// Signed-gradient ascent of `loss` (a scalar of the logits) from `cur`, projected after
    /// every step.
    fn ascend(
        &self,
        x0: &Tensor,
        mut cur: Vec<f32>,
        loss: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        let shape = x0.dims().to_vec();
        let clean: Vec<f32> = x0.flatten_all()?.to_vec1()?;
        for _ in 0..self.steps {
            let xt = Tensor::from_slice(&cur, shape.as_slice(), &Device::Cpu)?;
            let (_, _, g) =
                self.graph
                    .loss_and_gradients(self.params, &xt, &loss, GradRequest::INPUT)?;
            let g: Vec<f32> = g
                .input
                .ok_or_else(|| TrainError::Config("the model gave no input gradient".into()))?
                .flatten_all()?
                .to_vec1()?;
            for (c, gi) in cur.iter_mut().zip(&g) {
                if *gi > 0.0 {
                    *c += self.step_size;
                } else if *gi < 0.0 {
                    *c -= self.step_size;
                }
            }
            self.project(&mut cur, &clean);
        }
        Ok(Tensor::from_vec(cur, shape, &Device::Cpu)?)
    }

    /// L∞ PGD on the cross-entropy (FGSM-AT is its one-step case with a random start).
    fn pgd_ce(
        &self,
        x: &Tensor,
        y: &Tensor,
        random_start: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        let clean: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let d = self.graph.input_len();
        let start = if random_start {
            clean
                .chunks(d)
                .flat_map(|c| self.threat.random_start(c, rng))
                .collect()
        } else {
            clean
        };
        self.ascend(x, start, |z| cross_entropy_per_sample(z, y)?.sum_all())
    }

    /// TRADES' inner maximisation: PGD on KL(f(x) ‖ f(x′)) from x′ = x + 0.001·N(0, 1).
    fn trades_point(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let clean: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut start: Vec<f32> = clean.iter().map(|&c| c + 0.001 * gaussian(rng)).collect();
        self.project(&mut start, &clean);
        let log_p = log_softmax(&self.graph.forward_with(self.params, x)?)?.detach();
        self.ascend(x, start, |z| kl_sum(&log_p, z))
    }
}

/// The generator of one batch's inner attack: a fixed function of (seed, epoch, batch), so a
/// resumed run draws the same numbers.
pub(crate) fn batch_rng(seed: u64, epoch: usize, batch: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xADE5_1A7E_D00D_F00D);
    r.set_stream(((epoch as u64) << 32) | batch as u64);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruse_graph::zoo::{build, Arch, ZooSpec};

    fn setup() -> (Graph, Tensor, Tensor) {
        let g = build(
            Arch::CnnSmall,
            &ZooSpec {
                input: [1, 28, 28],
                classes: 10,
                normalize: None,
                seed: 4,
            },
        )
        .unwrap();
        let d = ruse_data::bundled_mnist_test().unwrap();
        let idx: Vec<usize> = (0..16).collect();
        let (x, y) = crate::batch::batch(&d, &idx, &Device::Cpu).unwrap();
        (g, x, y)
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn ce_sum(g: &Graph, x: &Tensor, y: &Tensor) -> f32 {
        let z = g.forward(x).unwrap();
        cross_entropy_per_sample(&z, y)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn assert_in_ball(xa: &Tensor, x: &Tensor, eps: f32) {
        for (a, c) in flat(xa).iter().zip(flat(x)) {
            assert!(
                (a - c).abs() <= eps + 1e-6,
                "{a} is more than {eps} from {c}"
            );
            assert!((0.0..=1.0).contains(a), "{a} leaves the input domain");
        }
    }

    /// Gradients handed to the optimiser must carry no autodiff history: Adam's moments would
    /// otherwise chain every batch's graph together (IBP training once grew by ~1 MB a sample).
    #[test]
    fn parameter_gradients_are_detached_from_the_batch_graph() {
        let (g, x, y) = setup();
        let (params, _vars) = crate::certified::with_vars(&g).unwrap();
        let mut rng = batch_rng(1, 1, 0);
        let crown_ibp = Defense::CrownIbp {
            eps: 0.1,
            kappa_end: 0.5,
        };
        for (name, defense) in [("crown-ibp", crown_ibp), ("plain", Defense::None)] {
            let (_, _, grads) = batch_loss(&defense, 0.5, &g, &params, &x, &y, &mut rng).unwrap();
            let got: Vec<&Tensor> = grads.params.iter().flatten().collect();
            assert_eq!(
                got.len(),
                g.trainable_params().len(),
                "{name}: missing gradients"
            );
            assert!(
                got.iter().all(|t| !t.track_op()),
                "{name}: a gradient tracks ops"
            );
        }
    }

    #[test]
    fn pgd_and_fgsm_raise_the_loss_inside_the_ball() {
        let (g, x, y) = setup();
        let p = g.param_tensors();
        let clean = ce_sum(&g, &x, &y);
        let mut rng = batch_rng(1, 1, 0);
        let pgd = Inner::new(&g, &p, 0.1, 10, 0.025)
            .unwrap()
            .pgd_ce(&x, &y, true, &mut rng)
            .unwrap();
        assert_in_ball(&pgd, &x, 0.1);
        let fgsm = Inner::new(&g, &p, 0.1, 1, 0.125)
            .unwrap()
            .pgd_ce(&x, &y, true, &mut rng)
            .unwrap();
        assert_in_ball(&fgsm, &x, 0.1);
        let (lp, lf) = (ce_sum(&g, &pgd, &y), ce_sum(&g, &fgsm, &y));
        assert!(lf > clean, "FGSM did not raise the loss: {clean} → {lf}");
        assert!(lp > lf, "PGD-10 ({lp}) is not stronger than FGSM ({lf})");
    }

    #[test]
    fn gaussian_noise_has_sigma_is_unclamped_and_seeded() {
        let (_, x, _) = setup();
        let sigma = 0.5;
        let a = flat(&noisy(&x, sigma, &mut batch_rng(3, 1, 0)).unwrap());
        let b = flat(&noisy(&x, sigma, &mut batch_rng(3, 1, 0)).unwrap());
        let c = flat(&noisy(&x, sigma, &mut batch_rng(3, 1, 1)).unwrap());
        assert_eq!(a, b, "same batch generator, different noise");
        assert_ne!(a, c, "different batches got the same noise");
        let d: Vec<f64> = a
            .iter()
            .zip(flat(&x))
            .map(|(p, q)| (p - q) as f64)
            .collect();
        let n = d.len() as f64;
        let mean = d.iter().sum::<f64>() / n;
        let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.02, "noise mean {mean}");
        assert!(
            (sd - sigma as f64).abs() < 0.02,
            "noise sd {sd}, want {sigma}"
        );
        assert!(
            a.iter().any(|&v| !(0.0..=1.0).contains(&v)),
            "noisy inputs were clamped to the domain"
        );
    }

    #[test]
    fn trades_point_raises_the_kl_inside_the_ball() {
        let (g, x, _) = setup();
        let p = g.param_tensors();
        let log_p = log_softmax(&g.forward(&x).unwrap()).unwrap();
        let kl = |xa: &Tensor| -> f32 {
            kl_sum(&log_p, &g.forward(xa).unwrap())
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let mut rng = batch_rng(1, 1, 0);
        let trades = |steps| Inner::new(&g, &p, 0.1, steps, 0.025).unwrap();
        let start = trades(0).trades_point(&x, &mut rng).unwrap();
        assert_in_ball(&start, &x, 0.002 * 5.0);
        let xa = trades(10).trades_point(&x, &mut rng).unwrap();
        assert_in_ball(&xa, &x, 0.1);
        assert!(
            kl(&xa) > 10.0 * kl(&start).max(1e-6),
            "KL {} at the start, {} after PGD",
            kl(&start),
            kl(&xa)
        );
    }

    #[test]
    fn the_ramp_is_linear_then_flat() {
        assert_eq!(ramp_factor(0, 0, 1, 0.01), 1.0);
        assert!((ramp_factor(0, 2, 1, 0.5) - 0.25).abs() < 1e-6);
        assert!((ramp_factor(0, 2, 2, 1.0) - 1.0).abs() < 1e-6);
        assert_eq!(ramp_factor(0, 2, 5, 0.3), 1.0);
        // A warm-up epoch at 0, then the ramp.
        assert_eq!(ramp_factor(1, 2, 1, 1.0), 0.0);
        assert!((ramp_factor(1, 2, 2, 0.5) - 0.25).abs() < 1e-6);
        assert_eq!(ramp_factor(1, 0, 1, 0.5), 0.0);
        assert_eq!(ramp_factor(1, 0, 2, 0.1), 1.0);
        let d = Defense::FgsmAt {
            eps: 0.2,
            alpha: 0.25,
        };
        assert_eq!(
            d.scaled(0.5),
            Defense::FgsmAt {
                eps: 0.1,
                alpha: 0.125
            }
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let pgd = |eps, steps, step_size| Defense::PgdAt {
            eps,
            steps,
            step_size,
            random_start: true,
        };
        assert!(pgd(0.3, 10, 0.01).validate().is_ok());
        assert!(Defense::None.validate().is_ok());
        for bad in [
            pgd(-0.1, 10, 0.01),
            pgd(f32::NAN, 10, 0.01),
            pgd(f32::INFINITY, 10, 0.01),
            pgd(0.3, 0, 0.01),
            pgd(0.3, 10, 0.0),
            Defense::Trades {
                eps: 0.3,
                steps: 10,
                step_size: 0.01,
                beta: -1.0,
            },
            Defense::Trades {
                eps: 0.3,
                steps: 10,
                step_size: 0.01,
                beta: f32::NAN,
            },
            Defense::FgsmAt {
                eps: 0.3,
                alpha: 0.0,
            },
            Defense::Ibp {
                eps: 0.1,
                kappa_end: 1.5,
            },
            Defense::Ibp {
                eps: 0.1,
                kappa_end: f32::NAN,
            },
        ] {
            let e = bad.validate().expect_err(&format!("{bad:?} accepted"));
            assert!(e.to_string().contains(bad.name()), "{e}");
        }
    }
}
