//! Expectation over Transformation (Athalye et al. 2018): random physical views of a flat object
//! (a texture with an alpha mask) rendered into the model's input, and the adjoint of each
//! rendering, so a loss on the rendered views can be differentiated back to the texture pixels.
//!
//! A view places the texture by a homography (scale, rotation, shift and a perspective tilt from
//! jittered corners), composites it over a background, then applies lighting (per-channel gain and
//! an offset), Gaussian blur and sensor noise, and clamps to the input domain. For a fixed view
//! every stage but the clamp is affine in the texture, so the adjoint is exact up to the clamp.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use ruse_data::signs::ViewParams;
use ruse_data::warp::{Homography, WarpPlan};

/// Ranges random views are drawn from; every parameter is uniform in its range.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSampler {
    /// Object width as a share of the output width: (min, max).
    pub scale: (f32, f32),
    /// Largest in-plane rotation, degrees (either way).
    pub rotation_deg: f32,
    /// Largest shift of the object centre, as a share of the output size (each axis).
    pub shift: f32,
    /// Largest independent move of each projected corner, as a share of the object's width: the
    /// perspective tilt of a plane seen off-axis.
    pub perspective: f32,
    /// Brightness gain (min, max), shared by all channels.
    pub gain: (f32, f32),
    /// Largest per-channel departure of the gain from the shared one (colour cast).
    pub colour: f32,
    /// Largest additive brightness offset (either way).
    pub offset: f32,
    /// Largest Gaussian blur σ in output pixels.
    pub blur: f32,
    /// Standard deviation of the per-pixel sensor noise.
    pub noise: f32,
}

impl ViewSampler {
    /// Road-sign views: the sign fills 55–95% of the frame, ±15°, perspective, lighting, blur.
    pub fn signs() -> Self {
        ViewSampler {
            scale: (0.55, 0.95),
            rotation_deg: 15.0,
            shift: 0.08,
            perspective: 0.12,
            gain: (0.6, 1.3),
            colour: 0.08,
            offset: 0.08,
            blur: 0.8,
            noise: 0.02,
        }
    }

    /// Views of a whole image (texture = the image): mild scale, rotation, tilt and lighting.
    pub fn image() -> Self {
        ViewSampler {
            scale: (0.85, 1.05),
            rotation_deg: 12.0,
            shift: 0.06,
            perspective: 0.06,
            gain: (0.75, 1.15),
            colour: 0.05,
            offset: 0.06,
            blur: 0.6,
            noise: 0.02,
        }
    }

    /// Draws one view of a `tex_hw` texture into an `out_hw` frame with `channels` channels,
    /// over background number `background` (the caller's index).
    pub fn sample(
        &self,
        tex_hw: [usize; 2],
        out_hw: [usize; 2],
        channels: usize,
        background: usize,
        rng: &mut ChaCha8Rng,
    ) -> View {
        let u = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| {
            if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            }
        };
        let (th, tw) = (tex_hw[0] as f64, tex_hw[1] as f64);
        let (oh, ow) = (out_hw[0] as f64, out_hw[1] as f64);
        let s = f64::from(u(rng, self.scale.0, self.scale.1)) * ow / tw;
        let angle = f64::from(u(rng, -self.rotation_deg, self.rotation_deg)).to_radians();
        let (dx, dy) = (
            f64::from(u(rng, -self.shift, self.shift)) * ow,
            f64::from(u(rng, -self.shift, self.shift)) * oh,
        );
        // Similarity: texture centre → frame centre (shifted), scaled and rotated.
        let sim = Homography::translation((ow - 1.0) / 2.0 + dx, (oh - 1.0) / 2.0 + dy)
            .after(&Homography::rotation(angle))
            .after(&Homography::scale(s, s))
            .after(&Homography::translation(
                -(tw - 1.0) / 2.0,
                -(th - 1.0) / 2.0,
            ));
        let corners = [
            (0.0, 0.0),
            (tw - 1.0, 0.0),
            (tw - 1.0, th - 1.0),
            (0.0, th - 1.0),
        ];
        let jitter = f64::from(self.perspective) * s * tw;
        let moved = corners.map(|(x, y)| {
            let (px, py) = sim.apply(x, y);
            let (jx, jy) = (
                f64::from(u(rng, -1.0, 1.0)) * jitter,
                f64::from(u(rng, -1.0, 1.0)) * jitter,
            );
            (px + jx, py + jy)
        });
        let homography = Homography::from_quad(corners, moved).unwrap_or(sim);
        let base = u(rng, self.gain.0, self.gain.1);
        let gain = (0..channels)
            .map(|_| base * (1.0 + u(rng, -self.colour, self.colour)))
            .collect();
        let offset = u(rng, -self.offset, self.offset);
        let blur = u(rng, 0.0, self.blur);
        let noise_seed = rng.random();
        View {
            homography,
            gain,
            offset,
            blur,
            noise: self.noise,
            noise_seed,
            background,
        }
    }
}

