//! What a printer and a camera let a sticker be: a non-printability score (NPS) against a small
//! palette of printable colours (Sharif et al. 2016, used by Eykholt et al. 2018), snapping to that
//! palette, and total variation (smooth stickers survive blur and resampling). Each returns its
//! value and its gradient with respect to the sticker pixels (C×H×W, only masked pixels count).

/// Printable RGB colours: muted primaries and greys an ordinary colour printer reproduces.
const RGB_PALETTE: &[[f32; 3]] = &[
    [0.05, 0.05, 0.05],
    [0.95, 0.95, 0.95],
    [0.50, 0.50, 0.50],
    [0.25, 0.25, 0.25],
    [0.75, 0.75, 0.75],
    [0.80, 0.10, 0.10],
    [0.50, 0.05, 0.05],
    [0.10, 0.60, 0.15],
    [0.10, 0.20, 0.60],
    [0.90, 0.80, 0.10],
    [0.95, 0.50, 0.10],
    [0.10, 0.60, 0.70],
];

/// Printable grey levels for one-channel images.
const GREY_PALETTE: &[f32] = &[0.03, 0.25, 0.5, 0.75, 0.97];

/// The printable palette for images of `channels` channels (1 or 3; other counts get greys per
/// channel), as one `channels`-vector per colour.
pub fn palette(channels: usize) -> Vec<Vec<f32>> {
    if channels == 3 {
        RGB_PALETTE.iter().map(|c| c.to_vec()).collect()
    } else {
        GREY_PALETTE.iter().map(|&g| vec![g; channels]).collect()
    }
}

/// The colour of pixel `p` of a C×(hw) image.
fn pixel(s: &[f32], c: usize, hw: usize, p: usize) -> Vec<f32> {
    (0..c).map(|k| s[k * hw + p]).collect()
}

/// NPS: per masked pixel, the squared distance to its nearest palette colour, averaged over
/// masked pixels; and its gradient with respect to `s`. Like Sharif et al.'s product of distances
/// it is zero exactly on printable colours, but its scale does not shrink with the palette size.
pub fn nps(s: &[f32], channels: usize, inside: &[bool], pal: &[Vec<f32>]) -> (f32, Vec<f32>) {
    let hw = inside.len();
    let area = inside.iter().filter(|&&v| v).count().max(1) as f32;
    let mut grad = vec![0f32; s.len()];
    let mut total = 0f32;
    for p in (0..hw).filter(|&p| inside[p]) {
        let v = pixel(s, channels, hw, p);
        let Some((d2, near)) = pal
            .iter()
            .map(|c| {
                (
                    v.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                    c,
                )
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
        else {
            continue;
        };
        total += d2;
        for k in 0..channels {
            grad[k * hw + p] = 2.0 * (v[k] - near[k]) / area;
        }
    }
    (total / area, grad)
}

/// Replaces every masked pixel of `s` with its nearest palette colour (what a printer would print).
pub fn snap_to_palette(s: &mut [f32], channels: usize, inside: &[bool], pal: &[Vec<f32>]) {
    let hw = inside.len();
    for p in (0..hw).filter(|&p| inside[p]) {
        let v = pixel(s, channels, hw, p);
        let best = pal
            .iter()
            .min_by(|a, b| {
                let da: f32 = v.iter().zip(a.iter()).map(|(x, y)| (x - y) * (x - y)).sum();
                let db: f32 = v.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum();
                da.total_cmp(&db)
            })
            .cloned()
            .unwrap_or_else(|| v.clone());
        for k in 0..channels {
            s[k * hw + p] = best[k];
        }
    }
}

/// Total variation of `s` (C×H×W) over horizontal and vertical neighbour pairs with both pixels in
/// the mask: Σ sqrt(Δx² + Δy² + ε) per masked pixel and channel, averaged over masked pixels; and
/// its gradient.
pub fn total_variation(
    s: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    inside: &[bool],
) -> (f32, Vec<f32>) {
    let hw = height * width;
    let area = inside.iter().filter(|&&v| v).count().max(1) as f32;
    let mut grad = vec![0f32; s.len()];
    let mut total = 0f32;
    for k in 0..channels {
        let ch = &s[k * hw..(k + 1) * hw];
        let g = &mut grad[k * hw..(k + 1) * hw];
        for y in 0..height {
            for x in 0..width {
                let p = y * width + x;
                if !inside[p] {
                    continue;
                }
                let dx = if x + 1 < width && inside[p + 1] {
                    ch[p + 1] - ch[p]
                } else {
                    0.0
                };
                let dy = if y + 1 < height && inside[p + width] {
                    ch[p + width] - ch[p]
                } else {
                    0.0
                };
                let r = (dx * dx + dy * dy + 1e-6).sqrt();
                total += r;
                // d r / d ch[p] = −(dx + dy)/r; the neighbours get +dx/r and +dy/r.
                g[p] -= (dx + dy) / r / area;
                if dx != 0.0 {
                    g[p + 1] += dx / r / area;
                }
                if dy != 0.0 {
                    g[p + width] += dy / r / area;
                }
            }
        }
    }
    (total / area, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(f: impl Fn(&[f32]) -> f32, s: &[f32], i: usize) -> f32 {
        let (mut a, mut b) = (s.to_vec(), s.to_vec());
        a[i] += 1e-3;
        b[i] -= 1e-3;
        (f(&a) - f(&b)) / 2e-3
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (c, h, w) = (3, 4, 5);
        let s: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 37) % 17) as f32 / 17.0)
            .collect();
        let inside: Vec<bool> = (0..h * w).map(|p| p % 3 != 0).collect();
        let pal = palette(3);
        let (_, g) = nps(&s, c, &inside, &pal);
        let (_, t) = total_variation(&s, c, h, w, &inside);
        for i in [1, 7, 22, 41, 58] {
            let n = numeric(|v| nps(v, c, &inside, &pal).0, &s, i);
            assert!((n - g[i]).abs() < 2e-3, "nps grad {i}: {n} vs {}", g[i]);
            let n = numeric(|v| total_variation(v, c, h, w, &inside).0, &s, i);
            assert!((n - t[i]).abs() < 2e-3, "tv grad {i}: {n} vs {}", t[i]);
        }
    }

    #[test]
    fn snapped_sticker_is_printable() {
        let mut s = vec![0.3f32, 0.9, 0.6, 0.1];
        let inside = vec![true, true, false, true];
        let pal = palette(1);
        snap_to_palette(&mut s, 1, &inside, &pal);
        assert_eq!(s, vec![0.25, 0.97, 0.6, 0.03]);
        assert!(nps(&s, 1, &inside, &pal).0 < 1e-3);
    }
}
