//! Errors of the graph crate: every message names the file, node and op it is about.

use std::path::PathBuf;

/// Anything that can go wrong while building, importing, exporting or running a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The file could not be read at all.
    #[error("{path}: cannot read file: {source}")]
    Io {
        /// File being read or written.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf (truncated or corrupt).
    #[error("{path}: not a valid ONNX model (truncated or corrupt protobuf: {reason})")]
    Corrupt {
        /// File being read.
        path: PathBuf,
        /// Decoder message.
        reason: String,
    },
    /// The model uses an operator ruse does not implement.
    #[error("{path}: node '{node}': op '{op}' is not supported by ruse{hint}")]
    UnsupportedOp {
        /// File being read.
        path: PathBuf,
        /// Node name (or its index when unnamed).
        node: String,
        /// ONNX op type.
        op: String,
        /// Extra explanation, starting with ": " when present.
        hint: String,
    },
    /// An op is supported but one of its attributes or attribute values is not.
    #[error("{path}: node '{node}' ({op}): unsupported attribute {attribute}")]
    UnsupportedAttribute {
        /// File being read.
        path: PathBuf,
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// Attribute and value, explained.
        attribute: String,
    },
    /// A shape that ruse cannot make static (a symbolic dimension other than the batch, a data-dependent shape…).
    #[error("{path}: node '{node}' ({op}): {reason}")]
    Shape {
        /// File being read (or "<graph>" for in-memory graphs).
        path: PathBuf,
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// The model as a whole is malformed (no graph, missing input, dangling reference…).
    #[error("{path}: {reason}")]
    Model {
        /// File being read.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input given to a forward pass does not fit the graph.
    #[error("input does not fit the model: {0}")]
    Input(String),
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed in node '{node}' ({op}): {source}")]
    Tensor {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// Candle's error (boxed: it is large and rare).
        source: Box<candle_core::Error>,
    },
    /// A bare candle error outside any node.
    #[error(transparent)]
    Candle(Box<candle_core::Error>),
}

impl From<candle_core::Error> for GraphError {
    fn from(e: candle_core::Error) -> Self {
        GraphError::Candle(Box::new(e))
    }
}

/// Shorthand result type of this crate.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;
