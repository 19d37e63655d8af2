//! Audit section `stickers`: physical-world stickers (RP2 with Expectation over Transformation)
//! and a universal patch, scored on held-out random views, next to the clean views and a
//! random-noise sticker of the same mask.
//!
//! On traffic-sign data (`--data signs:…`) the sticker goes on the canonical stop sign: three
//! strips across the letters (`stop-strips`) and four RP2-like stickers above and below the word
//! (`stop-stickers`), targeted at "speed 45" when the model has that class, and the four
//! stickers untargeted. On other data it goes on the first few correctly classified images of
//! different classes (`four-rects` in image coordinates), untargeted. The universal patch (a disc
//! of 10% of the image area) aims at the class that random-noise patches already push the model
//! towards most often, and is trained on the first half of the audited samples and tested on the
//! second half. Knobs (fixed, to keep the default cost near 30 s on the bundled model, 2 cores):
//! 150 Adam steps × 12 views per sticker, 150 steps × 32 placements for the patch, 100 held-out
//! views per sticker; `ruse sticker` / `ruse patch` expose them all.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use rand::Rng;
use ruse_attack::mask::Mask;
use ruse_attack::model::argmax_rows;
use ruse_attack::patch::{PatchShape, UniversalPatch};
use ruse_attack::sticker::{random_sticker, StickerAttack};
use ruse_data::Dataset;
use ruse_report::{Figure, Image, Section};
use serde_json::json;

use super::sections::SectionContext;
use super::sticker::{
    image_object, patch_experiment, render, sign_object, signs_spec, sticker_experiment, stream,
    StickerObject,
};

/// Images that get a sticker on non-sign data.
const IMAGES: usize = 3;
/// Held-out views per sticker.
const HELD_OUT: usize = 100;
/// Held-out views shown per sticker.
const SHOWN: usize = 4;

fn name(data: &Dataset, c: usize) -> String {
    data.class_names
        .get(c)
        .cloned()
        .unwrap_or_else(|| c.to_string())
}

