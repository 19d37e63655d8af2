//! A small S-expression reader shared by the VNN-LIB and counterexample parsers.
//!
//! Tokens keep their byte offset only; line and column are computed when an error is reported,
//! which keeps the hot path (megabytes of `(assert (<= X_i c))`) a single pass over the bytes.

use std::path::{Path, PathBuf};

/// Deepest nesting accepted; the formula walkers recurse, so this bounds their stack use.
pub(crate) const MAX_DEPTH: usize = 512;

/// A parsed S-expression borrowing its atoms from the source text.
#[derive(Debug)]
pub(crate) enum Sexp<'a> {
    /// A symbol or numeral, with the byte offset where it starts.
    Atom(&'a str, usize),
    /// A parenthesised list, with the byte offset of its `(`.
    List(Vec<Sexp<'a>>, usize),
}

impl<'a> Sexp<'a> {
    /// Byte offset where this expression starts.
    pub(crate) fn at(&self) -> usize {
        match self {
            Sexp::Atom(_, at) | Sexp::List(_, at) => *at,
        }
    }
}

/// A position in a source file, printed `file:line:column` (both 1-based, column in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File the text came from (as given by the caller).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub(crate) fn of(text: &str, path: &Path, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            file: path.to_path_buf(),
            line: before.bytes().filter(|&b| b == b'\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// What went wrong while reading the S-expression structure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SexpError {
    /// A `(` at this offset is never closed.
    Unclosed(usize),
    /// A `)` at this offset has no matching `(`.
    UnexpectedClose(usize),
    /// Nesting deeper than [`MAX_DEPTH`] starts at this offset.
    TooDeep(usize),
}

/// Reads every top-level expression of `text`; `;` starts a comment running to the end of line.
pub(crate) fn parse(text: &str) -> Result<Vec<Sexp<'_>>, SexpError> {
    let bytes = text.as_bytes();
    // Stack of open lists: (items so far, offset of the `(`).
    let mut stack: Vec<(Vec<Sexp<'_>>, usize)> = Vec::new();
    let mut top: Vec<Sexp<'_>> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SexpError::TooDeep(i));
                }
                stack.push((Vec::new(), i));
            }
            b')' => {
                let (items, at) = stack.pop().ok_or(SexpError::UnexpectedClose(i))?;
                let list = Sexp::List(items, at);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(list),
                    None => top.push(list),
                }
            }
            _ if b.is_ascii_whitespace() => {}
            _ => {
                let start = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b'(' | b')' | b';')
                {
                    i += 1;
                }
                // Token boundaries are ASCII bytes, so the slice is on char boundaries.
                let atom = Sexp::Atom(&text[start..i], start);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(atom),
                    None => top.push(atom),
                }
                continue;
            }
        }
        i += 1;
    }
    match stack.last() {
        Some((_, at)) => Err(SexpError::Unclosed(*at)),
        None => Ok(top),
    }
}
