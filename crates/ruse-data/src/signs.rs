//! Synthetic traffic signs (`--data signs:SEED[:N[:SIZE]]`), rendered on the fly, seeded.
//!
//! No real traffic-sign set is available offline, so ruse draws one: each class has a frontal
//! *canonical* texture (shape, colours and text, the text set in the bundled DejaVu Sans Bold),
//! which is placed in a random scene by [`render_view`]: random background, scale, position,
//! in-plane rotation, out-of-plane tilt (a perspective warp), lighting, blur and sensor noise.
//! The same [`canonical_sign`] / [`ViewParams`] / [`render_view`] pipeline is public so a sticker
//! attack can paint on the texture and render it under the views the dataset itself uses.
//!
//! Sample `i` of a split is drawn from its own ChaCha8 stream (seed = SEED, stream = split and
//! index), so a prefix of a larger set equals the smaller set, and train and test never share a
//! stream. Labels cycle through the classes (`i mod K`), so every prefix is balanced.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::warp::{Homography, WarpPlan};
use crate::{DataError, Dataset, Split};

/// DejaVu Sans Bold (Bitstream Vera licence, see assets/fonts/LICENSE-DejaVu.txt).
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

/// Default image side in pixels.
pub const DEFAULT_SIZE: usize = 32;
/// Default number of test samples when the spec gives none.
pub const DEFAULT_TEST_LEN: usize = 1000;
/// Default number of train samples when the spec gives none.
pub const DEFAULT_TRAIN_LEN: usize = 20_000;
/// Largest number of samples a spec may ask for (keeps memory bounded: 1M × 3×32×32 f32 = 12 GB
/// would already be too much, so the cap is 200k).
pub const MAX_LEN: usize = 200_000;
/// Smallest and largest accepted image side.
pub const SIZE_RANGE: (usize, usize) = (16, 128);

/// The sign classes, in label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignClass {
    /// Red octagon, white border, "STOP".
    Stop,
    /// Inverted white triangle with a red border.
    Yield,
    /// Speed limit: white disc, red ring, black number (km/h).
    Speed(u32),
    /// Red disc with a white horizontal bar.
    NoEntry,
    /// Blue disc, red ring and red diagonal slash.
    NoParking,
    /// Blue square, white triangle, walking figure over a zebra crossing.
    Pedestrian,
    /// Blue disc with a white arrow pointing down and right.
    KeepRight,
    /// Yellow diamond with white and black borders.
    Priority,
    /// White disc, red ring, black left arrow struck through in red.
    NoLeftTurn,
}

/// All classes, indexed by label.
pub const CLASSES: [SignClass; 12] = [
    SignClass::Stop,
    SignClass::Yield,
    SignClass::Speed(30),
    SignClass::Speed(45),
    SignClass::Speed(60),
    SignClass::Speed(80),
    SignClass::NoEntry,
    SignClass::NoParking,
    SignClass::Pedestrian,
    SignClass::KeepRight,
    SignClass::Priority,
    SignClass::NoLeftTurn,
];

impl SignClass {
    /// The class name used in reports, e.g. `stop`, `speed 45`.
    pub fn name(self) -> String {
        match self {
            SignClass::Stop => "stop".into(),
            SignClass::Yield => "yield".into(),
            SignClass::Speed(v) => format!("speed {v}"),
            SignClass::NoEntry => "no entry".into(),
            SignClass::NoParking => "no parking".into(),
            SignClass::Pedestrian => "pedestrian crossing".into(),
            SignClass::KeepRight => "keep right".into(),
            SignClass::Priority => "priority road".into(),
            SignClass::NoLeftTurn => "no left turn".into(),
        }
    }

    /// The label of this class (its index in [`CLASSES`]).
    pub fn label(self) -> usize {
        CLASSES.iter().position(|&c| c == self).unwrap_or(0)
    }
}

/// The class names, indexed by label.
pub fn class_names() -> Vec<String> {
    CLASSES.iter().map(|c| c.name()).collect()
}

/// A parsed `signs:` spec: the part after the colon, `SEED[:N[:SIZE]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignsSpec {
    /// Seed of the whole set.
    pub seed: u64,
    /// Samples in the split (default [`DEFAULT_TEST_LEN`] / [`DEFAULT_TRAIN_LEN`]).
    pub len: Option<usize>,
    /// Image side in pixels (default [`DEFAULT_SIZE`]).
    pub size: usize,
}

