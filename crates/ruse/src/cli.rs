//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ruse: fool, measure, harden and prove deep neural networks.
#[derive(Parser, Debug)]
#[command(name = "ruse", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads for the tensor kernels (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// How easy is the model to fool? Attack suite per ε, report card, report.json and report.html.
    Audit(AuditArgs),
    /// Run one attack on a model and data; write adversarials (attack.json) and a PNG grid.
    Attack(AttackArgs),
    /// Clean accuracy, per-class accuracy and confusion matrix of a model on a dataset.
    Eval(EvalArgs),
    /// Train a zoo architecture (or resume a checkpoint) and write an ONNX model.
    Train(TrainArgs),
    /// Show a model's ops, shapes, parameter count and input domain.
    Inspect(InspectArgs),
    /// Classify one input (an image file or a JSON array) and print the scores as JSON.
    Predict(PredictArgs),
    /// Re-export a model (ONNX in, ONNX out), optionally setting its input domain.
    Export(ExportArgs),
    /// Prove or refute one VNN-LIB property of an ONNX network; prints the VNN-COMP result.
    Verify(VerifyArgs),
    /// Run a VNN-COMP benchmark folder (instances.csv) and compare with its reference verdicts.
    Vnncomp(VnncompArgs),
    /// Certified accuracy: the share of samples proved robust within an L∞ ε-ball, or (with
    /// --smoothing) within certified L2 radii of the Gaussian-smoothed classifier.
    Certify(CertifyArgs),
    /// Fooling images (Nguyen et al. 2015): from noise, images the model labels as a class with
    /// ≥ 99% confidence, by evolution (direct or CPPN encoding) or gradient ascent; PNGs, a grid
    /// and fool.json.
    Fool(FoolArgs),
    /// Apply one of the 15 common corruptions (Hendrycks & Dietterich 2019) at severities 1–5
    /// to a few images and write a PNG grid.
    Corrupt(CorruptArgs),
    /// Stickers on an object (RP2, Eykholt et al. 2018): a masked perturbation optimised over random
    /// views (Expectation over Transformation), scored on held-out views; JSON and a PNG grid.
    Sticker(StickerArgs),
    /// A universal adversarial patch (Brown et al. 2017) pasted anywhere on any image; scored on
    /// held-out images and placements; JSON and a PNG grid.
    Patch(PatchArgs),
}

/// Which model to load.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// ONNX model file, or `default` for the bundled MNIST CNN.
    #[arg(long, default_value = "default")]
    pub model: String,
    /// Override the model's input domain, as `LO,HI` (default: from the file, else 0,1).
    #[arg(long, value_name = "LO,HI")]
    pub input_domain: Option<String>,
}

