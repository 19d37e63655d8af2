//! Plane-level image operations the corruptions share: borders, Gaussian and motion blur,
//! convolution, bilinear sampling, zoom, area resampling and plasma-fractal noise.
//!
//! A plane is one channel, H×W row-major, values nominally in [0,1].

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How a read outside the plane is folded back inside.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Border {
    /// Repeat the edge pixel (`aaa|abcd|ddd`).
    Nearest,
    /// Mirror including the edge pixel (`cba|abcd|dcb`… i.e. scipy's `reflect`).
    Reflect,
    /// Mirror excluding the edge pixel (`dcb|abcd|cba`, OpenCV's default).
    Reflect101,
}

/// Index `i` folded into `0..n` by `border`.
pub(crate) fn fold(i: isize, n: usize, border: Border) -> usize {
    let n = n as isize;
    if n <= 1 {
        return 0;
    }
    if (0..n).contains(&i) {
        return i as usize;
    }
    let j = match border {
        Border::Nearest => i.clamp(0, n - 1),
        Border::Reflect => {
            let period = 2 * n;
            let m = i.rem_euclid(period);
            if m < n {
                m
            } else {
                period - 1 - m
            }
        }
        Border::Reflect101 => {
            let period = 2 * n - 2;
            let m = i.rem_euclid(period);
            if m < n {
                m
            } else {
                period - m
            }
        }
    };
    j as usize
}

/// Applies `f` to every channel plane of a C×H×W image.
pub(crate) fn per_plane(
    image: &[f32],
    shape: [usize; 3],
    f: impl FnMut(&[f32]) -> Vec<f32>,
) -> Vec<f32> {
    let plane = shape[1] * shape[2];
    image.chunks(plane).flat_map(f).collect()
}

/// Normalised 1-D Gaussian weights with half-width `ceil(truncate·sigma)`; `[1]` for sigma ≤ 0.
pub(crate) fn gaussian_kernel(sigma: f32, truncate: f32) -> Vec<f32> {
    if sigma <= 1e-6 {
        return vec![1.0];
    }
    let r = (truncate * sigma + 0.5).floor().max(1.0) as isize;
    let w: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Separable convolution of a plane with the same odd-length 1-D kernel along rows and columns.
pub(crate) fn separable(p: &[f32], h: usize, w: usize, k: &[f32], border: Border) -> Vec<f32> {
    let r = (k.len() / 2) as isize;
    let mut tmp = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(j, kv)| kv * p[y * w + fold(x as isize + j as isize - r, w, border)])
                .sum();
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(j, kv)| kv * tmp[fold(y as isize + j as isize - r, h, border) * w + x])
                .sum();
        }
    }
    out
}

/// Gaussian blur of a plane (scikit-image's `gaussian`: truncate 4 unless given).
pub(crate) fn gaussian_blur(
    p: &[f32],
    h: usize,
    w: usize,
    sigma: f32,
    truncate: f32,
    border: Border,
) -> Vec<f32> {
    separable(p, h, w, &gaussian_kernel(sigma, truncate), border)
}

/// 2-D correlation of a plane with a square odd-sized kernel (`size`×`size`, row-major).
pub(crate) fn convolve(
    p: &[f32],
    h: usize,
    w: usize,
    k: &[f32],
    size: usize,
    border: Border,
) -> Vec<f32> {
    let r = (size / 2) as isize;
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f32;
            for ky in 0..size {
                let sy = fold(y as isize + ky as isize - r, h, border);
                for kx in 0..size {
                    let kv = k[ky * size + kx];
                    if kv != 0.0 {
                        acc += kv * p[sy * w + fold(x as isize + kx as isize - r, w, border)];
                    }
                }
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// Bilinear read of a plane at fractional (row `y`, column `x`), outside reads folded by `border`.
pub(crate) fn bilinear(p: &[f32], h: usize, w: usize, y: f32, x: f32, border: Border) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let (y0, x0) = (y0 as isize, x0 as isize);
    let at = |yy: isize, xx: isize| p[fold(yy, h, border) * w + fold(xx, w, border)];
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
    let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Zoom in by `z` ≥ 1 about the centre, keeping the size (bilinear; the rim is cropped away).
pub(crate) fn zoom_center(p: &[f32], h: usize, w: usize, z: f32) -> Vec<f32> {
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let sy = cy + (y as f32 - cy) / z;
            let sx = cx + (x as f32 - cx) / z;
            out[y * w + x] = bilinear(p, h, w, sy, sx, Border::Nearest);
        }
    }
    out
}

/// ImageMagick-style motion blur: a one-sided Gaussian-weighted streak of `2·radius+1` taps
/// along `angle_deg` (0° = to the right, positive = down), edges repeated.
pub(crate) fn motion_blur(
    p: &[f32],
    h: usize,
    w: usize,
    radius: f32,
    sigma: f32,
    angle_deg: f32,
) -> Vec<f32> {
    let taps = 2 * radius.round().max(1.0) as usize + 1;
    let sigma = sigma.max(1e-3);
    let weights: Vec<f32> = (0..taps)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let (dy, dx) = angle_deg.to_radians().sin_cos();
    let offsets: Vec<(isize, isize)> = (0..taps)
        .map(|i| {
            (
                (i as f32 * dy).round() as isize,
                (i as f32 * dx).round() as isize,
            )
        })
        .collect();
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f32;
            for (wt, (oy, ox)) in weights.iter().zip(&offsets) {
                let sy = fold(y as isize + oy, h, Border::Nearest);
                let sx = fold(x as isize + ox, w, Border::Nearest);
                acc += wt * p[sy * w + sx];
            }
            out[y * w + x] = acc / total;
        }
    }
    out
}

