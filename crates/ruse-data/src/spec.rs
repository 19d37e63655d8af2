//! Dataset specs (`kind:DIR`) and split names, as typed on the command line.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::DataError;

/// Which part of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl FromStr for Split {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DataError::Parse {
                what: "split",
                input: s.to_string(),
                detail: "expected \"train\" or \"test\"".into(),
            }),
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// The on-disk format of a dataset directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// MNIST handwritten digits, IDX files.
    Mnist,
    /// Fashion-MNIST (Zalando), IDX files.
    Fashion,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// scikit-learn 8×8 digits as IDX files (pixels 0..16).
    Digits,
    /// A folder of PNG/JPEG images, one subfolder per class.
    Folder,
    /// Synthetic traffic signs, rendered on the fly: `signs:SEED[:N[:SIZE]]` (no directory).
    Signs,
}

impl DataKind {
    /// All kinds, in the order shown to users.
    pub const ALL: [DataKind; 6] = [
        DataKind::Mnist,
        DataKind::Fashion,
        DataKind::Cifar10,
        DataKind::Digits,
        DataKind::Folder,
        DataKind::Signs,
    ];

    /// The name used in specs (`mnist`, `fashion`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Mnist => "mnist",
            DataKind::Fashion => "fashion",
            DataKind::Cifar10 => "cifar10",
            DataKind::Digits => "digits",
            DataKind::Folder => "folder",
            DataKind::Signs => "signs",
        }
    }
}

/// Comma-separated list of the accepted kind names, for error messages.
fn kind_names() -> String {
    DataKind::ALL.map(DataKind::as_str).join(", ")
}

impl FromStr for DataKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        DataKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| DataError::Parse {
                what: "dataset kind",
                input: s.to_string(),
                detail: format!("expected one of {}", kind_names()),
            })
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dataset location: its format and directory, written `kind:DIR` (e.g. `mnist:data/mnist`).
/// For `signs` the part after the colon is the generator's `SEED[:N[:SIZE]]`, not a directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataSpec {
    /// The format of the directory.
    pub kind: DataKind,
    /// The directory holding the files.
    pub dir: PathBuf,
}

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse_err = |detail: String| DataError::Parse {
            what: "dataset spec",
            input: s.to_string(),
            detail,
        };
        let (kind, dir) = s.split_once(':').ok_or_else(|| {
            parse_err(format!(
                "expected KIND:DIR, e.g. mnist:data/mnist (KIND is one of {})",
                kind_names()
            ))
        })?;
        let kind: DataKind = kind.parse().map_err(|_| {
            parse_err(format!(
                "unknown dataset kind {kind:?}; expected one of {}",
                kind_names()
            ))
        })?;
        if dir.is_empty() {
            return Err(parse_err(if kind == DataKind::Signs {
                "signs needs a seed after ':', e.g. signs:0 or signs:0:5000:64 (SEED[:N[:SIZE]])"
                    .into()
            } else {
                "the directory after ':' is empty".into()
            }));
        }
        Ok(DataSpec {
            kind,
            dir: PathBuf::from(dir),
        })
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_roundtrip() {
        for s in [Split::Train, Split::Test] {
            assert_eq!(s.to_string().parse::<Split>().unwrap(), s);
        }
        assert_eq!("TEST".parse::<Split>().unwrap(), Split::Test);
        let err = "val".parse::<Split>().unwrap_err().to_string();
        assert!(err.contains("\"val\"") && err.contains("train"), "{err}");
    }

    #[test]
    fn spec_roundtrip() {
        for k in DataKind::ALL {
            let text = format!("{k}:some/dir");
            let spec: DataSpec = text.parse().unwrap();
            assert_eq!(spec.kind, k);
            assert_eq!(spec.dir, PathBuf::from("some/dir"));
            assert_eq!(spec.to_string(), text);
        }
        // Only the first ':' separates; the rest belongs to the path.
        let spec: DataSpec = "folder:a:b".parse().unwrap();
        assert_eq!(spec.dir, PathBuf::from("a:b"));
    }

    #[test]
    fn unknown_spec_kind() {
        let err = "imagenet:/data".parse::<DataSpec>().unwrap_err();
        assert!(matches!(err, DataError::Parse { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("unknown dataset kind \"imagenet\"") && msg.contains("cifar10"),
            "{msg}"
        );
    }

    #[test]
    fn spec_without_colon_or_dir() {
        let msg = "mnist".parse::<DataSpec>().unwrap_err().to_string();
        assert!(msg.contains("expected KIND:DIR"), "{msg}");
        let msg = "mnist:".parse::<DataSpec>().unwrap_err().to_string();
        assert!(msg.contains("empty"), "{msg}");
    }
}