/// Which data to use.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset: `bundled` (first 1000 MNIST test images), or mnist:DIR, fashion:DIR, cifar10:DIR, digits:DIR, folder:DIR,
    /// or signs:SEED[:N[:SIZE]] (synthetic traffic signs, 12 classes, rendered from SEED: N samples, default 1000 test /
    /// 20000 train, max 200000; SIZE×SIZE RGB, default 32, 16..=128; train and test use disjoint random streams).
    #[arg(long, default_value = "bundled")]
    pub data: String,
    /// Split to read: test or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Use only the first N samples.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `ruse eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Samples per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `ruse train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Architecture: mlp, cnn-small, cnn-medium, cnn-large, cnn-pool, resnet-small.
    #[arg(long, default_value = "cnn-small")]
    pub arch: String,
    /// Training data, e.g. mnist:../shared/data/mnist or signs:SEED:N (required unless --resume).
    #[arg(long)]
    pub data: Option<String>,
    /// Use only the first N training samples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Validate on the first N test samples after each epoch (0 = no validation).
    #[arg(long, default_value_t = 10000)]
    pub val_limit: usize,
    /// Epochs (default 3; with --resume, the checkpoint's total unless given).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Optimizer: adam or sgd (momentum 0.9).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Learning rate (default 1e-3 for adam, 0.05 for sgd).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA.
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Per-channel input normalisation inside the model: `auto` (dataset statistics), `none`, or MEAN,STD[,MEAN,STD…].
    #[arg(long, default_value = "auto")]
    pub normalize: String,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output ONNX file; a checkpoint is written to OUT.ckpt after every epoch.
    #[arg(long, default_value = "model.onnx")]
    pub out: PathBuf,
    /// Continue from a checkpoint (OUT.ckpt of an earlier run); --epochs may raise the total.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Do not write checkpoints.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Adversarial training: none, pgd-at (Madry et al.), trades (Zhang et al.) or fgsm-at (Wong et al., random start);
    /// certified training: ibp (Gowal et al.) or crown-ibp (Zhang et al.); gaussian: noise
    /// augmentation for randomized smoothing (Cohen et al.; needs --noise-sigma).
    #[arg(long, value_name = "DEFENSE")]
    pub defense: Option<String>,
    /// L∞ radius of the training attack, in input units (required with a defense; e.g. 0.3 for MNIST).
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f32>,
    /// Iterations of the training attack (pgd-at, trades; default 10).
    #[arg(long)]
    pub attack_steps: Option<usize>,
    /// Step size of the training attack (default: 2.5·ε/steps; fgsm-at: α = 1.25·ε).
    #[arg(long, allow_negative_numbers = true)]
    pub attack_step_size: Option<f32>,
    /// pgd-at: start PGD at the clean input instead of a random point of the ε-ball.
    #[arg(long)]
    pub no_random_start: bool,
    /// trades: weight β of the KL robustness term (default 6).
    #[arg(long, allow_negative_numbers = true)]
    pub trades_beta: Option<f32>,
    /// Grow ε (and the step size) linearly from 0 over the first EPOCHS epochs (default 0: full ε at once).
    #[arg(long, value_name = "EPOCHS")]
    pub eps_ramp: Option<usize>,
    /// Train clean (ε = 0) for the first EPOCHS epochs before the ε ramp starts (default 0).
    #[arg(long, value_name = "EPOCHS")]
    pub warmup: Option<usize>,
    /// ibp, crown-ibp: κ at the end of the ramp, the weight of the clean loss (κ goes from 1 down to it; default 0.5).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub kappa_end: Option<f32>,
    /// gaussian: standard deviation σ of the training noise, in input units (certify with the same
    /// σ: `ruse certify --smoothing σ`).
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    pub noise_sigma: Option<f32>,
    /// Under a defense: validation samples attacked with PGD-10 at ε after each epoch (default 1000; 0 = off).
    #[arg(long)]
    pub val_attack_limit: Option<usize>,
}

/// `ruse inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ruse predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// An image file (PNG/JPEG), converted and resized to the model's input.
    #[arg(long, conflicts_with = "input")]
    pub image: Option<PathBuf>,
    /// A JSON file holding a flat array of the input's numbers (`-` reads stdin).
    #[arg(long)]
    pub input: Option<PathBuf>,
}

/// `ruse export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output ONNX file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `ruse audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Perturbation norm: linf, l2 or l1.
    #[arg(long, default_value = "linf")]
    pub norm: String,
    /// Radii to audit, comma-separated, in input units.
    #[arg(long, default_value = "0.1,0.2,0.3")]
    pub eps: String,
    /// Attack suite: quick (FGSM, PGD-20, APGD-CE-50) or standard (APGD-CE-100, APGD-T 9×100).
    #[arg(long, default_value = "quick")]
    pub preset: String,
    /// Seed of every attack's randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per attack call.
    #[arg(long, default_value_t = 250)]
    pub batch_size: usize,
    /// Directory for report.json and report.html.
    #[arg(long, default_value = "audit")]
    pub out: PathBuf,
    /// Audit several models side by side on the same data, radii, preset and seed: each MODEL
    /// is `default`, `mnist-pgdat`, `mnist-ibp` (bundled) or an ONNX file (instead of --model).
    #[arg(long, num_args = 2.., value_name = "MODEL", conflicts_with = "model")]
    pub compare: Vec<String>,
    /// Threat models beyond L_p balls to add as report sections, comma-separated, or `all`:
    /// spatial, stickers, sparse, blackbox, corruptions, fooling.
    #[arg(long, default_value = "", value_name = "NAMES")]
    pub sections: String,
    /// Sections sparse and blackbox: attack the first N correctly classified samples (at the
    /// default budget on the bundled CNN, 2 cores: sparse about 3 s, blackbox 1 s per sample).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub section_samples: usize,
    /// Sections sparse and blackbox: model queries per sample (default: sparse 1000, blackbox 1000).
    #[arg(long, value_name = "Q")]
    pub query_budget: Option<usize>,
    /// With --compare: verifier for the certified accuracy per ε (L∞ only): none, ibp or crown.
    #[arg(long, default_value = "crown", value_name = "METHOD")]
    pub certify_method: String,
    /// With --compare: certify only the first N samples (certified accuracy is over those N;
    /// CROWN takes about 2.5 s per sample and ε on the default CNN on 2 cores).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub certify_limit: usize,
}

