//! Digital corruptions: contrast, elastic transform, pixelate and JPEG compression.

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ops::{bilinear, clamp01, gaussian_blur, per_plane, resize_area, Border};
use super::CorruptionError;

/// Contrast: pull every channel towards its mean by factor `c`.
pub(crate) fn contrast(image: &[f32], shape: [usize; 3], severity: usize) -> Vec<f32> {
    let c = [0.75f32, 0.5, 0.4, 0.3, 0.15][severity - 1];
    let mut out = per_plane(image, shape, |p| {
        let mean = p.iter().sum::<f32>() / p.len().max(1) as f32;
        p.iter().map(|v| (v - mean) * c + mean).collect()
    });
    clamp01(&mut out);
    out
}

/// Solves for the affine map sending the three points `from` to `to`: rows (a, b, c) with
/// `to = (a·x + b·y + c)` per coordinate; `None` when the points are collinear.
fn affine_from_points(from: [[f32; 2]; 3], to: [[f32; 2]; 3]) -> Option<[[f32; 3]; 2]> {
    let [[x0, y0], [x1, y1], [x2, y2]] = from;
    let det = x0 * (y1 - y2) - y0 * (x1 - x2) + (x1 * y2 - x2 * y1);
    if det.abs() < 1e-9 {
        return None;
    }
    // Cramer's rule on [x y 1]·(a b c)ᵀ = t, once per output coordinate.
    let solve = |t: [f32; 3]| {
        let a = (t[0] * (y1 - y2) - y0 * (t[1] - t[2]) + (t[1] * y2 - t[2] * y1)) / det;
        let b = (x0 * (t[1] - t[2]) - t[0] * (x1 - x2) + (x1 * t[2] - x2 * t[1])) / det;
        let c = (x0 * (y1 * t[2] - y2 * t[1]) - y0 * (x1 * t[2] - x2 * t[1])
            + t[0] * (x1 * y2 - x2 * y1))
            / det;
        [a, b, c]
    };
    Some([
        solve([to[0][0], to[1][0], to[2][0]]),
        solve([to[0][1], to[1][1], to[2][1]]),
    ])
}

/// Elastic transform: a random affine warp (three anchor points jittered by up to `affine`
/// pixels), then a smooth random displacement field (uniform noise blurred by σ, scaled by α).
/// α and σ are CIFAR-10-C's, in units of the image size. The affine jitter runs in the reverse
/// order (0.03 → 0.08 of the size): CIFAR-10-C shrinks it as the field grows, which makes
/// severity 1 move MNIST pixels more than severity 5 (mean |Δ| 0.085 against 0.057).
pub(crate) fn elastic_transform(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let [_, h, w] = shape;
    let size = h.min(w) as f32;
    let (alpha, sigma, affine) = [
        (0.0f32, 0.0f32, 0.03f32),
        (0.05, 0.2, 0.05),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.07),
        (0.1, 0.03, 0.08),
    ][severity - 1];
    let (alpha, sigma, affine) = (alpha * size, sigma * size, affine * size);
    let (cx, cy) = ((w / 2) as f32, (h / 2) as f32);
    let sq = (h.min(w) / 3) as f32;
    let from = [[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]];
    let mut to = from;
    for p in to.iter_mut() {
        for v in p.iter_mut() {
            *v += rng.random_range(-affine..=affine);
        }
    }
    // Output pixel q reads the input at the inverse map, so solve for `to → from` directly.
    let inv = affine_from_points(to, from).unwrap_or([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
    let field = |rng: &mut ChaCha8Rng| -> Vec<f32> {
        let noise: Vec<f32> = (0..h * w).map(|_| rng.random_range(-1f32..1.0)).collect();
        gaussian_blur(&noise, h, w, sigma, 3.0, Border::Reflect)
            .into_iter()
            .map(|v| v * alpha)
            .collect()
    };
    let dx = field(rng);
    let dy = field(rng);
    let mut out = per_plane(image, shape, |p| {
        let warped: Vec<f32> = (0..h * w)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let sx = inv[0][0] * x + inv[0][1] * y + inv[0][2];
                let sy = inv[1][0] * x + inv[1][1] * y + inv[1][2];
                bilinear(p, h, w, sy, sx, Border::Reflect101)
            })
            .collect();
        (0..h * w)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                bilinear(&warped, h, w, y + dy[i], x + dx[i], Border::Reflect)
            })
            .collect()
    });
    clamp01(&mut out);
    out
}

/// Pixelate: box-downsample to a fraction of the size, then box-upsample back.
pub(crate) fn pixelate(image: &[f32], shape: [usize; 3], severity: usize) -> Vec<f32> {
    let c = [0.95f32, 0.9, 0.85, 0.75, 0.65][severity - 1];
    let [_, h, w] = shape;
    let (nh, nw) = (
        ((h as f32 * c) as usize).max(1),
        ((w as f32 * c) as usize).max(1),
    );
    let mut out = per_plane(image, shape, |p| {
        let small = resize_area(p, h, w, nh, nw);
        resize_area(&small, nh, nw, h, w)
    });
    clamp01(&mut out);
    out
}

/// JPEG compression: an 8-bit round trip through the `image` crate's encoder at quality 80, 65,
/// 58, 50 or 40. Grey and RGB images are encoded as such; other channel counts plane by plane.
pub(crate) fn jpeg_compression(
    image: &[f32],
    shape: [usize; 3],
    severity: usize,
) -> Result<Vec<f32>, CorruptionError> {
    let quality = [80u8, 65, 58, 50, 40][severity - 1];
    let [c, h, w] = shape;
    let plane = h * w;
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let round_trip =
        |bytes: Vec<u8>, color: ExtendedColorType| -> Result<Vec<u8>, CorruptionError> {
            let mut buf = Vec::new();
            JpegEncoder::new_with_quality(&mut buf, quality)
                .encode(&bytes, w as u32, h as u32, color)
                .map_err(|e| CorruptionError::Jpeg(e.to_string()))?;
            let decoded = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
                .map_err(|e| CorruptionError::Jpeg(e.to_string()))?;
            Ok(match color {
                ExtendedColorType::Rgb8 => decoded.to_rgb8().into_raw(),
                _ => decoded.to_luma8().into_raw(),
            })
        };
    if c == 3 {
        // Interleave C×H×W into H×W×3 for the encoder and back.
        let hwc: Vec<u8> = (0..plane)
            .flat_map(|i| (0..3).map(move |k| to_u8(image[k * plane + i])))
            .collect();
        let back = round_trip(hwc, ExtendedColorType::Rgb8)?;
        return Ok((0..3)
            .flat_map(|k| (0..plane).map(move |i| k + 3 * i))
            .map(|j| back[j] as f32 / 255.0)
            .collect());
    }
    let mut out = Vec::with_capacity(image.len());
    for p in image.chunks(plane) {
        let back = round_trip(p.iter().map(|&v| to_u8(v)).collect(), ExtendedColorType::L8)?;
        out.extend(back.into_iter().map(|v| v as f32 / 255.0));
    }
    Ok(out)
}
