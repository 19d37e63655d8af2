//! The IDX format (MNIST and friends): big-endian magic, big-endian u32 dims, u8 payload.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::source::read_up_to;
use crate::{DataError, Dataset};

/// Magic number of an IDX file of u8 images with three dimensions (N, H, W).
pub(crate) const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels with one dimension (N).
pub(crate) const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest accepted image side; real IDX images are tiny, so anything bigger is a corrupt header.
const MAX_SIDE: usize = 4096;

/// Images read from an IDX file: the declared count and the pixels of the samples actually read.
pub(crate) struct IdxImages {
    /// Number of images the header declares.
    pub count: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Pixels of the first `min(count, upto)` images.
    pub pixels: Vec<u8>,
}

/// Labels read from an IDX file: the declared count and the labels actually read.
pub(crate) struct IdxLabels {
    /// Number of labels the header declares.
    pub count: usize,
    /// The first `min(count, upto)` labels.
    pub values: Vec<u8>,
}

/// Reads `n` big-endian u32 header fields, reporting a short header as truncation.
fn read_header(r: &mut dyn Read, path: &Path, n: usize, what: &str) -> Result<Vec<u32>, DataError> {
    let bytes = read_up_to(r, 4 * n as u64, path)?;
    if bytes.len() < 4 * n {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "file has only {} bytes, shorter than the {}-byte header of {what}",
                bytes.len(),
                4 * n
            ),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Checks the magic number (first header field).
fn check_magic(
    path: &Path,
    found: u32,
    expected: u32,
    what: &'static str,
) -> Result<(), DataError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected,
            what,
        })
    }
}

/// Reads an IDX image file, keeping at most `upto` images.
pub(crate) fn read_images(
    r: &mut dyn Read,
    path: &Path,
    upto: Option<usize>,
) -> Result<IdxImages, DataError> {
    const WHAT: &str = "an IDX image file";
    let magic = read_header(r, path, 1, WHAT)?[0];
    check_magic(path, magic, IMAGES_MAGIC, WHAT)?;
    let dims = read_header(r, path, 3, WHAT)?;
    let (count, height, width) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    if height == 0 || width == 0 || height > MAX_SIDE || width > MAX_SIDE {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            detail: format!(
                "image size {height}×{width} is not plausible (each side must be 1..={MAX_SIDE})"
            ),
        });
    }
    let per_image = height * width;
    let keep = upto.map_or(count, |u| u.min(count));
    // Cannot overflow on 64-bit: count < 2^32 and per_image <= 2^24.
    let needed = keep as u64 * per_image as u64;
    let pixels = read_up_to(r, needed, path)?;
    if (pixels.len() as u64) < needed {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "header declares {count} images of {height}×{width} pixels, but the data ends after {} bytes ({} whole images)",
                pixels.len(),
                pixels.len() / per_image
            ),
        });
    }
    Ok(IdxImages {
        count,
        height,
        width,
        pixels,
    })
}

/// Reads an IDX label file, keeping at most `upto` labels.
pub(crate) fn read_labels(
    r: &mut dyn Read,
    path: &Path,
    upto: Option<usize>,
) -> Result<IdxLabels, DataError> {
    const WHAT: &str = "an IDX label file";
    let magic = read_header(r, path, 1, WHAT)?[0];
    check_magic(path, magic, LABELS_MAGIC, WHAT)?;
    let count = read_header(r, path, 1, WHAT)?[0] as usize;
    let keep = upto.map_or(count, |u| u.min(count));
    let values = read_up_to(r, keep as u64, path)?;
    if values.len() < keep {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "header declares {count} labels, but the data ends after {} labels",
                values.len()
            ),
        });
    }
    Ok(IdxLabels { count, values })
}

/// One IDX file to read: its path (for messages) and an open reader.
pub(crate) struct IdxFile<'a> {
    /// Path shown in error messages.
    pub path: PathBuf,
    /// Reader positioned at the start of the (decompressed) file.
    pub reader: Box<dyn Read + 'a>,
}

/// How to turn an IDX image/label pair into a dataset.
pub(crate) struct PairOptions {
    /// Dataset name.
    pub name: String,
    /// First sample to keep.
    pub start: usize,
    /// One past the last sample to keep (`None`: to the end of the file).
    pub end: Option<usize>,
    /// Largest raw pixel value (255 for MNIST, 16 for sklearn digits); pixels are divided by it.
    pub max_pixel: u8,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
}

