//! Opening data files, transparently decompressing gzip (detected by its magic bytes, not the name).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::DataError;

/// First two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Wraps a buffered reader in a gzip decoder when its first bytes are the gzip magic.
pub(crate) fn decompressing<'a, R: BufRead + 'a>(
    mut reader: R,
    path: &Path,
) -> Result<Box<dyn Read + 'a>, DataError> {
    let head = reader.fill_buf().map_err(|e| io_error(path, e))?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Opens `path` for reading, gunzipping on the fly if it is gzip-compressed.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    decompressing(BufReader::with_capacity(1 << 16, file), path)
}

/// Reads at most `max` bytes; the buffer grows with the data actually present, so a lying
/// header cannot trigger a huge allocation.
pub(crate) fn read_up_to(
    reader: &mut dyn Read,
    max: u64,
    path: &Path,
) -> Result<Vec<u8>, DataError> {
    // Bounded initial reservation: enough for real datasets to avoid regrowth, small enough to be harmless.
    let mut buf = Vec::with_capacity(max.min(1 << 26) as usize);
    reader
        .take(max)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path, e))?;
    Ok(buf)
}

/// Builds an I/O error naming the file.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Returns `dir/name.gz` or `dir/name`, whichever exists (preferring `.gz`); a `Missing` error otherwise.
pub(crate) fn find_with_optional_gz(
    dir: &Path,
    name: &str,
    expected: &str,
) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(DataError::Missing {
        path: dir.join(format!("{name}[.gz]")),
        expected: expected.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        // A gzip file without .gz suffix and a raw file with one.
        let gz_path = dir.path().join("plain-name");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello").unwrap();
        std::fs::write(&gz_path, enc.finish().unwrap()).unwrap();
        let raw_path = dir.path().join("raw.gz");
        std::fs::write(&raw_path, b"world").unwrap();

        let mut s = String::new();
        open(&gz_path).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        s.clear();
        open(&raw_path).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "world");
    }

    #[test]
    fn finds_with_or_without_gz() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        std::fs::write(dir.path().join("b.gz"), b"x").unwrap();
        assert_eq!(
            find_with_optional_gz(dir.path(), "a", "").unwrap(),
            dir.path().join("a")
        );
        assert_eq!(
            find_with_optional_gz(dir.path(), "b", "").unwrap(),
            dir.path().join("b.gz")
        );
        let err = find_with_optional_gz(dir.path(), "c", "expected c").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("c[.gz]") && msg.contains("not found") && msg.contains("expected c"),
            "{msg}"
        );
    }
}