/// `ruse attack`.
#[derive(Args, Debug)]
pub struct AttackArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Attack: fgsm, pgd, bim (PGD without random start), apgd-ce, apgd-dlr, apgd-t, deepfool, square (query-only), cw (C&W-L2; --norm l2), lbfgs (box-constrained L-BFGS, Szegedy et al.; --norm l2), fab, fab-t (FAB against the 9 most likely wrong classes); sparse (--pixels k, norm and ε ignored): onepixel (differential evolution), sparse-rs; query-only: hopskipjump (labels only; --norm l2 or linf), simba (DCT basis), simba-pixel.
    #[arg(long, default_value = "pgd")]
    pub attack: String,
    /// Perturbation norm: linf, l2 or l1.
    #[arg(long, default_value = "linf")]
    pub norm: String,
    /// Radius of the perturbation ball, in input units.
    #[arg(long, default_value_t = 0.3)]
    pub eps: f64,
    /// Iterations (default: pgd/bim 40, apgd 100, apgd-t 100 per target, deepfool 50, cw 200 per constant, lbfgs 60 per constant, fab/fab-t 100 per restart and target, onepixel 100 generations, hopskipjump 64); queries for square (5000).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Pixels an attacker may change (onepixel: 1, sparse-rs: 10).
    #[arg(long, value_name = "K")]
    pub pixels: Option<usize>,
    /// Most model queries (forward evaluations) per sample for query-based attacks: square,
    /// onepixel, sparse-rs, hopskipjump, simba (default: square 5000, onepixel 400×101,
    /// sparse-rs 10000, hopskipjump unlimited, simba 10000).
    #[arg(long, value_name = "Q")]
    pub query_budget: Option<usize>,
    /// Step ε of SimBA along each basis vector.
    #[arg(long, default_value_t = 0.2, value_name = "EPS")]
    pub simba_step: f32,
    /// Spatial attacks (spatial-grid: 31 angles × 5 × 5 shifts; spatial-random: worst of --steps
    /// (10) random transforms; spatial-grad: --steps (10) signed-gradient steps on the angle and
    /// shifts × --restarts): largest rotation in degrees.
    #[arg(long, default_value_t = 30.0, value_name = "DEG")]
    pub max_angle: f32,
    /// Spatial attacks: largest shift in pixels per axis (default 3 px per 28 px of image height).
    #[arg(long, value_name = "PX")]
    pub max_shift: Option<f32>,
    /// Restarts (pgd, apgd, fab, fab-t, spatial-grad).
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// Targeted: push every sample to this class (fgsm, pgd, bim, apgd-ce, apgd-dlr, lbfgs).
    #[arg(long)]
    pub target: Option<usize>,
    /// Seed of the attack's randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per attack call.
    #[arg(long, default_value_t = 250)]
    pub batch_size: usize,
    /// Rows in the PNG grid.
    #[arg(long, default_value_t = 12)]
    pub grid: usize,
    /// Directory for attack.json and grid.png.
    #[arg(long, default_value = "attack")]
    pub out: PathBuf,
}

/// `ruse verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The network (ONNX).
    #[arg(long, value_name = "FILE")]
    pub onnx: PathBuf,
    /// The property (VNN-LIB).
    #[arg(long, value_name = "FILE")]
    pub vnnlib: PathBuf,
    /// Wall-clock budget in seconds.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    pub timeout: f64,
    /// Strongest method: ibp, crown, alpha (α-CROWN) or bab (α-CROWN, then branch and bound).
    #[arg(long, default_value = "bab")]
    pub method: String,
    /// Seed of the falsifier's random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the result (VNN-COMP format) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `ruse vnncomp`.