impl SignsSpec {
    /// Parses `SEED[:N[:SIZE]]`, e.g. `7`, `7:5000`, `7:1000:64`.
    pub fn parse(text: &str) -> Result<Self, DataError> {
        let err = |detail: String| DataError::Parse {
            what: "signs spec",
            input: format!("signs:{text}"),
            detail,
        };
        let parts: Vec<&str> = text.split(':').map(str::trim).collect();
        if parts.len() > 3 {
            return Err(err(
                "expected signs:SEED[:N[:SIZE]], e.g. signs:0:1000:32".into()
            ));
        }
        let seed: u64 = parts[0]
            .parse()
            .map_err(|_| err(format!("seed {:?} is not a non-negative integer", parts[0])))?;
        let len = match parts.get(1) {
            None => None,
            Some(s) => {
                let n: usize = s.parse().map_err(|_| {
                    err(format!("sample count {s:?} is not a non-negative integer"))
                })?;
                if n == 0 || n > MAX_LEN {
                    return Err(err(format!(
                        "sample count {n} is out of range; use 1..={MAX_LEN}"
                    )));
                }
                Some(n)
            }
        };
        let size = match parts.get(2) {
            None => DEFAULT_SIZE,
            Some(s) => {
                let v: usize = s
                    .parse()
                    .map_err(|_| err(format!("image size {s:?} is not a non-negative integer")))?;
                if !(SIZE_RANGE.0..=SIZE_RANGE.1).contains(&v) {
                    return Err(err(format!(
                        "image size {v} is out of range; use {}..={} (32 or 64 are typical)",
                        SIZE_RANGE.0, SIZE_RANGE.1
                    )));
                }
                v
            }
        };
        Ok(SignsSpec { seed, len, size })
    }
}

/// Renders `split` of the signs set described by `spec` (`SEED[:N[:SIZE]]`), keeping at most
/// `limit` samples; only the samples kept are drawn.
pub fn load_signs(spec: &str, split: Split, limit: Option<usize>) -> Result<Dataset, DataError> {
    let s = SignsSpec::parse(spec)?;
    let len = s.len.unwrap_or(match split {
        Split::Test => DEFAULT_TEST_LEN,
        Split::Train => DEFAULT_TRAIN_LEN,
    });
    let n = limit.map_or(len, |l| l.min(len));
    let size = s.size;
    let textures: Vec<(Vec<f32>, Vec<f32>)> = CLASSES
        .iter()
        .map(|&c| canonical_sign(c, texture_size(size)))
        .collect();
    let sample_len = 3 * size * size;
    let mut images = Vec::with_capacity(n * sample_len);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % CLASSES.len();
        let mut rng = sample_rng(s.seed, split, i);
        let background = random_background(size, &mut rng);
        let view = ViewParams::sample(&mut rng);
        let (tex, alpha) = &textures[label];
        images.extend(render_view(tex, alpha, &background, size, &view));
        labels.push(label);
    }
    Ok(Dataset {
        name: format!("signs:{}/{split}", spec.trim()),
        images,
        labels,
        channels: 3,
        height: size,
        width: size,
        num_classes: CLASSES.len(),
        class_names: class_names(),
    })
}

/// The canonical texture side used for `size`-pixel images: twice the image side, so the
/// supersampled render never magnifies the texture.
pub fn texture_size(size: usize) -> usize {
    2 * size
}

