//! The audit report: everything needed to read and to reproduce an audit.

use std::collections::BTreeMap;

use serde::Serialize;

/// One attack's contribution at one ε.
#[derive(Debug, Clone, Serialize)]
pub struct AttackSummary {
    /// Attack name with its settings.
    pub attack: String,
    /// Robust accuracy after this attack (earlier attacks included).
    pub robust_accuracy: f64,
    /// Samples this attack fooled first.
    pub new_successes: usize,
    /// Forward evaluations (samples).
    pub forwards: u64,
    /// Gradient evaluations (samples).
    pub gradients: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Results at one ε.
#[derive(Debug, Clone, Serialize)]
pub struct EpsResult {
    /// The radius.
    pub eps: f64,
    /// Robust accuracy under the whole suite (per-sample worst case).
    pub robust_accuracy: f64,
    /// Per attack, in suite order.
    pub attacks: Vec<AttackSummary>,
    /// Median perturbation norm of the adversarials found.
    pub median_adversarial_norm: Option<f64>,
}

/// Minimal adversarial perturbations (unbounded search), summarised.
#[derive(Debug, Clone, Serialize)]
pub struct MinimalPerturbation {
    /// Method, e.g. `deepfool`.
    pub method: String,
    /// Norm measured.
    pub norm: String,
    /// Median perturbation norm over the samples it fooled.
    pub median: Option<f64>,
    /// Samples fooled.
    pub fooled: usize,
    /// Samples searched (the correctly classified ones).
    pub searched: usize,
}

/// A flag raised by an honesty check, with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    /// Which check.
    pub check: String,
    /// What it means for the numbers.
    pub message: String,
    /// The measurement behind it.
    pub evidence: String,
}

/// One clean/adversarial pair for the image grid (pixels C×H×W in [0,1]).
#[derive(Debug, Clone)]
pub struct Example {
    /// Radius the adversarial was found at.
    pub eps: f64,
    /// Clean image.
    pub clean: Vec<f32>,
    /// Adversarial image.
    pub adversarial: Vec<f32>,
    /// Image shape (C, H, W).
    pub shape: [usize; 3],
    /// True label.
    pub label: usize,
    /// Prediction on the adversarial.
    pub predicted: usize,
}

/// One image of a section's figure (pixels C×H×W in [0,1]).
#[derive(Debug, Clone)]
pub struct Image {
    /// Pixels, C×H×W.
    pub pixels: Vec<f32>,
    /// Shape (C, H, W).
    pub shape: [usize; 3],
    /// Caption under the image (e.g. `stop → speed 45`).
    pub label: String,
}

/// A row of images with a caption, e.g. clean | mask | adversarial under held-out views.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What the row shows.
    pub caption: String,
    /// The images, left to right.
    pub images: Vec<Image>,
}

/// A section of an audit for a threat model beyond L_p balls (spatial, sparse, stickers,
/// corruptions, black-box): a table of results, free-form numbers for machines, figures.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Short key, as given to `--sections` (e.g. `spatial`).
    pub id: String,
    /// Heading.
    pub title: String,
    /// What was measured and how to read it, one paragraph.
    pub summary: String,
    /// Table header.
    pub columns: Vec<String>,
    /// Table rows, cells as shown.
    pub rows: Vec<Vec<String>>,
    /// The section's numbers for machines (JSON object).
    pub numbers: serde_json::Value,
    /// Image rows for the HTML report (not in report.json).
    #[serde(skip)]
    pub figures: Vec<Figure>,
}

/// A whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// ruse version that produced it.
    pub ruse_version: String,
    /// Model path (or "default").
    pub model: String,
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// Data spec.
    pub data: String,
    /// Samples audited.
    pub n: usize,
    /// Clean accuracy on those samples.
    pub clean_accuracy: f64,
    /// Robust accuracy per ε (keys are ε as written).
    pub robust_accuracy: BTreeMap<String, f64>,
    /// Details per ε.
    pub results: Vec<EpsResult>,
    /// Median minimal perturbation (DeepFool), for L2 and L∞ audits.
    pub minimal_perturbation: Option<MinimalPerturbation>,
    /// Honesty-check flags.
    pub warnings: Vec<Warning>,
    /// Threat models beyond L_p balls asked for with `--sections`, in the order given.
    pub sections: Vec<Section>,
    /// Settings needed to reproduce (norm, preset, seed, limit, batch, threads, command line).
    pub settings: BTreeMap<String, String>,
    /// Seed.
    pub seed: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// One model's row in a comparison (`ruse audit --compare`).
#[derive(Debug, Clone, Serialize)]
pub struct ModelComparison {
    /// The name given on the command line (`default`, a bundled name or a path).
    pub name: String,
    /// Where the model came from, as the single-model report's `model`.
    pub source: String,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// Clean accuracy on the audited samples.
    pub clean: f64,
    /// Robust accuracy per ε (worst case over the suite; keys are ε as written).
    pub robust: BTreeMap<String, f64>,
    /// Certified accuracy per ε on the first `certified_n` samples (empty when not certified).
    pub certified: BTreeMap<String, f64>,
    /// Samples the certified accuracies are measured on.
    pub certified_n: usize,
    /// Honesty-check flags raised on this model.
    pub warnings: Vec<Warning>,
    /// Median minimal perturbation (DeepFool), for L2 and L∞ audits.
    pub minimal_perturbation: Option<MinimalPerturbation>,
    /// Audit wall time for this model in seconds (certification included).
    pub seconds: f64,
}

/// Several models audited on the same data, radii, preset and seed.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonReport {
    /// ruse version that produced it.
    pub ruse_version: String,
    /// Data spec.
    pub data: String,
    /// Samples audited.
    pub n: usize,
    /// Threat-model norm.
    pub norm: String,
    /// Radii, in the order given.
    pub eps: Vec<f64>,
    /// Attack preset.
    pub preset: String,
    /// Verifier used for the certified accuracies (`none`, `ibp` or `crown`).
    pub certify_method: String,
    /// One entry per model, in the order given.
    pub models: Vec<ModelComparison>,
    /// Settings needed to reproduce.
    pub settings: BTreeMap<String, String>,
    /// Seed.
    pub seed: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}