#[derive(Args, Debug)]
pub struct VnncompArgs {
    /// Benchmark folders holding instances.csv (or a folder of such folders).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Multiply each instance's official timeout by K.
    #[arg(long, default_value_t = 1.0, value_name = "K")]
    pub timeout_scale: f64,
    /// Cap every instance's timeout at S seconds.
    #[arg(long, value_name = "S")]
    pub timeout_cap: Option<f64>,
    /// Run only the first N instances of each benchmark (after --filter).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Run only instances whose onnx or vnnlib path contains SUBSTR.
    #[arg(long, value_name = "SUBSTR")]
    pub filter: Option<String>,
    /// Strongest method: ibp, crown, alpha or bab.
    #[arg(long, default_value = "bab")]
    pub method: String,
    /// Seed of the falsifier's random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Per-instance results (CSV).
    #[arg(long, default_value = "results.csv", value_name = "FILE")]
    pub out: PathBuf,
    /// Exit with an error if any verdict contradicts the reference (sat vs unsat).
    #[arg(long)]
    pub check: bool,
}

/// `ruse certify`.
#[derive(Args, Debug)]
pub struct CertifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// L∞ radii, comma-separated, in input units (not with --smoothing).
    #[arg(
        long,
        required_unless_present = "smoothing",
        conflicts_with = "smoothing",
        value_name = "E[,E2…]"
    )]
    pub eps: Option<String>,
    /// Strongest method: ibp, crown, alpha (α-CROWN) or bab.
    #[arg(long, default_value = "crown")]
    pub method: String,
    /// Wall-clock budget per sample and ε, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub timeout: f64,
    /// Seed of the falsifier's random starts (with --smoothing: of the noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Randomized smoothing (Cohen et al. 2019) with Gaussian noise of standard deviation SIGMA:
    /// certified L2 radii of the smoothed classifier instead of L∞ proofs.
    #[arg(
        long,
        value_name = "SIGMA",
        allow_negative_numbers = true,
        conflicts_with_all = ["method", "timeout"]
    )]
    pub smoothing: Option<f64>,
    /// Smoothing: noisy samples that select the top class [default: 100].
    #[arg(long, requires = "smoothing")]
    pub n0: Option<usize>,
    /// Smoothing: noisy samples that estimate its probability [default: 10000].
    #[arg(long, requires = "smoothing")]
    pub n: Option<usize>,
    /// Smoothing: failure probability of each certificate [default: 0.001].
    #[arg(long, allow_negative_numbers = true, requires = "smoothing")]
    pub alpha: Option<f64>,
    /// Smoothing: L2 radii at which certified accuracy is reported, comma-separated
    /// [default: 0,0.25,0.5,0.75,1.0].
    #[arg(
        long,
        value_name = "R[,R2…]",
        allow_hyphen_values = true,
        requires = "smoothing"
    )]
    pub radii: Option<String>,
    /// Smoothing: noisy samples per forward pass (only changes speed and memory) [default: 250].
    #[arg(long, requires = "smoothing")]
    pub batch_size: Option<usize>,
}

/// `ruse sticker`.
#[derive(Args, Debug)]
pub struct StickerArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Class of the object (name or number): on signs data its canonical sign (default stop),
    /// otherwise the first image of it the model gets right.
    #[arg(long)]
    pub source: Option<String>,
    /// Sample index of the object instead of --source.
    #[arg(long)]
    pub index: Option<usize>,
    /// Targeted: make the views read this class (name or number); untargeted without it.
    #[arg(long)]
    pub target: Option<String>,
    /// Where the sticker may go: rects:x,y,w,h;… (texture pixels: the image itself, or on signs
    /// data the 2·SIZE-pixel canonical sign), png:PATH (white = sticker,
    /// same size as the texture), or a preset: four-rects, stop-stickers, stop-strips, stop-bars,
    /// centre-square
    /// (default: stop-stickers on signs data, four-rects otherwise).
    #[arg(long)]
    pub mask: Option<String>,
    /// Adam steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Random views per step (the EOT batch).
    #[arg(long, default_value_t = 16)]
    pub views_per_step: usize,
    /// Held-out random views to score on (another seed stream than the optimisation's).
    #[arg(long, default_value_t = 200)]
    pub views: usize,
    /// Adam step size on pixels in [0,1].
    #[arg(long, default_value_t = 0.03)]
    pub lr: f32,
    /// Weight of the non-printability score.
    #[arg(long, default_value_t = 0.05)]
    pub nps: f32,
    /// Weight of the total variation (smoothness).
    #[arg(long, default_value_t = 0.02)]
    pub tv: f32,
    /// Independent optimisations from fresh random stickers; the best on the check views wins.
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// Loss: margin (clipped at 5) or ce (cross-entropy).
    #[arg(long, default_value = "margin")]
    pub loss: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Views per forward pass when scoring.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Held-out views shown in the grid.
    #[arg(long, default_value_t = 16)]
    pub grid: usize,
    /// Directory for sticker.json and grid.png.
    #[arg(long, default_value = "sticker")]
    pub out: PathBuf,
}

