//! `ruse sticker` (RP2 stickers under random views) and `ruse patch` (a universal patch): optimise,
//! then measure on held-out random views drawn from another seed stream, next to the clean views
//! and a random-noise sticker of the same mask; write JSON and a PNG grid.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_attack::eot::{sign_view, Scene, ViewSampler};
use ruse_attack::mask::Mask;
use ruse_attack::patch::{PatchShape, UniversalPatch};
use ruse_attack::sticker::{
    apply_sticker, goal_rate, predict_views, printed, random_sticker, LabeledView, StickerAttack,
};
use ruse_attack::Model;
use ruse_data::signs::{
    canonical_sign, random_background, texture_size, SignsSpec, ViewParams, CLASSES,
};
use ruse_data::Dataset;
use serde_json::{json, Value};

use crate::cli::{PatchArgs, StickerArgs};
use crate::model::load_for_attack;

/// Seed streams: optimisation (and its check views), held-out views, the random control.
const TRAIN_STREAM: u64 = 0;
const HELD_OUT_STREAM: u64 = 1;
const CONTROL_STREAM: u64 = 2;
const BACKGROUND_STREAM: u64 = 3;

/// A seeded generator on one of the streams above.
pub(super) fn stream(seed: u64, s: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(s);
    rng
}

/// A class given by name (as the dataset calls it) or by number.
pub(super) fn class_index(spec: &str, data: &Dataset, k: usize) -> Result<usize> {
    let spec = spec.trim();
    let c = match data.class_names.iter().position(|n| n == spec) {
        Some(c) => c,
        None => spec.parse::<usize>().with_context(|| {
            format!(
                "'{spec}' is neither a class number nor a class name of this data ({})",
                data.class_names.join(", ")
            )
        })?,
    };
    if c >= k {
        bail!(
            "class {c} is not one of the model's {k} classes (0..{})",
            k - 1
        );
    }
    Ok(c)
}

/// The object a sticker goes on, with how it is seen.
pub(super) struct StickerObject {
    /// Clean texture, C×Ht×Wt.
    pub texture: Vec<f32>,
    /// Its true class.
    pub label: usize,
    /// Where and how it is rendered.
    pub scene: Scene,
    /// Random views of it.
    pub views: ViewSource,
}

/// Where random views come from.
pub(super) enum ViewSource {
    /// ruse's generic view ranges, over the scene's only background.
    Sampler(ViewSampler),
    /// The traffic-sign dataset's own view distribution; backgrounds `0..half` serve the
    /// optimisation, `half..2·half` the held-out views.
    Signs { half: usize },
}

impl StickerObject {
    /// A random view of the object: over the optimisation's backgrounds, or the held-out ones.
    pub fn draw(&self, rng: &mut ChaCha8Rng, held_out: bool) -> LabeledView {
        let sc = &self.scene;
        let view = match &self.views {
            ViewSource::Sampler(s) => s.sample(sc.tex_hw, sc.out_hw, sc.channels, 0, rng),
            ViewSource::Signs { half } => {
                let p = ViewParams::sample(rng);
                let b = rng.random_range(0..*half) + if held_out { *half } else { 0 };
                sign_view(&p, sc.tex_hw[0], sc.out_hw[0], b)
            }
        };
        LabeledView {
            view,
            label: self.label,
        }
    }
}

/// The data spec's signs settings, when the data is `signs:…`.
pub(super) fn signs_spec(data: &str) -> Result<Option<SignsSpec>> {
    match data.strip_prefix("signs:") {
        Some(rest) => Ok(Some(SignsSpec::parse(rest)?)),
        None => Ok(None),
    }
}

/// The canonical sign of class `label` (its frontal texture at twice the image size) seen under
/// the dataset's own view distribution, over `backgrounds` random street backgrounds per stream.
pub(super) fn sign_object(
    spec: &SignsSpec,
    label: usize,
    domain: (f32, f32),
    seed: u64,
    backgrounds: usize,
) -> Result<StickerObject> {
    let class = *CLASSES
        .get(label)
        .with_context(|| format!("class {label} is not a sign class"))?;
    let tex = texture_size(spec.size);
    let (texture, alpha) = canonical_sign(class, tex);
    let mut rng = stream(seed, BACKGROUND_STREAM);
    let bgs = (0..2 * backgrounds)
        .map(|_| random_background(spec.size, &mut rng))
        .collect();
    Ok(StickerObject {
        texture,
        label,
        scene: Scene {
            channels: 3,
            tex_hw: [tex, tex],
            alpha,
            out_hw: [spec.size, spec.size],
            backgrounds: bgs,
            domain,
            supersample: 2,
        },
        views: ViewSource::Signs { half: backgrounds },
    })
}

