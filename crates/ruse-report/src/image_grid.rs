//! PNG grids of captioned images (fooling images with their confidence, one corruption per row),
//! captions drawn in the built-in bitmap font of [`crate::grid`].

use std::io::Cursor;

use image::{Rgb, RgbImage};

use crate::audit::Image;
use crate::grid::{blit, draw_text};

/// Renders `images` row by row, `cols` per row, each scaled by `scale` with its label (digits,
/// '-', '>' and '.' only) underneath; `None` when there are no images or they are not all
/// 1- or 3-channel images of one shape.
pub fn image_grid_png(images: &[Image], cols: usize, scale: u32) -> Option<Vec<u8>> {
    let first = images.first()?;
    let [c, h, w] = first.shape;
    if !(c == 1 || c == 3)
        || cols == 0
        || images
            .iter()
            .any(|i| i.shape != first.shape || i.pixels.len() != c * h * w)
    {
        return None;
    }
    let scale = scale.max(1);
    let text_scale = 2u32;
    let pad = 4u32;
    let label_h = if images.iter().any(|i| !i.label.is_empty()) {
        5 * text_scale + pad
    } else {
        0
    };
    let longest = images
        .iter()
        .map(|i| i.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let cell_w = (w as u32 * scale).max(longest * 4 * text_scale);
    let cell_h = h as u32 * scale + label_h;
    let rows = images.len().div_ceil(cols) as u32;
    let cols_used = cols.min(images.len()) as u32;
    let mut img = RgbImage::from_pixel(
        pad + cols_used * (cell_w + pad),
        pad + rows * (cell_h + pad),
        Rgb([255, 255, 255]),
    );
    for (n, im) in images.iter().enumerate() {
        let (r, col) = ((n / cols) as u32, (n % cols) as u32);
        let (x, y) = (pad + col * (cell_w + pad), pad + r * (cell_h + pad));
        blit(&mut img, &im.pixels, im.shape, x, y, scale);
        draw_text(
            &mut img,
            &im.label,
            x,
            y + h as u32 * scale + pad / 2,
            text_scale,
            Rgb([20, 20, 20]),
        );
    }
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .ok()?;
    Some(bytes)
}
