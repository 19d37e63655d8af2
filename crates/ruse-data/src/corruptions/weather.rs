//! Weather corruptions: snow, frost, fog and brightness.
//!
//! Frost differs from CIFAR-10-C: the original blends crops of six frost photographs, which ruse
//! does not ship; here the frost layer is synthesised (ice needles branching from random seeds
//! over a faint plasma-fractal haze), blended with the original weights per severity.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::blur::scale;
use super::ops::{
    clamp01, crop, gaussian_blur, motion_blur, per_plane, plasma_fractal, zoom_center, Border,
};

/// Grey level of every pixel: luma for RGB, the mean over channels otherwise.
fn grey(image: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = shape;
    let plane = h * w;
    (0..plane)
        .map(|i| {
            if c == 3 {
                0.299 * image[i] + 0.587 * image[plane + i] + 0.114 * image[2 * plane + i]
            } else {
                (0..c).map(|ch| image[ch * plane + i]).sum::<f32>() / c as f32
            }
        })
        .collect()
}

/// Snow: a thresholded, zoomed Gaussian layer streaked by motion blur (and its 180° rotation)
/// over a whitened image.
pub(crate) fn snow(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    // (mean, spread, zoom, threshold, streak radius, streak σ, blend)
    let (loc, spread, zoom, threshold, radius, sigma, blend) = [
        (0.1f32, 0.2f32, 1.0f32, 0.6f32, 8f32, 3f32, 0.95f32),
        (0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.8),
    ][severity - 1];
    let [_, h, w] = shape;
    let s = scale(shape);
    let layer: Vec<f32> = (0..h * w)
        .map(|_| loc + spread * rng.sample::<f32, _>(StandardNormal))
        .collect();
    let layer: Vec<f32> = zoom_center(&layer, h, w, zoom)
        .into_iter()
        .map(|v| {
            if v < threshold {
                0.0
            } else {
                v.clamp(0.0, 1.0)
            }
        })
        .collect();
    let angle = rng.random_range(-135f32..-45.0);
    let layer = motion_blur(&layer, h, w, radius * s, sigma * s, angle);
    let g = grey(image, shape);
    let mut out = per_plane(image, shape, |p| {
        p.iter()
            .enumerate()
            .map(|(i, &v)| {
                let whitened = blend * v + (1.0 - blend) * v.max(g[i] * 1.5 + 0.5);
                // The flakes plus the same flakes rotated by 180°.
                whitened + layer[i] + layer[h * w - 1 - i]
            })
            .collect()
    });
    clamp01(&mut out);
    out
}

/// A procedural frost layer in [0,1]: faint haze plus bright, blurred ice needles.
fn frost_layer(h: usize, w: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = h.max(w).next_power_of_two();
    let haze = crop(&plasma_fractal(n, 1.6, rng), n, h, w);
    let mut t: Vec<f32> = haze.iter().map(|v| 0.25 + 0.25 * v).collect();
    let s = h.min(w) as f32 / 32.0;
    // Crystals: each seed sends out a few needles; needles fork once at a random point.
    let seeds = ((h * w) as f32 / 90.0).ceil() as usize;
    for _ in 0..seeds {
        let (y0, x0) = (
            rng.random_range(0.0..h as f32),
            rng.random_range(0.0..w as f32),
        );
        for _ in 0..rng.random_range(2..5) {
            let angle = rng.random_range(0.0..std::f32::consts::TAU);
            let len = rng.random_range(3.0..9.0) * s.max(0.5);
            let bright = rng.random_range(0.55f32..0.95);
            let fork = rng.random_range(0.3..0.8) * len;
            let fork_angle = angle + if rng.random_bool(0.5) { 0.6 } else { -0.6 };
            let mut draw = |ys: f32, xs: f32, a: f32, l: f32, b: f32| {
                let steps = (l * 2.0).ceil() as usize;
                for k in 0..=steps {
                    let d = k as f32 * 0.5;
                    let (y, x) = (ys + d * a.sin(), xs + d * a.cos());
                    if y >= 0.0 && x >= 0.0 && (y as usize) < h && (x as usize) < w {
                        let i = y as usize * w + x as usize;
                        // Needles thin out towards their tips.
                        t[i] = t[i].max(b * (1.0 - 0.5 * d / l));
                    }
                }
            };
            draw(y0, x0, angle, len, bright);
            let (yf, xf) = (y0 + fork * angle.sin(), x0 + fork * angle.cos());
            draw(yf, xf, fork_angle, len - fork, bright * 0.9);
        }
    }
    let mut t = gaussian_blur(&t, h, w, 0.5 * s.max(0.5), 3.0, Border::Reflect);
    clamp01(&mut t);
    t
}

/// Frost: `a·x + b·frost` with CIFAR-10-C's weights, on a synthesised frost layer (bluish for RGB).
pub(crate) fn frost(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let (a, b) = [
        (1.0f32, 0.2f32),
        (1.0, 0.3),
        (0.9, 0.4),
        (0.85, 0.4),
        (0.75, 0.45),
    ][severity - 1];
    let [c, h, w] = shape;
    let layer = frost_layer(h, w, rng);
    // Frost photographs are white with a blue cast.
    let tint = |ch: usize| {
        if c == 3 {
            [0.85f32, 0.93, 1.0][ch]
        } else {
            1.0
        }
    };
    let mut out: Vec<f32> = image
        .chunks(h * w)
        .enumerate()
        .flat_map(|(ch, p)| {
            let layer = &layer;
            p.iter()
                .zip(layer)
                .map(move |(&v, &f)| a * v + b * tint(ch) * f)
        })
        .collect();
    clamp01(&mut out);
    out
}

/// Fog: plasma-fractal clouds added with weight `a`, then rescaled towards the original range.
pub(crate) fn fog(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let (a, decay) = [
        (0.2f32, 3.0f32),
        (0.5, 3.0),
        (0.75, 2.5),
        (1.0, 2.0),
        (1.5, 1.75),
    ][severity - 1];
    let [_, h, w] = shape;
    let n = h.max(w).next_power_of_two();
    let clouds = crop(&plasma_fractal(n, decay, rng), n, h, w);
    let max = image.iter().copied().fold(0f32, f32::max);
    let mut out = per_plane(image, shape, |p| {
        p.iter()
            .zip(&clouds)
            .map(|(&v, &f)| (v + a * f) * max / (max + a))
            .collect()
    });
    clamp01(&mut out);
    out
}

/// Brightness: raise the HSV value by `c`, keeping hue and saturation (for grey images, add `c`).
pub(crate) fn brightness(image: &[f32], shape: [usize; 3], severity: usize) -> Vec<f32> {
    let c = [0.05f32, 0.1, 0.15, 0.2, 0.3][severity - 1];
    let [ch, h, w] = shape;
    let plane = h * w;
    if ch != 3 {
        let mut out: Vec<f32> = image.iter().map(|v| v + c).collect();
        clamp01(&mut out);
        return out;
    }
    let mut out = image.to_vec();
    for i in 0..plane {
        let v = (0..3).map(|k| image[k * plane + i]).fold(0f32, f32::max);
        let v2 = (v + c).clamp(0.0, 1.0);
        // With hue and saturation fixed, RGB scales with V; a black pixel has no hue and turns grey.
        for k in 0..3 {
            out[k * plane + i] = if v > 0.0 {
                image[k * plane + i] * v2 / v
            } else {
                v2
            };
        }
    }
    clamp01(&mut out);
    out
}
