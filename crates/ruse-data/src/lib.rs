//! Dataset loading for ruse: MNIST, Fashion-MNIST, CIFAR-10, scikit-learn digits and image
//! folders, plus single-image decoding. Pixels are f32 in [0,1], images laid out N×C×H×W.

mod bundled;
mod cifar;
pub mod corruptions;
mod dataset;
mod error;
mod folder;
mod idx;
mod image_input;
mod mnist;
pub mod signs;
mod source;
mod spec;
pub mod warp;

pub use bundled::{bundled_mnist_test, BUNDLED_MNIST_LEN};
pub use cifar::CIFAR10_CLASSES;
pub use dataset::Dataset;
pub use error::DataError;
pub use image_input::load_image_file;
pub use mnist::{DIGITS_TRAIN_LEN, FASHION_CLASSES};
pub use spec::{DataKind, DataSpec, Split};

/// Loads `split` of the dataset described by `spec`, keeping at most `limit` samples (the first ones).
///
/// `digits` has no official split: `train` is its first [`DIGITS_TRAIN_LEN`] samples, `test` the rest.
pub fn load(spec: &DataSpec, split: Split, limit: Option<usize>) -> Result<Dataset, DataError> {
    let dir = spec.dir.as_path();
    match spec.kind {
        DataKind::Mnist => mnist::load_mnist_like(dir, split, limit, false),
        DataKind::Fashion => mnist::load_mnist_like(dir, split, limit, true),
        DataKind::Digits => mnist::load_digits(dir, split, limit),
        DataKind::Cifar10 => cifar::load_cifar10(dir, split, limit),
        DataKind::Folder => folder::load_folder(dir, split, limit),
        DataKind::Signs => signs::load_signs(&dir.to_string_lossy(), split, limit),
    }
}
