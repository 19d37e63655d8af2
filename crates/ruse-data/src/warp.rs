//! Image geometry on C×H×W f32 images: 3×3 homographies, bilinear warping and its adjoint.
//!
//! Coordinates are `(x, y)` = (column, row) with pixel centres at integers, so the centre of a
//! W×H image is `((W-1)/2, (H-1)/2)`. A [`Homography`] maps a *source* point to an *output*
//! point; [`warp`] walks the output pixels and samples the source at `H⁻¹·p` (inverse mapping,
//! so every output pixel gets exactly one value). The warp of a fixed geometry is linear in the
//! image, so it has a transpose, [`WarpPlan::adjoint`], which scatters an output gradient back
//! onto the source pixels: that is how gradients reach a texture or a patch through a warp.

/// A 3×3 projective transform (row-major), mapping source points to output points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography(pub [f64; 9]);

impl Default for Homography {
    fn default() -> Self {
        Homography::identity()
    }
}

impl Homography {
    /// The identity map.
    pub fn identity() -> Self {
        Homography([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    }

    /// Shift by `(tx, ty)` pixels.
    pub fn translation(tx: f64, ty: f64) -> Self {
        Homography([1.0, 0.0, tx, 0.0, 1.0, ty, 0.0, 0.0, 1.0])
    }

    /// Scale by `sx` horizontally and `sy` vertically about the origin.
    pub fn scale(sx: f64, sy: f64) -> Self {
        Homography([sx, 0.0, 0.0, 0.0, sy, 0.0, 0.0, 0.0, 1.0])
    }

    /// Rotation by `angle` radians about the origin; positive turns +x towards +y (clockwise on
    /// screen, since y points down).
    pub fn rotation(angle: f64) -> Self {
        let (s, c) = angle.sin_cos();
        Homography([c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0])
    }

    /// Perspective tilt: the bottom row becomes `(px, py, 1)`, so points with larger `px·x + py·y`
    /// shrink towards the origin (the far side of a tilted plane).
    pub fn perspective(px: f64, py: f64) -> Self {
        Homography([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, px, py, 1.0])
    }

    /// `self ∘ first`: the map that applies `first`, then `self`.
    pub fn after(&self, first: &Homography) -> Self {
        let (a, b) = (&self.0, &first.0);
        let mut m = [0.0; 9];
        for r in 0..3 {
            for c in 0..3 {
                m[r * 3 + c] = (0..3).map(|k| a[r * 3 + k] * b[k * 3 + c]).sum();
            }
        }
        Homography(m)
    }

    /// `self` conjugated to act about `(cx, cy)` instead of the origin: shift the centre to the
    /// origin, apply `self`, shift back.
    pub fn about(&self, cx: f64, cy: f64) -> Self {
        Homography::translation(cx, cy)
            .after(self)
            .after(&Homography::translation(-cx, -cy))
    }

    /// The inverse map, or `None` when the matrix is (numerically) singular.
    pub fn inverse(&self) -> Option<Self> {
        let m = &self.0;
        let cof = [
            m[4] * m[8] - m[5] * m[7],
            m[2] * m[7] - m[1] * m[8],
            m[1] * m[5] - m[2] * m[4],
            m[5] * m[6] - m[3] * m[8],
            m[0] * m[8] - m[2] * m[6],
            m[2] * m[3] - m[0] * m[5],
            m[3] * m[7] - m[4] * m[6],
            m[1] * m[6] - m[0] * m[7],
            m[0] * m[4] - m[1] * m[3],
        ];
        let det = m[0] * cof[0] + m[1] * cof[3] + m[2] * cof[6];
        let scale = m.iter().fold(0f64, |a, v| a.max(v.abs())).max(1e-300);
        if !det.is_finite() || det.abs() <= 1e-12 * scale.powi(3) {
            return None;
        }
        Some(Homography(cof.map(|v| v / det)))
    }

    /// Maps the point `(x, y)`; returns non-finite coordinates for points sent to infinity.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let m = &self.0;
        let w = m[6] * x + m[7] * y + m[8];
        (
            (m[0] * x + m[1] * y + m[2]) / w,
            (m[3] * x + m[4] * y + m[5]) / w,
        )
    }

    /// The homography taking the four corners `src` to the four points `dst` (each `(x, y)`),
    /// or `None` when three of either set are collinear.
    pub fn from_quad(src: [(f64, f64); 4], dst: [(f64, f64); 4]) -> Option<Self> {
        // Each correspondence gives two linear equations in the 8 unknowns (h33 = 1).
        let mut a = [[0f64; 9]; 8];
        for (i, (&(x, y), &(u, v))) in src.iter().zip(dst.iter()).enumerate() {
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        // Gauss–Jordan elimination with partial pivoting on the 8×8 system.
        for col in 0..8 {
            let pivot = (col..8).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
            if a[pivot][col].abs() < 1e-12 {
                return None;
            }
            a.swap(col, pivot);
            let d = a[col][col];
            a[col].iter_mut().for_each(|v| *v /= d);
            for r in 0..8 {
                if r != col {
                    let f = a[r][col];
                    if f != 0.0 {
                        let pivot_row = a[col];
                        a[r].iter_mut()
                            .zip(pivot_row)
                            .for_each(|(v, p)| *v -= f * p);
                    }
                }
            }
        }
        let mut m = [1.0; 9];
        for (k, row) in a.iter().enumerate() {
            m[k] = row[8];
        }
        Some(Homography(m))
    }
}

/// The sampling geometry of one warp, precomputed: for each output pixel the (up to) four source
/// pixels and their bilinear weights. Reusing a plan across channels, images and the adjoint is
/// what keeps forward and transpose exactly consistent.
#[derive(Debug, Clone)]
pub struct WarpPlan {
    src_hw: [usize; 2],
    out_hw: [usize; 2],
    /// Per output pixel: four (flat source index, weight) taps; out-of-image taps have weight 0.
    taps: Vec<[(u32, f32); 4]>,
    /// Per output pixel: the source point sampled, `(x, y)` (non-finite when sent to infinity).
    points: Vec<(f32, f32)>,
}

impl WarpPlan {
    /// Plans the warp of a `src_hw` = [H, W] image by `h` (source → output) onto an `out_hw` grid.
    /// A singular `h` gives a plan whose every pixel is fill.
    pub fn new(h: &Homography, src_hw: [usize; 2], out_hw: [usize; 2]) -> Self {
        let [sh, sw] = src_hw;
        let inv = h.inverse();
        let n = out_hw[0] * out_hw[1];
        let mut taps = Vec::with_capacity(n);
        let mut points = Vec::with_capacity(n);
        for oy in 0..out_hw[0] {
            for ox in 0..out_hw[1] {
                let (sx, sy) = match &inv {
                    Some(m) => m.apply(ox as f64, oy as f64),
                    None => (f64::NAN, f64::NAN),
                };
                points.push((sx as f32, sy as f32));
                taps.push(bilinear_taps(sx, sy, sh, sw));
            }
        }
        WarpPlan {
            src_hw,
            out_hw,
            taps,
            points,
        }
    }

    /// Source image size [H, W].
    pub fn src_hw(&self) -> [usize; 2] {
        self.src_hw
    }

    /// Output image size [H, W].
    pub fn out_hw(&self) -> [usize; 2] {
        self.out_hw
    }

    /// The source point `(x, y)` sampled by each output pixel, row-major.
    pub fn source_points(&self) -> &[(f32, f32)] {
        &self.points
    }

    /// Warps a C×H×W image (C = `image.len() / (H·W)`): bilinear samples, `fill` where the
    /// source point lies outside the image (blended smoothly across the border pixel).
    ///
    /// Panics when `image.len()` is not a whole number of source-size channels.
    pub fn apply(&self, image: &[f32], fill: f32) -> Vec<f32> {
        let c = self.channels(image.len());
        let (sn, on) = (
            self.src_hw[0] * self.src_hw[1],
            self.out_hw[0] * self.out_hw[1],
        );
        let mut out = vec![0f32; c * on];
        for ch in 0..c {
            let src = &image[ch * sn..(ch + 1) * sn];
            for (o, taps) in out[ch * on..(ch + 1) * on].iter_mut().zip(&self.taps) {
                let mut acc = 0f32;
                let mut covered = 0f32;
                for &(i, w) in taps {
                    acc += w * src[i as usize];
                    covered += w;
                }
                *o = acc + (1.0 - covered) * fill;
            }
        }
        out
    }

    /// The transpose of the linear part of [`WarpPlan::apply`]: scatters a C×H'×W' output
    /// gradient onto the C×H×W source pixels, so `<apply(x, 0), y> = <x, adjoint(y)>`.
    ///
    /// Panics when `grad_out.len()` is not a whole number of output-size channels.
    pub fn adjoint(&self, grad_out: &[f32]) -> Vec<f32> {
        let on = self.out_hw[0] * self.out_hw[1];
        assert!(
            on > 0 && grad_out.len().is_multiple_of(on),
            "warp adjoint: {} values are not whole {:?} channels",
            grad_out.len(),
            self.out_hw
        );
        let c = grad_out.len() / on;
        let sn = self.src_hw[0] * self.src_hw[1];
        let mut g = vec![0f32; c * sn];
        for ch in 0..c {
            let dst = &mut g[ch * sn..(ch + 1) * sn];
            for (&go, taps) in grad_out[ch * on..(ch + 1) * on].iter().zip(&self.taps) {
                for &(i, w) in taps {
                    dst[i as usize] += w * go;
                }
            }
        }
        g
    }

    /// The spatial derivative of the warped image with respect to the sampled source point:
    /// per channel and output pixel, `(∂out/∂sx, ∂out/∂sy)` of the bilinear interpolant (with
    /// `fill` outside the image). Chaining it with `∂s/∂θ` gives gradients w.r.t. warp parameters.
    pub fn point_gradient(&self, image: &[f32], fill: f32) -> (Vec<f32>, Vec<f32>) {
        let c = self.channels(image.len());
        let [sh, sw] = self.src_hw;
        let on = self.out_hw[0] * self.out_hw[1];
        let (mut gx, mut gy) = (vec![0f32; c * on], vec![0f32; c * on]);
        for ch in 0..c {
            let src = &image[ch * sh * sw..(ch + 1) * sh * sw];
            let px = |x: i64, y: i64| -> f32 {
                if x < 0 || y < 0 || x >= sw as i64 || y >= sh as i64 {
                    fill
                } else {
                    src[y as usize * sw + x as usize]
                }
            };
            for (o, &(sx, sy)) in self.points.iter().enumerate() {
                if !sx.is_finite() || !sy.is_finite() {
                    continue;
                }
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                let (a, b) = (px(x0, y0), px(x0 + 1, y0));
                let (cc, d) = (px(x0, y0 + 1), px(x0 + 1, y0 + 1));
                gx[ch * on + o] = (1.0 - fy) * (b - a) + fy * (d - cc);
                gy[ch * on + o] = (1.0 - fx) * (cc - a) + fx * (d - b);
            }
        }
        (gx, gy)
    }

    fn channels(&self, len: usize) -> usize {
        let sn = self.src_hw[0] * self.src_hw[1];
        assert!(
            sn > 0 && len.is_multiple_of(sn),
            "warp: {len} values are not whole {:?} channels",
            self.src_hw
        );
        len / sn
    }
}

/// The four bilinear taps of source point `(x, y)` in an `h`×`w` image; taps outside the image
/// (or for a non-finite point) get weight 0, so the caller blends in the fill value.
fn bilinear_taps(x: f64, y: f64, h: usize, w: usize) -> [(u32, f32); 4] {
    let mut taps = [(0u32, 0f32); 4];
    if !x.is_finite() || !y.is_finite() || x <= -1.0 || y <= -1.0 || x >= w as f64 || y >= h as f64
    {
        return taps;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let corners = [
        (x0, y0, (1.0 - fx) * (1.0 - fy)),
        (x0 + 1, y0, fx * (1.0 - fy)),
        (x0, y0 + 1, (1.0 - fx) * fy),
        (x0 + 1, y0 + 1, fx * fy),
    ];
    for (t, &(cx, cy, wt)) in taps.iter_mut().zip(&corners) {
        if cx >= 0 && cy >= 0 && (cx as usize) < w && (cy as usize) < h {
            *t = ((cy as usize * w + cx as usize) as u32, wt);
        }
    }
    taps
}

/// Warps a C×H×W image (`shape` = [C, H, W]) by `h` (source → output) onto a same-size grid,
/// bilinear, with `fill` outside the source. Panics when `image.len()` ≠ C·H·W.
pub fn warp(image: &[f32], shape: [usize; 3], h: &Homography, fill: f32) -> Vec<f32> {
    let [c, hh, ww] = shape;
    assert_eq!(
        image.len(),
        c * hh * ww,
        "warp: image does not match {shape:?}"
    );
    WarpPlan::new(h, [hh, ww], [hh, ww]).apply(image, fill)
}

/// The transpose of [`warp`] (its linear part, i.e. with fill 0): scatters a C×H×W output
/// gradient back onto the source pixels. Panics when `grad.len()` ≠ C·H·W.
pub fn warp_adjoint(grad: &[f32], shape: [usize; 3], h: &Homography) -> Vec<f32> {
    let [c, hh, ww] = shape;
    assert_eq!(
        grad.len(),
        c * hh * ww,
        "warp_adjoint: gradient does not match {shape:?}"
    );
    WarpPlan::new(h, [hh, ww], [hh, ww]).adjoint(grad)
}

/// Rotation by `angle` radians and then translation by `(tx, ty)` pixels, about the centre of a
/// `h`×`w` image: the spatial transform of Engstrom et al. (2019).
pub fn rotate_translate(angle: f64, tx: f64, ty: f64, h: usize, w: usize) -> Homography {
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    Homography::translation(tx, ty).after(&Homography::rotation(angle).about(cx, cy))
}
