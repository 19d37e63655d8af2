//! Directory layouts of the IDX-based datasets: MNIST, Fashion-MNIST and scikit-learn digits.

use std::path::Path;

use crate::idx::{read_pair, IdxFile, PairOptions};
use crate::source::{find_with_optional_gz, open};
use crate::{DataError, Dataset, Split};

/// Fashion-MNIST class names, indexed by label (Zalando's order).
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Number of leading digits samples forming the train split; the remaining 297 form the test split.
pub const DIGITS_TRAIN_LEN: usize = 1500;

/// Class names "0".."9".
pub(crate) fn digit_classes() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// Opens one IDX file of a dataset directory, accepting the name with or without `.gz`.
fn idx_file(dir: &Path, name: &str, expected: &str) -> Result<IdxFile<'static>, DataError> {
    let path = find_with_optional_gz(dir, name, expected)?;
    let reader = open(&path)?;
    Ok(IdxFile { path, reader })
}

/// Loads MNIST or Fashion-MNIST (`{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`).
pub(crate) fn load_mnist_like(
    dir: &Path,
    split: Split,
    limit: Option<usize>,
    fashion: bool,
) -> Result<Dataset, DataError> {
    let (kind, class_names) = if fashion {
        ("fashion", FASHION_CLASSES.map(String::from).to_vec())
    } else {
        ("mnist", digit_classes())
    };
    let expected = format!(
        "a {kind} directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte, \
         t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz)"
    );
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = idx_file(dir, &format!("{prefix}-images-idx3-ubyte"), &expected)?;
    let labels = idx_file(dir, &format!("{prefix}-labels-idx1-ubyte"), &expected)?;
    read_pair(
        images,
        labels,
        PairOptions {
            name: format!("{kind}/{split}"),
            start: 0,
            end: limit,
            max_pixel: u8::MAX,
            class_names,
        },
    )
}

/// Loads scikit-learn digits (`digits-{images-idx3,labels-idx1}-ubyte[.gz]`, pixels 0..16).
///
/// The file has no official split, so a deterministic one is used: the first
/// [`DIGITS_TRAIN_LEN`] (1500) samples are `train`, the remaining ones (297) are `test`.
pub(crate) fn load_digits(
    dir: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let expected = "a digits directory holds digits-images-idx3-ubyte and digits-labels-idx1-ubyte (each optionally .gz)";
    let images = idx_file(dir, "digits-images-idx3-ubyte", expected)?;
    let labels = idx_file(dir, "digits-labels-idx1-ubyte", expected)?;
    let (start, end) = match split {
        Split::Train => (
            0,
            Some(limit.map_or(DIGITS_TRAIN_LEN, |l| l.min(DIGITS_TRAIN_LEN))),
        ),
        Split::Test => (
            DIGITS_TRAIN_LEN,
            limit.map(|l| DIGITS_TRAIN_LEN.saturating_add(l)),
        ),
    };
    let images_path = images.path.clone();
    let data = read_pair(
        images,
        labels,
        PairOptions {
            name: format!("digits/{split}"),
            start,
            end,
            max_pixel: 16,
            class_names: digit_classes(),
        },
    )?;
    if data.is_empty() && limit != Some(0) {
        return Err(DataError::Empty {
            path: images_path,
            detail: format!(
                "the digits {split} split is samples {} of the file, which has too few samples",
                match split {
                    Split::Train => format!("0..{DIGITS_TRAIN_LEN}"),
                    Split::Test => format!("{DIGITS_TRAIN_LEN}.."),
                }
            ),
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::tests::{idx_images, idx_labels};

    #[test]
    fn missing_file_names_expected_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_mnist_like(dir.path(), Split::Test, None, false).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("t10k-images-idx3-ubyte[.gz]: not found"),
            "{msg}"
        );
        assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
    }

    #[test]
    fn raw_uncompressed_files_and_bad_label() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx_images(2, 2, 2, &[255; 8]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx_labels(2, &[9, 12]),
        )
        .unwrap();
        let err = load_mnist_like(dir.path(), Split::Train, None, false).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("train-labels-idx1-ubyte: sample 1 has label 12"),
            "{msg}"
        );
        // With a limit, the bad label is never read.
        let d = load_mnist_like(dir.path(), Split::Train, Some(1), true).unwrap();
        assert_eq!((d.len(), d.labels[0], d.images[0]), (1, 9, 1.0));
        assert_eq!(d.class_names[9], "Ankle boot");
    }

    #[test]
    fn digits_split() {
        let dir = tempfile::tempdir().unwrap();
        let n = DIGITS_TRAIN_LEN + 3;
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.path().join("digits-images-idx3-ubyte"),
            idx_images(n as u32, 1, 1, &vec![16; n]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("digits-labels-idx1-ubyte"),
            idx_labels(n as u32, &labels),
        )
        .unwrap();
        let train = load_digits(dir.path(), Split::Train, None).unwrap();
        let test = load_digits(dir.path(), Split::Test, None).unwrap();
        assert_eq!((train.len(), test.len()), (DIGITS_TRAIN_LEN, 3));
        assert_eq!(test.labels, vec![0, 1, 2]);
        assert_eq!(test.images, vec![1.0; 3]);
        assert_eq!(
            load_digits(dir.path(), Split::Test, Some(2)).unwrap().len(),
            2
        );
        assert_eq!(
            load_digits(dir.path(), Split::Train, Some(7))
                .unwrap()
                .len(),
            7
        );
    }
}
