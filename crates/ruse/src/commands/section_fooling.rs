//! `ruse audit --sections fooling`: fooling images (Nguyen et al. 2015) for every class of the
//! audited model, grown from noise by gradient ascent, direct-encoding evolution and CPPN
//! evolution, with the confidence each reaches and what it cost.
//!
//! Cost: at most 200 gradient steps per class, and at most 20 000 model evaluations per class
//! for each evolution (a few seconds in all on the bundled default and mnist-pgdat models).

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::fooling::{
    confidences, Ascent, Cppn, DirectImage, Evolution, FoolingImage, FOOLING_CONFIDENCE,
};
use ruse_report::{Figure, Image, Section};
use serde_json::json;

use super::sections::SectionContext;

/// Gradient steps per class.
const STEPS: usize = 200;
/// Evolution budget per class (model evaluations).
const QUERIES_PER_CLASS: u64 = 20_000;

/// Fooling images per class and method, re-checked by a fresh forward pass.
pub fn fooling(ctx: &SectionContext) -> Result<Section> {
    let model = ctx.model;
    let k = model.classes();
    let shape: [usize; 3] = match model.input_shape() {
        [c, h, w] if *c == 1 || *c == 3 => [*c, *h, *w],
        s => anyhow::bail!(
            "the fooling section needs a model taking 1- or 3-channel images, not {s:?}"
        ),
    };
    let classes: Vec<usize> = (0..k).collect();
    let domain = model.domain();
    let d = model.input_len();
    let evo = Evolution {
        max_queries: QUERIES_PER_CLASS * k as u64,
        ..Evolution::default()
    };
    let runs: Vec<(&str, Vec<FoolingImage>)> = vec![
        (
            "gradient",
            Ascent {
                steps: STEPS,
                ..Ascent::default()
            }
            .run(model, &classes, &mut ChaCha8Rng::seed_from_u64(ctx.seed))?,
        ),
        (
            "direct",
            evo.run(
                model,
                &classes,
                |r| DirectImage::random(d, domain, r),
                &mut ChaCha8Rng::seed_from_u64(ctx.seed),
            )?,
        ),
        (
            "cppn",
            evo.run(
                model,
                &classes,
                |r| Cppn::random(8, shape[0], r),
                &mut ChaCha8Rng::seed_from_u64(ctx.seed),
            )?,
        ),
    ];
    let mut checked = Vec::new();
    for (_, found) in &runs {
        let x: Vec<f32> = found.iter().flat_map(|f| f.image.iter().copied()).collect();
        checked.push(confidences(model, &x, &classes)?);
    }
    let rows: Vec<Vec<String>> = classes
        .iter()
        .map(|&c| {
            let mut row = vec![c.to_string()];
            for ((name, found), conf) in runs.iter().zip(&checked) {
                let cost = if *name == "gradient" {
                    format!("{} steps", found[c].steps)
                } else {
                    format!("{} q", found[c].queries)
                };
                row.push(format!("{:.2}% ({cost})", 100.0 * conf[c]));
            }
            row
        })
        .collect();
    let fooled: Vec<usize> = checked
        .iter()
        .map(|conf| conf.iter().filter(|&&p| p >= FOOLING_CONFIDENCE).count())
        .collect();
    let mut numbers = serde_json::Map::new();
    for (((name, found), conf), n) in runs.iter().zip(&checked).zip(&fooled) {
        numbers.insert(
            (*name).into(),
            json!({
                "fooled": n,
                "per_class": found.iter().zip(conf).map(|(f, p)| json!({
                    "class": f.class, "confidence": p, "steps": f.steps, "queries": f.queries,
                    "success": *p >= FOOLING_CONFIDENCE,
                })).collect::<Vec<_>>(),
            }),
        );
    }
    numbers.insert("seed".into(), json!(ctx.seed));
    let unit = |x: &[f32]| -> Vec<f32> {
        x.iter()
            .map(|v| (v - domain.0) / (domain.1 - domain.0))
            .collect()
    };
    let figures = runs
        .iter()
        .zip(&checked)
        .map(|((name, found), conf)| Figure {
            caption: format!("{name}: one image per class, labelled class and confidence"),
            images: found
                .iter()
                .zip(conf)
                .map(|(f, p)| Image {
                    pixels: unit(&f.image),
                    shape,
                    label: format!("{} {:.1}%", f.class, (1000.0 * p).floor() / 10.0),
                })
                .collect(),
        })
        .collect();
    Ok(Section {
        id: "fooling".into(),
        title: "Fooling images".into(),
        summary: format!(
            "Images grown from uniform noise that the model labels as each class with ≥ 99% \
             confidence (Nguyen et al. 2015): gradient ascent on the class log-probability (≤ {STEPS} \
             steps), and MAP-Elites evolution with one elite per class using a direct pixel encoding \
             and a CPPN encoding (≤ {QUERIES_PER_CLASS} model evaluations per class; q = evaluations \
             the shared run had spent when the class first reached the bar). Seed {}. Fooled \
             classes: gradient {}/{k}, direct {}/{k}, cppn {}/{k}. `ruse fool` writes these images \
             as PNGs.",
            ctx.seed, fooled[0], fooled[1], fooled[2]
        ),
        columns: vec![
            "class".into(),
            "gradient".into(),
            "direct".into(),
            "cppn".into(),
        ],
        rows,
        numbers: serde_json::Value::Object(numbers),
        figures,
    })
}
