//! `ruse audit`: robust accuracy under an attack suite per ε, honesty checks, report files.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::attack::gather_rows;
use ruse_attack::deepfool::DeepFool;
use ruse_attack::loss::Loss;
use ruse_attack::model::argmax_rows;
use ruse_attack::pgd::Pgd;
use ruse_attack::suite::{Suite, SuiteSettings};
use ruse_attack::{Attack, Goal, Model, Norm, ThreatModel};
use ruse_data::Dataset;
use ruse_report::{
    AttackSummary, AuditReport, ComparisonReport, EpsResult, Example, MinimalPerturbation,
    ModelComparison, Warning,
};

use super::sections::{parse_sections, print_section, run_section, SectionContext};
use ruse_verify::{Method, Spec, Verdict};

use super::verify::{options as verify_options, recheck};
use crate::cli::{AuditArgs, ModelArgs};
use crate::model::{load_for_attack, LoadedModel};
use crate::progress::bar;

/// Correctly classified samples searched for minimal perturbations.
const MINIMAL_PERTURBATION_SAMPLES: usize = 250;

fn parse_eps(s: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    for t in s.split(',') {
        let e: f64 = t
            .trim()
            .parse()
            .with_context(|| format!("--eps: '{t}' is not a number"))?;
        v.push(e);
    }
    if v.is_empty() {
        bail!("--eps needs at least one radius");
    }
    let mut keys: Vec<String> = v.iter().map(|&e| ruse_report::svg::trim(e)).collect();
    keys.sort();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        bail!("--eps lists the same radius twice (radii are compared to 6 decimals): {s}");
    }
    Ok(v)
}

fn median(mut v: Vec<f32>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2] as f64)
}

/// Cheap checks that catch models whose apparent robustness is an artefact (AutoAttack's flags).
fn pre_checks(
    model: &Model,
    x: &[f32],
    y: &[usize],
    threat_norm: Norm,
    domain: (f32, f32),
    seed: u64,
) -> Result<Vec<Warning>> {
    let mut w = Vec::new();
    let k = model.classes();
    let d = model.input_len();
    let n = y.len().min(100);
    let (xs, ys) = (&x[..n * d], &y[..n]);
    let a = model.logits(xs)?;
    let b = model.logits(xs)?;
    if a != b {
        let diff = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        w.push(Warning {
            check: "randomised outputs".into(),
            message:
                "the same input gave different outputs; gradient attacks can be misled (use EOT)"
                    .into(),
            evidence: format!("max difference between two forward passes: {diff:e}"),
        });
    }
    let probs_like = a.chunks(k).all(|r| {
        r.iter().all(|v| (0.0..=1.0).contains(v)) && (r.iter().sum::<f32>() - 1.0).abs() < 1e-3
    });
    if probs_like {
        w.push(Warning {
            check: "outputs look like probabilities".into(),
            message: "the model seems to end in a softmax; cross-entropy on probabilities has vanishing gradients, so CE-based attacks underestimate vulnerability (DLR-based ones are scale-invariant)".into(),
            evidence: format!("all {n} output rows lie in [0,1] and sum to 1"),
        });
    }
    let (_, _, g) = model.loss_grad(xs, &Loss::CrossEntropy, ys, None)?;
    let nan = g.iter().any(|v| !v.is_finite());
    let zero = g.chunks(d).filter(|r| r.iter().all(|v| *v == 0.0)).count();
    if nan || zero * 10 > n {
        w.push(Warning {
            check: "zero or NaN gradients".into(),
            message: "input gradients vanish or are not finite: gradient attacks cannot make progress (gradient masking)".into(),
            evidence: format!("{zero} of {n} samples have an all-zero gradient; non-finite values: {nan}"),
        });
    }
    // With ε as wide as the domain every input is reachable: an attack must fool everything.
    if threat_norm == Norm::Linf {
        let m = n.min(50);
        let wide = ThreatModel::new(Norm::Linf, domain.1 - domain.0, domain)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA5A5);
        let out = Pgd {
            steps: 20,
            ..Pgd::default()
        }
        .run(
            model,
            &x[..m * d],
            &y[..m],
            &wide,
            &Goal::Untargeted,
            &mut rng,
        )?;
        let left = out.success.iter().filter(|s| !**s).count();
        if left > 0 {
            w.push(Warning {
                check: "unbounded attack does not reach 0%".into(),
                message: "with ε covering the whole input domain PGD should fool every sample; it did not, so the attacks are not working on this model".into(),
                evidence: format!("{left} of {m} samples survived PGD-20 at ε = {}", domain.1 - domain.0),
            });
        }
    }
    Ok(w)
}

