//! `ruse certify`: certified accuracy, the share of samples that are classified correctly and
//! proved robust in their L∞ ε-ball (clamped to the model's input domain).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ruse_attack::model::{argmax_rows, Model};
use ruse_verify::{Spec, Verdict};
use serde_json::json;

use super::verify::{options, parse_method, parse_timeout, recheck};
use crate::cli::CertifyArgs;
use crate::model::load_for_attack;
use crate::progress::bar;

/// Samples per clean forward pass.
const BATCH: usize = 256;

/// Counts for one ε.
struct EpsResult {
    eps: f64,
    certified: usize,
    falsified: usize,
    unknown: usize,
    timeout: usize,
    seconds: f64,
}

/// Parses `E[,E2…]`: finite, non-negative radii.
fn parse_eps(s: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let e: f64 = part
            .trim()
            .parse()
            .with_context(|| format!("--eps: '{part}' is not a number"))?;
        if !(e.is_finite() && e >= 0.0) {
            bail!("--eps: {e} must be a finite radius ≥ 0");
        }
        out.push(e);
    }
    Ok(out)
}

/// Verifies every correctly classified sample at every ε and prints the table or JSON.
pub fn run(a: CertifyArgs) -> Result<()> {
    let method = parse_method(&a.method)?;
    let timeout = parse_timeout(a.timeout, "--timeout")?;
    let eps_list = parse_eps(&a.eps)?;
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    let g = &m.graph;
    let model = Model::new(g)?;
    let k = model.classes();
    let d = model.input_len();
    let n = data.len();
    let preds: Vec<usize> = data
        .images
        .chunks(BATCH * d)
        .map(|c| model.logits(c))
        .collect::<Result<Vec<_>, _>>()?
        .concat()
        .chunks(k)
        .map(|r| argmax_rows(r, k)[0])
        .collect();
    let correct: Vec<usize> = (0..n).filter(|&i| preds[i] == data.labels[i]).collect();
    let domain = (g.input_domain.0 as f64, g.input_domain.1 as f64);
    let opts = options(method, timeout, a.seed);

    let mut results = Vec::new();
    // Why proofs fell short (the verifier's notes), with how often each came up.
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    for &eps in &eps_list {
        let pb = bar(correct.len() as u64, &format!("ε {eps}"));
        let t0 = Instant::now();
        let mut r = EpsResult {
            eps,
            certified: 0,
            falsified: 0,
            unknown: 0,
            timeout: 0,
            seconds: 0.0,
        };
        for &i in &correct {
            let x: Vec<f64> = data.image(i).iter().map(|&v| v as f64).collect();
            let spec = Spec::robustness(&x, eps, data.labels[i], k, domain)
                .with_context(|| format!("sample {i}: cannot build the robustness property"))?;
            let o = ruse_verify::verify(g, &spec, &opts)
                .with_context(|| format!("cannot verify sample {i} at ε = {eps}"))?;
            if !o.stats.note.is_empty() {
                *notes.entry(o.stats.note.clone()).or_default() += 1;
            }
            let checked = recheck(g, &spec, &o)?;
            if let Some(why) = checked.rejected {
                *notes
                    .entry(format!("a sat answer failed the CLI re-check: {why}"))
                    .or_default() += 1;
            }
            match checked.verdict {
                Verdict::Unsat => r.certified += 1,
                Verdict::Sat(_) => r.falsified += 1,
                Verdict::Unknown => r.unknown += 1,
                Verdict::Timeout => r.timeout += 1,
            }
            pb.inc(1);
            pb.set_message(format!("certified {}", r.certified));
        }
        pb.finish_and_clear();
        r.seconds = t0.elapsed().as_secs_f64();
        results.push(r);
    }

    let pct = |c: usize| 100.0 * c as f64 / n as f64;
    if a.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "eps": r.eps,
                    "certified": r.certified,
                    "certified_accuracy": r.certified as f64 / n as f64,
                    "falsified": r.falsified,
                    "unknown": r.unknown,
                    "timeout": r.timeout,
                    "seconds": r.seconds,
                })
            })
            .collect();
        let out = json!({
            "model": m.source,
            "model_sha256": m.sha256,
            "data": a.data.data,
            "split": a.data.split,
            "n": n,
            "norm": "linf",
            "method": method.name(),
            "timeout_s": a.timeout,
            "seed": a.seed,
            "clean_correct": correct.len(),
            "clean_accuracy": correct.len() as f64 / n as f64,
            "results": rows,
            "notes": notes.keys().collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!("model     {}", m.source);
    println!("data      {} ({}, {n} samples)", a.data.data, a.data.split);
    println!(
        "method    {} (L∞, timeout {} s per sample, seed {})",
        method.name(),
        a.timeout,
        a.seed
    );
    println!(
        "clean     {:.2}% ({}/{n})",
        pct(correct.len()),
        correct.len()
    );
    println!();
    println!(
        "{:>8}  {:>20}  {:>9}  {:>7}  {:>7}  {:>9}",
        "ε", "certified", "falsified", "unknown", "timeout", "time (s)"
    );
    for r in &results {
        println!(
            "{:>8}  {:>20}  {:>9}  {:>7}  {:>7}  {:>9.2}",
            r.eps,
            format!("{:.2}% ({}/{n})", pct(r.certified), r.certified),
            r.falsified,
            r.unknown,
            r.timeout,
            r.seconds
        );
    }
    println!();
    if !notes.is_empty() {
        println!("verifier notes (how often):");
        for (note, count) in &notes {
            println!("  {count:>5}×  {note}");
        }
        println!();
    }
    println!(
        "certified: proved robust (unsat); falsified: counterexample found and re-checked (sat)."
    );
    Ok(())
}
