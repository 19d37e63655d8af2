//! `ruse audit --sections blackbox`: an attacker who can only query the model. HopSkipJump (top-1
//! label only, L2 and L∞), SimBA-DCT (scores) and Square (scores, L∞ ε = 0.3) at a per-sample
//! query budget, on the first `--section-samples` (20) correctly classified samples: success rate
//! (any size, and within the radius), median perturbation, and queries per success.
//!
//! Cost: at most `--query-budget` (1000) model evaluations per sample and attack (4 attacks):
//! about 80 000 evaluations on 20 MNIST samples in the worst case (about 25 s on 2 busy cores).

use anyhow::{ensure, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::hopskipjump::HopSkipJump;
use ruse_attack::model::argmax_rows;
use ruse_attack::query::queries_per_success;
use ruse_attack::simba::{Simba, SimbaBasis};
use ruse_attack::square::Square;
use ruse_attack::{Attack, Goal, Norm, ThreatModel};
use ruse_report::{Figure, Image, Section};
use serde_json::json;

use super::section_sparse::{first_correct, rechecked};
use super::sections::SectionContext;

/// Default model queries per sample.
const DEFAULT_BUDGET: usize = 1000;
/// Radius for "success within ε" in L2 (a common MNIST L2 radius).
const EPS_L2: f32 = 2.0;
/// Radius for "success within ε" in L∞ (the standard MNIST L∞ radius).
const EPS_LINF: f32 = 0.3;
/// SimBA's step along each DCT direction (MNIST pixels in [0,1]).
const SIMBA_STEP: f32 = 0.2;
/// Examples per attack in the figure.
const FIGURE_EXAMPLES: usize = 3;

/// The largest norm that counts as within `eps`: clipping x + ε to the domain and subtracting x
/// again rounds, so a perturbation of exactly ε can measure a few ulps more.
fn within(eps: f32) -> f32 {
    eps * (1.0 + 1e-5) + 1e-6
}

/// One attack's per-sample results, after re-checking.
struct Row {
    name: String,
    norm: Norm,
    eps: f32,
    adversarial: Vec<bool>,
    norms: Vec<f32>,
    /// Queries until the first adversarial within ε, for samples that got one.
    to_success: Vec<Option<u64>>,
    /// Queries until the first adversarial of any size, for samples that got one.
    to_any: Vec<Option<u64>>,
    queries: Vec<u64>,
    adv: Vec<f32>,
    preds: Vec<usize>,
}

/// Success, median perturbation and queries per success of query-only attacks at a budget.
pub fn blackbox(ctx: &SectionContext) -> Result<Section> {
    let t0 = std::time::Instant::now();
    let budget = ctx.query_budget.unwrap_or(DEFAULT_BUDGET);
    let d = ctx.model.input_len();
    let k = ctx.model.classes();
    let domain = ctx.model.domain();
    let (x, y, idx) = first_correct(ctx, ctx.section_samples)?;
    ensure!(
        !y.is_empty(),
        "the blackbox section found no correctly classified sample"
    );
    let n = y.len();
    let dist = |a: &[f32], i: usize, norm: Norm| {
        norm.of(&a
            .iter()
            .zip(&x[i * d..(i + 1) * d])
            .map(|(p, q)| p - q)
            .collect::<Vec<_>>())
    };
    let mut rows: Vec<Row> = Vec::new();
    for norm in [Norm::L2, Norm::Linf] {
        let eps = if norm == Norm::L2 { EPS_L2 } else { EPS_LINF };
        let hsj = HopSkipJump {
            query_budget: Some(budget),
            iterations: usize::MAX,
            ..HopSkipJump::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        let m = hsj.minimal(ctx.model, &x, &y, &Goal::Untargeted, norm, domain, &mut rng)?;
        let mut preds = Vec::with_capacity(n);
        for c in m.adv.chunks(ctx.batch.max(1) * d) {
            preds.extend(argmax_rows(&ctx.model.logits(c)?, k));
        }
        let adversarial: Vec<bool> = (0..n).map(|i| m.found[i] && preds[i] != y[i]).collect();
        let norms: Vec<f32> = (0..n)
            .map(|i| dist(&m.adv[i * d..(i + 1) * d], i, norm))
            .collect();
        let to_success = (0..n)
            .map(|i| {
                if adversarial[i] {
                    m.queries_to(i, within(eps))
                } else {
                    None
                }
            })
            .collect();
        rows.push(Row {
            name: format!("HopSkipJump ({norm}, labels only)"),
            norm,
            eps,
            adversarial: adversarial.clone(),
            norms,
            to_success,
            to_any: (0..n)
                .map(|i| {
                    if adversarial[i] {
                        m.history[i].first().map(|h| h.0)
                    } else {
                        None
                    }
                })
                .collect(),
            queries: m.queries,
            adv: m.adv,
            preds,
        });
    }
    // Score-based attacks stop at their first adversarial, so their queries-to-success are exact.
    let score_based: [(String, Norm, f32, Box<dyn Attack>); 2] = [
        (
            format!("SimBA-DCT (scores, step {SIMBA_STEP})"),
            Norm::L2,
            EPS_L2,
            Box::new(Simba {
                basis: SimbaBasis::Dct,
                step: SIMBA_STEP,
                query_budget: budget,
                freq: None,
            }),
        ),
        (
            format!("Square (scores, L∞ ε = {EPS_LINF})"),
            Norm::Linf,
            EPS_LINF,
            Box::new(Square {
                queries: budget,
                ..Square::default()
            }),
        ),
    ];
    for (name, norm, eps, attack) in score_based {
        // SimBA is unbounded: attack with a huge L2 radius, then measure against ε.
        let threat = if norm == Norm::L2 {
            ThreatModel::new(Norm::L2, 1e6, domain)?
        } else {
            ThreatModel::new(Norm::Linf, eps, domain)?
        };
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        let out = attack.run(ctx.model, &x, &y, &threat, &Goal::Untargeted, &mut rng)?;
        let (adversarial, preds) = rechecked(ctx, &out, &y)?;
        let norms: Vec<f32> = (0..n)
            .map(|i| dist(&out.adv[i * d..(i + 1) * d], i, norm))
            .collect();
        let to_success = (0..n)
            .map(|i| (adversarial[i] && norms[i] <= within(eps)).then_some(out.queries[i]))
            .collect();
        rows.push(Row {
            name,
            norm,
            eps,
            adversarial: adversarial.clone(),
            norms,
            to_success,
            to_any: (0..n)
                .map(|i| adversarial[i].then_some(out.queries[i]))
                .collect(),
            queries: out.queries,
            adv: out.adv,
            preds,
        });
    }
    let mut table = Vec::new();
    let mut numbers = Vec::new();
    for r in &rows {
        let any = r.adversarial.iter().filter(|&&s| s).count();
        let within: Vec<bool> = r.to_success.iter().map(Option::is_some).collect();
        let n_within = within.iter().filter(|&&s| s).count();
        let q: Vec<u64> = r.to_success.iter().map(|q| q.unwrap_or(0)).collect();
        let qps = queries_per_success(&q, &within);
        let mut ns: Vec<f32> = (0..n)
            .filter(|&i| r.adversarial[i])
            .map(|i| r.norms[i])
            .collect();
        ns.sort_by(|a, b| a.total_cmp(b));
        let median = ns.get(ns.len() / 2).copied();
        let spent = r.queries.iter().sum::<u64>();
        let got_any: Vec<bool> = r.to_any.iter().map(Option::is_some).collect();
        let q_any: Vec<u64> = r.to_any.iter().map(|q| q.unwrap_or(0)).collect();
        let qpa = queries_per_success(&q_any, &got_any);
        table.push(vec![
            r.name.clone(),
            format!("{:.1}%", 100.0 * any as f64 / n as f64),
            format!("{:.1}%", 100.0 * n_within as f64 / n as f64),
            median.map_or("—".into(), |m| format!("{m:.3}")),
            qps.map_or("—".into(), |(m, _)| format!("{m:.0}")),
            qps.map_or("—".into(), |(_, m)| format!("{m:.0}")),
            qpa.map_or("—".into(), |(_, m)| format!("{m:.0}")),
            format!("{:.0}", spent as f64 / n as f64),
        ]);
        numbers.push(json!({
            "attack": r.name,
            "norm": r.norm.to_string(),
            "eps": r.eps,
            "success_rate_any_size": any as f64 / n as f64,
            "success_rate_within_eps": n_within as f64 / n as f64,
            "median_perturbation": median,
            "queries_per_success_mean": qps.map(|q| q.0),
            "queries_per_success_median": qps.map(|q| q.1),
            "queries_to_any_adversarial_mean": qpa.map(|q| q.0),
            "queries_to_any_adversarial_median": qpa.map(|q| q.1),
            "queries_per_sample_mean": spent as f64 / n as f64,
        }));
    }
    let figures = examples(&rows, &x, &y, ctx.data.shape());
    Ok(Section {
        id: "blackbox".into(),
        title: "Black-box attacks with query accounting".into(),
        summary: format!(
            "Untargeted attacks that only query the model, at most {budget} queries per sample, on \
             the first {n} correctly classified samples, seed {}. HopSkipJump (Chen et al. 2020) \
             sees only the top-1 label and shrinks an adversarial towards the input; SimBA-DCT \
             (Guo et al. 2019) and Square (Andriushchenko et al. 2020) see the scores. \"Any \
             size\" = an adversarial of any size was found; \"within ε\" uses L2 ε = {EPS_L2} or \
             L∞ ε = {EPS_LINF} (the attack's norm); the median perturbation is over adversarials \
             of any size; queries per success count the model evaluations until the first \
             adversarial within ε (HopSkipJump keeps shrinking its adversarial; SimBA and Square \
             stop at their first one, of any size, so theirs also give the queries to any \
             adversarial). Every adversarial is re-checked by a forward pass. Knobs: \
             --section-samples, --query-budget.",
            ctx.seed
        ),
        columns: [
            "attack",
            "success (any size)",
            "success (within ε)",
            "median ‖δ‖",
            "queries/success (mean)",
            "(median)",
            "queries to any adv. (median)",
            "queries/sample",
        ]
        .map(String::from)
        .to_vec(),
        rows: table,
        numbers: json!({"samples": n, "seconds": t0.elapsed().as_secs_f64(), "query_budget": budget, "eps_l2": EPS_L2, "eps_linf": EPS_LINF, "indices": idx, "attacks": numbers}),
        figures,
    })
}

/// Per attack: clean | adversarial pairs for a few fooled samples.
fn examples(rows: &[Row], x: &[f32], y: &[usize], shape: [usize; 3]) -> Vec<Figure> {
    let d = shape.iter().product::<usize>();
    rows.iter()
        .filter(|r| r.adversarial.iter().any(|&s| s))
        .map(|r| {
            let mut images = Vec::new();
            for i in (0..y.len())
                .filter(|&i| r.adversarial[i])
                .take(FIGURE_EXAMPLES)
            {
                images.push(Image {
                    pixels: x[i * d..(i + 1) * d].to_vec(),
                    shape,
                    label: format!("clean: {}", y[i]),
                });
                images.push(Image {
                    pixels: r.adv[i * d..(i + 1) * d]
                        .iter()
                        .map(|v| v.clamp(0.0, 1.0))
                        .collect(),
                    shape,
                    label: format!("{} (‖δ‖ {:.2})", r.preds[i], r.norms[i]),
                });
            }
            Figure {
                caption: format!("{}: clean | adversarial", r.name),
                images,
            }
        })
        .collect()
}