/// Runs the audit (of one model, or with `--compare` of several side by side).
pub fn run(a: AuditArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size >= 1, "--batch-size must be ≥ 1");
    let norm: Norm = a.norm.parse()?;
    let eps = parse_eps(&a.eps)?;
    let suite = Suite::preset(&a.preset, norm)?;
    let section_names = parse_sections(&a.sections)?;
    anyhow::ensure!(a.section_samples >= 1, "--section-samples must be ≥ 1");
    anyhow::ensure!(
        a.query_budget.is_none_or(|q| q >= 1),
        "--query-budget must be ≥ 1"
    );
    if !a.compare.is_empty() {
        anyhow::ensure!(
            section_names.is_empty(),
            "--sections works on one model, not with --compare"
        );
        return run_compare(&a, norm, &eps, &suite);
    }
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    let (mut report, examples) = audit_model(&a, &m, &data, norm, &eps, &suite)?;
    let mut section_error = None;
    if !section_names.is_empty() {
        let t0 = Instant::now();
        let model = Model::new(&m.graph)?;
        let ctx = SectionContext {
            model: &model,
            data: &data,
            seed: a.seed,
            batch: a.batch_size,
            section_samples: a.section_samples,
            query_budget: a.query_budget,
        };
        // One at a time, so a failing section still leaves the audit so far in the report files.
        for name in &section_names {
            match run_section(name, &ctx) {
                Ok(done) => report.sections.push(done),
                Err(e) => {
                    section_error = Some(e.context(format!(
                        "audit section '{name}' failed; {} holds the L_p audit and the sections before it",
                        a.out.display()
                    )));
                    break;
                }
            }
        }
        report.seconds += t0.elapsed().as_secs_f64();
    }
    print_card(&report);
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let json_path = a.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let html_path = a.out.join("report.html");
    let html = ruse_report::html::render(&report, &examples, &data.class_names, &norm.to_string());
    std::fs::write(&html_path, html)
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    println!(
        "\nwrote {} and {}",
        json_path.display(),
        html_path.display()
    );
    match section_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Audits one loaded model on loaded data: honesty checks, clean accuracy, minimal perturbations,
