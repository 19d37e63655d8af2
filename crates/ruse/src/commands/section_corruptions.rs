//! `ruse audit --sections corruptions`: accuracy under the 15 common corruptions at severities
//! 1–5 (Hendrycks & Dietterich 2019), the mean corruption error and a figure of samples.
//!
//! Cost: 75 corrupted copies of the audited data, one forward pass each (about 75 000 model
//! evaluations on the bundled 1000 MNIST images); `--limit` bounds it.

use anyhow::Result;
use rayon::prelude::*;
use ruse_attack::model::argmax_rows;
use ruse_data::corruptions::{corrupt_dataset, sample_rng, Corruption, ALL, MAX_SEVERITY};
use ruse_data::Dataset;
use ruse_report::{Figure, Image, Section};
use serde_json::json;

use super::sections::SectionContext;

/// The type whose five severities the figure shows.
const SHOWCASE: Corruption = Corruption::Fog;

/// [`corrupt_dataset`] over chunks of samples on the thread pool; the per-sample seeds make the
/// result independent of the chunking.
fn corrupt_parallel(data: &Dataset, c: Corruption, severity: usize, seed: u64) -> Result<Dataset> {
    let idx: Vec<usize> = (0..data.len()).collect();
    let parts = idx
        .par_chunks(64)
        .map(|chunk| corrupt_dataset(data, c, severity, seed, Some(chunk)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Dataset {
        name: format!("{}/{c}-{severity}", data.name),
        images: Vec::with_capacity(data.images.len()),
        labels: Vec::with_capacity(data.len()),
        channels: data.channels,
        height: data.height,
        width: data.width,
        num_classes: data.num_classes,
        class_names: data.class_names.clone(),
    };
    for p in parts {
        out.images.extend(p.images);
        out.labels.extend(p.labels);
    }
    Ok(out)
}

/// Share of `data` the model labels correctly.
fn accuracy(ctx: &SectionContext, data: &Dataset) -> Result<f64> {
    let d = data.sample_len();
    let k = ctx.model.classes();
    let mut correct = 0usize;
    for (xs, ys) in data
        .images
        .chunks(ctx.batch.max(1) * d)
        .zip(data.labels.chunks(ctx.batch.max(1)))
    {
        let pred = argmax_rows(&ctx.model.logits(xs)?, k);
        correct += pred.iter().zip(ys).filter(|(p, y)| p == y).count();
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// Accuracy per corruption and severity, mCE and relative mCE, with sample images.
pub fn corruptions(ctx: &SectionContext) -> Result<Section> {
    let t0 = std::time::Instant::now();
    let data = ctx.data;
    let clean = accuracy(ctx, data)?;
    let mut rows = Vec::new();
    let mut per_type = serde_json::Map::new();
    let (mut ce_sum, mut rel_sum) = (0.0, 0.0);
    for c in ALL {
        let mut accs = Vec::with_capacity(MAX_SEVERITY);
        for s in 1..=MAX_SEVERITY {
            let corrupted = corrupt_parallel(data, c, s, ctx.seed)?;
            accs.push(accuracy(ctx, &corrupted)?);
        }
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let ce = 1.0 - mean;
        ce_sum += ce;
        rel_sum += ce - (1.0 - clean);
        let mut row = vec![c.name().to_string(), c.family().to_string()];
        row.extend(accs.iter().map(|a| format!("{:.1}%", 100.0 * a)));
        row.push(format!("{:.1}%", 100.0 * mean));
        rows.push(row);
        per_type.insert(
            c.name().into(),
            json!({"family": c.family(), "accuracy_per_severity": accs, "mean_accuracy": mean, "corruption_error": ce}),
        );
    }
    let n_types = ALL.len() as f64;
    let mce = ce_sum / n_types;
    let rel_mce = rel_sum / n_types;
    let mut all_row = vec!["mean (mCE = 1 − this)".to_string(), String::new()];
    all_row.extend(std::iter::repeat_n(String::new(), MAX_SEVERITY));
    all_row.push(format!("{:.1}%", 100.0 * (1.0 - mce)));
    rows.push(all_row);
    let mut columns = vec!["corruption".to_string(), "family".to_string()];
    columns.extend((1..=MAX_SEVERITY).map(|s| format!("sev {s}")));
    columns.push("mean".into());
    let figures = figures(data, ctx.seed)?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(Section {
        id: "corruptions".into(),
        title: "Common corruptions".into(),
        summary: format!(
            "Accuracy on the {} audited samples under the 15 CIFAR-10-C corruptions (Hendrycks & \
             Dietterich 2019) at severities 1–5, seed {} (frost uses a synthesised texture). \
             Clean accuracy {:.1}%. Mean corruption error (mean error over types and severities) \
             {:.1}%; relative mCE (mean over types of the type's error minus the clean error) {:.1} \
             points. Unlike the paper, errors are not normalised by AlexNet's. ({seconds:.0} s; \
             `--limit` bounds the cost.)",
            data.len(),
            ctx.seed,
            100.0 * clean,
            100.0 * mce,
            100.0 * rel_mce
        ),
        columns,
        rows,
        numbers: json!({
            "n": data.len(),
            "seed": ctx.seed,
            "clean_accuracy": clean,
            "mce": mce,
            "relative_mce": rel_mce,
            "mean_corrupted_accuracy": 1.0 - mce,
            "per_type": per_type,
            "seconds": seconds,
        }),
        figures,
    })
}

/// One sample under every type at severity 3, and under one type at severities 1–5.
fn figures(data: &Dataset, seed: u64) -> Result<Vec<Figure>> {
    let shape = data.shape();
    if data.is_empty() || !(shape[0] == 1 || shape[0] == 3) {
        return Ok(Vec::new());
    }
    let x = data.image(0);
    let clean = Image {
        pixels: x.to_vec(),
        shape,
        label: "clean".into(),
    };
    let mut every = vec![clean.clone()];
    for c in ALL {
        let mut rng = sample_rng(seed, c, 3, 0);
        every.push(Image {
            pixels: c.apply(x, shape, 3, &mut rng)?,
            shape,
            label: c.name().into(),
        });
    }
    let mut ramp = vec![clean];
    for s in 1..=MAX_SEVERITY {
        let mut rng = sample_rng(seed, SHOWCASE, s, 0);
        ramp.push(Image {
            pixels: SHOWCASE.apply(x, shape, s, &mut rng)?,
            shape,
            label: format!("{SHOWCASE} {s}"),
        });
    }
    Ok(vec![
        Figure {
            caption: "Sample 0 under every corruption at severity 3".into(),
            images: every,
        },
        Figure {
            caption: format!("Sample 0 under {SHOWCASE} at severities 1–5"),
            images: ramp,
        },
    ])
}
