//! `ruse attack`: one attack on a model and data, adversarials as JSON and a PNG grid.

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::apgd::{Apgd, ApgdTargeted};
use ruse_attack::cw::CarliniWagner;
use ruse_attack::deepfool::DeepFool;
use ruse_attack::fab::Fab;
use ruse_attack::fgsm::Fgsm;
use ruse_attack::hopskipjump::HopSkipJump;
use ruse_attack::lbfgs::Lbfgs;
use ruse_attack::loss::Loss;
use ruse_attack::model::argmax_rows;
use ruse_attack::onepixel::OnePixel;
use ruse_attack::pgd::Pgd;
use ruse_attack::query::{changed_pixels, queries_per_success};
use ruse_attack::simba::{Simba, SimbaBasis};
use ruse_attack::sparse_rs::SparseRs;
use ruse_attack::spatial::{default_max_shift, Search, Spatial};
use ruse_attack::square::Square;
use ruse_attack::{Attack, Goal, Model, Norm, ThreatModel};
use ruse_report::Example;
use serde_json::json;

use crate::cli::AttackArgs;
use crate::model::load_for_attack;
use crate::progress::bar;

fn build(a: &AttackArgs) -> Result<Box<dyn Attack>> {
    let targeted = a.target.is_some();
    Ok(match a.attack.as_str() {
        name if name.starts_with("spatial-") => match spatial(a, 28)? {
            Some(s) => Box::new(s),
            None => bail!("unknown spatial attack '{name}': use spatial-grid, spatial-random or spatial-grad"),
        },
        "fgsm" => Box::new(Fgsm),
        "pgd" | "bim" => Box::new(Pgd {
            steps: a.steps.unwrap_or(40),
            restarts: a.restarts,
            random_start: a.attack == "pgd",
            ..Pgd::default()
        }),
        "apgd-ce" | "apgd-dlr" => Box::new(Apgd {
            restarts: a.restarts,
            ..Apgd::new(
                if a.attack == "apgd-ce" {
                    Loss::CrossEntropy
                } else {
                    Loss::Dlr
                },
                a.steps.unwrap_or(100),
            )
        }),
        "deepfool" if !targeted => Box::new(DeepFool {
            steps: a.steps.unwrap_or(50),
            ..DeepFool::default()
        }),
        "square" if !targeted => Box::new(Square {
            queries: a.query_budget.or(a.steps).unwrap_or(5000),
            ..Square::default()
        }),
        "onepixel" => Box::new(OnePixel {
            pixels: a.pixels.unwrap_or(1),
            generations: a.steps.unwrap_or(100),
            query_budget: a.query_budget,
            ..OnePixel::default()
        }),
        "sparse-rs" => Box::new(SparseRs {
            pixels: a.pixels.unwrap_or(10),
            queries: a.query_budget.unwrap_or(10000),
            ..SparseRs::default()
        }),
        "hopskipjump" | "hsj" => Box::new(HopSkipJump {
            iterations: a.steps.unwrap_or(64),
            query_budget: a.query_budget,
            ..HopSkipJump::default()
        }),
        "simba" | "simba-dct" | "simba-pixel" => Box::new(Simba {
            basis: if a.attack == "simba-pixel" {
                SimbaBasis::Pixel
            } else {
                SimbaBasis::Dct
            },
            step: a.simba_step,
            query_budget: a.query_budget.unwrap_or(10000),
            freq: None,
        }),
        "cw" if !targeted => Box::new(CarliniWagner {
            steps: a.steps.unwrap_or(200),
            ..CarliniWagner::default()
        }),
        "fab" if !targeted => Box::new(Fab {
            steps: a.steps.unwrap_or(100),
            restarts: a.restarts,
            ..Fab::default()
        }),
        "lbfgs" => Box::new(Lbfgs {
            iterations: a.steps.unwrap_or(60),
            ..Lbfgs::default()
        }),
        "deepfool" | "square" | "cw" | "fab" => {
            bail!("{} is untargeted here; drop --target", a.attack)
        }
        "fab-t" if !targeted => Box::new(Fab {
            steps: a.steps.unwrap_or(100),
            restarts: a.restarts,
            ..Fab::targeted(9)
        }),
        "fab-t" => bail!(
            "fab-t picks its own targets (the 9 most likely wrong classes); use --attack lbfgs --target K for one target class"
        ),
        "apgd-t" if !targeted => Box::new(ApgdTargeted {
            steps: a.steps.unwrap_or(100),
            top_k: 9,
        }),
        "apgd-t" => bail!(
            "apgd-t picks its own targets; use --attack apgd-dlr --target K for one target class"
        ),
        other => bail!("unknown attack '{other}': use fgsm, pgd, bim, apgd-ce, apgd-dlr, apgd-t, deepfool, square, cw, lbfgs, fab, fab-t, onepixel, sparse-rs, hopskipjump, simba or simba-pixel"),
    })
}

/// Attacks that change a few pixels (measured in pixels, not in --norm).
fn is_sparse(name: &str) -> bool {
    matches!(name, "onepixel" | "sparse-rs")
}

