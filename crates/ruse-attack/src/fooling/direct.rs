//! The direct encoding: the genome is the image itself. Mutation changes each pixel with a small
//! probability by a Gaussian step, as the paper's direct encoding mutates a few pixels at a time.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::evolve::{normal, uniform, Genome};

/// An image as its own genome.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectImage {
    /// Pixels in the model's input domain.
    pub pixels: Vec<f32>,
    /// The input domain.
    pub domain: (f32, f32),
    /// Probability that mutation touches a pixel.
    pub rate: f64,
    /// Standard deviation of a pixel's change, as a share of the domain's width.
    pub strength: f32,
}

impl DirectImage {
    /// Uniform noise over `len` pixels in `domain`, with the default mutation (10% of pixels, σ = 25%).
    pub fn random(len: usize, domain: (f32, f32), rng: &mut ChaCha8Rng) -> Self {
        DirectImage {
            pixels: (0..len).map(|_| uniform(domain, rng)).collect(),
            domain,
            rate: 0.1,
            strength: 0.25,
        }
    }
}

impl Genome for DirectImage {
    fn render(&self, _shape: &[usize], _domain: (f32, f32)) -> Vec<f32> {
        self.pixels.clone()
    }

    fn mutate(&self, rng: &mut ChaCha8Rng) -> Self {
        let (lo, hi) = self.domain;
        let sigma = self.strength * (hi - lo);
        let mut child = self.clone();
        for p in child.pixels.iter_mut() {
            if rng.random_bool(self.rate) {
                *p = (*p + sigma * normal(rng)).clamp(lo, hi);
            }
        }
        child
    }
}