/// Image `index` of `data` as a flat object seen under [`ViewSampler::image`], on a background of
/// the image's mean border colour (black for MNIST).
pub(super) fn image_object(data: &Dataset, index: usize, domain: (f32, f32)) -> StickerObject {
    let [c, h, w] = data.shape();
    let img = data.image(index).to_vec();
    let border = |ch: usize| {
        let px: Vec<f32> = (0..h * w)
            .filter(|p| p / w == 0 || p / w == h - 1 || p % w == 0 || p % w == w - 1)
            .map(|p| img[ch * h * w + p])
            .collect();
        px.iter().sum::<f32>() / px.len().max(1) as f32
    };
    let bg: Vec<f32> = (0..c).flat_map(|ch| vec![border(ch); h * w]).collect();
    StickerObject {
        texture: img,
        label: data.labels[index],
        scene: Scene {
            channels: c,
            tex_hw: [h, w],
            alpha: vec![1.0; h * w],
            out_hw: [h, w],
            backgrounds: vec![bg],
            domain,
            supersample: 1,
        },
        views: ViewSource::Sampler(ViewSampler::image()),
    }
}

/// Measured sticker: rates on held-out views and the images behind them.
pub(super) struct StickerResult {
    pub clean_accuracy: f32,
    pub success: f32,
    pub printed_success: f32,
    pub control_success: f32,
    pub check_rate: f32,
    pub stickered: Vec<f32>,
    pub printed: Vec<f32>,
    pub control: Vec<f32>,
    pub held_out: Vec<LabeledView>,
    pub clean_preds: Vec<usize>,
    pub preds: Vec<usize>,
    pub seconds: f64,
    pub forwards: u64,
    pub gradients: u64,
    pub history: Vec<(usize, f32, f32)>,
}

/// Optimises a sticker on `obj` inside `mask`, then scores it on `held_out` fresh views.
#[allow(clippy::too_many_arguments)]
pub(super) fn sticker_experiment(
    model: &Model,
    obj: &StickerObject,
    mask: &Mask,
    attack: &StickerAttack,
    target: Option<usize>,
    held_out: usize,
    seed: u64,
    batch: usize,
) -> Result<StickerResult> {
    let scene = &obj.scene;
    let c = scene.channels;
    let draw = |rng: &mut ChaCha8Rng| obj.draw(rng, false);
    let mut rng = stream(seed, TRAIN_STREAM);
    let check: Vec<LabeledView> = (0..64).map(|_| draw(&mut rng)).collect();
    let run = attack.optimise(
        model,
        scene,
        &obj.texture,
        mask,
        draw,
        &check,
        target,
        &mut rng,
    )?;
    let mut held_rng = stream(seed, HELD_OUT_STREAM);
    let held: Vec<LabeledView> = (0..held_out)
        .map(|_| obj.draw(&mut held_rng, true))
        .collect();
    let stickered = apply_sticker(&obj.texture, &run.sticker, mask);
    let print = apply_sticker(&obj.texture, &printed(&run.sticker, c, mask), mask);
    let control = random_sticker(
        &obj.texture,
        mask,
        scene.domain,
        &mut stream(seed, CONTROL_STREAM),
    );
    let clean_preds = predict_views(model, scene, &obj.texture, &held, batch)?;
    let preds = predict_views(model, scene, &stickered, &held, batch)?;
    let printed_preds = predict_views(model, scene, &print, &held, batch)?;
    let control_preds = predict_views(model, scene, &control, &held, batch)?;
    let clean_accuracy =
        clean_preds.iter().filter(|&&p| p == obj.label).count() as f32 / held.len().max(1) as f32;
    Ok(StickerResult {
        clean_accuracy,
        success: goal_rate(&preds, &held, target),
        printed_success: goal_rate(&printed_preds, &held, target),
        control_success: goal_rate(&control_preds, &held, target),
        check_rate: run.check_rate,
        stickered,
        printed: print,
        control,
        held_out: held,
        clean_preds,
        preds,
        seconds: run.seconds,
        forwards: run.forwards,
        gradients: run.gradients,
        history: run.history,
    })
}