fn pct(v: f32) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The `stickers` section.
pub fn stickers(ctx: &SectionContext) -> Result<Section> {
    let t0 = Instant::now();
    let (model, data) = (ctx.model, ctx.data);
    let k = model.classes();
    let attack = StickerAttack {
        steps: 150,
        views: 12,
        ..StickerAttack::default()
    };
    // Which objects get which sticker: (object, mask preset, target).
    let mut jobs: Vec<(StickerObject, &str, Option<usize>)> = Vec::new();
    let spec = data
        .name
        .split('/')
        .next()
        .map(signs_spec)
        .transpose()?
        .flatten();
    if let Some(spec) = &spec {
        let stop = sign_object(spec, 0, model.domain(), ctx.seed, 32)?;
        let target = data.class_names.iter().position(|n| n == "speed 45");
        if let Some(t) = target.filter(|&t| t < k) {
            jobs.push((
                sign_object(spec, 0, model.domain(), ctx.seed, 32)?,
                "stop-strips",
                Some(t),
            ));
            jobs.push((
                sign_object(spec, 0, model.domain(), ctx.seed, 32)?,
                "stop-stickers",
                Some(t),
            ));
        }
        jobs.push((stop, "stop-stickers", None));
    } else {
        let mut seen = Vec::new();
        for i in 0..data.len() {
            if seen.len() == IMAGES {
                break;
            }
            let y = data.labels[i];
            if seen.contains(&y) {
                continue;
            }
            if argmax_rows(&model.logits(data.image(i))?, k)[0] == y {
                seen.push(y);
                jobs.push((image_object(data, i, model.domain()), "four-rects", None));
            }
        }
    }
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    let mut numbers = Vec::new();
    for (obj, preset, target) in &jobs {
        let [th, tw] = obj.scene.tex_hw;
        let mask = Mask::parse(preset, th, tw)?;
        let r = sticker_experiment(
            model, obj, &mask, &attack, *target, HELD_OUT, ctx.seed, ctx.batch,
        )?;
        let goal = match target {
            Some(t) => format!("{} → {}", name(data, obj.label), name(data, *t)),
            None => format!("{} → any other", name(data, obj.label)),
        };
        let share = mask.area() as f32 / (th * tw) as f32;
        rows.push(vec![
            "sticker (RP2, EOT)".into(),
            goal.clone(),
            format!("{preset} ({})", pct(share)),
            pct(r.clean_accuracy),
            pct(r.success),
            pct(r.printed_success),
            pct(r.control_success),
            format!("{:.1}", r.seconds),
        ]);
        numbers.push(json!({
            "kind": "sticker", "class": name(data, obj.label), "target": target.map(|t| name(data, t)),
            "mask": preset, "mask_share": share, "held_out_views": HELD_OUT,
            "clean_view_accuracy": r.clean_accuracy, "success_rate": r.success,
            "printed_success_rate": r.printed_success, "random_sticker_success_rate": r.control_success,
            "seconds": r.seconds,
        }));
        let shape = [obj.scene.channels, th, tw];
        let fshape = [obj.scene.channels, obj.scene.out_hw[0], obj.scene.out_hw[1]];
        let mut images = vec![
            Image {
                pixels: obj.texture.clone(),
                shape,
                label: "clean".into(),
            },
            Image {
                pixels: r.stickered.clone(),
                shape,
                label: "sticker".into(),
            },
            Image {
                pixels: mask.as_f32(),
                shape: [1, th, tw],
                label: "mask".into(),
            },
            Image {
                pixels: r.control.clone(),
                shape,
                label: "random sticker".into(),
            },
        ];
        for (v, p) in r.held_out.iter().zip(&r.preds).take(SHOWN) {
            images.push(Image {
                pixels: render(&obj.scene, v, &r.stickered),
                shape: fshape,
                label: format!("view: {}", name(data, *p)),
            });
        }
        figures.push(Figure {
            caption: format!(
                "{goal}: texture, sticker, mask, random control, held-out views (prediction)"
            ),
            images,
        });
    }
    // Universal patch: the first half of the samples trains it, the second half tests it.
    if data.len() >= 4 {
        let patch = UniversalPatch {
            area: 0.1,
            shape: PatchShape::Disc,
            attack: StickerAttack {
                steps: 150,
                ..UniversalPatch::default().attack
            },
            ..UniversalPatch::default()
        };
        let half = data.len() / 2;
        let target = easiest_target(ctx, &patch, half)?;
        let r = patch_experiment(
            model,
            data,
            &patch,
            target,
            (half, data.len() - half),
            ctx.seed,
            ctx.batch,
        )?;
        rows.push(vec![
            "universal patch".into(),
            format!("any → {}", name(data, target)),
            "disc (10.0%)".into(),
            pct(r.clean_accuracy),
            pct(r.success),
            "–".into(),
            pct(r.control_success),
            format!("{:.1}", r.seconds),
        ]);
        numbers.push(json!({
            "kind": "universal_patch", "target": name(data, target), "shape": "disc", "area": 0.1,
            "train_images": r.train_images, "test_images": r.test_images,
            "clean_accuracy": r.clean_accuracy, "success_rate": r.success,
            "random_patch_success_rate": r.control_success, "seconds": r.seconds,
        }));
        let shape = data.shape();
        let hw = r.side * r.side;
        let mut images = vec![Image {
            pixels: r
                .patch
                .iter()
                .enumerate()
                .map(|(i, v)| if r.mask.inside[i % hw] { *v } else { 1.0 })
                .collect(),
            shape: [data.channels, r.side, r.side],
            label: "patch".into(),
        }];
        for e in r.examples.iter().take(6) {
            images.push(Image {
                pixels: e.1.clone(),
                shape,
                label: format!("{} → {}", name(data, e.2), name(data, e.3)),
            });
        }
        figures.push(Figure {
            caption: format!("universal patch for {}: the patch, then held-out images with it (true → predicted)", name(data, target)),
            images,
        });
    }
    let mut settings = BTreeMap::new();
    settings.insert("sticker_steps", attack.steps);
    settings.insert("sticker_views_per_step", attack.views);
    settings.insert("held_out_views", HELD_OUT);
    Ok(Section {
        id: "stickers".into(),
        title: "Stickers and patches under physical transformations".into(),
        summary: format!(
            "RP2 stickers (Eykholt et al. 2018): a perturbation confined to a mask, optimised with Expectation over Transformation (random perspective, scale, rotation, lighting, blur, noise; printability and smoothness penalties), then scored on {HELD_OUT} held-out random views from another seed stream. 'clean views' is the accuracy on those views without a sticker, 'success' the share reaching the goal with the sticker, 'printed' with the sticker snapped to a printable palette, 'random' with uniform noise in the same mask (control). The universal patch (Brown et al. 2017) is one disc pasted at random positions, rotations and scales on images it was not trained on. {:.0} s in all.",
            t0.elapsed().as_secs_f64()
        ),
        columns: ["attack", "goal", "mask", "clean views", "success", "printed", "random", "seconds"]
            .map(String::from)
            .to_vec(),
        rows,
        numbers: json!({"results": numbers, "settings": settings, "seconds": t0.elapsed().as_secs_f64()}),
        figures,
    })
}

/// The class random-noise patches push the model towards most often on the training half:
/// the patch's natural target (ties: the lowest class).
fn easiest_target(ctx: &SectionContext, patch: &UniversalPatch, half: usize) -> Result<usize> {
    let (model, data) = (ctx.model, ctx.data);
    let ps = patch.scene(&data.images, data.shape(), model.domain())?;
    let mut rng = stream(ctx.seed, 4);
    let k = model.classes();
    let mut counts = vec![0usize; k];
    let base = vec![0.0; data.channels * ps.side * ps.side];
    let mut frames = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..64 {
        let i = rng.random_range(0..half.max(1));
        let noise = random_sticker(&base, &ps.mask, model.domain(), &mut rng);
        let v = patch.place(&ps, i, data.labels[i], &mut rng);
        frames.extend(ps.scene.render(&ps.scene.prepare(&v.view), &noise).0);
        labels.push(data.labels[i]);
    }
    for (p, y) in argmax_rows(&model.logits(&frames)?, k)
        .into_iter()
        .zip(labels)
    {
        if p != y {
            counts[p] += 1;
        }
    }
    Ok((0..k)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0))
}
