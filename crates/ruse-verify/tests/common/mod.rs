//! Helpers shared by ruse-verify's integration tests: sampling points of an input box and running
//! them through the f32 forward pass, and the test-data directories.
//!
//! Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use ruse_graph::Graph;

/// The f32 nearest to `v` that still lies in [l, h] (the forward pass runs on f32 inputs).
pub fn inside(v: f64, l: f64, h: f64) -> f32 {
    let mut f = v as f32;
    if (f as f64) < l {
        f = f.next_up();
    }
    if (f as f64) > h {
        f = f.next_down();
    }
    f
}

/// Both corners of [lo, hi] then `k` random points (30% of coordinates at a bound), flattened.
pub fn samples(lo: &[f64], hi: &[f64], k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut pts: Vec<f32> = Vec::new();
    pts.extend(lo.iter().zip(hi).map(|(&l, &h)| inside(l, l, h)));
    pts.extend(lo.iter().zip(hi).map(|(&l, &h)| inside(h, l, h)));
    for _ in 0..k {
        pts.extend(lo.iter().zip(hi).map(|(&l, &h)| {
            if rng.random::<f32>() < 0.3 {
                inside(if rng.random::<bool>() { l } else { h }, l, h)
            } else {
                inside(l + (h - l) * rng.random::<f64>(), l, h)
            }
        }));
    }
    pts
}

/// The graph's f32 outputs, one row per point of the flattened `pts`.
pub fn outputs(g: &Graph, pts: &[f32]) -> Vec<Vec<f64>> {
    let n = g.input_len();
    let mut shape = vec![pts.len() / n];
    shape.extend_from_slice(g.input_shape());
    let y: Vec<f32> = g
        .forward(&Tensor::from_slice(pts, shape, &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    y.chunks(g.output_len())
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// The committed one-op ONNX fixtures (tests/fixtures/ops).
pub fn fixtures_ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ops")
}

/// ../shared/vnncomp, if present (a note when not: the test then skips).
pub fn vnncomp() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vnncomp");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: {} is absent; skipping", dir.display());
        None
    }
}