/// Measured universal patch.
pub(super) struct PatchResult {
    pub success: f32,
    pub control_success: f32,
    pub clean_accuracy: f32,
    pub check_rate: f32,
    pub patch: Vec<f32>,
    pub side: usize,
    pub mask: Mask,
    /// Held-out examples: (clean image, patched image, label, prediction).
    pub examples: Vec<(Vec<f32>, Vec<f32>, usize, usize)>,
    pub train_images: usize,
    pub test_images: usize,
    pub seconds: f64,
}

/// Optimises a universal patch on the first `train` images of `data` (other than the target
/// class) and scores it on the next `test` ones, one fresh random placement each.
pub(super) fn patch_experiment(
    model: &Model,
    data: &Dataset,
    patch: &UniversalPatch,
    target: usize,
    (train, test): (usize, usize),
    seed: u64,
    batch: usize,
) -> Result<PatchResult> {
    let n = data.len();
    if n < 2 {
        bail!("a universal patch needs at least 2 images (one to train on, one to test)");
    }
    let split = train.min(n - 1);
    let train_idx: Vec<usize> = (0..split).filter(|&i| data.labels[i] != target).collect();
    let test_idx: Vec<usize> = (split..n.min(split + test))
        .filter(|&i| data.labels[i] != target)
        .collect();
    if train_idx.is_empty() || test_idx.is_empty() {
        bail!("no images of a class other than the target {target} to train or test the patch on");
    }
    let ps = patch.scene(&data.images, data.shape(), model.domain())?;
    let mut rng = stream(seed, TRAIN_STREAM);
    let check: Vec<LabeledView> = (0..64)
        .map(|j| {
            let i = train_idx[j % train_idx.len()];
            patch.place(&ps, i, data.labels[i], &mut rng)
        })
        .collect();
    let base = vec![0.0; data.channels * ps.side * ps.side];
    let run = patch.attack.optimise(
        model,
        &ps.scene,
        &base,
        &ps.mask,
        |r| {
            let i = train_idx[r.random_range(0..train_idx.len())];
            patch.place(&ps, i, data.labels[i], r)
        },
        &check,
        Some(target),
        &mut rng,
    )?;
    let mut held_rng = stream(seed, HELD_OUT_STREAM);
    let held: Vec<LabeledView> = test_idx
        .iter()
        .map(|&i| patch.place(&ps, i, data.labels[i], &mut held_rng))
        .collect();
    let preds = predict_views(model, &ps.scene, &run.sticker, &held, batch)?;
    let control = random_sticker(
        &base,
        &ps.mask,
        model.domain(),
        &mut stream(seed, CONTROL_STREAM),
    );
    let control_preds = predict_views(model, &ps.scene, &control, &held, batch)?;
    let (test_x, _) = data.gather(&test_idx);
    let clean = ruse_attack::model::argmax_rows(
        &test_x
            .chunks(batch.max(1) * data.sample_len())
            .map(|c| model.logits(c))
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
        model.classes(),
    );
    let clean_accuracy = clean
        .iter()
        .zip(&test_idx)
        .filter(|(p, &i)| **p == data.labels[i])
        .count() as f32
        / test_idx.len() as f32;
    let examples = held
        .iter()
        .zip(&preds)
        .take(8)
        .map(|(v, &p)| {
            let pv = ps.scene.prepare(&v.view);
            let img = data.image(v.view.background).to_vec();
            (img, ps.scene.render(&pv, &run.sticker).0, v.label, p)
        })
        .collect();
    Ok(PatchResult {
        success: goal_rate(&preds, &held, Some(target)),
        control_success: goal_rate(&control_preds, &held, Some(target)),
        clean_accuracy,
        check_rate: run.check_rate,
        patch: run.sticker,
        side: ps.side,
        mask: ps.mask,
        examples,
        train_images: train_idx.len(),
        test_images: test_idx.len(),
        seconds: run.seconds,
    })
}

/// One image tile of a PNG strip: pixels C×H×W and the colour of its frame.
pub(super) type Tile = (Vec<f32>, [usize; 3], [u8; 3]);

/// Frame colours: grey (reference), green (correct), red (goal reached), orange (other mistake).
pub(super) const GREY: [u8; 3] = [150, 150, 150];
pub(super) const GREEN: [u8; 3] = [0, 140, 0];
pub(super) const RED: [u8; 3] = [200, 30, 30];
pub(super) const ORANGE: [u8; 3] = [230, 140, 0];