/// One random view: where the texture lands and how the camera sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Texture pixel → frame pixel.
    pub homography: Homography,
    /// Per-channel brightness gain.
    pub gain: Vec<f32>,
    /// Additive brightness offset.
    pub offset: f32,
    /// Gaussian blur σ in frame pixels (≤ 0.05 means none).
    pub blur: f32,
    /// Sensor-noise standard deviation.
    pub noise: f32,
    /// Seed of this view's noise pattern.
    pub noise_seed: u64,
    /// Index of the background the texture sits on.
    pub background: usize,
}

/// The flat object and its surroundings: a C×Ht×Wt texture, its Ht×Wt alpha (1 = object), the
/// C×H×W backgrounds views may use, the frame size and the input domain.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Channels.
    pub channels: usize,
    /// Texture size [Ht, Wt].
    pub tex_hw: [usize; 2],
    /// Texture alpha, Ht×Wt in [0,1].
    pub alpha: Vec<f32>,
    /// Frame (model input) size [H, W].
    pub out_hw: [usize; 2],
    /// Backgrounds, each C×H×W.
    pub backgrounds: Vec<Vec<f32>>,
    /// Input domain the rendered frame is clamped to.
    pub domain: (f32, f32),
    /// The texture is warped onto a grid this many times finer than the frame and box-filtered
    /// down (antialiasing, as `ruse_data::signs::render_view` does); 1 = warp straight to the frame.
    pub supersample: usize,
}

/// A view prepared for rendering: its warp plan, the warped alpha and the fixed background term.
pub struct PreparedView {
    plan: WarpPlan,
    gain: Vec<f32>,
    offset: f32,
    kernel: Vec<f32>,
    /// (1 − warped alpha)·background + noise is added after lighting; kept per pixel.
    backdrop: Vec<f32>,
    noise: Vec<f32>,
}

impl Scene {
    /// Frame elements per view (C·H·W).
    pub fn frame_len(&self) -> usize {
        self.channels * self.out_hw[0] * self.out_hw[1]
    }

    /// Prepares `view` for rendering (precomputes everything that does not depend on the texture).
    pub fn prepare(&self, view: &View) -> PreparedView {
        use rand::SeedableRng;
        let s = self.supersample.max(1);
        // Frame pixel x covers fine pixels s·x … s·x+s−1, whose centre is s·x + (s−1)/2.
        let fine = Homography::translation((s as f64 - 1.0) / 2.0, (s as f64 - 1.0) / 2.0)
            .after(&Homography::scale(s as f64, s as f64))
            .after(&view.homography);
        let plan = WarpPlan::new(&fine, self.tex_hw, [s * self.out_hw[0], s * self.out_hw[1]]);
        let a = pool(&plan.apply(&self.alpha, 0.0), 1, self.out_hw, s, false);
        let on = self.out_hw[0] * self.out_hw[1];
        let bg = self
            .backgrounds
            .get(view.background % self.backgrounds.len().max(1))
            .cloned()
            .unwrap_or_else(|| vec![0.0; self.channels * on]);
        let backdrop = (0..self.channels * on)
            .map(|i| (1.0 - a[i % on]) * bg[i])
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(view.noise_seed);
        let noise = (0..self.channels * on)
            .map(|_| view.noise * gaussian(&mut rng))
            .collect();
        PreparedView {
            plan,
            gain: view.gain.clone(),
            offset: view.offset,
            kernel: gaussian_kernel(view.blur),
            backdrop,
            noise,
        }
    }

    /// Renders `texture` (C×Ht×Wt) in a prepared view; also returns the pre-clamp frame, which
    /// [`Scene::adjoint`] needs.
    pub fn render(&self, pv: &PreparedView, texture: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let tn = self.tex_hw[0] * self.tex_hw[1];
        let premul: Vec<f32> = texture
            .iter()
            .enumerate()
            .map(|(i, v)| v * self.alpha[i % tn])
            .collect();
        let on = self.out_hw[0] * self.out_hw[1];
        let s = self.supersample.max(1);
        let mut x = pool(
            &pv.plan.apply(&premul, 0.0),
            self.channels,
            self.out_hw,
            s,
            false,
        );
        for (i, v) in x.iter_mut().enumerate() {
            *v = pv.gain[i / on] * (*v + pv.backdrop[i]) + pv.offset;
        }
        let mut x = blur(&x, self.channels, self.out_hw, &pv.kernel, false);
        x.iter_mut().zip(&pv.noise).for_each(|(v, n)| *v += n);
        let (lo, hi) = self.domain;
        let frame = x.iter().map(|v| v.clamp(lo, hi)).collect();
        (frame, x)
    }

    /// The gradient with respect to the texture of a loss whose gradient with respect to the
    /// rendered frame is `grad` (zero where the clamp was active).
    pub fn adjoint(&self, pv: &PreparedView, pre_clamp: &[f32], grad: &[f32]) -> Vec<f32> {
        let (lo, hi) = self.domain;
        let g: Vec<f32> = grad
            .iter()
            .zip(pre_clamp)
            .map(|(g, v)| if *v > lo && *v < hi { *g } else { 0.0 })
            .collect();
        let mut g = blur(&g, self.channels, self.out_hw, &pv.kernel, true);
        let on = self.out_hw[0] * self.out_hw[1];
        for (i, v) in g.iter_mut().enumerate() {
            *v *= pv.gain[i / on];
        }
        let tn = self.tex_hw[0] * self.tex_hw[1];
        let g = pool(
            &g,
            self.channels,
            self.out_hw,
            self.supersample.max(1),
            true,
        );
        let mut t = pv.plan.adjoint(&g);
        for (i, v) in t.iter_mut().enumerate() {
            *v *= self.alpha[i % tn];
        }
        t
    }
}