/// the suite at every ε; returns the report and a few adversarial examples for the image grid.
fn audit_model(
    a: &AuditArgs,
    m: &LoadedModel,
    data: &Dataset,
    norm: Norm,
    eps: &[f64],
    suite: &Suite,
) -> Result<(AuditReport, Vec<Example>)> {
    let t0 = Instant::now();
    let g = &m.graph;
    let model = Model::new(g)?;
    let threats = eps
        .iter()
        .map(|&e| ThreatModel::new(norm, e as f32, g.input_domain))
        .collect::<Result<Vec<_>, _>>()?;
    let (x, y) = (&data.images, &data.labels);
    let mut warnings = pre_checks(&model, x, y, norm, g.input_domain, a.seed)?;
    let clean: Vec<usize> = x
        .chunks(a.batch_size * model.input_len())
        .map(|c| model.logits(c))
        .collect::<Result<Vec<_>, _>>()?
        .concat()
        .chunks(model.classes())
        .map(|r| argmax_rows(r, model.classes())[0])
        .collect();
    let clean_accuracy =
        clean.iter().zip(y).filter(|(p, l)| p == l).count() as f64 / y.len() as f64;
    eprintln!(
        "auditing {} on {} ({} samples), {norm} ε ∈ {{{}}}, preset {}, seed {}",
        m.source,
        a.data.data,
        y.len(),
        a.eps,
        a.preset,
        a.seed
    );
    let minimal_perturbation = if norm == Norm::L1 {
        None
    } else {
        let d = model.input_len();
        // DeepFool needs a backward pass per candidate class: a fixed sample keeps the audit fast.
        let idx: Vec<usize> = (0..y.len())
            .filter(|&i| clean[i] == y[i])
            .take(MINIMAL_PERTURBATION_SAMPLES)
            .collect();
        let mut norms = Vec::new();
        let pb = bar(idx.len() as u64, "deepfool");
        for chunk in idx.chunks(a.batch_size) {
            let xs: Vec<f32> = gather_rows(x, chunk, d);
            let ys: Vec<usize> = chunk.iter().map(|&i| y[i]).collect();
            let m = DeepFool::default().minimal(&model, &xs, &ys, norm, g.input_domain)?;
            norms.extend(
                m.norms
                    .iter()
                    .zip(&m.success)
                    .filter(|(_, s)| **s)
                    .map(|(n, _)| *n),
            );
            pb.inc(chunk.len() as u64);
        }
        pb.finish_and_clear();
        Some(MinimalPerturbation {
            method: "deepfool".into(),
            norm: norm.to_string(),
            fooled: norms.len(),
            median: median(norms),
            searched: idx.len(),
        })
    };
    let mut results = Vec::new();
    let mut examples = Vec::new();
    let d = model.input_len();
    for (t, &eps_value) in threats.iter().zip(eps) {
        let pb = bar(
            (suite.attacks.len() * y.len()) as u64,
            &format!("ε={}", t.eps),
        );
        let settings = SuiteSettings {
            threat: *t,
            seed: a.seed,
            batch: a.batch_size,
        };
        let r = suite.run(&model, x, y, &settings, |done, _| {
            pb.set_position(done as u64)
        })?;
        pb.finish_and_clear();
        let norms: Vec<f32> = (0..y.len())
            .filter(|&i| r.fooled_by[i].is_some())
            .map(|i| {
                t.norm.of(&r.adv[i * d..(i + 1) * d]
                    .iter()
                    .zip(&x[i * d..(i + 1) * d])
                    .map(|(p, q)| p - q)
                    .collect::<Vec<_>>())
            })
            .collect();
        let preds = argmax_rows(&model.logits(&r.adv)?, model.classes());
        for i in (0..y.len()).filter(|&i| r.fooled_by[i].is_some()).take(4) {
            examples.push(Example {
                eps: eps_value,
                clean: x[i * d..(i + 1) * d].to_vec(),
                adversarial: r.adv[i * d..(i + 1) * d].to_vec(),
                shape: data.shape(),
                label: y[i],
                predicted: preds[i],
            });
        }
        eprintln!(
            "  ε = {}: robust accuracy {:.2}%",
            t.eps,
            r.robust_accuracy * 100.0
        );
        results.push(EpsResult {
            eps: eps_value,
            robust_accuracy: r.robust_accuracy,
            attacks: r
                .rows
                .iter()
                .map(|row| AttackSummary {
                    attack: row.attack.clone(),
                    robust_accuracy: row.robust_accuracy,
                    new_successes: row.new_successes,
                    forwards: row.forwards,
                    gradients: row.gradients,
                    seconds: row.seconds,
                })
                .collect(),
            median_adversarial_norm: median(norms),
        });
    }
    for e in &results {
        for row in e
            .attacks
            .iter()
            .filter(|r| r.gradients == 0 && r.new_successes > 0)
        {
            warnings.push(Warning {
                check: "black-box beats white-box".into(),
                message: "a query-only attack fooled samples that every gradient attack before it missed: the gradients may be masked, so trust the worst case, not the gradient attacks".into(),
                evidence: format!("at ε = {}: {} fooled {} more samples", e.eps, row.attack, row.new_successes),
            });
        }
    }
    let mut sorted: Vec<&EpsResult> = results.iter().collect();
    sorted.sort_by(|p, q| p.eps.total_cmp(&q.eps));
    for w2 in sorted.windows(2) {
        if w2[1].robust_accuracy > w2[0].robust_accuracy {
            warnings.push(Warning {
                check: "robust accuracy rises with ε".into(),
                message: "a larger ball contains the smaller one, so robust accuracy cannot rise: the attacks are failing".into(),
                evidence: format!("{:.2}% at ε = {} but {:.2}% at ε = {}", w2[0].robust_accuracy * 100.0, w2[0].eps, w2[1].robust_accuracy * 100.0, w2[1].eps),
            });
        }
    }
    let settings = settings(a, norm, suite, g.input_domain);
    let report = AuditReport {
        ruse_version: env!("CARGO_PKG_VERSION").into(),
        model: m.source.clone(),
        model_sha256: m.sha256.clone(),
        data: a.data.data.clone(),
        n: y.len(),
        clean_accuracy,
        robust_accuracy: results
            .iter()
            .map(|r| (ruse_report::svg::trim(r.eps), r.robust_accuracy))
            .collect(),
        results,
        minimal_perturbation,
        warnings,
        sections: Vec::new(),
        settings,
        seed: a.seed,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((report, examples))
}

/// The settings that reproduce an audit, for the report.
fn settings(
    a: &AuditArgs,
    norm: Norm,
    suite: &Suite,
    input_domain: (f32, f32),
) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    settings.insert(
        "command".into(),
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    settings.insert("norm".into(), norm.to_string());
    settings.insert("eps".into(), a.eps.clone());
    settings.insert("preset".into(), a.preset.clone());
    if !a.sections.is_empty() {
        settings.insert("sections".into(), a.sections.clone());
    }
    settings.insert(
        "attacks".into(),
        suite
            .attacks
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
    );
    settings.insert(
        "data".into(),
        format!(
            "{} (split {}, limit {:?})",
            a.data.data, a.data.split, a.data.limit
        ),
    );
    settings.insert("batch_size".into(), a.batch_size.to_string());
    settings.insert("threads".into(), rayon::current_num_threads().to_string());
    settings.insert("input_domain".into(), format!("{input_domain:?}"));
    settings
}

/// `--compare`: every model audited on the same data, radii, preset and seed (each model's own
/// honesty checks included), certified accuracy per ε on the first `--certify-limit` samples,
/// then one card with a column per model and report.json / report.html with the comparison.
fn run_compare(a: &AuditArgs, norm: Norm, eps: &[f64], suite: &Suite) -> Result<()> {
    let t0 = Instant::now();
    let method = match a.certify_method.to_ascii_lowercase().as_str() {
        "none" => None,
        "ibp" => Some(Method::Ibp),
        "crown" => Some(Method::Crown),
        other => bail!("--certify-method: unknown method '{other}' (expected none, ibp or crown)"),
    };
    if method.is_some() && norm != Norm::Linf {
        bail!("certified accuracy is computed for L∞ audits only; add --certify-method none for {norm}");
    }
    let mut loaded = Vec::new();
    for name in &a.compare {
        let args = ModelArgs {
            model: name.clone(),
            input_domain: a.model.input_domain.clone(),
        };
        let (m, data) = load_for_attack(&args, &a.data)
            .with_context(|| format!("--compare: model '{name}'"))?;
        loaded.push((name.clone(), m, data));
    }
    let mut models = Vec::new();
    for (name, m, data) in &loaded {
        let t1 = Instant::now();
        let (report, _) = audit_model(a, m, data, norm, eps, suite)?;
        let (certified, certified_n) = match method {
            Some(method) => certified_accuracy(m, data, eps, method, a.certify_limit, a.seed)?,
            None => (BTreeMap::new(), 0),
        };
        models.push(ModelComparison {
            name: name.clone(),
            source: report.model,
            sha256: report.model_sha256,
            clean: report.clean_accuracy,
            robust: report.robust_accuracy,
            certified,
            certified_n,
            warnings: report.warnings,
            minimal_perturbation: report.minimal_perturbation,
            seconds: t1.elapsed().as_secs_f64(),
        });
    }
    let (_, first, data) = &loaded[0];
    let mut settings = settings(a, norm, suite, first.graph.input_domain);
    settings.insert("certify_method".into(), a.certify_method.clone());
    settings.insert("certify_limit".into(), a.certify_limit.to_string());
    settings.insert("certify_timeout_s".into(), CERTIFY_TIMEOUT_S.to_string());
    let report = ComparisonReport {
        ruse_version: env!("CARGO_PKG_VERSION").into(),
        data: a.data.data.clone(),
        n: data.len(),
        norm: norm.to_string(),
        eps: eps.to_vec(),
        preset: a.preset.clone(),
        certify_method: a.certify_method.to_ascii_lowercase(),
        models,
        settings,
        seed: a.seed,
        seconds: t0.elapsed().as_secs_f64(),
    };
    print_comparison(&report);
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let json_path = a.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let html_path = a.out.join("report.html");
    std::fs::write(&html_path, ruse_report::html::render_comparison(&report))
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    println!(
        "\nwrote {} and {}",
        json_path.display(),
        html_path.display()
    );
    Ok(())
}

/// Per-sample budget of the verifier in `--compare` (CROWN answers in well under it).
const CERTIFY_TIMEOUT_S: f64 = 2.0;

/// Certified accuracy per ε (keys as in the report) on the first `limit` samples: the share
/// that are classified correctly and proved robust (unsat) in their L∞ ε-ball, as `ruse certify`
/// counts it; returns the map and the number of samples it is measured on.
fn certified_accuracy(
    m: &LoadedModel,
    data: &Dataset,
    eps: &[f64],
    method: Method,
    limit: usize,
    seed: u64,
) -> Result<(BTreeMap<String, f64>, usize)> {
    let g = &m.graph;
    let model = Model::new(g)?;
    let (k, d) = (model.classes(), model.input_len());
    let n = data.len().min(limit);
    if n == 0 {
        return Ok((BTreeMap::new(), 0));
    }
    let preds = argmax_rows(&model.logits(&data.images[..n * d])?, k);
    let correct: Vec<usize> = (0..n).filter(|&i| preds[i] == data.labels[i]).collect();
    let domain = (g.input_domain.0 as f64, g.input_domain.1 as f64);
    let opts = verify_options(method, Duration::from_secs_f64(CERTIFY_TIMEOUT_S), seed);
    let mut out = BTreeMap::new();
    for &e in eps {
        let pb = bar(correct.len() as u64, &format!("certify ε={e}"));
        let mut certified = 0;
        for &i in &correct {
            let x: Vec<f64> = data.image(i).iter().map(|&v| v as f64).collect();
            let spec = Spec::robustness(&x, e, data.labels[i], k, domain)
                .with_context(|| format!("sample {i}: cannot build the robustness property"))?;
            let o = ruse_verify::verify(g, &spec, &opts)
                .with_context(|| format!("cannot verify sample {i} at ε = {e}"))?;
            if recheck(g, &spec, &o)?.verdict == Verdict::Unsat {
                certified += 1;
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        out.insert(ruse_report::svg::trim(e), certified as f64 / n as f64);
    }
    Ok((out, n))
}

/// The comparison card: one column per model.
fn print_comparison(r: &ComparisonReport) {
    println!("data      {} ({} samples)", r.data, r.n);
    for m in &r.models {
        println!(
            "model     {}: {} (sha256 {})",
            m.name,
            m.source,
            &m.sha256[..m.sha256.len().min(12)]
        );
    }
    println!();
    let short = |s: &str| {
        let s = std::path::Path::new(s)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| s.to_string());
        s.chars().take(18).collect::<String>()
    };
    print!("{:<22}", "");
    for m in &r.models {
        print!(" {:>18}", short(&m.name));
    }
    println!();
    let row = |label: String, vals: Vec<String>| {
        print!("{label:<22}");
        for v in vals {
            print!(" {v:>18}");
        }
        println!();
    };
    let pct = |v: Option<&f64>| {
        v.map(|v| format!("{:.2}%", v * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    row(
        "clean".into(),
        r.models.iter().map(|m| pct(Some(&m.clean))).collect(),
    );
    for &e in &r.eps {
        let k = ruse_report::svg::trim(e);
        row(
            format!("robust ε = {k}"),
            r.models.iter().map(|m| pct(m.robust.get(&k))).collect(),
        );
    }
    if r.certify_method != "none" {
        for &e in &r.eps {
            let k = ruse_report::svg::trim(e);
            row(
                format!("certified ε = {k}"),
                r.models.iter().map(|m| pct(m.certified.get(&k))).collect(),
            );
        }
    }
    row(
        "honesty checks fired".into(),
        r.models
            .iter()
            .map(|m| m.warnings.len().to_string())
            .collect(),
    );
    if r.certify_method != "none" {
        let n = r.models.first().map(|m| m.certified_n).unwrap_or(0);
        println!(
            "\ncertified: correctly classified and proved robust by {} (timeout {CERTIFY_TIMEOUT_S} s) on the first {n} samples; robust: worst case over the {} suite",
            r.certify_method, r.preset
        );
    }
    for m in &r.models {
        for w in &m.warnings {
            println!(
                "\nWARNING [{}] {}: {}\n  evidence: {}",
                m.name, w.check, w.message, w.evidence
            );
        }
    }
    println!("\n({:.1} s)", r.seconds);
}

fn print_card(r: &AuditReport) {
    println!("model     {}", r.model);
    println!("data      {} ({} samples)", r.data, r.n);
    println!();
    let names: Vec<String> = r
        .results
        .first()
        .map(|e| e.attacks.iter().map(|a| a.attack.clone()).collect())
        .unwrap_or_default();
    print!("{:<10} {:>10}", "ε", "robust");
    for n in &names {
        print!(
            "  {:>24}",
            format!("after {}", n.split('(').next().unwrap_or(n))
        );
    }
    println!("  {:>12}", "median ‖δ‖");
    println!("{:<10} {:>9.2}%", "clean", r.clean_accuracy * 100.0);
    for e in &r.results {
        print!(
            "{:<10} {:>9.2}%",
            ruse_report::svg::trim(e.eps),
            e.robust_accuracy * 100.0
        );
        for a in &e.attacks {
            print!("  {:>23.2}%", a.robust_accuracy * 100.0);
        }
        println!(
            "  {:>12}",
            e.median_adversarial_norm
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(mp) = &r.minimal_perturbation {
        println!(
            "\nmedian minimal perturbation ({}, {}): {} ({} of {} correctly classified samples fooled)",
            mp.method,
            mp.norm,
            mp.median.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
            mp.fooled,
            mp.searched
        );
    }
    if r.warnings.is_empty() {
        println!("\nhonesty checks: none fired");
    }
    for w in &r.warnings {
        println!(
            "\nWARNING [{}]: {}\n  evidence: {}",
            w.check, w.message, w.evidence
        );
    }
    for s in &r.sections {
        print_section(s);
    }
    println!("\n({:.1} s)", r.seconds);
}
