//! Image-folder datasets: `DIR/<class>/*.png|jpg|jpeg`, optionally split into `DIR/train` and `DIR/test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::image_input::{decode, natural_channels, to_chw};
use crate::source::io_error;
use crate::{DataError, Dataset, Split};

/// What the loader expects, for error messages.
const EXPECTED: &str = "expected one subfolder per class holding .png/.jpg/.jpeg files \
                        (optionally under train/ and test/)";

/// Sorted entries of `dir` that satisfy `keep`, skipping hidden ones.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// True for files with a PNG or JPEG extension (any case).
fn is_image(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| {
            let e = e.to_string_lossy().to_ascii_lowercase();
            e == "png" || e == "jpg" || e == "jpeg"
        })
}

/// Names of the class subfolders of `dir`.
fn class_dirs(dir: &Path) -> Result<Vec<String>, DataError> {
    Ok(sorted_entries(dir, Path::is_dir)?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// Loads an image folder. Classes are the sorted subfolder names (the union over `train/` and
/// `test/` when those exist, so labels agree between splits); images are taken in sorted file-name
/// order. Channels and size come from the first image; all others are converted and resized to match.
pub(crate) fn load_folder(
    dir: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            expected: format!("a folder dataset is a directory; {EXPECTED}"),
        });
    }
    let split_dirs = [dir.join("train"), dir.join("test")];
    let has_splits = split_dirs.iter().any(|d| d.is_dir());
    let (root, class_names) = if has_splits {
        let root = dir.join(split.to_string());
        if !root.is_dir() {
            return Err(DataError::Missing {
                path: root,
                expected: format!(
                    "{} has train/ or test/, so it needs both; {EXPECTED}",
                    dir.display()
                ),
            });
        }
        let mut names = BTreeSet::new();
        for d in split_dirs.iter().filter(|d| d.is_dir()) {
            names.extend(class_dirs(d)?);
        }
        (root, names.into_iter().collect::<Vec<_>>())
    } else {
        (dir.to_path_buf(), class_dirs(dir)?)
    };
    if class_names.is_empty() {
        return Err(DataError::Empty {
            path: root,
            detail: format!("no class subfolders; {EXPECTED}"),
        });
    }

    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    for (label, name) in class_names.iter().enumerate() {
        let class_dir = root.join(name);
        // With train/test, a class may legitimately appear in only one split.
        if has_splits && !class_dir.is_dir() {
            continue;
        }
        let images = sorted_entries(&class_dir, is_image)?;
        if images.is_empty() {
            return Err(DataError::Empty {
                path: class_dir,
                detail: format!("class folder {name:?} holds no .png/.jpg/.jpeg files"),
            });
        }
        files.extend(images.into_iter().map(|p| (p, label)));
    }
    if let Some(limit) = limit {
        files.truncate(limit);
    }

    let mut images = Vec::new();
    let mut labels = Vec::with_capacity(files.len());
    let mut shape: Option<[usize; 3]> = None;
    for (path, label) in &files {
        let img = decode(path)?;
        let [c, h, w] = *shape.get_or_insert_with(|| {
            [
                natural_channels(&img),
                img.height() as usize,
                img.width() as usize,
            ]
        });
        images.extend(to_chw(&img, path, c, h, w)?);
        labels.push(*label);
    }
    let [channels, height, width] = shape.unwrap_or([0; 3]);
    Ok(Dataset {
        name: format!("folder/{split}"),
        images,
        labels,
        channels,
        height,
        width,
        num_classes: class_names.len(),
        class_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    fn gray(path: &Path, w: u32, h: u32, v: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_pixel(w, h, Luma([v])).save(path).unwrap();
    }

    #[test]
    fn classes_sorted_and_resized() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        gray(&d.join("cat/b.png"), 4, 4, 255);
        gray(&d.join("cat/a.png"), 4, 4, 0);
        // Different size and colour: converted to 1 channel and resized to 4×4.
        std::fs::create_dir_all(d.join("ant")).unwrap();
        RgbImage::from_pixel(8, 8, Rgb([255, 255, 255]))
            .save(d.join("ant/x.PNG"))
            .unwrap();
        std::fs::write(d.join("ant/notes.txt"), "ignored").unwrap();
        let ds = load_folder(d, Split::Test, None).unwrap();
        assert_eq!(ds.class_names, vec!["ant", "cat"]);
        assert_eq!(ds.labels, vec![0, 1, 1]);
        // First image is the RGB one, so the dataset is RGB at 8×8.
        assert_eq!(ds.shape(), [3, 8, 8]);
        assert!(ds.image(1).iter().all(|&p| p == 0.0));
        assert!(ds.image(2).iter().all(|&p| p == 1.0));
        assert_eq!(load_folder(d, Split::Train, Some(2)).unwrap().len(), 2);
    }

    #[test]
    fn train_test_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        gray(&d.join("train/a/1.png"), 2, 2, 0);
        gray(&d.join("train/b/1.png"), 2, 2, 0);
        gray(&d.join("test/b/1.png"), 2, 2, 0);
        let test = load_folder(d, Split::Test, None).unwrap();
        assert_eq!(
            (test.num_classes, test.labels.clone(), test.shape()),
            (2, vec![1], [1, 2, 2])
        );
        assert_eq!(
            load_folder(d, Split::Train, None).unwrap().labels,
            vec![0, 1]
        );
    }

    #[test]
    fn empty_folder_and_empty_class() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_folder(dir.path(), Split::Test, None).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("no class subfolders"), "{err}");
        gray(&dir.path().join("a/1.png"), 2, 2, 0);
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let err = load_folder(dir.path(), Split::Test, None).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        assert!(
            err.to_string().contains("class folder \"b\" holds no"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_image_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/broken.jpg"), b"\xff\xd8 not really").unwrap();
        let err = load_folder(dir.path(), Split::Test, None).unwrap_err();
        assert!(matches!(err, DataError::Image { .. }), "{err}");
        assert!(err.to_string().contains("broken.jpg"), "{err}");
        let err = load_folder(&dir.path().join("nope"), Split::Test, None).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");
    }
}
