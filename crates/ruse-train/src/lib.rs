//! Training and evaluation loops over ruse graphs: plain and adversarial training (PGD-AT, TRADES,
//! FGSM-AT), certified
//! training (IBP), clean, PGD and IBP-verified evaluation.

pub mod batch;
pub mod certified;
pub mod checkpoint;
pub mod defense;
pub mod error;
pub mod eval;
pub mod optim;
pub mod schedule;
pub mod train;

pub use defense::Defense;
pub use error::TrainError;
pub use eval::{evaluate, evaluate_pgd, EvalReport, VAL_PGD_STEPS};
pub use optim::{Optimizer, OptimizerKind};
pub use schedule::LrSchedule;
pub use train::{train, EpochStats, Progress, TrainConfig, TrainReport};
