//! Noise corruptions: Gaussian, shot (Poisson) and impulse (salt-and-pepper) noise.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::ops::clamp01;

/// Additive Gaussian noise, σ per severity as in CIFAR-10-C.
pub(crate) fn gaussian_noise(image: &[f32], severity: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let sigma = [0.04f32, 0.06, 0.08, 0.09, 0.10][severity - 1];
    let mut out: Vec<f32> = image
        .iter()
        .map(|&v| v + sigma * rng.sample::<f32, _>(StandardNormal))
        .collect();
    clamp01(&mut out);
    out
}

/// Shot noise: photon counts Poisson(x·λ)/λ, fewer photons (smaller λ) at higher severity.
pub(crate) fn shot_noise(image: &[f32], severity: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let photons = [500f32, 250.0, 100.0, 75.0, 50.0][severity - 1];
    let mut out: Vec<f32> = image
        .iter()
        .map(|&v| {
            let mean = (v.clamp(0.0, 1.0) * photons) as f64;
            // Poisson needs a positive mean; a black pixel receives no photons.
            match Poisson::new(mean) {
                Ok(p) if mean > 0.0 => p.sample(rng) as f32 / photons,
                _ => 0.0,
            }
        })
        .collect();
    clamp01(&mut out);
    out
}

/// Impulse noise: each value becomes 0 or 1 (even odds) with probability `amount`.
pub(crate) fn impulse_noise(image: &[f32], severity: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let amount = [0.01f64, 0.02, 0.03, 0.05, 0.07][severity - 1];
    image
        .iter()
        .map(|&v| {
            if rng.random_bool(amount) {
                if rng.random_bool(0.5) {
                    1.0
                } else {
                    0.0
                }
            } else {
                v.clamp(0.0, 1.0)
            }
        })
        .collect()
}
