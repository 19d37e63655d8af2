//! Query accounting for black-box attacks: a per-sample budget of forward evaluations, the
//! summary "queries per success", and the L0 size of a perturbation counted in pixels.

use crate::error::{AttackError, Result};

/// Forward evaluations spent per sample, against an optional per-sample budget.
#[derive(Debug, Clone)]
pub struct Budget {
    used: Vec<u64>,
    limit: Option<u64>,
}

impl Budget {
    /// `n` samples with nothing spent; `limit` = most forward evaluations per sample (None: no cap).
    pub fn new(n: usize, limit: Option<usize>) -> Result<Self> {
        if limit == Some(0) {
            return Err(AttackError::Invalid(
                "the query budget must be ≥ 1 per sample".into(),
            ));
        }
        Ok(Budget {
            used: vec![0; n],
            limit: limit.map(|l| l as u64),
        })
    }

    /// Evaluations sample `i` may still spend.
    pub fn left(&self, i: usize) -> u64 {
        match self.limit {
            Some(l) => l.saturating_sub(self.used[i]),
            None => u64::MAX,
        }
    }

    /// Counts `n` evaluations for sample `i` (callers check [`Budget::left`] first).
    pub fn spend(&mut self, i: usize, n: u64) {
        debug_assert!(n <= self.left(i), "query budget overrun on sample {i}");
        self.used[i] += n;
    }

    /// Evaluations spent per sample.
    pub fn used(&self) -> &[u64] {
        &self.used
    }

    /// The per-sample counts, consumed.
    pub fn into_used(self) -> Vec<u64> {
        self.used
    }
}

/// Mean and median forward evaluations over the successful samples (None if none succeeded).
pub fn queries_per_success(queries: &[u64], success: &[bool]) -> Option<(f64, f64)> {
    let mut q: Vec<u64> = queries
        .iter()
        .zip(success)
        .filter(|(_, &s)| s)
        .map(|(&q, _)| q)
        .collect();
    if q.is_empty() {
        return None;
    }
    q.sort_unstable();
    let mean = q.iter().sum::<u64>() as f64 / q.len() as f64;
    let n = q.len();
    let median = if n % 2 == 1 {
        q[n / 2] as f64
    } else {
        (q[n / 2 - 1] + q[n / 2]) as f64 / 2.0
    };
    Some((mean, median))
}

/// Pixels (positions of a C×H×W image, all channels together) where `a` and `b` differ.
pub fn changed_pixels(a: &[f32], b: &[f32], shape: [usize; 3]) -> usize {
    let [c, h, w] = shape;
    let hw = h * w;
    (0..hw)
        .filter(|&p| (0..c).any(|ch| a[ch * hw + p] != b[ch * hw + p]))
        .count()
}

/// The [C, H, W] of an image model's input, or an error naming the attack.
pub fn image_shape(shape: &[usize], attack: &str) -> Result<[usize; 3]> {
    match shape {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok([*c, *h, *w]),
        s => Err(AttackError::Invalid(format!(
            "{attack} needs image inputs [C, H, W], the model takes {s:?}"
        ))),
    }
}

/// Log-softmax of one row of logits. Attacks rank candidates by log-probabilities rather than
/// probabilities: the order is the same, but a confident model's p_y rounds to 1.0 in f32 and
/// would hide every improvement.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
    row.iter().map(|v| v - lse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mean_over_successes_only() {
        let q = [10, 20, 30, 1000];
        let s = [true, true, true, false];
        assert_eq!(queries_per_success(&q, &s), Some((20.0, 20.0)));
        assert_eq!(queries_per_success(&q, &[false; 4]), None);
        assert_eq!(
            queries_per_success(&[1, 3], &[true, true]),
            Some((2.0, 2.0))
        );
    }

    #[test]
    fn pixels_count_positions_not_channels() {
        let a = vec![0.0; 2 * 2 * 2];
        let mut b = a.clone();
        b[0] = 1.0; // channel 0, pixel 0
        b[4] = 1.0; // channel 1, pixel 0
        b[7] = 0.5; // channel 1, pixel 3
        assert_eq!(changed_pixels(&a, &b, [2, 2, 2]), 2);
    }

    #[test]
    fn budget_counts_and_caps() {
        let mut b = Budget::new(2, Some(5)).unwrap();
        b.spend(0, 3);
        assert_eq!(b.left(0), 2);
        assert_eq!(b.left(1), 5);
        assert!(Budget::new(1, Some(0)).is_err());
        assert_eq!(Budget::new(1, None).unwrap().left(0), u64::MAX);
    }
}
