//! Learning-rate schedules.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the learning rate changes over epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Cosine decay from the base rate to 0 over the whole run (per batch).
    Cosine,
}

impl LrSchedule {
    /// Rate at `progress` = (epoch − 1 + batch fraction), out of `epochs`.
    pub fn rate(&self, base: f64, epoch: usize, frac: f64, epochs: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => {
                base * gamma.powi(((epoch - 1) / (*every).max(1)) as i32)
            }
            LrSchedule::Cosine => {
                let t = ((epoch - 1) as f64 + frac) / epochs.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

impl FromStr for LrSchedule {
    type Err = String;
    /// `constant`, `cosine`, or `step:EVERY:GAMMA` (e.g. `step:10:0.1`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            _ => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    ["step", every, gamma] => {
                        let every: usize = every
                            .parse()
                            .map_err(|_| format!("'{every}' is not an epoch count"))?;
                        let gamma: f64 = gamma
                            .parse()
                            .map_err(|_| format!("'{gamma}' is not a number"))?;
                        if every == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                            return Err("step schedule needs EVERY ≥ 1 and 0 < GAMMA ≤ 1".into());
                        }
                        Ok(LrSchedule::Step { every, gamma })
                    }
                    _ => Err(format!(
                        "unknown schedule '{s}': use constant, cosine or step:EVERY:GAMMA"
                    )),
                }
            }
        }
    }
}