/// The random stream of sample `index` of `split`: one ChaCha8 stream per (split, index).
pub fn sample_rng(seed: u64, split: Split, index: usize) -> ChaCha8Rng {
    let tag: u64 = match split {
        Split::Train => 1,
        Split::Test => 2,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((tag << 48) | index as u64);
    rng
}

/// An RGB colour in [0,1].
type Rgb = [f32; 3];

const RED: Rgb = [0.80, 0.08, 0.10];
const WHITE: Rgb = [0.96, 0.96, 0.94];
const BLACK: Rgb = [0.05, 0.05, 0.06];
const BLUE: Rgb = [0.05, 0.30, 0.70];
const YELLOW: Rgb = [0.98, 0.78, 0.08];

/// A square RGBA drawing surface in sign coordinates: `u`, `v` ∈ [-1, 1], `v` pointing down.
struct Canvas {
    n: usize,
    rgb: Vec<f32>,
    alpha: Vec<f32>,
}

/// Sub-samples per pixel side for shape coverage (antialiasing).
const SUPER: usize = 4;

impl Canvas {
    fn new(n: usize) -> Self {
        Canvas {
            n,
            rgb: vec![0.0; 3 * n * n],
            alpha: vec![0.0; n * n],
        }
    }

    /// Sign coordinate of sub-sample `k` of pixel `p`.
    fn coord(&self, p: usize, k: usize) -> f32 {
        ((p * SUPER + k) as f32 + 0.5) / (self.n * SUPER) as f32 * 2.0 - 1.0
    }

    /// Blends `color` with coverage `c` into pixel `(x, y)`.
    fn blend(&mut self, x: usize, y: usize, color: Rgb, c: f32) {
        let nn = self.n * self.n;
        let i = y * self.n + x;
        for (ch, &col) in color.iter().enumerate() {
            let v = &mut self.rgb[ch * nn + i];
            *v = *v * (1.0 - c) + col * c;
        }
        self.alpha[i] += c * (1.0 - self.alpha[i]);
    }

    /// Paints `color` wherever `inside(u, v)` holds, antialiased by supersampling.
    fn paint(&mut self, color: Rgb, inside: impl Fn(f32, f32) -> bool) {
        let total = (SUPER * SUPER) as f32;
        for y in 0..self.n {
            for x in 0..self.n {
                let mut hits = 0;
                for ky in 0..SUPER {
                    let v = self.coord(y, ky);
                    for kx in 0..SUPER {
                        if inside(self.coord(x, kx), v) {
                            hits += 1;
                        }
                    }
                }
                if hits > 0 {
                    self.blend(x, y, color, hits as f32 / total);
                }
            }
        }
    }

    /// Sets `text` in DejaVu Sans Bold, centred at `(cu, cv)`, as large as fits `max_w`×`max_h`
    /// (sign units).
    fn text(&mut self, text: &str, (cu, cv): (f32, f32), (max_w, max_h): (f32, f32), color: Rgb) {
        let font = font();
        let px_per_unit = self.n as f32 / 2.0;
        // Lay out at a reference size, measure the ink, then scale to fit the box.
        let measure = |px: f32| {
            let glyphs = layout(font, text, px);
            let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
            for g in &glyphs {
                if let Some(o) = font.outline_glyph(g.clone()) {
                    let b = o.px_bounds();
                    x0 = x0.min(b.min.x);
                    y0 = y0.min(b.min.y);
                    x1 = x1.max(b.max.x);
                    y1 = y1.max(b.max.y);
                }
            }
            (glyphs, x0, y0, x1, y1)
        };
        let (_, x0, y0, x1, y1) = measure(100.0);
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let k = (max_w * px_per_unit / (x1 - x0)).min(max_h * px_per_unit / (y1 - y0));
        let (glyphs, x0, y0, x1, y1) = measure(100.0 * k);
        let target = ((cu + 1.0) * px_per_unit, (cv + 1.0) * px_per_unit);
        let (dx, dy) = (target.0 - (x0 + x1) / 2.0, target.1 - (y0 + y1) / 2.0);
        for g in glyphs {
            let mut g = g;
            g.position = point(g.position.x + dx, g.position.y + dy);
            if let Some(o) = font.outline_glyph(g) {
                let b = o.px_bounds();
                let n = self.n as i64;
                o.draw(|x, y, c| {
                    let (px, py) = (b.min.x as i64 + x as i64, b.min.y as i64 + y as i64);
                    if px >= 0 && py >= 0 && px < n && py < n && c > 0.0 {
                        self.blend(px as usize, py as usize, color, c.min(1.0));
                    }
                });
            }
        }
    }
}

/// The bundled font, parsed once.
fn font() -> &'static FontRef<'static> {
    static F: OnceLock<FontRef<'static>> = OnceLock::new();
    // The font is compiled in and known to parse; failure would be a broken build, not bad input.
    F.get_or_init(|| FontRef::try_from_slice(FONT).expect("the bundled DejaVu font parses"))
}

/// Glyphs of `text` on one baseline at `px` pixels, with kerning.
fn layout(font: &FontRef<'static>, text: &str, px: f32) -> Vec<ab_glyph::Glyph> {
    let scaled = font.as_scaled(PxScale::from(px));
    let mut x = 0.0;
    let mut prev = None;
    let mut out = Vec::new();
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            x += scaled.kern(p, id);
        }
        out.push(id.with_scale_and_position(px, point(x, scaled.ascent())));
        x += scaled.h_advance(id);
        prev = Some(id);
    }
    out
}

