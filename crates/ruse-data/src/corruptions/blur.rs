//! Blur corruptions: defocus (disk kernel), glass (local pixel shuffling between two Gaussian
//! blurs), motion (a one-sided streak at a random angle) and zoom (average of centre zooms).
//!
//! Radii are CIFAR-10-C's for 32-pixel images, scaled by `min(H, W)/32` for larger ones.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ops::{
    clamp01, convolve, gaussian_blur, motion_blur as streak, per_plane, zoom_center, Border,
};

/// Spatial scale of the CIFAR-10-C parameters for an H×W image: `min(H, W)/32`, but never below
/// 1, because the pixel-sized kernels (a radius-1 disk, a 1-pixel shuffle) vanish when shrunk.
pub(crate) fn scale(shape: [usize; 3]) -> f32 {
    (shape[1].min(shape[2]) as f32 / 32.0).max(1.0)
}

/// Normalised disk of `radius`, anti-aliased by a 3×3 Gaussian of `alias` (side length odd).
fn disk_kernel(radius: f32, alias: f32) -> (Vec<f32>, usize) {
    let r = radius.ceil() as isize + 1;
    let size = (2 * r + 1) as usize;
    let mut k: Vec<f32> = (-r..=r)
        .flat_map(|y| {
            (-r..=r).map(move |x| ((x * x + y * y) as f32 <= radius * radius) as u8 as f32)
        })
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s.max(1.0));
    // The 3×3 anti-aliasing blur: a Gaussian restricted to one pixel each side.
    let e = (-1.0 / (2.0 * alias.max(1e-3).powi(2))).exp();
    let g = [
        e / (1.0 + 2.0 * e),
        1.0 / (1.0 + 2.0 * e),
        e / (1.0 + 2.0 * e),
    ];
    let k = super::ops::separable(&k, size, size, &g, Border::Reflect101);
    (k, size)
}

/// Defocus blur: convolution with an anti-aliased disk.
pub(crate) fn defocus_blur(image: &[f32], shape: [usize; 3], severity: usize) -> Vec<f32> {
    let (radius, alias) = [
        (0.3f32, 0.4f32),
        (0.4, 0.5),
        (0.5, 0.6),
        (1.0, 0.2),
        (1.5, 0.1),
    ][severity - 1];
    let (k, size) = disk_kernel(radius * scale(shape), alias);
    let [_, h, w] = shape;
    let mut out = per_plane(image, shape, |p| {
        convolve(p, h, w, &k, size, Border::Reflect101)
    });
    clamp01(&mut out);
    out
}

/// Glass blur: blur, quantise to 8 bits, replace every pixel by a random neighbour up to
/// `max_delta` up and left (`iterations` sweeps, bottom-right to top-left), blur again.
///
/// The reference writes this step as a swap of two NumPy pixel views, which in effect copies the
/// neighbour onto the pixel and leaves the neighbour as it was; ruse does that copy, since a
/// true swap drags bright pixels across the whole image in one sweep.
pub(crate) fn glass_blur(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let (sigma, delta, iterations) = [
        (0.05f32, 1f32, 1usize),
        (0.25, 1.0, 1),
        (0.4, 1.0, 1),
        (0.25, 1.0, 2),
        (0.4, 1.0, 2),
    ][severity - 1];
    let s = scale(shape);
    let (sigma, d) = (sigma * s, (delta * s).round().max(1.0) as isize);
    let [c, h, w] = shape;
    let mut x = per_plane(image, shape, |p| {
        gaussian_blur(p, h, w, sigma, 4.0, Border::Nearest)
            .into_iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).floor() / 255.0)
            .collect()
    });
    let (hi, wi) = (h as isize, w as isize);
    for _ in 0..iterations {
        for y in ((d + 1)..=(hi - d)).rev() {
            for xx in ((d + 1)..=(wi - d)).rev() {
                let dx = rng.random_range(-d as i64..d as i64) as isize;
                let dy = rng.random_range(-d as i64..d as i64) as isize;
                let (y2, x2) = (y + dy, xx + dx);
                if y >= hi || xx >= wi || !(0..hi).contains(&y2) || !(0..wi).contains(&x2) {
                    continue;
                }
                for ch in 0..c {
                    let base = ch * h * w;
                    x[base + (y * wi + xx) as usize] = x[base + (y2 * wi + x2) as usize];
                }
            }
        }
    }
    let mut out = per_plane(&x, shape, |p| {
        gaussian_blur(p, h, w, sigma, 4.0, Border::Nearest)
    });
    clamp01(&mut out);
    out
}

/// Motion blur: a streak of radius r and spread σ at a random angle in [-45°, 45°].
pub(crate) fn motion_blur(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let (radius, sigma) =
        [(6f32, 1f32), (6.0, 1.5), (6.0, 2.0), (8.0, 2.0), (9.0, 2.5)][severity - 1];
    let s = scale(shape);
    let angle = rng.random_range(-45f32..45.0);
    let [_, h, w] = shape;
    let mut out = per_plane(image, shape, |p| {
        streak(p, h, w, radius * s, sigma * s, angle)
    });
    clamp01(&mut out);
    out
}

/// Zoom blur: the mean of the image and its zooms by 1, 1.01, …, up to 1.05–1.25 by severity.
pub(crate) fn zoom_blur(image: &[f32], shape: [usize; 3], severity: usize) -> Vec<f32> {
    let top = [5usize, 10, 15, 20, 25][severity - 1];
    let [_, h, w] = shape;
    let mut out = per_plane(image, shape, |p| {
        let mut acc = p.to_vec();
        for i in 0..=top {
            let z = zoom_center(p, h, w, 1.0 + i as f32 * 0.01);
            acc.iter_mut().zip(z).for_each(|(a, b)| *a += b);
        }
        let n = (top + 2) as f32;
        acc.into_iter().map(|v| v / n).collect()
    });
    clamp01(&mut out);
    out
}
