//! Errors of the attack crate.

/// What can go wrong while attacking.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// The graph failed.
    #[error(transparent)]
    Graph(#[from] ruse_graph::GraphError),
    /// A tensor op failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A setting is out of range or inputs do not fit.
    #[error("invalid attack setting: {0}")]
    Invalid(String),
}

/// Shorthand result type of this crate.
pub type Result<T, E = AttackError> = std::result::Result<T, E>;
