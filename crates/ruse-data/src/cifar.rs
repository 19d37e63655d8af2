//! CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).

use std::path::{Path, PathBuf};

use crate::source::{io_error, open, read_up_to};
use crate::{DataError, Dataset, Split};

/// Image side length.
const SIDE: usize = 32;
/// Pixel bytes per record (3 planes of 32×32).
const PIXELS: usize = 3 * SIDE * SIDE;
/// Bytes per record (label + pixels).
const RECORD: usize = 1 + PIXELS;
/// Class names used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// What the loader expects in a CIFAR-10 directory, for error messages.
const EXPECTED: &str = "a cifar10 directory holds data_batch_1.bin .. data_batch_5.bin (train) and \
                        test_batch.bin (test), optionally batches.meta.txt, either directly or in cifar-10-batches-bin/";

/// Uses `dir/cifar-10-batches-bin` when the official archive was unpacked into `dir`.
fn batches_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if !dir.join("test_batch.bin").exists() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Reads class names from `batches.meta.txt` (one per line), or the standard ten names.
fn class_names(dir: &Path) -> Result<Vec<String>, DataError> {
    let path = dir.join("batches.meta.txt");
    if !path.exists() {
        return Ok(CIFAR10_CLASSES.map(String::from).to_vec());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(DataError::BadHeader {
            path,
            detail: "no class names in it (expected one name per line)".into(),
        });
    }
    Ok(names)
}

/// Loads CIFAR-10 from the binary batches in `dir`.
pub(crate) fn load_cifar10(
    dir: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let dir = batches_dir(dir);
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    // Check all files first, so a missing batch is reported before any slow reading.
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(DataError::Missing {
            path: missing.clone(),
            expected: EXPECTED.into(),
        });
    }
    let class_names = class_names(&dir)?;
    let num_classes = class_names.len();
    let table = crate::dataset::unit_table(u8::MAX);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in &paths {
        let remaining = limit.map_or(u64::MAX, |l| {
            (l.saturating_sub(labels.len()) as u64).saturating_mul(RECORD as u64)
        });
        if remaining == 0 {
            break;
        }
        let bytes = read_up_to(&mut *open(path)?, remaining, path)?;
        if bytes.len() % RECORD != 0 {
            return Err(DataError::Truncated {
                path: path.clone(),
                detail: format!(
                    "{} bytes is not a whole number of {RECORD}-byte records (1 label byte + {PIXELS} pixel bytes); \
                     the last record is cut short",
                    bytes.len()
                ),
            });
        }
        for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
            let label = record[0] as usize;
            if label >= num_classes {
                return Err(DataError::BadLabel {
                    path: path.clone(),
                    index: i,
                    label,
                    num_classes,
                });
            }
            labels.push(label);
            images.extend(record[1..].iter().map(|&p| table[p as usize]));
        }
    }
    if labels.is_empty() && limit != Some(0) {
        return Err(DataError::Empty {
            path: dir,
            detail: format!("the {split} batch files hold no records"),
        });
    }
    Ok(Dataset {
        name: format!("cifar10/{split}"),
        images,
        labels,
        channels: 3,
        height: SIDE,
        width: SIDE,
        num_classes,
        class_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(fill, PIXELS));
        r
    }

    #[test]
    fn reads_records_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = record(1, 255);
        bytes.extend(record(0, 0));
        std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n\n").unwrap();
        let d = load_cifar10(dir.path(), Split::Test, None).unwrap();
        assert_eq!((d.len(), d.shape(), d.num_classes), (2, [3, 32, 32], 2));
        assert_eq!(d.labels, vec![1, 0]);
        assert!(d.image(0).iter().all(|&p| p == 1.0));
        assert_eq!(
            load_cifar10(dir.path(), Split::Test, Some(1))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn truncated_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = record(1, 0);
        bytes.extend(&record(2, 0)[..100]);
        std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
        let err = load_cifar10(dir.path(), Split::Test, None).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
        assert!(
            err.to_string().contains("test_batch.bin: truncated"),
            "{err}"
        );
    }

    #[test]
    fn bad_label_and_missing_batch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), record(10, 0)).unwrap();
        let err = load_cifar10(dir.path(), Split::Test, None).unwrap_err();
        assert!(
            matches!(err, DataError::BadLabel { label: 10, .. }),
            "{err}"
        );
        let err = load_cifar10(dir.path(), Split::Train, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("data_batch_1.bin: not found") && msg.contains("test_batch.bin"),
            "{msg}"
        );
    }

    #[test]
    fn empty_batch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), b"").unwrap();
        let err = load_cifar10(dir.path(), Split::Test, None).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }
}
