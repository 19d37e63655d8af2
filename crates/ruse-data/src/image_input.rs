//! Decoding single PNG/JPEG images into C×H×W f32 tensors in [0,1].

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};

use crate::source::io_error;
use crate::DataError;

/// Decodes the image at `path` (format guessed from its content, not its name).
pub(crate) fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
            expected: "expected a PNG or JPEG image file".into(),
        });
    }
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| io_error(path, e))?;
    reader.decode().map_err(|e| DataError::Image {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Number of channels an image naturally has under the 1-or-3 rule: grayscale → 1, anything else → 3.
pub(crate) fn natural_channels(img: &DynamicImage) -> usize {
    if img.color().has_color() {
        3
    } else {
        1
    }
}

/// Converts to `channels` (1 = luma, 3 = RGB), resizes to `height`×`width` (triangle filter), returns C×H×W in [0,1].
pub(crate) fn to_chw(
    img: &DynamicImage,
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<f32>, DataError> {
    let unsupported = |detail: String| DataError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let (w, h) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(unsupported(format!(
                "cannot resize an image to {height}×{width}"
            )))
        }
    };
    let table = crate::dataset::unit_table(u8::MAX);
    match channels {
        1 => {
            let mut gray = img.to_luma8();
            if gray.dimensions() != (w, h) {
                gray = image::imageops::resize(&gray, w, h, FilterType::Triangle);
            }
            Ok(gray.as_raw().iter().map(|&p| table[p as usize]).collect())
        }
        3 => {
            let mut rgb = img.to_rgb8();
            if rgb.dimensions() != (w, h) {
                rgb = image::imageops::resize(&rgb, w, h, FilterType::Triangle);
            }
            // Interleaved RGB (H×W×3) → planar C×H×W.
            let raw = rgb.as_raw();
            let plane = raw.len() / 3;
            let mut out = vec![0f32; raw.len()];
            for (i, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = table[px[c] as usize];
                }
            }
            Ok(out)
        }
        _ => Err(unsupported(format!(
            "cannot convert an image to {channels} channels (only 1 = grayscale or 3 = RGB)"
        ))),
    }
}

/// Loads a PNG/JPEG as C×H×W f32 in [0,1]: converted to 1 (luma) or 3 (RGB) channels and resized (bilinear) to H×W.
pub fn load_image_file(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<Vec<f32>, DataError> {
    let img = decode(path)?;
    to_chw(&img, path, channels, height, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    #[test]
    fn rgb_to_planar_and_gray() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        img.put_pixel(1, 0, Rgb([0, 0, 255]));
        img.save(&path).unwrap();
        assert_eq!(
            load_image_file(&path, 3, 1, 2).unwrap(),
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        );
        let gray = load_image_file(&path, 1, 1, 2).unwrap();
        assert!(gray[0] > 0.2 && gray[0] < 0.4 && gray[1] < 0.1, "{gray:?}");
    }

    #[test]
    fn resizes_and_keeps_range() {
        let dir = tempfile::tempdir().unwrap();
        // A JPEG saved under a .png name: the format is guessed from content.
        let path = dir.path().join("big.png");
        let img = GrayImage::from_fn(64, 48, |x, _| Luma([(x * 4) as u8]));
        DynamicImage::ImageLuma8(img)
            .save_with_format(&path, image::ImageFormat::Jpeg)
            .unwrap();
        let out = load_image_file(&path, 1, 28, 28).unwrap();
        assert_eq!(out.len(), 28 * 28);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(out[27] > out[0]);
        assert_eq!(load_image_file(&path, 3, 8, 4).unwrap().len(), 3 * 8 * 4);
    }

    #[test]
    fn unreadable_and_missing_and_bad_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.png");
        std::fs::write(&path, b"definitely not an image").unwrap();
        let err = load_image_file(&path, 1, 28, 28).unwrap_err();
        assert!(matches!(err, DataError::Image { .. }), "{err}");
        assert!(
            err.to_string().contains("junk.png: cannot decode image"),
            "{err}"
        );
        let err = load_image_file(&dir.path().join("nope.png"), 1, 28, 28).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");
        let ok = dir.path().join("ok.png");
        GrayImage::new(2, 2).save(&ok).unwrap();
        let err = load_image_file(&ok, 2, 28, 28).unwrap_err();
        assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
        let err = load_image_file(&ok, 1, 0, 28).unwrap_err();
        assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
    }
}