/// Inside the regular `k`-gon of circumradius `r` with a vertex at angle `phase`.
fn in_polygon(u: f32, v: f32, k: usize, r: f32, phase: f32) -> bool {
    let apothem = r * (std::f32::consts::PI / k as f32).cos();
    (0..k).all(|i| {
        // Edge normals sit halfway between vertices.
        let a = phase + (i as f32 + 0.5) * std::f32::consts::TAU / k as f32;
        u * a.cos() + v * a.sin() <= apothem
    })
}

/// Inside the triangle `a`, `b`, `c` (either winding).
fn in_triangle(p: (f32, f32), a: (f32, f32), b: (f32, f32), c: (f32, f32)) -> bool {
    let side = |p: (f32, f32), q: (f32, f32), r: (f32, f32)| {
        (q.0 - p.0) * (r.1 - p.1) - (q.1 - p.1) * (r.0 - p.0)
    };
    let (d1, d2, d3) = (side(a, b, p), side(b, c, p), side(c, a, p));
    !((d1 < 0.0 || d2 < 0.0 || d3 < 0.0) && (d1 > 0.0 || d2 > 0.0 || d3 > 0.0))
}

/// Within `w` of the segment `a`–`b` (a capsule).
fn near_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32), w: f32) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t =
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy).max(1e-12)).clamp(0.0, 1.0);
    let (ex, ey) = (p.0 - a.0 - t * dx, p.1 - a.1 - t * dy);
    ex * ex + ey * ey <= w * w
}

/// Inside an arrow pointing along +u (shaft then head), after rotating by `angle`.
fn in_arrow(u: f32, v: f32, angle: f32, len: f32, shaft: f32, head: f32) -> bool {
    let (s, c) = angle.sin_cos();
    // Rotate the point by -angle into the arrow's frame.
    let (x, y) = (u * c + v * s, -u * s + v * c);
    let neck = len * 0.5 - head;
    let in_shaft = x >= -len * 0.5 && x <= neck && y.abs() <= shaft;
    let in_head = in_triangle((x, y), (neck, -head), (len * 0.5, 0.0), (neck, head));
    in_shaft || in_head
}

fn disc(r: f32) -> impl Fn(f32, f32) -> bool {
    move |u, v| u * u + v * v <= r * r
}

