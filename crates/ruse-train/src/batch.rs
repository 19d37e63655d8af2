//! Turning dataset slices into tensors, and the seeded per-epoch shuffle.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_data::Dataset;
use ruse_graph::Graph;

use crate::error::{Result, TrainError};

/// Images [B, C, H, W] and labels [B] (u32) for the given sample indices.
pub fn batch(data: &Dataset, idx: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
    let (x, y) = data.gather(idx);
    let x = Tensor::from_vec(
        x,
        (idx.len(), data.channels, data.height, data.width),
        device,
    )?;
    let y: Vec<u32> = y.into_iter().map(|v| v as u32).collect();
    let y = Tensor::from_vec(y, idx.len(), device)?;
    Ok((x, y))
}

/// The order of samples in an epoch: a fixed function of (seed, epoch), so resuming reproduces it.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    idx.shuffle(&mut rng);
    idx
}

/// Checks that a model accepts the dataset's images and scores all its classes.
pub fn check_fit(graph: &Graph, data: &Dataset) -> Result<()> {
    let want = [data.channels, data.height, data.width];
    if graph.input_shape() != want {
        return Err(TrainError::Mismatch(format!(
            "the model takes input [{}] but '{}' has images [{}]",
            join(graph.input_shape()),
            data.name,
            join(&want)
        )));
    }
    if graph.output_shape().len() != 1 {
        return Err(TrainError::Mismatch(format!(
            "the model's output has shape [{}], not a vector of class scores",
            join(graph.output_shape())
        )));
    }
    if graph.output_len() < data.num_classes {
        return Err(TrainError::Mismatch(format!(
            "the model scores {} classes but '{}' has {}",
            graph.output_len(),
            data.name,
            data.num_classes
        )));
    }
    Ok(())
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