/// Attacks that only query the model and count their queries per sample.
fn is_query_based(name: &str) -> bool {
    matches!(
        name,
        "square"
            | "onepixel"
            | "sparse-rs"
            | "hopskipjump"
            | "hsj"
            | "simba"
            | "simba-dct"
            | "simba-pixel"
    )
}

/// The spatial attack `a` names (None for other attacks), its default shift scaled to images of
/// height `h` (3 px at 28, Engstrom et al.'s MNIST setting).
fn spatial(a: &AttackArgs, h: usize) -> Result<Option<Spatial>> {
    let max_shift = a.max_shift.unwrap_or_else(|| default_max_shift(h));
    let search = match a.attack.as_str() {
        "spatial-grid" => Search::Grid {
            angles: 31,
            shifts: 5,
        },
        "spatial-random" => Search::Random {
            k: a.steps.unwrap_or(10),
        },
        "spatial-grad" => Search::Gradient {
            steps: a.steps.unwrap_or(10),
            restarts: a.restarts,
        },
        _ => return Ok(None),
    };
    if a.target.is_some() {
        bail!("{} is untargeted; drop --target", a.attack);
    }
    Ok(Some(Spatial {
        max_angle: a.max_angle,
        max_shift,
        search,
    }))
}

/// Runs the attack and writes the results.
pub fn run(a: AttackArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size >= 1, "--batch-size must be ≥ 1");
    anyhow::ensure!(a.restarts >= 1, "--restarts must be ≥ 1");
    anyhow::ensure!(a.steps != Some(0), "--steps must be ≥ 1");
    anyhow::ensure!(a.pixels != Some(0), "--pixels must be ≥ 1");
    anyhow::ensure!(a.query_budget != Some(0), "--query-budget must be ≥ 1");
    anyhow::ensure!(
        a.query_budget.is_none() || is_query_based(&a.attack),
        "--query-budget applies to square, onepixel, sparse-rs, hopskipjump and simba, not {}",
        a.attack
    );
    anyhow::ensure!(
        a.pixels.is_none() || is_sparse(&a.attack),
        "--pixels applies to onepixel and sparse-rs, not {}",
        a.attack
    );
    let attack = build(&a)?;
    let sparse = is_sparse(&a.attack);
    let norm: Norm = a.norm.parse()?;
    let (m, data) = load_for_attack(&a.model, &a.data)?;
    // A spatial attack's default shift scales with the image size, known only now.
    let attack: Box<dyn Attack> = match spatial(&a, data.height)? {
        Some(s) => Box::new(s),
        None => attack,
    };
    let g = &m.graph;
    let model = Model::new(g)?;
    let k = model.classes();
    if let Some(t) = a.target {
        anyhow::ensure!(
            t < k,
            "--target {t} is not a class of this model (0..{})",
            k - 1
        );
    }
    let threat = ThreatModel::new(norm, a.eps as f32, g.input_domain)?;
    let d = model.input_len();
    let (x, y) = (&data.images, &data.labels);
    let n = y.len();
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let mut adv = Vec::with_capacity(x.len());
    let mut success = Vec::with_capacity(n);
    let (mut forwards, mut gradients) = (0u64, 0u64);
    let mut queries: Vec<u64> = Vec::with_capacity(n);
    let pb = bar(n as u64, &attack.name());
    let t0 = std::time::Instant::now();
    for (xs, ys) in x.chunks(a.batch_size * d).zip(y.chunks(a.batch_size)) {
        let goal = match a.target {
            Some(t) => Goal::Targeted(vec![t; ys.len()]),
            None => Goal::Untargeted,
        };
        let out = attack.run(&model, xs, ys, &threat, &goal, &mut rng)?;
        adv.extend_from_slice(&out.adv);
        success.extend_from_slice(&out.success);
        forwards += out.forwards;
        gradients += out.gradients;
        queries.extend_from_slice(&out.queries);
        pb.inc(ys.len() as u64);
    }
    pb.finish_and_clear();
    let seconds = t0.elapsed().as_secs_f64();
    // Every reported success is re-checked with a fresh forward pass.
    let clean: Vec<usize> = x
        .chunks(a.batch_size * d)
        .map(|c| model.logits(c))
        .collect::<Result<Vec<_>, _>>()?
        .concat()
        .chunks(k)
        .map(|r| argmax_rows(r, k)[0])
        .collect();
    let preds: Vec<usize> = adv
        .chunks(a.batch_size * d)
        .map(|c| model.logits(c))
        .collect::<Result<Vec<_>, _>>()?
        .concat()
        .chunks(k)
        .map(|r| argmax_rows(r, k)[0])
        .collect();
    // A success needs a sample that was not already at the goal: correctly classified (untargeted)
    // or of another class than the target (targeted).
    let applicable: Vec<bool> = (0..n)
        .map(|i| match a.target {
            Some(t) => y[i] != t,
            None => clean[i] == y[i],
        })
        .collect();
    for i in 0..n {
        let ok = match a.target {
            Some(t) => preds[i] == t,
            None => preds[i] != y[i],
        };
        success[i] = success[i] && ok && applicable[i];
    }
    let shape = data.shape();
    // Sparse attacks are measured in changed pixels (L0 over positions), the rest in --norm.
    let norms: Vec<f32> = (0..n)
        .map(|i| {
            if sparse {
                return changed_pixels(&adv[i * d..(i + 1) * d], &x[i * d..(i + 1) * d], shape)
                    as f32;
            }
            norm.of(&adv[i * d..(i + 1) * d]
                .iter()
                .zip(&x[i * d..(i + 1) * d])
                .map(|(p, q)| p - q)
                .collect::<Vec<_>>())
        })
        .collect();
    let correct = (0..n).filter(|&i| clean[i] == y[i]).count();
    let robust = (0..n)
        .filter(|&i| clean[i] == y[i] && preds[i] == y[i])
        .count();
    let fooled = (0..n).filter(|&i| success[i]).count();
    let tried = applicable.iter().filter(|&&v| v).count();
    let mut ok_norms: Vec<f32> = (0..n).filter(|&i| success[i]).map(|i| norms[i]).collect();
    ok_norms.sort_by(|p, q| p.total_cmp(q));
    let median = ok_norms.get(ok_norms.len() / 2).copied();
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let counted = queries.len() == n;
    let per_sample: Vec<_> = (0..n)
        .map(|i| {
            let mut s = json!({"index": i, "label": y[i], "clean_prediction": clean[i], "adversarial_prediction": preds[i], "success": success[i], "norm": norms[i]});
            if counted {
                s["queries"] = json!(queries[i]);
            }
            s
        })
        .collect();
    let qps = if counted {
        queries_per_success(&queries, &success)
    } else {
        None
    };
    let report = json!({
        "attack": attack.name(),
        "model": m.source,
        "model_sha256": m.sha256,
        "data": a.data.data,
        "norm": if sparse { "l0-pixels".to_string() } else { norm.to_string() },
        "query_budget": a.query_budget,
        "queries_per_success": qps.map(|(mean, median)| json!({"mean": mean, "median": median})),
        "eps": a.eps,
        "target": a.target,
        "seed": a.seed,
        "n": n,
        "clean_accuracy": correct as f64 / n as f64,
        "robust_accuracy": robust as f64 / n as f64,
        "attacked": tried,
        "success_rate": fooled as f64 / tried.max(1) as f64,
        "median_adversarial_norm": median,
        "forwards": forwards,
        "gradients": gradients,
        "seconds": seconds,
        "samples": per_sample,
    });
    let json_path = a.out.join("attack.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let examples: Vec<Example> = (0..n)
        .filter(|&i| success[i])
        .take(a.grid)
        .map(|i| Example {
            eps: a.eps,
            clean: x[i * d..(i + 1) * d].to_vec(),
            adversarial: adv[i * d..(i + 1) * d].to_vec(),
            shape: data.shape(),
            label: y[i],
            predicted: preds[i],
        })
        .collect();
    let grid_path = a.out.join("grid.png");
    match ruse_report::grid::example_grid_png(&examples, 3) {
        Some(png) => std::fs::write(&grid_path, png).with_context(|| format!("cannot write {}", grid_path.display()))?,
        None => eprintln!("note: no grid written (no successful adversarial, or images that are not 1- or 3-channel)"),
    }
    println!("attack          {}", attack.name());
    if a.attack.starts_with("spatial-") {
        println!("transforms      rotation about the centre, then shift; --norm/--eps do not apply (norms in attack.json are of the pixel change)");
    }
    if sparse {
        println!(
            "threat model    at most {} changed pixels (domain [{}, {}])",
            a.pixels
                .unwrap_or(if a.attack == "onepixel" { 1 } else { 10 }),
            threat.domain.0,
            threat.domain.1
        );
    } else {
        println!(
            "threat model    {norm} ε = {} (domain [{}, {}])",
            a.eps, threat.domain.0, threat.domain.1
        );
    }
    println!("samples         {n}");
    println!("clean accuracy  {:.2}%", 100.0 * correct as f64 / n as f64);
    if a.target.is_none() {
        println!("robust accuracy {:.2}%", 100.0 * robust as f64 / n as f64);
    }
    println!(
        "success rate    {:.2}%{}",
        100.0 * fooled as f64 / n as f64,
        a.target
            .map(|t| format!(" (target class {t})"))
            .unwrap_or_default()
    );
    if let Some(m) = median {
        if sparse {
            println!("median pixels   {m}");
        } else {
            println!("median ‖δ‖      {m:.4}");
        }
    }
    if let Some((mean, med)) = qps {
        println!("queries/success mean {mean:.0}, median {med:.0}");
    }
    println!("queries         {forwards} forward, {gradients} gradient ({seconds:.1} s)");
    println!("wrote {} and {}", json_path.display(), grid_path.display());
    Ok(())
}
