//! `ruse certify`: certified accuracy, the share of samples that are classified correctly and
//! proved robust in their L∞ ε-ball (clamped to the model's input domain); with `--smoothing σ`,
//! the share whose Gaussian-smoothed prediction is correct with a certified L2 radius ≥ r.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::model::{argmax_rows, Model};
use ruse_data::Dataset;
use ruse_verify::smoothing::{self, SmoothingOptions};
use ruse_verify::{Spec, Verdict};
use serde_json::json;

use super::verify::{options, parse_method, parse_timeout, recheck};
use crate::cli::CertifyArgs;
use crate::model::load_for_attack;
use crate::progress::bar;

/// Samples per clean forward pass.
const BATCH: usize = 256;

/// `--radii` when not given: the L2 radii of Cohen et al.'s tables up to 1.
const DEFAULT_RADII: &str = "0,0.25,0.5,0.75,1.0";

/// Counts for one ε.
struct EpsResult {
    eps: f64,
    certified: usize,
    falsified: usize,
    unknown: usize,
    timeout: usize,
    seconds: f64,
}

/// Parses `E[,E2…]` given to `flag`: finite, non-negative radii.
fn parse_radii(s: &str, flag: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let e: f64 = part
            .trim()
            .parse()
            .with_context(|| format!("{flag}: '{part}' is not a number"))?;
        if !(e.is_finite() && e >= 0.0) {
            bail!("{flag}: {e} must be a finite radius ≥ 0");
        }
        out.push(e);
    }
    Ok(out)
}

/// The model's clean prediction for every sample.
fn clean_predictions(model: &Model, data: &Dataset) -> Result<Vec<usize>> {
    let (k, d) = (model.classes(), model.input_len());
    Ok(data
        .images
        .chunks(BATCH * d)
        .map(|c| model.logits(c))
        .collect::<Result<Vec<_>, _>>()?
        .concat()
        .chunks(k)
        .map(|r| argmax_rows(r, k)[0])
        .collect())
}

