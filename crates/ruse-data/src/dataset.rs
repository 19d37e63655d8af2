//! The in-memory dataset type shared by all loaders.

/// A labelled image dataset held in memory, pixels in [0,1], layout N×C×H×W row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Human-readable name, e.g. `mnist/test`.
    pub name: String,
    /// All pixels, N×C×H×W row-major, each in [0,1].
    pub images: Vec<f32>,
    /// One class index per sample, each `< num_classes`.
    pub labels: Vec<usize>,
    /// Channels per image (1 = grayscale, 3 = RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of values in one image (C·H·W).
    pub fn sample_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixels of sample `i` as a C×H×W slice; panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image shape as `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Keeps only the first `limit` samples (all of them if `limit >= len()`).
    pub fn take(mut self, limit: usize) -> Dataset {
        let keep = limit.min(self.len());
        self.labels.truncate(keep);
        self.images.truncate(keep * self.sample_len());
        self
    }

    /// Copies the samples at `idx` into a contiguous batch (pixels, labels); panics on an index `>= len()`.
    pub fn gather(&self, idx: &[usize]) -> (Vec<f32>, Vec<usize>) {
        let mut images = Vec::with_capacity(idx.len() * self.sample_len());
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        (images, labels)
    }
}

/// Lookup table mapping a raw pixel value in 0..=max to f32 in [0,1] (exact division, computed once).
pub(crate) fn unit_table(max: u8) -> [f32; 256] {
    let scale = f32::from(max.max(1));
    let mut table = [0f32; 256];
    for (v, t) in table.iter_mut().enumerate() {
        *t = v as f32 / scale;
    }
    table
}

/// Converts raw pixels in 0..=max to f32 in [0,1].
pub(crate) fn scale_pixels(raw: &[u8], max: u8) -> Vec<f32> {
    let table = unit_table(max);
    raw.iter().map(|&p| table[p as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            name: "tiny".into(),
            images: (0..12).map(|v| v as f32 / 12.0).collect(),
            labels: vec![0, 1, 2],
            channels: 1,
            height: 2,
            width: 2,
            num_classes: 3,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn accessors() {
        let d = tiny();
        assert_eq!(d.len(), 3);
        assert!(!d.is_empty());
        assert_eq!(d.sample_len(), 4);
        assert_eq!(d.shape(), [1, 2, 2]);
        assert_eq!(d.image(1), &d.images[4..8]);
    }

    #[test]
    fn take_and_gather() {
        let d = tiny();
        let (x, y) = d.gather(&[2, 0]);
        assert_eq!(y, vec![2, 0]);
        assert_eq!(&x[..4], d.image(2));
        assert_eq!(&x[4..], d.image(0));
        let t = d.clone().take(2);
        assert_eq!(t.len(), 2);
        assert_eq!(t.images.len(), 8);
        assert_eq!(d.clone().take(99).len(), 3);
        assert!(d.take(0).is_empty());
    }
}
