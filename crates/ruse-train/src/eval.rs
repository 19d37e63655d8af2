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