/// Verifies every correctly classified sample at every ε and prints the table or JSON.
pub fn run(a: CertifyArgs) -> Result<()> {
    if let Some(sigma) = a.smoothing {
        return run_smoothing(a, sigma);
    }
    // clap drops `requires = "smoothing"` once --eps (which conflicts with it) is given.
    for (flag, given) in [
        ("--n0", a.n0.is_some()),
        ("--n", a.n.is_some()),
        ("--alpha", a.alpha.is_some()),
        ("--radii", a.radii.is_some()),
        ("--batch-size", a.batch_size.is_some()),
    ] {
        if given {
            bail!("{flag} is a randomized-smoothing setting: it needs --smoothing SIGMA");
        }
    }
    let method = parse_method(&a.method)?;
    let timeout = parse_timeout(a.timeout, "--timeout")?;
    let eps_list = parse_radii(a.eps.as_deref().context("--eps is required")?, "--eps")?;
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    let g = &m.graph;
    let model = Model::new(g)?;
    let k = model.classes();
    let n = data.len();
    let preds = clean_predictions(&model, &data)?;
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

/// CERTIFY's answer for one sample.
struct SmoothedSample {
    index: usize,
    label: usize,
    cert: smoothing::Certificate,
    seconds: f64,
}

impl SmoothedSample {
    fn correct(&self) -> bool {
        self.cert.class == Some(self.label)
    }
}

/// `--smoothing σ`: the paper's CERTIFY on every sample (correct or not), then certified accuracy
/// at each radius: the share of samples whose smoothed prediction is the label with radius ≥ r.
fn run_smoothing(a: CertifyArgs, sigma: f64) -> Result<()> {
    if !(sigma.is_finite() && sigma > 0.0) {
        bail!("--smoothing: the noise level σ must be a finite number > 0 (got {sigma})");
    }
    let opts = SmoothingOptions {
        sigma,
        n0: a.n0.unwrap_or(100),
        n: a.n.unwrap_or(10_000),
        alpha: a.alpha.unwrap_or(0.001),
        batch_size: a.batch_size.unwrap_or(250),
    };
    if opts.n0 == 0 {
        bail!("--n0 must be at least 1");
    }
    if opts.n < opts.n0 {
        bail!(
            "--n ({}) must be at least --n0 ({}): n samples estimate the probability of the class that n0 samples select",
            opts.n,
            opts.n0
        );
    }
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        bail!("--alpha must lie in (0, 1) (got {})", opts.alpha);
    }
    if opts.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let radii = parse_radii(a.radii.as_deref().unwrap_or(DEFAULT_RADII), "--radii")?;
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    let g = &m.graph;
    let model = Model::new(g)?;
    let n = data.len();
    let preds = clean_predictions(&model, &data)?;
    let clean = (0..n).filter(|&i| preds[i] == data.labels[i]).count();

    let pb = bar(n as u64, &format!("σ {sigma}"));
    let t0 = Instant::now();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        // One noise stream per sample: its answer does not depend on --limit or on the others.
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
        rng.set_stream(i as u64);
        let ts = Instant::now();
        let cert = smoothing::certify(g, data.image(i), &opts, &mut rng)
            .with_context(|| format!("cannot certify sample {i}"))?;
        samples.push(SmoothedSample {
            index: i,
            label: data.labels[i],
            cert,
            seconds: ts.elapsed().as_secs_f64(),
        });
        pb.inc(1);
        let ok = samples.iter().filter(|s| s.correct()).count();
        pb.set_message(format!("correct {ok}"));
    }
    pb.finish_and_clear();
    let seconds = t0.elapsed().as_secs_f64();
    let abstained = samples.iter().filter(|s| s.cert.class.is_none()).count();
    let certified: Vec<usize> = radii
        .iter()
        .map(|&r| {
            samples
                .iter()
                .filter(|s| s.correct() && s.cert.radius >= r)
                .count()
        })
        .collect();

    let frac = |c: usize| c as f64 / n.max(1) as f64;
    if a.json {
        let rows: Vec<_> = radii
            .iter()
            .zip(&certified)
            .map(|(&r, &c)| json!({"radius": r, "certified": c, "certified_accuracy": frac(c)}))
            .collect();
        let per_sample: Vec<_> = samples
            .iter()
            .map(|s| {
                json!({
                    "index": s.index,
                    "label": s.label,
                    "prediction": s.cert.class,
                    "radius": s.cert.class.map(|_| s.cert.radius),
                    "correct": s.correct(),
                    "p_a_lower": s.cert.p_a_lower,
                    "count": s.cert.count,
                    "seconds": s.seconds,
                })
            })
            .collect();
        let out = json!({
            "model": m.source,
            "model_sha256": m.sha256,
            "data": a.data.data,
            "split": a.data.split,
            "n": n,
            "norm": "l2",
            "method": "smoothing",
            "sigma": sigma,
            "n0": opts.n0,
            "n_noise": opts.n,
            "alpha": opts.alpha,
            "seed": a.seed,
            "clean_correct": clean,
            "clean_accuracy": frac(clean),
            "abstained": abstained,
            "abstain_rate": frac(abstained),
            "seconds": seconds,
            "results": rows,
            "samples": per_sample,
        });
        println!("{out}");
        return Ok(());
    }
    let pct = |c: usize| 100.0 * frac(c);
    println!("model      {}", m.source);
    println!("data       {} ({}, {n} samples)", a.data.data, a.data.split);
    println!(
        "smoothing  σ {sigma} (Gaussian noise, not clamped to the input domain), n0 {}, n {}, α {}, seed {}",
        opts.n0, opts.n, opts.alpha, a.seed
    );
    println!(
        "clean      {:.2}% ({clean}/{n}) (base model, no noise)",
        pct(clean)
    );
    println!();
    println!(
        "{:>7}  {:>5}  {:>10}  {:>8}  {:>9}  {:>8}",
        "sample", "label", "prediction", "radius", "p_A lower", "time (s)"
    );
    for s in &samples {
        let (pred, radius) = match s.cert.class {
            Some(c) => (c.to_string(), format!("{:.4}", s.cert.radius)),
            None => ("abstain".to_string(), "-".to_string()),
        };
        println!(
            "{:>7}  {:>5}  {:>10}  {:>8}  {:>9.4}  {:>8.3}",
            s.index, s.label, pred, radius, s.cert.p_a_lower, s.seconds
        );
    }
    println!();
    println!(
        "abstained  {:.2}% ({abstained}/{n}); time {seconds:.2} s ({:.3} s per sample, {} noisy forward passes each)",
        pct(abstained),
        seconds / n.max(1) as f64,
        opts.n0 + opts.n
    );
    println!();
    println!("{:>8}  {:>20}", "L2 radius", "certified accuracy");
    for (r, &c) in radii.iter().zip(&certified) {
        println!("{r:>9}  {:>20}", format!("{:.2}% ({c}/{n})", pct(c)));
    }
    println!();
    println!(
        "certified at r: the smoothed prediction is the label and its certified L2 radius is ≥ r \
         (each certificate holds with probability ≥ 1 − α over the noise)."
    );
    Ok(())
}