/// Reads an image file and its label file into a dataset of samples `start..end`, validating both.
pub(crate) fn read_pair(
    mut images: IdxFile<'_>,
    mut labels: IdxFile<'_>,
    opts: PairOptions,
) -> Result<Dataset, DataError> {
    let imgs = read_images(&mut *images.reader, &images.path, opts.end)?;
    let labs = read_labels(&mut *labels.reader, &labels.path, opts.end)?;
    if imgs.count != labs.count {
        return Err(DataError::CountMismatch {
            images_path: images.path,
            images: imgs.count,
            labels_path: labels.path,
            labels: labs.count,
        });
    }
    let num_classes = opts.class_names.len();
    let per_image = imgs.height * imgs.width;
    let start = opts.start.min(labs.values.len());
    let mut out_labels = Vec::with_capacity(labs.values.len() - start);
    for (index, &label) in labs.values.iter().enumerate().skip(start) {
        let label = label as usize;
        if label >= num_classes {
            return Err(DataError::BadLabel {
                path: labels.path,
                index,
                label,
                num_classes,
            });
        }
        out_labels.push(label);
    }
    let pixels = &imgs.pixels[start * per_image..];
    if opts.max_pixel != u8::MAX {
        if let Some(pos) = pixels.iter().position(|&p| p > opts.max_pixel) {
            return Err(DataError::BadPixel {
                path: images.path,
                index: start + pos / per_image,
                value: pixels[pos],
                max: opts.max_pixel,
            });
        }
    }
    Ok(Dataset {
        name: opts.name,
        images: crate::dataset::scale_pixels(pixels, opts.max_pixel),
        labels: out_labels,
        channels: 1,
        height: imgs.height,
        width: imgs.width,
        num_classes,
        class_names: opts.class_names,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds raw IDX image bytes with the given header and payload.
    pub(crate) fn idx_images(n: u32, h: u32, w: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, n, h, w] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    /// Builds raw IDX label bytes with the given header count and payload.
    pub(crate) fn idx_labels(n: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [LABELS_MAGIC, n] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn pair(
        images: Vec<u8>,
        labels: Vec<u8>,
        max_pixel: u8,
        classes: usize,
    ) -> Result<Dataset, DataError> {
        read_pair(
            IdxFile {
                path: "imgs".into(),
                reader: Box::new(std::io::Cursor::new(images)),
            },
            IdxFile {
                path: "labs".into(),
                reader: Box::new(std::io::Cursor::new(labels)),
            },
            PairOptions {
                name: "t".into(),
                start: 0,
                end: None,
                max_pixel,
                class_names: (0..classes).map(|c| c.to_string()).collect(),
            },
        )
    }

    #[test]
    fn reads_valid_pair() {
        let d = pair(
            idx_images(2, 1, 2, &[0, 255, 51, 102]),
            idx_labels(2, &[1, 0]),
            255,
            10,
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.shape(), [1, 1, 2]);
        assert_eq!(d.images, vec![0.0, 1.0, 0.2, 0.4]);
        assert_eq!(d.labels, vec![1, 0]);
    }

    #[test]
    fn wrong_magic() {
        // A label file where an image file is expected.
        let err = read_images(
            &mut &idx_labels(1, &[0])[..],
            Path::new("x/t10k-images-idx3-ubyte.gz"),
            None,
        )
        .err()
        .unwrap();
        assert!(matches!(
            err,
            DataError::BadMagic {
                found: LABELS_MAGIC,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "x/t10k-images-idx3-ubyte.gz: wrong magic number 0x00000801, expected 0x00000803 (an IDX image file)"
        );
    }

    #[test]
    fn truncated_payload() {
        let err = pair(
            idx_images(3, 2, 2, &[0; 10]),
            idx_labels(3, &[0, 0, 0]),
            255,
            10,
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
        assert!(
            err.to_string().contains("declares 3 images of 2×2"),
            "{err}"
        );
        let err = pair(idx_images(1, 1, 1, &[0]), idx_labels(5, &[0, 0]), 255, 10).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn truncated_header() {
        let err = read_images(&mut &IMAGES_MAGIC.to_be_bytes()[..], Path::new("f"), None)
            .err()
            .unwrap();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
        let err = read_images(&mut &[][..], Path::new("f"), None)
            .err()
            .unwrap();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn absurd_dims_do_not_allocate() {
        // 4 billion images of 4096×4096 would be 64 PiB; must fail fast on the missing bytes.
        let err = pair(
            idx_images(u32::MAX, 4096, 4096, &[0; 8]),
            idx_labels(u32::MAX, &[]),
            255,
            10,
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
        let err = pair(
            idx_images(1, u32::MAX, u32::MAX, &[0; 8]),
            idx_labels(1, &[0]),
            255,
            10,
        )
        .unwrap_err();
        assert!(matches!(err, DataError::BadHeader { .. }), "{err}");
        let err = pair(idx_images(1, 0, 28, &[]), idx_labels(1, &[0]), 255, 10).unwrap_err();
        assert!(matches!(err, DataError::BadHeader { .. }), "{err}");
    }

    #[test]
    fn count_mismatch() {
        let err = pair(
            idx_images(2, 1, 1, &[0, 0]),
            idx_labels(3, &[0, 0, 0]),
            255,
            10,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 2,
                    labels: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "imgs holds 2 images but labs holds 3 labels"
        );
    }

    #[test]
    fn label_out_of_range() {
        let err = pair(
            idx_images(2, 1, 1, &[0, 0]),
            idx_labels(2, &[3, 12]),
            255,
            10,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadLabel {
                    index: 1,
                    label: 12,
                    num_classes: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("label 12"), "{err}");
    }

    #[test]
    fn pixel_out_of_range() {
        let err = pair(
            idx_images(2, 1, 1, &[16, 17]),
            idx_labels(2, &[0, 0]),
            16,
            10,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadPixel {
                    index: 1,
                    value: 17,
                    max: 16,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn limit_and_start() {
        let mk = |start, end| {
            read_pair(
                IdxFile {
                    path: "i".into(),
                    reader: Box::new(std::io::Cursor::new(idx_images(4, 1, 1, &[0, 4, 8, 16]))),
                },
                IdxFile {
                    path: "l".into(),
                    reader: Box::new(std::io::Cursor::new(idx_labels(4, &[0, 1, 2, 3]))),
                },
                PairOptions {
                    name: "t".into(),
                    start,
                    end,
                    max_pixel: 16,
                    class_names: (0..4).map(|c| c.to_string()).collect(),
                },
            )
            .unwrap()
        };
        let d = mk(1, Some(3));
        assert_eq!(d.labels, vec![1, 2]);
        assert_eq!(d.images, vec![0.25, 0.5]);
        assert_eq!(mk(2, None).labels, vec![2, 3]);
        assert_eq!(mk(0, Some(100)).len(), 4);
    }
}