/// Averages s×s blocks of a C×(s·H)×(s·W) image into C×H×W (`transpose`: spreads each of a
/// C×H×W gradient's values evenly back over its block).
fn pool(x: &[f32], c: usize, hw: [usize; 2], s: usize, transpose: bool) -> Vec<f32> {
    if s == 1 {
        return x.to_vec();
    }
    let [h, w] = hw;
    let (fh, fw) = (s * h, s * w);
    let inv = 1.0 / (s * s) as f32;
    let mut out = vec![0f32; if transpose { c * fh * fw } else { c * h * w }];
    for ch in 0..c {
        for y in 0..fh {
            for xx in 0..fw {
                let (f, o) = ((ch * fh + y) * fw + xx, (ch * h + y / s) * w + xx / s);
                if transpose {
                    out[f] = x[o] * inv;
                } else {
                    out[o] += x[f] * inv;
                }
            }
        }
    }
    out
}

/// A view from the traffic-sign dataset's own distribution ([`ruse_data::signs::ViewParams`]) of
/// a `tex`×`tex` sign texture in an `out`×`out` frame, over background number `background`.
pub fn sign_view(p: &ViewParams, tex: usize, out: usize, background: usize) -> View {
    View {
        homography: p.homography(tex, out),
        // (v·cast·brightness − ½)·contrast + ½ = gain·v + offset.
        gain: p
            .cast
            .iter()
            .map(|c| c * p.brightness * p.contrast)
            .collect(),
        offset: 0.5 * (1.0 - p.contrast),
        blur: p.blur,
        noise: p.noise,
        noise_seed: p.noise_seed,
        background,
    }
}

/// A standard normal draw (Box–Muller).
pub fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Normalised 1-D Gaussian taps of radius ⌈3σ⌉ (a single tap of 1 for σ ≤ 0.05).
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if sigma <= 0.05 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil().max(1.0) as i32;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Separable blur with clamp-to-edge borders (`transpose`: its exact adjoint instead).
fn blur(x: &[f32], c: usize, hw: [usize; 2], k: &[f32], transpose: bool) -> Vec<f32> {
    if k.len() == 1 {
        return x.to_vec();
    }
    let [h, w] = hw;
    let r = (k.len() / 2) as i64;
    // One pass along an axis: out[i] = Σ_t k[t]·in[clamp(i + t − r)] (or its transpose).
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let o = (ch * h + y) * w + xx;
                    for (t, &kt) in k.iter().enumerate() {
                        let d = t as i64 - r;
                        let q = if horizontal {
                            (ch * h + y) * w + (xx as i64 + d).clamp(0, w as i64 - 1) as usize
                        } else {
                            (ch * h + (y as i64 + d).clamp(0, h as i64 - 1) as usize) * w + xx
                        };
                        if transpose {
                            out[q] += kt * src[o];
                        } else {
                            out[o] += kt * src[q];
                        }
                    }
                }
            }
        }
        out
    };
    if transpose {
        pass(&pass(x, false), true)
    } else {
        pass(&pass(x, true), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn adjoint_matches_the_rendering() {
        // <render(t1) − render(t0), g> = <t1 − t0, adjoint(g)> away from the clamp.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let scene = Scene {
            channels: 3,
            tex_hw: [12, 10],
            alpha: (0..120)
                .map(|i| if i % 7 == 0 { 0.5 } else { 1.0 })
                .collect(),
            out_hw: [9, 11],
            backgrounds: vec![vec![0.3; 3 * 99]],
            domain: (-100.0, 100.0),
            supersample: 2,
        };
        let mut sampler = ViewSampler::signs();
        sampler.blur = 1.5;
        let view = sampler.sample([12, 10], [9, 11], 3, 0, &mut rng);
        let pv = scene.prepare(&view);
        let t0: Vec<f32> = (0..360).map(|_| rng.random()).collect();
        let t1: Vec<f32> = (0..360).map(|_| rng.random()).collect();
        let g: Vec<f32> = (0..297).map(|_| rng.random::<f32>() - 0.5).collect();
        let (_, r0) = scene.render(&pv, &t0);
        let (_, r1) = scene.render(&pv, &t1);
        let lhs: f32 = r1
            .iter()
            .zip(&r0)
            .zip(&g)
            .map(|((a, b), g)| (a - b) * g)
            .sum();
        let adj = scene.adjoint(&pv, &r1, &g);
        let rhs: f32 = t1
            .iter()
            .zip(&t0)
            .zip(&adj)
            .map(|((a, b), g)| (a - b) * g)
            .sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
