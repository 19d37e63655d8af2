//! PNG grids of clean | adversarial | amplified perturbation, one row per example, with the
//! labels drawn in a tiny built-in bitmap font (digits and an arrow), so no font files are needed.

use std::io::Cursor;

use image::{Rgb, RgbImage};

use crate::audit::Example;
use crate::html::amplified_difference;

/// 3×5 glyphs for 0–9, then '>' (arrow head), '-' and '.'; each row is 3 bits, MSB left.
const GLYPHS: [[u8; 5]; 13] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
    [4, 2, 1, 2, 4],
    [0, 0, 7, 0, 0],
    [0, 0, 0, 0, 2],
];

/// Draws `text` (digits, '>', '-', '.'; other characters leave a gap) with its top-left at (x0, y0).
pub(crate) fn draw_text(
    img: &mut RgbImage,
    text: &str,
    x0: u32,
    y0: u32,
    scale: u32,
    color: Rgb<u8>,
) {
    let mut x = x0;
    for ch in text.chars() {
        let g = match ch {
            '0'..='9' => Some(GLYPHS[ch as usize - '0' as usize]),
            '>' => Some(GLYPHS[10]),
            '-' => Some(GLYPHS[11]),
            '.' => Some(GLYPHS[12]),
            _ => None,
        };
        if let Some(g) = g {
            for (r, bits) in g.iter().enumerate() {
                for c in 0..3u32 {
                    if bits & (4 >> c) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let (px, py) = (x + c * scale + dx, y0 + r as u32 * scale + dy);
                                if px < img.width() && py < img.height() {
                                    img.put_pixel(px, py, color);
                                }
                            }
                        }
                    }
                }
            }
        }
        x += 4 * scale;
    }
}

/// Paints a C×H×W image (1 or 3 channels, values in [0,1]) scaled by `scale` at (x0, y0).
pub(crate) fn blit(
    img: &mut RgbImage,
    px: &[f32],
    shape: [usize; 3],
    x0: u32,
    y0: u32,
    scale: u32,
) {
    let [c, h, w] = shape;
    for yy in 0..h {
        for xx in 0..w {
            let v = |k: usize| (px[(k * h + yy) * w + xx].clamp(0.0, 1.0) * 255.0).round() as u8;
            let rgb = if c == 3 {
                Rgb([v(0), v(1), v(2)])
            } else {
                Rgb([v(0); 3])
            };
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(
                        x0 + xx as u32 * scale + dx,
                        y0 + yy as u32 * scale + dy,
                        rgb,
                    );
                }
            }
        }
    }
}

/// Renders the examples as a PNG: per row clean | adversarial | perturbation, then "label->prediction".
pub fn example_grid_png(examples: &[Example], scale: u32) -> Option<Vec<u8>> {
    let first = examples.first()?;
    let [c, h, w] = first.shape;
    if !(c == 1 || c == 3)
        || examples.iter().any(|e| {
            e.shape != first.shape || e.clean.len() != c * h * w || e.adversarial.len() != c * h * w
        })
    {
        return None;
    }
    let (cw, ch) = (w as u32 * scale, h as u32 * scale);
    let pad = 4u32;
    let text_w = 4 * 3 * 8;
    let width = pad + 3 * (cw + pad) + text_w;
    let height = pad + examples.len() as u32 * (ch + pad);
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (i, e) in examples.iter().enumerate() {
        let y = pad + i as u32 * (ch + pad);
        blit(&mut img, &e.clean, e.shape, pad, y, scale);
        blit(&mut img, &e.adversarial, e.shape, pad + cw + pad, y, scale);
        blit(
            &mut img,
            &amplified_difference(&e.clean, &e.adversarial),
            e.shape,
            pad + 2 * (cw + pad),
            y,
            scale,
        );
        let color = if e.label == e.predicted {
            Rgb([0, 110, 0])
        } else {
            Rgb([190, 30, 30])
        };
        draw_text(
            &mut img,
            &format!("{}->{}", e.label, e.predicted),
            pad + 3 * (cw + pad) + 4,
            (y + ch / 2).saturating_sub(7),
            3,
            color,
        );
    }
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .ok()?;
    Some(bytes)
}
