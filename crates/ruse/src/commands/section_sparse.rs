//! `ruse audit --sections sparse`: how many pixels does it take? Success rate against the number
//! of changed pixels k for the one-pixel attack by differential evolution (Su et al. 2019) and
//! Sparse-RS (Croce et al. 2022), on the first `--section-samples` (20) correctly classified
//! samples, every adversarial re-checked by a forward pass.
//!
//! Cost: at most `--query-budget` (1000) model evaluations per sample, k and attack (8 runs):
//! about 160 000 evaluations on 20 MNIST samples in the worst case, less as successes stop
//! early (about 60 s on 2 busy cores).
//! The audit's DE uses a population of 100: with the paper's 400, 1000 queries buy the initial
//! population and one generation. `ruse attack --attack onepixel` keeps the paper's 400.

use anyhow::{ensure, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::model::argmax_rows;
use ruse_attack::onepixel::OnePixel;
use ruse_attack::query::{changed_pixels, queries_per_success};
use ruse_attack::sparse_rs::SparseRs;
use ruse_attack::{Attack, AttackOutcome, Goal, Norm, ThreatModel};
use ruse_report::{Figure, Image, Section};
use serde_json::json;

use super::sections::SectionContext;

/// Pixels tried by the one-pixel DE.
const DE_PIXELS: [usize; 3] = [1, 3, 5];
/// Pixels tried by Sparse-RS.
const RS_PIXELS: [usize; 5] = [1, 3, 5, 10, 20];
/// DE population in the audit.
const DE_POPULATION: usize = 100;
/// Default model queries per sample.
const DEFAULT_BUDGET: usize = 1000;
/// Example rows in the figure.
const FIGURE_ROWS: usize = 6;

/// The first `n` samples the model classifies correctly: (inputs, labels, dataset indices).
pub fn first_correct(ctx: &SectionContext, n: usize) -> Result<(Vec<f32>, Vec<usize>, Vec<usize>)> {
    let data = ctx.data;
    let d = data.sample_len();
    let k = ctx.model.classes();
    let (mut x, mut y, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    let batch = ctx.batch.max(1);
    for (b, (xs, ys)) in data
        .images
        .chunks(batch * d)
        .zip(data.labels.chunks(batch))
        .enumerate()
    {
        let pred = argmax_rows(&ctx.model.logits(xs)?, k);
        for (j, (&p, &l)) in pred.iter().zip(ys).enumerate() {
            if p == l && idx.len() < n {
                x.extend_from_slice(&xs[j * d..(j + 1) * d]);
                y.push(l);
                idx.push(b * batch + j);
            }
        }
        if idx.len() >= n {
            break;
        }
    }
    Ok((x, y, idx))
}

/// Success per sample after a fresh forward pass of the adversarials (and their predictions).
pub fn rechecked(
    ctx: &SectionContext,
    out: &AttackOutcome,
    y: &[usize],
) -> Result<(Vec<bool>, Vec<usize>)> {
    let d = ctx.model.input_len();
    let k = ctx.model.classes();
    let mut preds = Vec::with_capacity(y.len());
    for c in out.adv.chunks(ctx.batch.max(1) * d) {
        preds.extend(argmax_rows(&ctx.model.logits(c)?, k));
    }
    let ok = (0..y.len())
        .map(|i| out.success[i] && preds[i] != y[i])
        .collect();
    Ok((ok, preds))
}

/// One table row and its numbers for an attack run at k pixels.
struct Run {
    attack: &'static str,
    pixels: usize,
    success: Vec<bool>,
    preds: Vec<usize>,
    out: AttackOutcome,
}

/// Success rate vs k for one-pixel DE and Sparse-RS, with example images.
pub fn sparse(ctx: &SectionContext) -> Result<Section> {
    let t0 = std::time::Instant::now();
    let budget = ctx.query_budget.unwrap_or(DEFAULT_BUDGET);
    ensure!(
        budget >= DE_POPULATION,
        "--query-budget {budget} is below one DE population ({DE_POPULATION}) for the sparse section"
    );
    let [c, h, w] = ctx.data.shape();
    let shape = [c, h, w];
    let d = ctx.model.input_len();
    let (x, y, idx) = first_correct(ctx, ctx.section_samples)?;
    ensure!(
        !y.is_empty(),
        "the sparse section found no correctly classified sample"
    );
    // Sparse attacks ignore the ball; the threat model only carries the input domain.
    let threat = ThreatModel::new(Norm::Linf, 0.0, ctx.model.domain())?;
    let mut runs = Vec::new();
    let attacks: Vec<(&'static str, usize, Box<dyn Attack>)> = DE_PIXELS
        .iter()
        .map(|&k| {
            (
                "one-pixel DE",
                k,
                Box::new(OnePixel {
                    pixels: k,
                    population: DE_POPULATION,
                    generations: budget / DE_POPULATION - 1,
                    query_budget: Some(budget),
                    ..OnePixel::default()
                }) as Box<dyn Attack>,
            )
        })
        .chain(RS_PIXELS.iter().map(|&k| {
            (
                "Sparse-RS",
                k,
                Box::new(SparseRs {
                    pixels: k,
                    queries: budget,
                    ..SparseRs::default()
                }) as Box<dyn Attack>,
            )
        }))
        .collect();
    for (name, k, attack) in attacks {
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        let out = attack.run(ctx.model, &x, &y, &threat, &Goal::Untargeted, &mut rng)?;
        let (success, preds) = rechecked(ctx, &out, &y)?;
        // The constraint, re-checked too: no success may change more than k pixels.
        for i in 0..y.len() {
            let px = changed_pixels(&out.adv[i * d..(i + 1) * d], &x[i * d..(i + 1) * d], shape);
            ensure!(
                !success[i] || px <= k,
                "{name} changed {px} > {k} pixels on sample {}",
                idx[i]
            );
        }
        runs.push(Run {
            attack: name,
            pixels: k,
            success,
            preds,
            out,
        });
    }
    let n = y.len();
    let mut rows = Vec::new();
    let mut numbers = Vec::new();
    for r in &runs {
        let fooled = r.success.iter().filter(|&&s| s).count();
        let qps = queries_per_success(&r.out.queries, &r.success);
        let mut px: Vec<f32> = (0..n)
            .filter(|&i| r.success[i])
            .map(|i| r.out.norms[i])
            .collect();
        px.sort_by(|a, b| a.total_cmp(b));
        rows.push(vec![
            r.attack.to_string(),
            r.pixels.to_string(),
            format!("{:.1}%", 100.0 * fooled as f64 / n as f64),
            qps.map_or("—".into(), |(m, _)| format!("{m:.0}")),
            qps.map_or("—".into(), |(_, m)| format!("{m:.0}")),
            px.get(px.len() / 2).map_or("—".into(), |m| format!("{m}")),
        ]);
        numbers.push(json!({
            "attack": r.attack,
            "pixels": r.pixels,
            "success_rate": fooled as f64 / n as f64,
            "fooled": fooled,
            "queries_per_success_mean": qps.map(|q| q.0),
            "queries_per_success_median": qps.map(|q| q.1),
            "median_pixels_changed": px.get(px.len() / 2),
            "forwards": r.out.forwards,
        }));
    }
    let figures = examples(&runs, &x, &y, shape);
    Ok(Section {
        id: "sparse".into(),
        title: "Sparse attacks: a few changed pixels".into(),
        summary: format!(
            "Untargeted attacks that may change only k pixels (any colour), on the first {n} \
             correctly classified samples, at most {budget} model queries each (scores only, no \
             gradients), seed {}. One-pixel DE: differential evolution over k (position, colour) \
             genes, population {DE_POPULATION}, F = 0.5, no crossover (Su et al. 2019). Sparse-RS: \
             random search over k pixels set to colour-cube corners (Croce et al. 2022). Success = \
             the label changes on a fresh forward pass; queries per success are over the fooled \
             samples. Knobs: --section-samples, --query-budget.",
            ctx.seed
        ),
        columns: [
            "attack",
            "k pixels",
            "success",
            "queries/success (mean)",
            "(median)",
            "median pixels changed",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        numbers: json!({"samples": n, "seconds": t0.elapsed().as_secs_f64(), "query_budget": budget, "indices": idx, "runs": numbers}),
        figures,
    })
}

/// Example rows: for the smallest k of each attack that fooled something, clean | adversarial |
/// changed pixels (white).
fn examples(runs: &[Run], x: &[f32], y: &[usize], shape: [usize; 3]) -> Vec<Figure> {
    let d = shape.iter().product::<usize>();
    let [c, h, w] = shape;
    let mut figs = Vec::new();
    for attack in ["one-pixel DE", "Sparse-RS"] {
        let Some(r) = runs
            .iter()
            .find(|r| r.attack == attack && r.success.iter().any(|&s| s))
        else {
            continue;
        };
        let mut images = Vec::new();
        for i in (0..y.len()).filter(|&i| r.success[i]).take(FIGURE_ROWS / 2) {
            let clean = x[i * d..(i + 1) * d].to_vec();
            let adv = r.out.adv[i * d..(i + 1) * d].to_vec();
            let mut mask = vec![0f32; d];
            for p in 0..h * w {
                if (0..c).any(|ch| clean[ch * h * w + p] != adv[ch * h * w + p]) {
                    (0..c).for_each(|ch| mask[ch * h * w + p] = 1.0);
                }
            }
            images.push(Image {
                pixels: clean,
                shape,
                label: format!("clean: {}", y[i]),
            });
            images.push(Image {
                pixels: adv,
                shape,
                label: format!("adversarial: {}", r.preds[i]),
            });
            images.push(Image {
                pixels: mask,
                shape,
                label: format!("{} pixel(s)", r.out.norms[i]),
            });
        }
        figs.push(Figure {
            caption: format!(
                "{attack}, k = {}: clean | adversarial | changed pixels",
                r.pixels
            ),
            images,
        });
    }
    figs
}