/// Rows of framed tiles as a PNG.
pub(super) fn tiles_png(rows: &[Vec<Tile>], scale: u32) -> Result<Vec<u8>> {
    let cell = |t: &Tile| (t.1[2] as u32 * scale + 4, t.1[1] as u32 * scale + 4);
    let width = rows
        .iter()
        .map(|r| r.iter().map(|t| cell(t).0 + 4).sum::<u32>())
        .max()
        .unwrap_or(1)
        + 4;
    let height = rows
        .iter()
        .map(|r| r.iter().map(|t| cell(t).1).max().unwrap_or(0) + 4)
        .sum::<u32>()
        + 4;
    let mut img = image::RgbImage::from_pixel(width.max(1), height.max(1), image::Rgb([255; 3]));
    let mut y = 4;
    for row in rows {
        let mut x = 4;
        for t in row {
            let (cw, ch) = cell(t);
            for yy in 0..ch {
                for xx in 0..cw {
                    img.put_pixel(x + xx, y + yy, image::Rgb(t.2));
                }
            }
            let [c, h, w] = t.1;
            for py in 0..h * scale as usize {
                for px in 0..w * scale as usize {
                    let (sy, sx) = (py / scale as usize, px / scale as usize);
                    let v = |k: usize| {
                        (t.0[(k * h + sy) * w + sx].clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let rgb = if c >= 3 {
                        [v(0), v(1), v(2)]
                    } else {
                        [v(0); 3]
                    };
                    img.put_pixel(x + 2 + px as u32, y + 2 + py as u32, image::Rgb(rgb));
                }
            }
            x += cw + 4;
        }
        y += row.iter().map(|t| cell(t).1).max().unwrap_or(0) + 4;
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("cannot encode the PNG grid")?;
    Ok(bytes)
}

/// The frame colour of a prediction.
pub(super) fn verdict(pred: usize, label: usize, target: Option<usize>) -> [u8; 3] {
    if pred == label {
        GREEN
    } else if target.is_none() || target == Some(pred) {
        RED
    } else {
        ORANGE
    }
}

/// A rendered view of `texture` (for figures).
pub(super) fn render(obj_scene: &Scene, view: &LabeledView, texture: &[f32]) -> Vec<f32> {
    obj_scene.render(&obj_scene.prepare(&view.view), texture).0
}

/// The mask as an image tile (white = sticker).
pub(super) fn mask_tile(mask: &Mask) -> Tile {
    (mask.as_f32(), [1, mask.height, mask.width], GREY)
}

fn name_of(data: &Dataset, c: usize) -> String {
    data.class_names
        .get(c)
        .cloned()
        .unwrap_or_else(|| c.to_string())
}

/// Picks the object for `ruse sticker`: `--index`, else the first image of `--source` the model
/// classifies correctly (else of any class).
fn pick_image(model: &Model, data: &Dataset, a: &StickerArgs) -> Result<usize> {
    let k = model.classes();
    if let Some(i) = a.index {
        if i >= data.len() {
            bail!("--index {i} is past the last sample ({})", data.len() - 1);
        }
        return Ok(i);
    }
    let want = a
        .source
        .as_deref()
        .map(|s| class_index(s, data, k))
        .transpose()?;
    for i in 0..data.len() {
        if want.is_some_and(|c| data.labels[i] != c) {
            continue;
        }
        let p = ruse_attack::model::argmax_rows(&model.logits(data.image(i))?, k)[0];
        if p == data.labels[i] {
            return Ok(i);
        }
    }
    bail!("no image of the requested class is classified correctly; pick one with --index")
}

/// Runs `ruse sticker`.
pub fn run(a: StickerArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size >= 1, "--batch-size must be ≥ 1");
    anyhow::ensure!(a.views >= 1, "--views must be ≥ 1");
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    let model = Model::new(&m.graph)?;
    let k = model.classes();
    let signs = signs_spec(&a.data.data)?;
    let (obj, index) = match &signs {
        Some(spec) => {
            if a.index.is_some() {
                bail!("--index picks an image; with --data signs:… name the sign with --source");
            }
            let label = match &a.source {
                Some(s) => class_index(s, &data, k)?,
                None => 0,
            };
            (sign_object(spec, label, model.domain(), a.seed, 64)?, None)
        }
        None => {
            let i = pick_image(&model, &data, &a)?;
            (image_object(&data, i, model.domain()), Some(i))
        }
    };
    let mask_spec = a.mask.clone().unwrap_or_else(|| {
        if signs.is_some() {
            "stop-stickers"
        } else {
            "four-rects"
        }
        .to_string()
    });
    let [th, tw] = obj.scene.tex_hw;
    let mask = Mask::parse(&mask_spec, th, tw).with_context(|| format!("--mask '{mask_spec}'"))?;
    let target = a
        .target
        .as_deref()
        .map(|s| class_index(s, &data, k))
        .transpose()?;
    if target == Some(obj.label) {
        bail!(
            "--target is the object's own class ({})",
            name_of(&data, obj.label)
        );
    }
    let attack = StickerAttack {
        steps: a.steps,
        views: a.views_per_step,
        lr: a.lr,
        nps_weight: a.nps,
        tv_weight: a.tv,
        restarts: a.restarts,
        cross_entropy: match a.loss.as_str() {
            "margin" => false,
            "ce" => true,
            other => bail!("unknown --loss '{other}': use margin or ce"),
        },
        ..StickerAttack::default()
    };
    let t0 = Instant::now();
    let r = sticker_experiment(
        &model,
        &obj,
        &mask,
        &attack,
        target,
        a.views,
        a.seed,
        a.batch_size,
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    write_sticker(
        &a,
        &data,
        &obj,
        (&mask, &mask_spec),
        &r,
        target,
        index,
        &m.source,
        seconds,
    )
}

#[allow(clippy::too_many_arguments)]
fn write_sticker(
    a: &StickerArgs,
    data: &Dataset,
    obj: &StickerObject,
    (mask, mask_spec): (&Mask, &str),
    r: &StickerResult,
    target: Option<usize>,
    index: Option<usize>,
    source: &str,
    seconds: f64,
) -> Result<()> {
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let label = obj.label;
    let views: Vec<Value> = r
        .held_out
        .iter()
        .zip(r.clean_preds.iter().zip(&r.preds))
        .map(|(v, (c, p))| json!({"clean_prediction": name_of(data, *c), "sticker_prediction": name_of(data, *p), "background": v.view.background}))
        .collect();
    let report = json!({
        "attack": "rp2-eot",
        "model": source,
        "data": a.data.data,
        "object": {"index": index, "class": name_of(data, label)},
        "target": target.map(|t| name_of(data, t)),
        "mask": mask_spec,
        "mask_pixels": mask.area(),
        "mask_share": mask.area() as f64 / (mask.height * mask.width) as f64,
        "steps": a.steps,
        "views_per_step": a.views_per_step,
        "restarts": a.restarts,
        "loss": a.loss,
        "held_out_views": a.views,
        "seed": a.seed,
        "clean_view_accuracy": r.clean_accuracy,
        "success_rate": r.success,
        "printed_success_rate": r.printed_success,
        "random_sticker_success_rate": r.control_success,
        "check_view_success_rate": r.check_rate,
        "optimisation_seconds": r.seconds,
        "seconds": seconds,
        "forwards": r.forwards,
        "gradients": r.gradients,
        "history": r.history.iter().map(|(s, l, c)| json!({"step": s, "loss": l, "check_success": c})).collect::<Vec<_>>(),
        "views": views,
    });
    let json_path = a.out.join("sticker.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let shape = [obj.scene.channels, obj.scene.tex_hw[0], obj.scene.tex_hw[1]];
    let fshape = [obj.scene.channels, obj.scene.out_hw[0], obj.scene.out_hw[1]];
    let mut rows = vec![vec![
        (obj.texture.clone(), shape, GREY),
        (r.stickered.clone(), shape, GREY),
        (r.printed.clone(), shape, GREY),
        mask_tile(mask),
        (r.control.clone(), shape, GREY),
    ]];
    for chunk in r
        .held_out
        .iter()
        .enumerate()
        .take(a.grid)
        .collect::<Vec<_>>()
        .chunks(8)
    {
        rows.push(
            chunk
                .iter()
                .map(|(i, v)| {
                    (
                        render(&obj.scene, v, &obj.texture),
                        fshape,
                        verdict(r.clean_preds[*i], label, None),
                    )
                })
                .collect(),
        );
        rows.push(
            chunk
                .iter()
                .map(|(i, v)| {
                    (
                        render(&obj.scene, v, &r.stickered),
                        fshape,
                        verdict(r.preds[*i], label, target),
                    )
                })
                .collect(),
        );
    }
    let grid_path = a.out.join("grid.png");
    std::fs::write(&grid_path, tiles_png(&rows, 4)?)
        .with_context(|| format!("cannot write {}", grid_path.display()))?;
    let goal = match target {
        Some(t) => format!("{} → {}", name_of(data, label), name_of(data, t)),
        None => format!("{} → any other class", name_of(data, label)),
    };
    println!(
        "sticker         {goal}, mask {} ({} px, {:.1}% of the texture)",
        mask_spec,
        mask.area(),
        100.0 * mask.area() as f64 / (mask.height * mask.width) as f64
    );
    println!(
        "held-out views  {} (seed stream {HELD_OUT_STREAM}; optimised on stream {TRAIN_STREAM})",
        a.views
    );
    println!(
        "clean views     {:.1}% classified {}",
        100.0 * r.clean_accuracy,
        name_of(data, label)
    );
    println!("sticker         {:.1}% reach the goal", 100.0 * r.success);
    println!(
        "printed sticker {:.1}% (snapped to the printable palette)",
        100.0 * r.printed_success
    );
    println!(
        "random sticker  {:.1}% (control: uniform noise in the same mask)",
        100.0 * r.control_success
    );
    println!(
        "optimisation    {} steps × {} views, {:.1} s",
        a.steps, a.views_per_step, r.seconds
    );
    println!("wrote {} and {}", json_path.display(), grid_path.display());
    println!("grid: row 1 = clean texture | sticker | printed | mask | random control; then pairs of rows: clean views, sticker views (frame green = true class, red = goal, orange = other)");
    Ok(())
}

/// Runs `ruse patch`.
pub fn run_patch(a: PatchArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size >= 1, "--batch-size must be ≥ 1");
    anyhow::ensure!(
        a.steps >= 1 && a.views_per_step >= 1,
        "--steps and --views-per-step must be ≥ 1"
    );
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    let model = Model::new(&m.graph)?;
    let target = class_index(&a.target, &data, model.classes())?;
    let shape: PatchShape = a.shape.parse()?;
    let patch = UniversalPatch {
        area: a.area,
        shape,
        attack: StickerAttack {
            steps: a.steps,
            views: a.views_per_step,
            lr: a.lr,
            ..UniversalPatch::default().attack
        },
        ..UniversalPatch::default()
    };
    let r = patch_experiment(
        &model,
        &data,
        &patch,
        target,
        (a.train, a.test),
        a.seed,
        a.batch_size,
    )?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let report = json!({
        "attack": patch.name(),
        "model": m.source,
        "data": a.data.data,
        "target": name_of(&data, target),
        "shape": a.shape,
        "area": a.area,
        "patch_side": r.side,
        "seed": a.seed,
        "train_images": r.train_images,
        "test_images": r.test_images,
        "clean_accuracy_test": r.clean_accuracy,
        "success_rate": r.success,
        "random_patch_success_rate": r.control_success,
        "check_success_rate": r.check_rate,
        "optimisation_seconds": r.seconds,
    });
    let json_path = a.out.join("patch.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let c = data.channels;
    let pshape = [c, r.side, r.side];
    let masked: Vec<f32> = r
        .patch
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if r.mask.inside[i % (r.side * r.side)] {
                *v
            } else {
                1.0
            }
        })
        .collect();
    let mut rows = vec![vec![(masked, pshape, GREY)]];
    rows.push(
        r.examples
            .iter()
            .map(|e| (e.0.clone(), data.shape(), GREY))
            .collect(),
    );
    rows.push(
        r.examples
            .iter()
            .map(|e| (e.1.clone(), data.shape(), verdict(e.3, e.2, Some(target))))
            .collect(),
    );
    let grid_path = a.out.join("grid.png");
    std::fs::write(&grid_path, tiles_png(&rows, 4)?)
        .with_context(|| format!("cannot write {}", grid_path.display()))?;
    println!(
        "universal patch {:?}, {:.0}% of the image, target {}",
        shape,
        100.0 * a.area,
        name_of(&data, target)
    );
    println!(
        "trained on      {} images; tested on {} other images, fresh placements",
        r.train_images, r.test_images
    );
    println!(
        "clean accuracy  {:.1}% (test images, no patch)",
        100.0 * r.clean_accuracy
    );
    println!(
        "patch           {:.1}% classified {}",
        100.0 * r.success,
        name_of(&data, target)
    );
    println!(
        "random patch    {:.1}% (control)",
        100.0 * r.control_success
    );
    println!(
        "optimisation    {} steps × {} placements, {:.1} s",
        a.steps, a.views_per_step, r.seconds
    );
    println!("wrote {} and {}", json_path.display(), grid_path.display());
    Ok(())
}