/// The frontal sign of `class` on a transparent `size`×`size` canvas: (RGB 3×size×size, alpha
/// size×size), both in [0,1]; RGB is not premultiplied (undefined where alpha is 0, set to 0).
pub fn canonical_sign(class: SignClass, size: usize) -> (Vec<f32>, Vec<f32>) {
    let mut c = Canvas::new(size.max(1));
    match class {
        SignClass::Stop => {
            let phase = std::f32::consts::PI / 8.0;
            c.paint(WHITE, |u, v| in_polygon(u, v, 8, 0.98, phase));
            c.paint(RED, |u, v| in_polygon(u, v, 8, 0.88, phase));
            c.text("STOP", (0.0, 0.0), (1.3, 0.55), WHITE);
        }
        SignClass::Yield => {
            let (a, b, d) = ((-0.98, -0.8), (0.98, -0.8), (0.0, 0.9));
            c.paint(RED, |u, v| in_triangle((u, v), a, b, d));
            // The white inside: the outer triangle shrunk about its centroid.
            let cy = (a.1 + b.1 + d.1) / 3.0;
            let shrink = |p: (f32, f32)| (p.0 * 0.55, cy + (p.1 - cy) * 0.55);
            let (a2, b2, d2) = (shrink(a), shrink(b), shrink(d));
            c.paint(WHITE, |u, v| in_triangle((u, v), a2, b2, d2));
        }
        SignClass::Speed(limit) => {
            c.paint(RED, disc(0.98));
            c.paint(WHITE, disc(0.74));
            c.text(&limit.to_string(), (0.0, 0.0), (1.05, 0.72), BLACK);
        }
        SignClass::NoEntry => {
            c.paint(RED, disc(0.98));
            c.paint(WHITE, |u, v| u.abs() <= 0.68 && v.abs() <= 0.17);
        }
        SignClass::NoParking => {
            c.paint(RED, disc(0.98));
            c.paint(BLUE, disc(0.76));
            c.paint(RED, |u, v| {
                u * u + v * v <= 0.77 * 0.77 && near_segment((u, v), (-0.6, -0.6), (0.6, 0.6), 0.1)
            });
        }
        SignClass::Pedestrian => {
            c.paint(BLUE, |u, v| u.abs() <= 0.95 && v.abs() <= 0.95);
            c.paint(WHITE, |u, v| {
                in_triangle((u, v), (0.0, -0.8), (-0.82, 0.66), (0.82, 0.66))
            });
            c.paint(BLACK, |u, v| {
                let p = (u, v);
                let stripe = (0.44..=0.54).contains(&v) && ((u + 0.6) / 0.24).rem_euclid(2.0) < 1.0;
                stripe && u.abs() <= 0.6
                    || (u - 0.02).powi(2) + (v + 0.3).powi(2) <= 0.085 * 0.085
                    || near_segment(p, (0.0, -0.18), (-0.04, 0.12), 0.055)
                    || near_segment(p, (-0.04, 0.12), (-0.22, 0.38), 0.05)
                    || near_segment(p, (-0.04, 0.12), (0.14, 0.38), 0.05)
                    || near_segment(p, (0.0, -0.12), (-0.2, 0.04), 0.04)
                    || near_segment(p, (0.0, -0.12), (0.2, 0.0), 0.04)
            });
        }
        SignClass::KeepRight => {
            c.paint(WHITE, disc(0.98));
            c.paint(BLUE, disc(0.92));
            let down_right = std::f32::consts::FRAC_PI_4;
            c.paint(WHITE, |u, v| in_arrow(u, v, down_right, 1.2, 0.12, 0.3));
        }
        SignClass::Priority => {
            c.paint(WHITE, |u, v| u.abs() + v.abs() <= 0.98);
            c.paint(BLACK, |u, v| u.abs() + v.abs() <= 0.9);
            c.paint(WHITE, |u, v| u.abs() + v.abs() <= 0.84);
            c.paint(YELLOW, |u, v| u.abs() + v.abs() <= 0.6);
        }
        SignClass::NoLeftTurn => {
            c.paint(RED, disc(0.98));
            c.paint(WHITE, disc(0.76));
            c.paint(BLACK, |u, v| {
                in_arrow(u, v, std::f32::consts::PI, 1.0, 0.1, 0.26)
            });
            c.paint(RED, |u, v| {
                u * u + v * v <= 0.77 * 0.77 && near_segment((u, v), (-0.6, -0.6), (0.6, 0.6), 0.09)
            });
        }
    }
    let nn = c.n * c.n;
    // Straight (not premultiplied) colour: divide out the coverage accumulated at the rim.
    for i in 0..nn {
        let a = c.alpha[i];
        for ch in 0..3 {
            let v = &mut c.rgb[ch * nn + i];
            *v = if a > 1e-6 {
                (*v / a).clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
    }
    (c.rgb, c.alpha)
}

/// How one sign is seen: placement, pose, lighting and sensor effects. [`ViewParams::sample`]
/// draws the distribution the dataset uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewParams {
    /// Sign width as a fraction of the image side.
    pub scale: f64,
    /// Sign centre offset from the image centre, as fractions of the image side.
    pub shift: (f64, f64),
    /// In-plane rotation, radians.
    pub angle: f64,
    /// Turn about the vertical axis (out of plane), radians.
    pub yaw: f64,
    /// Tilt about the horizontal axis (out of plane), radians.
    pub pitch: f64,
    /// Multiplicative brightness.
    pub brightness: f32,
    /// Contrast about mid-grey (1 = unchanged).
    pub contrast: f32,
    /// Per-channel colour cast (multiplies R, G, B).
    pub cast: [f32; 3],
    /// Gaussian blur sigma in output pixels (0 = sharp).
    pub blur: f32,
    /// Standard deviation of additive Gaussian pixel noise.
    pub noise: f32,
    /// Seed of the pixel noise, so a view renders the same every time.
    pub noise_seed: u64,
}

impl ViewParams {
    /// A frontal, centred, neutral view filling 80% of the image.
    pub fn frontal() -> Self {
        ViewParams {
            scale: 0.8,
            shift: (0.0, 0.0),
            angle: 0.0,
            yaw: 0.0,
            pitch: 0.0,
            brightness: 1.0,
            contrast: 1.0,
            cast: [1.0; 3],
            blur: 0.0,
            noise: 0.0,
            noise_seed: 0,
        }
    }

    /// Draws a view from the dataset's distribution: scale 0.55–0.95, shift ±8%, rotation ±12°,
    /// yaw/pitch ±35°, brightness 0.55–1.3, contrast 0.7–1.2, cast ±10%, blur 0–0.8 px, noise
    /// 0–0.04.
    pub fn sample(rng: &mut impl Rng) -> Self {
        let deg = std::f64::consts::PI / 180.0;
        ViewParams {
            scale: rng.random_range(0.55..0.95),
            shift: (rng.random_range(-0.08..0.08), rng.random_range(-0.08..0.08)),
            angle: rng.random_range(-12.0..12.0) * deg,
            yaw: rng.random_range(-35.0..35.0) * deg,
            pitch: rng.random_range(-35.0..35.0) * deg,
            brightness: rng.random_range(0.55..1.3),
            contrast: rng.random_range(0.7..1.2),
            cast: [0; 3].map(|_| rng.random_range(0.9..1.1)),
            blur: rng.random_range(0.0..0.8),
            noise: rng.random_range(0.0..0.04),
            noise_seed: rng.random(),
        }
    }

    /// The homography taking texture pixels (a `tex`×`tex` canonical sign) to pixels of an
    /// `out`×`out` image: tilt (projected from a camera 3 sign-widths away), in-plane rotation,
    /// scale and shift.
    pub fn homography(&self, tex: usize, out: usize) -> Homography {
        let half = (tex as f64 - 1.0) / 2.0;
        let corners = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)];
        let (sy, cy) = self.yaw.sin_cos();
        let (sp, cp) = self.pitch.sin_cos();
        let (sa, ca) = self.angle.sin_cos();
        let radius = self.scale * out as f64 / 2.0;
        let centre = (
            (out as f64 - 1.0) / 2.0 + self.shift.0 * out as f64,
            (out as f64 - 1.0) / 2.0 + self.shift.1 * out as f64,
        );
        let distance = 6.0;
        let dst = corners.map(|(u, v): (f64, f64)| {
            // Yaw about the v axis, then pitch about the u axis, then perspective division.
            let (x, z) = (u * cy, u * sy);
            let (y, z) = (v * cp - z * sp, v * sp + z * cp);
            let f = distance / (distance + z);
            let (x, y) = (x * f, y * f);
            let (x, y) = (x * ca - y * sa, x * sa + y * ca);
            (centre.0 + x * radius, centre.1 + y * radius)
        });
        let src = corners.map(|(u, v)| (half + u * half, half + v * half));
        // Four corners of a square under a proper rotation are never degenerate; fall back to
        // a plain placement should rounding ever make them so.
        Homography::from_quad(src, dst).unwrap_or_else(|| {
            Homography::translation(centre.0, centre.1)
                .after(&Homography::scale(radius / half, radius / half))
                .after(&Homography::translation(-half, -half))
        })
    }
}

