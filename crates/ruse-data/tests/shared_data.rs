//! Checks against the real datasets in shared/data; skipped when that directory is absent.

use std::path::PathBuf;
use std::time::Instant;

use ruse_data::{bundled_mnist_test, load, DataKind, DataSpec, Dataset, Split};

/// The shared data directory, or `None` (with a note) when it is not there.
fn shared(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: {} not found, skipping", dir.display());
        None
    }
}

fn counts(d: &Dataset) -> Vec<usize> {
    let mut c = vec![0; d.num_classes];
    for &l in &d.labels {
        c[l] += 1;
    }
    c
}

fn mean(d: &Dataset) -> f64 {
    d.images.iter().map(|&v| v as f64).sum::<f64>() / d.images.len() as f64
}

#[test]
fn mnist_full() {
    let Some(dir) = shared("mnist") else { return };
    let spec = DataSpec {
        kind: DataKind::Mnist,
        dir,
    };
    let t = Instant::now();
    let train = load(&spec, Split::Train, None).unwrap();
    eprintln!("mnist train loaded in {:?}", t.elapsed());
    assert_eq!((train.len(), train.shape()), (60000, [1, 28, 28]));
    assert_eq!(
        counts(&train),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert!((mean(&train) - 0.1307).abs() < 5e-4, "{}", mean(&train));

    let test = load(&spec, Split::Test, None).unwrap();
    assert_eq!(test.len(), 10000);
    assert_eq!(
        counts(&test),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert!((mean(&test) - 0.1325).abs() < 5e-4, "{}", mean(&test));
    assert_eq!(test.class_names[3], "3");

    let bundled = bundled_mnist_test().unwrap();
    let first = test.clone().take(1000);
    assert_eq!(bundled.images, first.images);
    assert_eq!(bundled.labels, first.labels);
    assert_eq!(
        load(&spec, Split::Test, Some(1000)).unwrap().images,
        first.images
    );
}

#[test]
fn fashion_test() {
    let Some(dir) = shared("fashion-mnist") else {
        return;
    };
    let d = load(
        &format!("fashion:{}", dir.display()).parse().unwrap(),
        Split::Test,
        None,
    )
    .unwrap();
    assert_eq!((d.len(), d.shape()), (10000, [1, 28, 28]));
    assert_eq!(counts(&d), vec![1000; 10]);
    assert!((mean(&d) - 0.2868).abs() < 5e-4, "{}", mean(&d));
    assert_eq!(d.class_names[9], "Ankle boot");
}

#[test]
fn cifar_test20() {
    let Some(dir) = shared("cifar10-foolbox-test20") else {
        return;
    };
    let spec = DataSpec {
        kind: DataKind::Cifar10,
        dir,
    };
    let d = load(&spec, Split::Test, None).unwrap();
    assert_eq!((d.len(), d.shape(), d.num_classes), (20, [3, 32, 32], 10));
    assert_eq!(
        d.labels,
        [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    assert_eq!(d.class_names[3], "cat");
    assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
    // Only the test batch is shipped: train must say what is missing.
    let msg = load(&spec, Split::Train, None).unwrap_err().to_string();
    assert!(msg.contains("data_batch_1.bin: not found"), "{msg}");
}

#[test]
fn digits_all() {
    let Some(dir) = shared("sklearn-digits") else {
        return;
    };
    let spec = DataSpec {
        kind: DataKind::Digits,
        dir,
    };
    let train = load(&spec, Split::Train, None).unwrap();
    let test = load(&spec, Split::Test, None).unwrap();
    assert_eq!((train.len(), test.len()), (1500, 297));
    assert_eq!(train.len() + test.len(), 1797);
    assert_eq!(train.shape(), [1, 8, 8]);
    let total: Vec<usize> = counts(&train)
        .iter()
        .zip(counts(&test))
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(total, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // Pixels were 0..16: the maximum must reach exactly 1.
    assert_eq!(train.images.iter().cloned().fold(0.0, f32::max), 1.0);
}
