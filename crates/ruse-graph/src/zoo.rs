//! The model zoo: standard architectures from the verification and adversarial-training
//! literature, built as ruse graphs with seeded PyTorch-style initialisation.

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{GraphError, Result};
use crate::graph::{Graph, Operand, ValueId, INPUT};
use crate::op::{ConvAttrs, Op, PoolAttrs};

/// A zoo architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Two hidden fully connected layers of 256 (as VNN-COMP mnist_fc 256x2).
    Mlp,
    /// ERAN ConvSmall: conv16 4×4/2 → conv32 4×4/2 → fc100 → out.
    CnnSmall,
    /// ERAN ConvMed: conv16 4×4/2 pad 1 → conv32 4×4/2 pad 1 → fc1000 → out.
    CnnMedium,
    /// CROWN-IBP DM-large: conv64, conv64, conv128/2, conv128, conv128 (3×3) → fc512 → out.
    CnnLarge,
    /// conv32 3×3 → maxpool 2 → conv64 3×3 → maxpool 2 → fc128 → out (the default model and the bench net).
    CnnPool,
    /// A small residual net: stem conv16, two residual stages (16, 32), global average pool, fc.
    ResnetSmall,
}

impl Arch {
    /// Every architecture, for help texts.
    pub const ALL: [Arch; 6] = [
        Arch::Mlp,
        Arch::CnnSmall,
        Arch::CnnMedium,
        Arch::CnnLarge,
        Arch::CnnPool,
        Arch::ResnetSmall,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::CnnSmall => "cnn-small",
            Arch::CnnMedium => "cnn-medium",
            Arch::CnnLarge => "cnn-large",
            Arch::CnnPool => "cnn-pool",
            Arch::ResnetSmall => "resnet-small",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Arch::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown architecture '{s}'; choose one of: {}",
                    Arch::ALL.map(|a| a.name()).join(", ")
                )
            })
    }
}

/// What a zoo model is built for.
#[derive(Debug, Clone)]
pub struct ZooSpec {
    /// Input (channels, height, width).
    pub input: [usize; 3],
    /// Number of classes.
    pub classes: usize,
    /// Per-channel (mean, std) normalisation placed inside the graph, if any.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    /// Seed of the weight initialisation.
    pub seed: u64,
}

/// Incremental builder that keeps the current value and the init RNG.
struct Builder {
    g: Graph,
    rng: ChaCha8Rng,
    x: ValueId,
    n: usize,
}

impl Builder {
    fn uniform(&mut self, shape: &[usize], bound: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    }

    fn name(&mut self, kind: &str) -> String {
        self.n += 1;
        format!("{kind}{}", self.n)
    }

    fn shape(&self) -> Vec<usize> {
        self.g.values[self.x].shape.clone()
    }

    fn node(&mut self, kind: &str, op: Op, inputs: Vec<Operand>) -> Result<ValueId> {
        let name = self.name(kind);
        self.x = self.g.add_node(name, op, inputs)?;
        Ok(self.x)
    }

    fn conv(&mut self, out: usize, k: usize, stride: usize, pad: usize) -> Result<ValueId> {
        let cin = self.shape()[0];
        let fan_in = cin * k * k;
        // PyTorch's default init: U(±1/√fan_in) for both weight and bias.
        let bound = 1.0 / (fan_in as f32).sqrt();
        let name = format!("conv{}", self.n + 1);
        let w = self.uniform(&[out, cin, k, k], bound)?;
        let b = self.uniform(&[out], bound)?;
        let w = self.g.add_param(format!("{name}.weight"), w, true);
        let b = self.g.add_param(format!("{name}.bias"), b, true);
        let attrs = ConvAttrs {
            stride: [stride; 2],
            pads: [pad; 4],
            dilation: [1, 1],
            groups: 1,
        };
        let x = self.x;
        self.node(
            "conv",
            Op::Conv(attrs),
            vec![Operand::Value(x), Operand::Param(w), Operand::Param(b)],
        )
    }

