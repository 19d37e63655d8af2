//! Fooling models: threat models, white-box attacks (FGSM, PGD, APGD, DeepFool, C&W, L-BFGS, FAB),
//! the query-only Square attack and the attack suite, all walks over a ruse `Graph`. Inputs are
//! flat per-sample vectors in the model's input domain.

pub mod adam;
pub mod apgd;
pub mod attack;
pub mod cw;
pub mod deepfool;
pub mod eot;
pub mod error;
pub mod fab;
pub mod fgsm;
pub mod fooling;
pub mod hopskipjump;
pub mod lbfgs;
pub mod loss;
pub mod mask;
pub mod model;
pub mod onepixel;
pub mod patch;
pub mod pgd;
pub mod printability;
pub mod query;
pub mod simba;
pub mod sparse_rs;
pub mod spatial;
pub mod square;
pub mod sticker;
pub mod suite;
pub mod threat;

pub use attack::{Attack, AttackOutcome, Goal};
pub use error::AttackError;
pub use model::Model;
pub use threat::{Norm, ThreatModel};
