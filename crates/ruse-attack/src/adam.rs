//! Adam (Kingma & Ba 2015) on a pixel vector kept in a box: descends, then clamps.

/// Adam state for one parameter vector.
#[derive(Debug, Clone)]
pub struct Adam {
    lr: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    /// Fresh moments for `n` parameters and step size `lr`.
    pub fn new(n: usize, lr: f32) -> Self {
        Adam {
            lr,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One descent step on `x` along `grad` (β₁ 0.9, β₂ 0.999), then clamps to `[lo, hi]`.
    pub fn step(&mut self, x: &mut [f32], grad: &[f32], lo: f32, hi: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for i in 0..x.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * grad[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * grad[i] * grad[i];
            let step = self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
            x[i] = (x[i] - step).clamp(lo, hi);
        }
    }
}