    fn linear(&mut self, out: usize) -> Result<ValueId> {
        let s = self.shape();
        if s.len() != 1 {
            let flat = s.iter().product();
            let x = self.x;
            self.node(
                "flatten",
                Op::Reshape { shape: vec![flat] },
                vec![Operand::Value(x)],
            )?;
        }
        let fan_in = self.shape()[0];
        let bound = 1.0 / (fan_in as f32).sqrt();
        let name = format!("fc{}", self.n + 1);
        let w = self.uniform(&[out, fan_in], bound)?;
        let b = self.uniform(&[out], bound)?;
        let w = self.g.add_param(format!("{name}.weight"), w, true);
        let b = self.g.add_param(format!("{name}.bias"), b, true);
        let x = self.x;
        self.node(
            "fc",
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_b: true,
            },
            vec![Operand::Value(x), Operand::Param(w), Operand::Param(b)],
        )
    }

    fn relu(&mut self) -> Result<ValueId> {
        let x = self.x;
        self.node("relu", Op::Relu, vec![Operand::Value(x)])
    }

    fn maxpool(&mut self, k: usize) -> Result<ValueId> {
        let x = self.x;
        let p = PoolAttrs {
            kernel: [k, k],
            stride: [k, k],
            pads: [0; 4],
            dilation: [1, 1],
            ceil_mode: false,
        };
        self.node("maxpool", Op::MaxPool(p), vec![Operand::Value(x)])
    }

    fn add(&mut self, skip: ValueId) -> Result<ValueId> {
        let x = self.x;
        self.node(
            "add",
            Op::Add,
            vec![Operand::Value(x), Operand::Value(skip)],
        )
    }

    fn residual_block(&mut self, ch: usize) -> Result<ValueId> {
        let skip = self.x;
        self.conv(ch, 3, 1, 1)?;
        self.relu()?;
        self.conv(ch, 3, 1, 1)?;
        self.add(skip)?;
        self.relu()
    }
}

/// Builds an architecture for the given input, classes, normalisation and seed.
pub fn build(arch: Arch, spec: &ZooSpec) -> Result<Graph> {
    let [c, h, w] = spec.input;
    if c == 0 || h == 0 || w == 0 || spec.classes < 2 {
        return Err(GraphError::Input(format!(
            "a zoo model needs a non-empty input and ≥ 2 classes (got input {:?}, {} classes)",
            spec.input, spec.classes
        )));
    }
    let mut b = Builder {
        g: Graph::new(arch.name(), "input", vec![c, h, w]),
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
        x: INPUT,
        n: 0,
    };
    if let Some((mean, std)) = &spec.normalize {
        if mean.len() != c || std.len() != c || std.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
            return Err(GraphError::Input(format!(
                "normalisation needs {c} means and {c} positive stds"
            )));
        }
        let m = b.g.add_param(
            "preprocess.mean",
            Tensor::from_vec(mean.clone(), (c, 1, 1), &Device::Cpu)?,
            false,
        );
        let s = b.g.add_param(
            "preprocess.std",
            Tensor::from_vec(std.clone(), (c, 1, 1), &Device::Cpu)?,
            false,
        );
        b.node(
            "normalize_sub",
            Op::Sub,
            vec![Operand::Value(INPUT), Operand::Param(m)],
        )?;
        let x = b.x;
        b.node(
            "normalize_div",
            Op::Div,
            vec![Operand::Value(x), Operand::Param(s)],
        )?;
    }
    let k = spec.classes;
    match arch {
        Arch::Mlp => {
            b.linear(256)?;
            b.relu()?;
            b.linear(256)?;
            b.relu()?;
            b.linear(k)?;
        }
        Arch::CnnSmall => {
            b.conv(16, 4, 2, 0)?;
            b.relu()?;
            b.conv(32, 4, 2, 0)?;
            b.relu()?;
            b.linear(100)?;
            b.relu()?;
            b.linear(k)?;
        }
        Arch::CnnMedium => {
            b.conv(16, 4, 2, 1)?;
            b.relu()?;
            b.conv(32, 4, 2, 1)?;
            b.relu()?;
            b.linear(1000)?;
            b.relu()?;
            b.linear(k)?;
        }
        Arch::CnnLarge => {
            for (ch, s) in [(64, 1), (64, 1), (128, 2), (128, 1), (128, 1)] {
                b.conv(ch, 3, s, 1)?;
                b.relu()?;
            }
            b.linear(512)?;
            b.relu()?;
            b.linear(k)?;
        }
        Arch::CnnPool => {
            b.conv(32, 3, 1, 1)?;
            b.relu()?;
            b.maxpool(2)?;
            b.conv(64, 3, 1, 1)?;
            b.relu()?;
            b.maxpool(2)?;
            b.linear(128)?;
            b.relu()?;
            b.linear(k)?;
        }
        Arch::ResnetSmall => {
            b.conv(16, 3, 1, 1)?;
            b.relu()?;
            b.residual_block(16)?;
            b.conv(32, 3, 2, 1)?;
            b.relu()?;
            b.residual_block(32)?;
            let x = b.x;
            b.node("gap", Op::GlobalAveragePool, vec![Operand::Value(x)])?;
            b.linear(k)?;
        }
    }
    b.g.metadata.insert("ruse.arch".into(), arch.name().into());
    Ok(b.g)
}
