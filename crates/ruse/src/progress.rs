//! Progress bars on stderr (hidden automatically when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use ruse_train::{EpochStats, Progress, VAL_PGD_STEPS};

/// A bar over `total` items with a message.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Renders training progress: one bar per epoch, a summary line after each.
pub struct TrainBars {
    pb: Option<ProgressBar>,
}

impl TrainBars {
    /// No bar yet; it is created on the first batch of each epoch.
    pub fn new() -> Self {
        TrainBars { pb: None }
    }
}

impl Progress for TrainBars {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, accuracy: f64) {
        let pb = self
            .pb
            .get_or_insert_with(|| bar(total as u64, &format!("epoch {epoch}")));
        pb.set_position(done as u64);
        pb.set_message(format!("loss {loss:.4} acc {:.2}%", accuracy * 100.0));
    }

    fn epoch(&mut self, s: &EpochStats) {
        if let Some(pb) = self.pb.take() {
            pb.finish_and_clear();
        }
        let val = s
            .val_accuracy
            .map(|v| format!("  val acc {:.2}%", v * 100.0))
            .unwrap_or_default();
        let robust = s
            .val_robust_accuracy
            .map(|v| format!("  val PGD-{VAL_PGD_STEPS} {:.2}%", v * 100.0))
            .unwrap_or_default();
        let verified = s
            .val_verified_accuracy
            .map(|v| format!("  val verified {:.2}%", v * 100.0))
            .unwrap_or_default();
        // Under a defense the training accuracy is measured on the adversarial inputs.
        let (train, eps) = match s.train_eps {
            Some(e) => ("adv train acc", format!("  ε {e:.3}")),
            None => ("train acc", String::new()),
        };
        eprintln!(
            "epoch {:>3}  loss {:.4}  {train} {:.2}%{val}{robust}{verified}{eps}  lr {:.2e}  {:.1}s",
            s.epoch,
            s.loss,
            s.train_accuracy * 100.0,
            s.lr,
            s.seconds
        );
    }
}
