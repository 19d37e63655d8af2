//! The CPPN encoding: a small compositional pattern-producing network maps each pixel's
//! coordinates (x, y, distance r from the centre, bias) through hidden nodes with sine,
//! Gaussian, sigmoid, absolute-value and linear activations to one value per channel, so images
//! are regular patterns rather than noise. Evolution perturbs weights, switches activations and
//! toggles connections; the topology (inputs → a feed-forward chain of hidden nodes → outputs)
//! stays fixed in size.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::evolve::{normal, Genome};

/// Inputs every node may read: x, y, r and a bias of 1.
const INPUTS: usize = 4;

/// A hidden node's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// sin(a).
    Sine,
    /// exp(−a²/2).
    Gaussian,
    /// 1/(1+e^−a).
    Sigmoid,
    /// |a|.
    Abs,
    /// a.
    Linear,
}

const ACTIVATIONS: [Activation; 5] = [
    Activation::Sine,
    Activation::Gaussian,
    Activation::Sigmoid,
    Activation::Abs,
    Activation::Linear,
];

impl Activation {
    fn apply(self, a: f32) -> f32 {
        match self {
            Activation::Sine => a.sin(),
            Activation::Gaussian => (-0.5 * a * a).exp(),
            Activation::Sigmoid => 1.0 / (1.0 + (-a).exp()),
            Activation::Abs => a.abs(),
            Activation::Linear => a,
        }
    }
}

/// One node: its activation and a weight per source (inputs, then earlier hidden nodes); a
/// disabled connection has weight 0 and is skipped.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    activation: Activation,
    weights: Vec<f32>,
    enabled: Vec<bool>,
}

impl Node {
    fn random(sources: usize, activation: Activation, rng: &mut ChaCha8Rng) -> Self {
        let enabled: Vec<bool> = (0..sources)
            .map(|s| s < INPUTS || rng.random_bool(0.5))
            .collect();
        Node {
            activation,
            weights: (0..sources).map(|_| 2.0 * normal(rng)).collect(),
            enabled,
        }
    }

    fn sum(&self, values: &[f32]) -> f32 {
        self.weights
            .iter()
            .zip(&self.enabled)
            .zip(values)
            .filter(|((_, on), _)| **on)
            .map(|((w, _), v)| w * v)
            .sum()
    }
}

/// A CPPN genome.
#[derive(Debug, Clone, PartialEq)]
pub struct Cppn {
    hidden: Vec<Node>,
    /// One output node per channel, reading inputs and all hidden nodes, squashed by a sigmoid.
    outputs: Vec<Node>,
}

impl Cppn {
    /// A random network with `hidden` nodes of random activations and `channels` outputs.
    pub fn random(hidden: usize, channels: usize, rng: &mut ChaCha8Rng) -> Self {
        let nodes = (0..hidden)
            .map(|j| {
                let act = ACTIVATIONS[rng.random_range(0..ACTIVATIONS.len())];
                Node::random(INPUTS + j, act, rng)
            })
            .collect();
        let outputs = (0..channels.max(1))
            .map(|_| Node::random(INPUTS + hidden, Activation::Sigmoid, rng))
            .collect();
        Cppn {
            hidden: nodes,
            outputs,
        }
    }

    /// The values of every output at the point (x, y) in [-1,1]².
    fn eval(&self, x: f32, y: f32, values: &mut Vec<f32>) -> Vec<f32> {
        values.clear();
        values.extend_from_slice(&[x, y, (x * x + y * y).sqrt(), 1.0]);
        for node in &self.hidden {
            let a = node.sum(values);
            values.push(node.activation.apply(a));
        }
        self.outputs
            .iter()
            .map(|o| Activation::Sigmoid.apply(o.sum(values)))
            .collect()
    }
}

impl Genome for Cppn {
    /// Renders a C×H×W image (a shape of two dims is one channel; one dim is a single row);
    /// channels beyond the network's outputs repeat the last output.
    fn render(&self, shape: &[usize], domain: (f32, f32)) -> Vec<f32> {
        let (c, h, w) = match shape {
            [c, h, w] => (*c, *h, *w),
            [h, w] => (1, *h, *w),
            s => (1, 1, s.iter().product()),
        };
        let coord = |i: usize, n: usize| {
            if n <= 1 {
                0.0
            } else {
                2.0 * i as f32 / (n - 1) as f32 - 1.0
            }
        };
        let mut out = vec![0f32; c * h * w];
        let mut scratch = Vec::with_capacity(INPUTS + self.hidden.len());
        let (lo, hi) = domain;
        for yy in 0..h {
            for xx in 0..w {
                let v = self.eval(coord(xx, w), coord(yy, h), &mut scratch);
                for ch in 0..c {
                    let o = v[ch.min(v.len() - 1)];
                    out[(ch * h + yy) * w + xx] = lo + (hi - lo) * o;
                }
            }
        }
        out
    }

    fn mutate(&self, rng: &mut ChaCha8Rng) -> Self {
        let mut child = self.clone();
        let total = child.hidden.len() + child.outputs.len();
        for (j, node) in child
            .hidden
            .iter_mut()
            .chain(child.outputs.iter_mut())
            .enumerate()
        {
            for w in node.weights.iter_mut() {
                if rng.random_bool(0.2) {
                    *w += 0.5 * normal(rng);
                }
            }
            // Rarer structural changes: a new activation (hidden nodes only), a toggled link.
            if j < total - self.outputs.len() && rng.random_bool(0.05) {
                node.activation = ACTIVATIONS[rng.random_range(0..ACTIVATIONS.len())];
            }
            if rng.random_bool(0.05) && node.enabled.len() > INPUTS {
                let s = rng.random_range(INPUTS..node.enabled.len());
                node.enabled[s] = !node.enabled[s];
            }
        }
        child
    }
}
