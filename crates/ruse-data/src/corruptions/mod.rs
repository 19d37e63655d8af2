//! Common corruptions (Hendrycks & Dietterich 2019): the 15 CIFAR-10-C types — noise, blur,
//! weather, digital — at severities 1–5, on any C×H×W image in [0,1], seeded.
//!
//! Parameters per severity follow the CIFAR-10-C generator; spatial ones are scaled by
//! `min(H, W)/32`. Frost uses a synthesised texture instead of the original's photographs.
//! Every output is clamped to [0,1].

mod blur;
mod digital;
mod noise;
mod ops;
mod weather;

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::Dataset;

/// What can go wrong when corrupting images.
#[derive(Debug, thiserror::Error)]
pub enum CorruptionError {
    /// The corruption name is not one of the 15.
    #[error("unknown corruption '{0}' (known: {known})", known = names().join(", "))]
    Unknown(String),
    /// The severity lies outside 1..=5.
    #[error("severity {0} is out of range: corruption severities are 1 to 5")]
    Severity(usize),
    /// The pixel buffer does not hold an image of the stated shape.
    #[error("an image of shape {shape:?} needs {} values, got {len}", shape[0] * shape[1] * shape[2])]
    Shape {
        /// The stated C×H×W shape.
        shape: [usize; 3],
        /// Values given.
        len: usize,
    },
    /// The JPEG encoder or decoder failed.
    #[error("JPEG round trip failed: {0}")]
    Jpeg(String),
}

/// One of the 15 common corruptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Poisson (photon) noise.
    ShotNoise,
    /// Salt-and-pepper noise.
    ImpulseNoise,
    /// Out-of-focus disk blur.
    DefocusBlur,
    /// Frosted-glass blur (local pixel shuffling).
    GlassBlur,
    /// Camera-shake streak.
    MotionBlur,
    /// Radial zoom blur.
    ZoomBlur,
    /// Falling snow.
    Snow,
    /// Frost on a window (procedural texture).
    Frost,
    /// Fog (plasma fractal).
    Fog,
    /// Brighter image (HSV value up).
    Brightness,
    /// Lower contrast.
    Contrast,
    /// Affine plus elastic warp.
    ElasticTransform,
    /// Box down- and up-sampling.
    Pixelate,
    /// Lossy JPEG round trip.
    JpegCompression,
}

/// Every corruption in the CIFAR-10-C order.
pub const ALL: [Corruption; 15] = [
    Corruption::GaussianNoise,
    Corruption::ShotNoise,
    Corruption::ImpulseNoise,
    Corruption::DefocusBlur,
    Corruption::GlassBlur,
    Corruption::MotionBlur,
    Corruption::ZoomBlur,
    Corruption::Snow,
    Corruption::Frost,
    Corruption::Fog,
    Corruption::Brightness,
    Corruption::Contrast,
    Corruption::ElasticTransform,
    Corruption::Pixelate,
    Corruption::JpegCompression,
];

/// Severities run 1 (mild) to this (strong).
pub const MAX_SEVERITY: usize = 5;

/// Names of all corruptions, in order.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|c| c.name()).collect()
}

impl Corruption {
    /// The snake_case name, as in CIFAR-10-C file names.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::DefocusBlur => "defocus_blur",
            Corruption::GlassBlur => "glass_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::ZoomBlur => "zoom_blur",
            Corruption::Snow => "snow",
            Corruption::Frost => "frost",
            Corruption::Fog => "fog",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::ElasticTransform => "elastic_transform",
            Corruption::Pixelate => "pixelate",
            Corruption::JpegCompression => "jpeg_compression",
        }
    }

    /// The family: noise, blur, weather or digital.
    pub fn family(self) -> &'static str {
        match self {
            Corruption::GaussianNoise | Corruption::ShotNoise | Corruption::ImpulseNoise => "noise",
            Corruption::DefocusBlur
            | Corruption::GlassBlur
            | Corruption::MotionBlur
            | Corruption::ZoomBlur => "blur",
            Corruption::Snow | Corruption::Frost | Corruption::Fog | Corruption::Brightness => {
                "weather"
            }
            _ => "digital",
        }
    }

    /// Corrupts one C×H×W image (values in [0,1]) at `severity` (1–5), drawing from `rng`.
    pub fn apply(
        self,
        image: &[f32],
        shape: [usize; 3],
        severity: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<f32>, CorruptionError> {
        if !(1..=MAX_SEVERITY).contains(&severity) {
            return Err(CorruptionError::Severity(severity));
        }
        let [c, h, w] = shape;
        if c * h * w != image.len() || image.is_empty() {
            return Err(CorruptionError::Shape {
                shape,
                len: image.len(),
            });
        }
        let s = severity;
        Ok(match self {
            Corruption::GaussianNoise => noise::gaussian_noise(image, s, rng),
            Corruption::ShotNoise => noise::shot_noise(image, s, rng),
            Corruption::ImpulseNoise => noise::impulse_noise(image, s, rng),
            Corruption::DefocusBlur => blur::defocus_blur(image, shape, s),
            Corruption::GlassBlur => blur::glass_blur(image, shape, s, rng),
            Corruption::MotionBlur => blur::motion_blur(image, shape, s, rng),
            Corruption::ZoomBlur => blur::zoom_blur(image, shape, s),
            Corruption::Snow => weather::snow(image, shape, s, rng),
            Corruption::Frost => weather::frost(image, shape, s, rng),
            Corruption::Fog => weather::fog(image, shape, s, rng),
            Corruption::Brightness => weather::brightness(image, shape, s),
            Corruption::Contrast => digital::contrast(image, shape, s),
            Corruption::ElasticTransform => digital::elastic_transform(image, shape, s, rng),
            Corruption::Pixelate => digital::pixelate(image, shape, s),
            Corruption::JpegCompression => digital::jpeg_compression(image, shape, s)?,
        })
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corruption {
    type Err = CorruptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('-', "_");
        ALL.iter()
            .copied()
            .find(|c| c.name() == key)
            .ok_or_else(|| CorruptionError::Unknown(s.to_string()))
    }
}

/// The random stream for sample `index` under `corruption` at `severity`: independent of batch
/// composition, so a subset gets exactly the same corrupted images as the whole set.
pub fn sample_rng(seed: u64, corruption: Corruption, severity: usize, index: usize) -> ChaCha8Rng {
    let kind = ALL.iter().position(|c| *c == corruption).unwrap_or(0) as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ (kind + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (severity as u64) << 56,
    );
    rng.set_stream(index as u64);
    rng
}

/// Corrupts the images at `indices` of `data` (all when `None`) and returns them as a dataset
/// with the same labels; sample `i` always uses [`sample_rng`]`(seed, corruption, severity, i)`.
pub fn corrupt_dataset(
    data: &Dataset,
    corruption: Corruption,
    severity: usize,
    seed: u64,
    indices: Option<&[usize]>,
) -> Result<Dataset, CorruptionError> {
    let all: Vec<usize>;
    let idx = match indices {
        Some(i) => i,
        None => {
            all = (0..data.len()).collect();
            &all
        }
    };
    let mut images = Vec::with_capacity(idx.len() * data.sample_len());
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        let mut rng = sample_rng(seed, corruption, severity, i);
        images.extend(corruption.apply(data.image(i), data.shape(), severity, &mut rng)?);
        labels.push(data.labels[i]);
    }
    Ok(Dataset {
        name: format!("{}/{corruption}-{severity}", data.name),
        images,
        labels,
        ..data.clone()
    })
}