/// Renders a sign texture (`texture` RGB 3×T×T, `alpha` T×T, T = √len(alpha)) over `background`
/// (RGB 3×`size`×`size`) as seen in `view`; returns RGB 3×`size`×`size` in [0,1].
///
/// The sign is warped at twice the output resolution and box-filtered down (antialiasing),
/// composited with its alpha, then lighting, blur and noise act on the whole scene, like a
/// camera would. Panics when the slice lengths disagree.
pub fn render_view(
    texture: &[f32],
    alpha: &[f32],
    background: &[f32],
    size: usize,
    view: &ViewParams,
) -> Vec<f32> {
    let tex = (alpha.len() as f64).sqrt().round() as usize;
    assert!(
        tex * tex == alpha.len() && texture.len() == 3 * alpha.len(),
        "render_view: texture and alpha must be 3×T×T and T×T"
    );
    assert_eq!(
        background.len(),
        3 * size * size,
        "render_view: background must be 3×size×size"
    );
    let work = 2 * size;
    let plan = WarpPlan::new(&view.homography(tex, work), [tex, tex], [work, work]);
    let tn = tex * tex;
    let mut premult = Vec::with_capacity(4 * tn);
    for ch in 0..3 {
        premult.extend(
            texture[ch * tn..(ch + 1) * tn]
                .iter()
                .zip(alpha)
                .map(|(t, a)| t * a),
        );
    }
    premult.extend_from_slice(alpha);
    let warped = pool2(&plan.apply(&premult, 0.0), 4, work);
    let on = size * size;
    let a = &warped[3 * on..];
    let mut out = vec![0f32; 3 * on];
    for ch in 0..3 {
        let gain = view.cast[ch] * view.brightness;
        for i in 0..on {
            let v = warped[ch * on + i] + (1.0 - a[i]) * background[ch * on + i];
            out[ch * on + i] = (v * gain - 0.5) * view.contrast + 0.5;
        }
    }
    if view.blur > 0.05 {
        out = gaussian_blur(&out, 3, size, view.blur);
    }
    if view.noise > 0.0 {
        let mut rng = ChaCha8Rng::seed_from_u64(view.noise_seed);
        for v in out.iter_mut() {
            *v += view.noise * gaussian(&mut rng);
        }
    }
    out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    out
}

