//! Training and evaluation loops over ruse graphs.

pub mod batch;
pub mod checkpoint;
pub mod error;
pub mod eval;
pub mod optim;
pub mod schedule;
pub mod train;

pub use error::TrainError;
pub use eval::{evaluate, EvalReport};
pub use optim::{Optimizer, OptimizerKind};
pub use schedule::LrSchedule;
pub use train::{train, EpochStats, Progress, TrainConfig, TrainReport};
