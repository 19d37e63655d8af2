//! Clean evaluation: accuracy, per-class accuracy, confusion matrix.

use candle_core::{Device, D};
use ruse_data::Dataset;
use ruse_graph::Graph;
use serde::Serialize;

use crate::batch::{batch, check_fit};
use crate::error::Result;

/// Results of a clean evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Samples evaluated.
    pub n: usize,
    /// Correct predictions.
    pub correct: usize,
    /// correct / n.
    pub accuracy: f64,
    /// Accuracy per true class (None where the class has no samples).
    pub per_class_accuracy: Vec<Option<f64>>,
    /// confusion[true][predicted] counts.
    pub confusion: Vec<Vec<usize>>,
    /// Predicted class of every sample, in dataset order.
    pub predictions: Vec<usize>,
}

/// Runs the model over the whole dataset in batches and tallies the predictions.
pub fn evaluate(
    graph: &Graph,
    data: &Dataset,
    batch_size: usize,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<EvalReport> {
    check_fit(graph, data)?;
    let k = graph.output_len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut predictions = Vec::with_capacity(data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    let device = Device::Cpu;
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = batch(data, chunk, &device)?;
        let logits = graph.forward(&x)?;
        let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        for (&i, &p) in chunk.iter().zip(&pred) {
            confusion[data.labels[i]][p as usize] += 1;
            predictions.push(p as usize);
        }
        on_batch(predictions.len(), data.len());
    }
    let correct = (0..k).map(|c| confusion[c][c]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            (n > 0).then(|| row[c] as f64 / n as f64)
        })
        .collect();
    Ok(EvalReport {
        n: data.len(),
        correct,
        accuracy: if data.is_empty() {
            0.0
        } else {
            correct as f64 / data.len() as f64
        },
        per_class_accuracy,
        confusion,
        predictions,
    })
}

/// Iterations of the PGD that validates adversarially trained models after each epoch.
pub const VAL_PGD_STEPS: usize = 10;

/// Accuracy under L∞ PGD at radius `eps` (`steps` steps of 2.5 ε / steps, random start, seeded by
/// `seed`; ruse-attack's `Pgd`, the one the audit runs): a sample counts when the clean input and
/// every PGD iterate are classified correctly.
pub fn evaluate_pgd(
    graph: &Graph,
    data: &Dataset,
    eps: f32,
    steps: usize,
    seed: u64,
    batch_size: usize,
) -> Result<f64> {
    use rand::SeedableRng;
    use ruse_attack::{pgd::Pgd, threat::Norm, Attack, Goal, Model, ThreatModel};
    check_fit(graph, data)?;
    if data.is_empty() {
        return Ok(0.0);
    }
    let model = Model::new(graph)?;
    let threat = ThreatModel::new(Norm::Linf, eps, graph.input_domain)?;
    let pgd = Pgd {
        steps,
        ..Pgd::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let k = model.classes();
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut robust = 0usize;
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = data.gather(chunk);
        let clean = ruse_attack::model::argmax_rows(&model.logits(&x)?, k);
        let out = pgd.run(&model, &x, &y, &threat, &Goal::Untargeted, &mut rng)?;
        robust += (0..y.len())
            .filter(|&i| clean[i] == y[i] && !out.success[i])
            .count();
    }
    Ok(robust as f64 / data.len() as f64)
}
