//! The MNIST test subset embedded in the binary, so demos and tests need no download.

use std::path::PathBuf;

use crate::idx::{read_pair, IdxFile, PairOptions};
use crate::mnist::digit_classes;
use crate::source::decompressing;
use crate::{DataError, Dataset};

/// Gzipped IDX images: the first 1000 MNIST test images (see assets/mnist-test-1000/README.md).
const IMAGES: &[u8] = include_bytes!("../../../assets/mnist-test-1000/t10k-images-idx3-ubyte.gz");
/// Gzipped IDX labels matching [`IMAGES`].
const LABELS: &[u8] = include_bytes!("../../../assets/mnist-test-1000/t10k-labels-idx1-ubyte.gz");

/// Number of samples in the bundled subset.
pub const BUNDLED_MNIST_LEN: usize = 1000;

/// The first 1000 MNIST test images and labels (MNIST © Y. LeCun & C. Cortes, CC BY-SA 3.0), embedded in the binary.
pub fn bundled_mnist_test() -> Result<Dataset, DataError> {
    let file = |name: &str, bytes: &'static [u8]| -> Result<IdxFile<'static>, DataError> {
        let path = PathBuf::from(format!("<bundled>/mnist-test-1000/{name}"));
        let reader = decompressing(bytes, &path)?;
        Ok(IdxFile { path, reader })
    };
    read_pair(
        file("t10k-images-idx3-ubyte.gz", IMAGES)?,
        file("t10k-labels-idx1-ubyte.gz", LABELS)?,
        PairOptions {
            name: "mnist/test (bundled 1000)".into(),
            start: 0,
            end: None,
            max_pixel: u8::MAX,
            class_names: digit_classes(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_loads() {
        let d = bundled_mnist_test().unwrap();
        assert_eq!(
            (d.len(), d.shape(), d.num_classes),
            (BUNDLED_MNIST_LEN, [1, 28, 28], 10)
        );
        // Well-known first test labels: 7 2 1 0 4 1 4 9 5 9.
        assert_eq!(&d.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
        assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
