//! Errors raised while loading datasets and images.

use std::path::PathBuf;

/// Everything that can go wrong while loading data; each variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A required file or directory does not exist.
    #[error("{}: not found; {expected}", path.display())]
    Missing {
        /// The path that was looked for.
        path: PathBuf,
        /// Which files the loader expects, in words.
        expected: String,
    },
    /// The file exists but could not be read (permissions, I/O error, corrupt gzip stream).
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file starts with a magic number other than the one its role requires.
    #[error("{}: wrong magic number {found:#010x}, expected {expected:#010x} ({what})", path.display())]
    BadMagic {
        /// The file being read.
        path: PathBuf,
        /// The magic number found in the file.
        found: u32,
        /// The magic number that was expected.
        expected: u32,
        /// What kind of file the expected magic number denotes.
        what: &'static str,
    },
    /// The file ends before the data its header (or record layout) promises.
    #[error("{}: truncated: {detail}", path.display())]
    Truncated {
        /// The file being read.
        path: PathBuf,
        /// How much data was expected and how much was found.
        detail: String,
    },
    /// The header describes a shape that cannot be right (zero or absurdly large dimensions).
    #[error("{}: invalid header: {detail}", path.display())]
    BadHeader {
        /// The file being read.
        path: PathBuf,
        /// What is wrong with the header.
        detail: String,
    },
    /// The image file and the label file disagree on the number of samples.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images it declares.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels it declares.
        labels: usize,
    },
    /// A label is not a valid class index.
    #[error("{}: sample {index} has label {label}, but the dataset has only {num_classes} classes (labels 0..={})", path.display(), num_classes.saturating_sub(1))]
    BadLabel {
        /// The file holding the label.
        path: PathBuf,
        /// Index of the offending sample.
        index: usize,
        /// The label value found.
        label: usize,
        /// Number of classes of the dataset.
        num_classes: usize,
    },
    /// A pixel value lies outside the range the format allows.
    #[error("{}: sample {index} has pixel value {value}, but this dataset's pixels range over 0..={max}", path.display())]
    BadPixel {
        /// The file holding the pixel.
        path: PathBuf,
        /// Index of the offending sample.
        index: usize,
        /// The pixel value found.
        value: u8,
        /// Largest allowed pixel value.
        max: u8,
    },
    /// A directory that should hold images holds none.
    #[error("{}: no images found; {detail}", path.display())]
    Empty {
        /// The directory searched.
        path: PathBuf,
        /// What was expected there.
        detail: String,
    },
    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {detail}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's explanation.
        detail: String,
    },
    /// A request that cannot be satisfied for this file (e.g. an unsupported channel count).
    #[error("{}: {detail}", path.display())]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// What is unsupported.
        detail: String,
    },
    /// A dataset spec or split name could not be parsed.
    #[error("invalid {what} {input:?}: {detail}")]
    Parse {
        /// What was being parsed ("dataset spec", "split").
        what: &'static str,
        /// The text given.
        input: String,
        /// Why it was rejected and what is accepted.
        detail: String,
    },
}