/// Area-weighted resampling of a plane to `nh`×`nw` (PIL's `BOX` filter, either direction).
pub(crate) fn resize_area(p: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    // Per output index: the input indices its footprint overlaps and by how much.
    let spans = |n: usize, m: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = n as f32 / m as f32;
        (0..m)
            .map(|o| {
                let (a, b) = (o as f32 * scale, (o + 1) as f32 * scale);
                let mut v = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f32) < b && i < n {
                    let overlap = (b.min(i as f32 + 1.0) - a.max(i as f32)).max(0.0);
                    if overlap > 0.0 {
                        v.push((i, overlap / (b - a)));
                    }
                    i += 1;
                }
                v
            })
            .collect()
    };
    let (rows, cols) = (spans(h, nh), spans(w, nw));
    let mut out = vec![0f32; nh * nw];
    for (oy, rs) in rows.iter().enumerate() {
        for (ox, cs) in cols.iter().enumerate() {
            out[oy * nw + ox] = rs
                .iter()
                .flat_map(|&(iy, wy)| cs.iter().map(move |&(ix, wx)| wy * wx * p[iy * w + ix]))
                .sum();
        }
    }
    out
}

/// Plasma-fractal height map (diamond-square on a wrapping `size`×`size` grid, `size` a power of
/// two), normalised to [0,1]. The random displacement shrinks by `decay`² per octave, so a
/// larger `decay` gives smoother clouds.
pub(crate) fn plasma_fractal(size: usize, decay: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = size.next_power_of_two().max(2);
    let mut m = vec![0f32; n * n];
    let at = |y: usize, x: usize| (y % n) * n + (x % n);
    let mut step = n;
    let mut wibble = 100f32;
    while step >= 2 {
        let half = step / 2;
        let jitter = |rng: &mut ChaCha8Rng| wibble * rng.random_range(-wibble..=wibble);
        // Squares: centre of each cell from its four corners.
        for y in (0..n).step_by(step) {
            for x in (0..n).step_by(step) {
                let s = m[at(y, x)]
                    + m[at(y + step, x)]
                    + m[at(y, x + step)]
                    + m[at(y + step, x + step)];
                m[at(y + half, x + half)] = s / 4.0 + jitter(rng);
            }
        }
        // Diamonds: edge midpoints from the two corners and two centres around them.
        for y in (0..n).step_by(step) {
            for x in (0..n).step_by(step) {
                let c_up = m[at(y + n - half, x + half)];
                let c_here = m[at(y + half, x + half)];
                let top = m[at(y, x)] + m[at(y, x + step)] + c_up + c_here;
                m[at(y, x + half)] = top / 4.0 + jitter(rng);
                let c_left = m[at(y + half, x + n - half)];
                let left = m[at(y, x)] + m[at(y + step, x)] + c_left + c_here;
                m[at(y + half, x)] = left / 4.0 + jitter(rng);
            }
        }
        step = half;
        wibble /= decay;
    }
    let lo = m.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = (hi - lo).max(1e-12);
    m.into_iter().map(|v| (v - lo) / span).collect()
}

/// The top-left `h`×`w` crop of an `n`×`n` map.
pub(crate) fn crop(m: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| m[(y % n) * n + (x % n)]))
        .collect()
}

/// Clamps every value to [0,1].
pub(crate) fn clamp01(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.clamp(0.0, 1.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fold_modes() {
        assert_eq!(fold(-1, 4, Border::Nearest), 0);
        assert_eq!(fold(-1, 4, Border::Reflect), 0);
        assert_eq!(fold(-1, 4, Border::Reflect101), 1);
        assert_eq!(fold(4, 4, Border::Reflect), 3);
        assert_eq!(fold(4, 4, Border::Reflect101), 2);
        assert_eq!(fold(9, 4, Border::Nearest), 3);
    }

    #[test]
    fn blur_keeps_constant_planes_and_mass() {
        let p = vec![0.5f32; 36];
        let b = gaussian_blur(&p, 6, 6, 1.3, 4.0, Border::Reflect);
        assert!(b.iter().all(|v| (v - 0.5).abs() < 1e-5));
        let r = resize_area(&p, 6, 6, 4, 5);
        assert!(r.iter().all(|v| (v - 0.5).abs() < 1e-5));
        let m = motion_blur(&p, 6, 6, 3.0, 1.0, 30.0);
        assert!(m.iter().all(|v| (v - 0.5).abs() < 1e-5));
    }

    #[test]
    fn plasma_is_normalised_and_seeded() {
        let a = plasma_fractal(32, 2.0, &mut ChaCha8Rng::seed_from_u64(1));
        let b = plasma_fractal(32, 2.0, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        let lo = a.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(lo.abs() < 1e-6 && (hi - 1.0).abs() < 1e-6);
    }
}