/// `ruse patch`.
#[derive(Args, Debug)]
pub struct PatchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Class the patch should make the model answer (name or number).
    #[arg(long)]
    pub target: String,
    /// Share of the image area the patch covers (before the random scale 0.8–1.2).
    #[arg(long, default_value_t = 0.1)]
    pub area: f32,
    /// Patch outline: disc or square.
    #[arg(long, default_value = "disc")]
    pub shape: String,
    /// Adam steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Random (image, placement) pairs per step.
    #[arg(long, default_value_t = 32)]
    pub views_per_step: usize,
    /// Adam step size.
    #[arg(long, default_value_t = 0.03)]
    pub lr: f32,
    /// Train on the first N samples (those not of the target class).
    #[arg(long, default_value_t = 500)]
    pub train: usize,
    /// Test on the next N samples, one fresh placement each.
    #[arg(long, default_value_t = 500)]
    pub test: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per forward pass when scoring.
    #[arg(long, default_value_t = 250)]
    pub batch_size: usize,
    /// Directory for patch.json and grid.png.
    #[arg(long, default_value = "patch")]
    pub out: PathBuf,
}

/// `ruse fool`.
#[derive(Args, Debug)]
pub struct FoolArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Class the images should be labelled as (a number), or `all` for every class.
    #[arg(long, default_value = "all")]
    pub class: String,
    /// Search: direct (evolution of pixels), cppn (evolution of a CPPN) or gradient (ascent on
    /// the class log-probability).
    #[arg(long, default_value = "gradient")]
    pub method: String,
    /// Seed of the search.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evolution: most model evaluations per class (direct, cppn).
    #[arg(long, default_value_t = 20_000, value_name = "Q")]
    pub max_queries: u64,
    /// Evolution: offspring scored per generation (direct, cppn).
    #[arg(long, default_value_t = 64)]
    pub offspring: usize,
    /// CPPN: hidden nodes.
    #[arg(long, default_value_t = 8)]
    pub cppn_nodes: usize,
    /// Gradient ascent: most steps per class.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Gradient ascent: L2 length of a step, as a share of the domain's width times √(input size).
    #[arg(long, default_value_t = 0.02)]
    pub step_size: f32,
    /// Gradient ascent: per-step shrink towards the domain's middle (L2 decay; 0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub l2_decay: f32,
    /// Gradient ascent: blur every N steps (0 = never).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub blur_every: usize,
    /// Gradient ascent: σ of that blur, in pixels.
    #[arg(long, default_value_t = 0.5)]
    pub blur_sigma: f32,
    /// Confidence an image must reach, re-checked on the 8-bit PNG that is written.
    #[arg(long, default_value_t = 0.99)]
    pub confidence: f32,
    /// Directory for class_K.png, grid.png and fool.json.
    #[arg(long, default_value = "fool")]
    pub out: PathBuf,
}

/// `ruse corrupt`.
#[derive(Args, Debug)]
pub struct CorruptArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Corruption (gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur,
    /// motion_blur, zoom_blur, snow, frost, fog, brightness, contrast, elastic_transform,
    /// pixelate, jpeg_compression), or `all`.
    #[arg(long = "type", default_value = "all", value_name = "TYPE")]
    pub kind: String,
    /// Severity 1–5, or `all`.
    #[arg(long, default_value = "all")]
    pub severity: String,
    /// Seed of the corruptions' randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images to show (the first N of the data).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub count: usize,
    /// Pixel magnification in the grid.
    #[arg(long, default_value_t = 3)]
    pub scale: u32,
    /// Directory for grid.png.
    #[arg(long, default_value = "corrupt")]
    pub out: PathBuf,
}