/// Averages 2×2 blocks of a C×`n`×`n` image into C×(n/2)×(n/2).
fn pool2(img: &[f32], c: usize, n: usize) -> Vec<f32> {
    let m = n / 2;
    let mut out = vec![0f32; c * m * m];
    for ch in 0..c {
        let src = &img[ch * n * n..(ch + 1) * n * n];
        for y in 0..m {
            for x in 0..m {
                let s = src[2 * y * n + 2 * x]
                    + src[2 * y * n + 2 * x + 1]
                    + src[(2 * y + 1) * n + 2 * x]
                    + src[(2 * y + 1) * n + 2 * x + 1];
                out[ch * m * m + y * m + x] = s * 0.25;
            }
        }
    }
    out
}

/// Separable Gaussian blur of a C×`n`×`n` image, borders clamped.
pub fn gaussian_blur(img: &[f32], c: usize, n: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(1.0) as i64;
    let kernel: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let clamp = |i: i64| i.clamp(0, n as i64 - 1) as usize;
    let mut tmp = vec![0f32; img.len()];
    let mut out = vec![0f32; img.len()];
    for ch in 0..c {
        let (src, t) = (
            &img[ch * n * n..(ch + 1) * n * n],
            &mut tmp[ch * n * n..(ch + 1) * n * n],
        );
        for y in 0..n {
            for x in 0..n {
                t[y * n + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * src[y * n + clamp(x as i64 + k as i64 - r)])
                    .sum();
            }
        }
        let o = &mut out[ch * n * n..(ch + 1) * n * n];
        for y in 0..n {
            for x in 0..n {
                o[y * n + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * t[clamp(y as i64 + k as i64 - r) * n + x])
                    .sum();
            }
        }
    }
    out
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A random street-scene-like background, RGB 3×`size`×`size` in [0,1]: a sky gradient, foliage
/// blobs, a smooth colour-noise texture or building blocks, each with fine grain.
pub fn random_background(size: usize, rng: &mut impl Rng) -> Vec<f32> {
    let n = size;
    let nn = n * n;
    let mut img = vec![0f32; 3 * nn];
    let rand_rgb = |rng: &mut dyn rand::RngCore, lo: Rgb, hi: Rgb| -> Rgb {
        [0, 1, 2].map(|c| lo[c] + (hi[c] - lo[c]) * rng.random::<f32>())
    };
    let put = |img: &mut Vec<f32>, i: usize, c: Rgb| {
        for ch in 0..3 {
            img[ch * nn + i] = c[ch];
        }
    };
    match rng.random_range(0..4u8) {
        0 => {
            // Sky: a vertical gradient between two blues/greys, slightly tilted, maybe a horizon.
            let top = rand_rgb(rng, [0.2, 0.4, 0.6], [0.6, 0.75, 0.98]);
            let bottom = rand_rgb(rng, [0.6, 0.6, 0.6], [0.95, 0.95, 0.98]);
            let tilt: f32 = rng.random_range(-0.3..0.3);
            let horizon: f32 = rng.random_range(0.5..1.6);
            let ground = rand_rgb(rng, [0.2, 0.2, 0.15], [0.5, 0.5, 0.4]);
            for y in 0..n {
                for x in 0..n {
                    let t = ((y as f32 + tilt * x as f32) / n as f32).clamp(0.0, 1.0);
                    let c = if t > horizon {
                        ground
                    } else {
                        [0, 1, 2].map(|k| top[k] * (1.0 - t) + bottom[k] * t)
                    };
                    put(&mut img, y * n + x, c);
                }
            }
        }
        1 => {
            // Foliage: a green/brown base under many soft colour blobs.
            let base = rand_rgb(rng, [0.1, 0.2, 0.05], [0.35, 0.5, 0.25]);
            for i in 0..nn {
                put(&mut img, i, base);
            }
            for _ in 0..rng.random_range(10..30) {
                let c = rand_rgb(rng, [0.05, 0.15, 0.0], [0.6, 0.7, 0.35]);
                let (bx, by) = (
                    rng.random::<f32>() * n as f32,
                    rng.random::<f32>() * n as f32,
                );
                let r = rng.random_range(0.05..0.25) * n as f32;
                for y in 0..n {
                    for x in 0..n {
                        let d2 = (x as f32 - bx).powi(2) + (y as f32 - by).powi(2);
                        let w = (-d2 / (2.0 * r * r)).exp();
                        for ch in 0..3 {
                            let v = &mut img[ch * nn + y * n + x];
                            *v = *v * (1.0 - w) + c[ch] * w;
                        }
                    }
                }
            }
        }
        2 => {
            // Smooth colour noise: random colours on a coarse grid, bilinearly upsampled.
            let g = rng.random_range(2..6usize);
            let grid: Vec<Rgb> = (0..(g + 1) * (g + 1))
                .map(|_| rand_rgb(rng, [0.0; 3], [1.0; 3]))
                .collect();
            for y in 0..n {
                for x in 0..n {
                    let (fx, fy) = (
                        x as f32 / n as f32 * g as f32,
                        y as f32 / n as f32 * g as f32,
                    );
                    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
                    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
                    let at = |i: usize, j: usize| grid[j * (g + 1) + i];
                    let c = [0, 1, 2].map(|k| {
                        (at(x0, y0)[k] * (1.0 - tx) + at(x0 + 1, y0)[k] * tx) * (1.0 - ty)
                            + (at(x0, y0 + 1)[k] * (1.0 - tx) + at(x0 + 1, y0 + 1)[k] * tx) * ty
                    });
                    put(&mut img, y * n + x, c);
                }
            }
        }
        _ => {
            // Buildings: a grey base with random grey, brick and window rectangles.
            let base = rand_rgb(rng, [0.3, 0.3, 0.3], [0.7, 0.7, 0.7]);
            for i in 0..nn {
                put(&mut img, i, base);
            }
            for _ in 0..rng.random_range(3..10) {
                let c = rand_rgb(rng, [0.2, 0.15, 0.1], [0.85, 0.8, 0.8]);
                let (x0, y0) = (rng.random_range(0..n), rng.random_range(0..n));
                let (w, h) = (rng.random_range(1..=n / 2), rng.random_range(1..=n / 2));
                for y in y0..(y0 + h).min(n) {
                    for x in x0..(x0 + w).min(n) {
                        put(&mut img, y * n + x, c);
                    }
                }
            }
        }
    }
    let grain: f32 = rng.random_range(0.0..0.06);
    for v in img.iter_mut() {
        *v = (*v + grain * (rng.random::<f32>() - 0.5)).clamp(0.0, 1.0);
    }
    img
}
