//! Evolution for fooling images: MAP-Elites with one cell per target class (Nguyen et al.
//! 2015). Each generation mutates the elites of the classes still below the threshold, scores
//! all offspring in one batch, and every offspring may take over any class's cell it beats.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{check_classes, softmax_rows, FoolingImage};
use crate::error::{AttackError, Result};
use crate::model::Model;

/// An encoding of an image that evolution can vary.
pub trait Genome: Clone {
    /// The image it encodes: flat, `shape` = C×H×W (or any input shape), values in `domain`.
    fn render(&self, shape: &[usize], domain: (f32, f32)) -> Vec<f32>;
    /// A mutated copy.
    fn mutate(&self, rng: &mut ChaCha8Rng) -> Self;
}

/// MAP-Elites settings.
#[derive(Debug, Clone)]
pub struct Evolution {
    /// Model evaluations (per sample) before giving up, all classes together.
    pub max_queries: u64,
    /// Offspring scored per generation (one batch).
    pub offspring: usize,
    /// Confidence at which a class's search stops.
    pub threshold: f32,
}

impl Default for Evolution {
    fn default() -> Self {
        Evolution {
            max_queries: 20_000,
            offspring: 64,
            threshold: super::FOOLING_CONFIDENCE,
        }
    }
}

struct Cell<G> {
    genome: G,
    image: Vec<f32>,
    confidence: f32,
    /// Queries and generations when the threshold was first reached.
    reached: Option<(u64, usize)>,
}

impl Evolution {
    /// Evolves one elite per class of `classes`, starting from genomes drawn by `random`.
    pub fn run<G: Genome>(
        &self,
        model: &Model,
        classes: &[usize],
        mut random: impl FnMut(&mut ChaCha8Rng) -> G,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<FoolingImage>> {
        let k = model.classes();
        check_classes(classes, k)?;
        if self.offspring == 0 || self.max_queries == 0 {
            return Err(AttackError::Invalid(
                "evolution needs ≥ 1 offspring per generation and ≥ 1 query".into(),
            ));
        }
        let shape = model.input_shape().to_vec();
        let domain = model.domain();
        let mut queries = 0u64;
        let mut cells: Vec<Option<Cell<G>>> = classes.iter().map(|_| None).collect();
        let mut generation = 0usize;
        loop {
            let open: Vec<usize> = (0..classes.len())
                .filter(|&i| cells[i].as_ref().is_none_or(|c| c.reached.is_none()))
                .collect();
            if open.is_empty() || queries >= self.max_queries {
                break;
            }
            let n = (self.offspring as u64).min(self.max_queries - queries) as usize;
            // Parents: the elites of the open classes in turn (random genomes before any exist).
            let kids: Vec<G> = (0..n)
                .map(|j| match &cells[open[j % open.len()]] {
                    Some(cell) => cell.genome.mutate(rng),
                    None => random(rng),
                })
                .collect();
            let images: Vec<Vec<f32>> = kids.iter().map(|g| g.render(&shape, domain)).collect();
            let probs = softmax_rows(&model.logits(&images.concat())?, k);
            queries += n as u64;
            generation += 1;
            for (ci, &class) in classes.iter().enumerate() {
                let best = (0..n).max_by(|&a, &b| probs[a][class].total_cmp(&probs[b][class]));
                let Some(b) = best else { continue };
                let conf = probs[b][class];
                let improves = cells[ci].as_ref().is_none_or(|c| conf > c.confidence);
                // A class that has reached the threshold keeps the image that reached it first.
                let done = cells[ci].as_ref().is_some_and(|c| c.reached.is_some());
                if improves && !done {
                    cells[ci] = Some(Cell {
                        genome: kids[b].clone(),
                        image: images[b].clone(),
                        confidence: conf,
                        reached: (conf >= self.threshold).then_some((queries, generation)),
                    });
                }
            }
        }
        let mut out = Vec::with_capacity(classes.len());
        for (cell, &class) in cells.into_iter().zip(classes) {
            let cell = cell.ok_or_else(|| AttackError::Invalid("no image was evaluated".into()))?;
            let (q, g) = cell.reached.unwrap_or((queries, generation));
            out.push(FoolingImage {
                class,
                image: cell.image,
                confidence: cell.confidence,
                queries: q,
                steps: g,
                success: cell.reached.is_some(),
            });
        }
        Ok(out)
    }
}

/// A uniform draw in `domain`.
pub(crate) fn uniform(domain: (f32, f32), rng: &mut ChaCha8Rng) -> f32 {
    domain.0 + (domain.1 - domain.0) * rng.random::<f32>()
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
