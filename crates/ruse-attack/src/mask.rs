//! Sticker masks: where on a texture (or image) an attacker may paint. Built from rectangles
//! (`rects:x,y,w,h;…` in pixels), a named preset scaled to the texture, or a mask PNG.

use std::path::Path;

use crate::error::{AttackError, Result};

/// Presets: rectangles as fractions (x, y, w, h) of the texture's width and height.
const PRESETS: &[(&str, &[[f32; 4]])] = &[
    // Eykholt et al. (2018): two bars above and two below the word on a stop sign.
    (
        "stop-stickers",
        &[
            [0.20, 0.24, 0.24, 0.09],
            [0.56, 0.24, 0.24, 0.09],
            [0.20, 0.67, 0.24, 0.09],
            [0.56, 0.67, 0.24, 0.09],
        ],
    ),
    // Two long bars above and below the word: a quarter of the sign, easier than four stickers.
    (
        "stop-bars",
        &[[0.16, 0.19, 0.68, 0.18], [0.16, 0.63, 0.68, 0.18]],
    ),
    // Three upright strips across the letters S, T and O: 11.7% of the sign, on the word itself.
    (
        "stop-strips",
        &[
            [0.1875, 0.344, 0.125, 0.3125],
            [0.375, 0.344, 0.125, 0.3125],
            [0.5625, 0.344, 0.125, 0.3125],
        ],
    ),
    // The same idea on any image: four small rectangles near the corners of the centre region.
    (
        "four-rects",
        &[
            [0.18, 0.18, 0.22, 0.12],
            [0.60, 0.18, 0.22, 0.12],
            [0.18, 0.70, 0.22, 0.12],
            [0.60, 0.70, 0.22, 0.12],
        ],
    ),
    // One square in the middle, about 10% of the area.
    ("centre-square", &[[0.34, 0.34, 0.32, 0.32]]),
];

/// Names of the mask presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.0).collect()
}

/// A binary mask over an H×W texture: `true` where the sticker may change pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Row-major H×W membership.
    pub inside: Vec<bool>,
}

impl Mask {
    /// The union of pixel rectangles `(x, y, w, h)`; each must lie inside the H×W texture.
    pub fn from_rects(height: usize, width: usize, rects: &[[usize; 4]]) -> Result<Mask> {
        let mut inside = vec![false; height * width];
        for &[x, y, w, h] in rects {
            if w == 0 || h == 0 || x + w > width || y + h > height {
                return Err(AttackError::Invalid(format!(
                    "sticker rectangle x={x},y={y},w={w},h={h} is empty or leaves the {width}×{height} texture"
                )));
            }
            for r in y..y + h {
                inside[r * width + x..r * width + x + w].fill(true);
            }
        }
        Mask::checked(height, width, inside)
    }

    /// Parses `rects:x,y,w,h;x,y,w,h…` (pixels), a preset name (see [`preset_names`]) or
    /// `png:PATH` / a path ending in `.png` for a texture of H×W pixels.
    pub fn parse(spec: &str, height: usize, width: usize) -> Result<Mask> {
        let spec = spec.trim();
        if let Some(list) = spec.strip_prefix("rects:") {
            let mut rects = Vec::new();
            for part in list.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let nums: Vec<usize> = part
                    .split(',')
                    .map(|v| v.trim().parse::<usize>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| {
                        AttackError::Invalid(format!(
                            "sticker rectangle '{part}' must be four whole numbers x,y,w,h"
                        ))
                    })?;
                let [x, y, w, h] = nums.as_slice() else {
                    return Err(AttackError::Invalid(format!(
                        "sticker rectangle '{part}' must be four numbers x,y,w,h, not {}",
                        nums.len()
                    )));
                };
                rects.push([*x, *y, *w, *h]);
            }
            if rects.is_empty() {
                return Err(AttackError::Invalid(
                    "--mask rects: needs at least one rectangle x,y,w,h".into(),
                ));
            }
            return Mask::from_rects(height, width, &rects);
        }
        if let Some(path) = spec.strip_prefix("png:") {
            return Mask::from_png(Path::new(path), height, width);
        }
        if spec.to_ascii_lowercase().ends_with(".png") {
            return Mask::from_png(Path::new(spec), height, width);
        }
        if let Some((_, fr)) = PRESETS.iter().find(|p| p.0 == spec) {
            return Mask::preset_rects(fr, height, width);
        }
        Err(AttackError::Invalid(format!(
            "unknown sticker mask '{spec}': use rects:x,y,w,h;…, png:PATH, or a preset ({})",
            preset_names().join(", ")
        )))
    }

    /// Fractional rectangles scaled to H×W (each at least one pixel).
    fn preset_rects(fr: &[[f32; 4]], height: usize, width: usize) -> Result<Mask> {
        let px = |f: f32, n: usize| ((f * n as f32).round() as usize).min(n.saturating_sub(1));
        let rects: Vec<[usize; 4]> = fr
            .iter()
            .map(|&[x, y, w, h]| {
                let (x0, y0) = (px(x, width), px(y, height));
                let w = ((w * width as f32).round() as usize).clamp(1, width - x0);
                let h = ((h * height as f32).round() as usize).clamp(1, height - y0);
                [x0, y0, w, h]
            })
            .collect();
        Mask::from_rects(height, width, &rects)
    }

    /// Reads a mask PNG of exactly H×W pixels: pixels brighter than mid-grey (luma > 127) are inside.
    pub fn from_png(path: &Path, height: usize, width: usize) -> Result<Mask> {
        let bytes = std::fs::read(path).map_err(|e| {
            AttackError::Invalid(format!("cannot read mask file {}: {e}", path.display()))
        })?;
        let img = image::load_from_memory(&bytes)
            .map_err(|e| {
                AttackError::Invalid(format!(
                    "mask file {} is not a readable image: {e}",
                    path.display()
                ))
            })?
            .to_luma8();
        if (img.width() as usize, img.height() as usize) != (width, height) {
            return Err(AttackError::Invalid(format!(
                "mask file {} is {}×{} pixels but the texture is {width}×{height}",
                path.display(),
                img.width(),
                img.height()
            )));
        }
        let inside = img.pixels().map(|p| p.0[0] > 127).collect();
        Mask::checked(height, width, inside)
    }

    fn checked(height: usize, width: usize, inside: Vec<bool>) -> Result<Mask> {
        if !inside.iter().any(|&v| v) {
            return Err(AttackError::Invalid(
                "the sticker mask covers no pixel".into(),
            ));
        }
        Ok(Mask {
            height,
            width,
            inside,
        })
    }

    /// Pixels inside the mask.
    pub fn area(&self) -> usize {
        self.inside.iter().filter(|&&v| v).count()
    }

    /// The mask as 0/1 floats, H×W.
    pub fn as_f32(&self) -> Vec<f32> {
        self.inside
            .iter()
            .map(|&v| f32::from(u8::from(v)))
            .collect()
    }
}
