//! `ruse train`: train a zoo model (or resume a checkpoint) and write ONNX.

use anyhow::{bail, Context, Result};
use ruse_data::{DataSpec, Dataset, Split};
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_train::checkpoint::Checkpoint;
use ruse_train::train::DEFAULT_VAL_ATTACK_LIMIT;
use ruse_train::{Defense, LrSchedule, OptimizerKind, TrainConfig, VAL_PGD_STEPS};
use serde_json::json;

use crate::cli::TrainArgs;
use crate::progress::TrainBars;

/// Per-channel mean and std of a dataset's pixels.
fn channel_stats(d: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let plane = d.height * d.width;
    let mut mean = vec![0f64; d.channels];
    let mut sq = vec![0f64; d.channels];
    for i in 0..d.len() {
        for (c, px) in d.image(i).chunks(plane).enumerate() {
            for &v in px {
                mean[c] += v as f64;
                sq[c] += (v as f64) * (v as f64);
            }
        }
    }
    let n = (d.len() * plane).max(1) as f64;
    let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt() as f32).max(1e-3))
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

fn parse_normalize(s: &str, d: &Dataset) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    match s {
        "none" => Ok(None),
        "auto" => Ok(Some(channel_stats(d))),
        _ => {
            let v: Vec<f32> = s
                .split(',')
                .map(|t| {
                    t.trim()
                        .parse::<f32>()
                        .with_context(|| format!("--normalize: '{t}' is not a number"))
                })
                .collect::<Result<_>>()?;
            if v.len() != 2 * d.channels {
                bail!(
                    "--normalize needs {} numbers (MEAN,STD per channel), got {}",
                    2 * d.channels,
                    v.len()
                );
            }
            Ok(Some((
                v.iter().step_by(2).copied().collect(),
                v.iter().skip(1).step_by(2).copied().collect(),
            )))
        }
    }
}

/// The defense flags given on the command line, by name (for error messages).
fn defense_flags(a: &TrainArgs) -> Vec<&'static str> {
    [
        ("--defense", a.defense.is_some()),
        ("--eps", a.eps.is_some()),
        ("--attack-steps", a.attack_steps.is_some()),
        ("--attack-step-size", a.attack_step_size.is_some()),
        ("--no-random-start", a.no_random_start),
        ("--trades-beta", a.trades_beta.is_some()),
        ("--eps-ramp", a.eps_ramp.is_some()),
        ("--warmup", a.warmup.is_some()),
        ("--kappa-end", a.kappa_end.is_some()),
        ("--noise-sigma", a.noise_sigma.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, given)| given.then_some(f))
    .collect()
}

/// The defense, ε ramp and warm-up of a fresh run, from `--defense` and its settings.
fn parse_defense(a: &TrainArgs) -> Result<(Defense, usize, usize)> {
    let name = a.defense.as_deref().unwrap_or("none");
    let only = |flag: &str, given: bool, which: &str| -> Result<()> {
        if given {
            bail!("{flag} only applies to {which}, not --defense {name}");
        }
        Ok(())
    };
    if name == "none" {
        let flags: Vec<_> = defense_flags(a)
            .into_iter()
            .filter(|f| *f != "--defense")
            .chain(a.val_attack_limit.map(|_| "--val-attack-limit"))
            .collect();
        if !flags.is_empty() {
            bail!(
                "{} only apply to adversarial or certified training, which --defense none turns off; add --defense pgd-at, trades, fgsm-at or ibp",
                flags.join(", ")
            );
        }
        return Ok((Defense::None, 0, 0));
    }
    if ![
        "pgd-at",
        "trades",
        "fgsm-at",
        "ibp",
        "crown-ibp",
        "gaussian",
    ]
    .contains(&name)
    {
        bail!(
            "unknown defense '{name}'; choose one of: none, pgd-at, trades, fgsm-at, ibp, crown-ibp, gaussian"
        );
    }
    if name == "gaussian" {
        let Some(sigma) = a.noise_sigma else {
            bail!("--defense gaussian needs --noise-sigma, the noise's standard deviation in input units (e.g. 0.25)");
        };
        if !(sigma.is_finite() && sigma > 0.0) {
            bail!("--noise-sigma {sigma}: σ must be a finite number > 0");
        }
        let others: Vec<_> = defense_flags(a)
            .into_iter()
            .filter(|f| *f != "--defense" && *f != "--noise-sigma")
            .chain(a.val_attack_limit.map(|_| "--val-attack-limit"))
            .collect();
        if !others.is_empty() {
            bail!(
                "{} do not apply to --defense gaussian (noise augmentation attacks nothing and has no ε)",
                others.join(", ")
            );
        }
        return Ok((Defense::GaussianNoise { sigma }, 0, 0));
    }
    only(
        "--noise-sigma",
        a.noise_sigma.is_some(),
        "--defense gaussian",
    )?;
    let Some(eps) = a.eps else {
        bail!(
            "--defense {name} needs --eps, the L∞ radius in input units (e.g. --eps 0.3 for MNIST)"
        );
    };
    if !(eps.is_finite() && eps >= 0.0) {
        bail!("--eps {eps}: the radius must be a finite number ≥ 0");
    }
    if let Some(s) = a.attack_step_size {
        if !(s.is_finite() && s > 0.0) {
            bail!("--attack-step-size {s}: the step size must be a finite number > 0");
        }
    }
    let steps = a.attack_steps.unwrap_or(10);
    if steps == 0 {
        bail!("--attack-steps 0: the training attack needs at least 1 step");
    }
    let step_size = a.attack_step_size.unwrap_or(2.5 * eps / steps as f32);
    if name != "trades" {
        only("--trades-beta", a.trades_beta.is_some(), "--defense trades")?;
    }
    let certified = name == "ibp" || name == "crown-ibp";
    if !certified {
        only(
            "--kappa-end",
            a.kappa_end.is_some(),
            "--defense ibp and crown-ibp",
        )?;
    }
    let ramp = (a.eps_ramp.unwrap_or(0), a.warmup.unwrap_or(0));
    if certified {
        let attack =
            "the attack defenses (pgd-at, trades, fgsm-at); ibp and crown-ibp attack nothing";
        only("--attack-steps", a.attack_steps.is_some(), attack)?;
        only("--attack-step-size", a.attack_step_size.is_some(), attack)?;
        only("--no-random-start", a.no_random_start, "--defense pgd-at")?;
        let kappa_end = a.kappa_end.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&kappa_end) {
            bail!("--kappa-end {kappa_end}: κ must be in [0, 1] (the weight of the clean loss)");
        }
        let d = if name == "ibp" {
            Defense::Ibp { eps, kappa_end }
        } else {
            Defense::CrownIbp { eps, kappa_end }
        };
        return Ok((d, ramp.0, ramp.1));
    }
    if name != "pgd-at" {
        only("--no-random-start", a.no_random_start, "--defense pgd-at")?;
    }
    let defense = match name {
        "pgd-at" => Defense::PgdAt {
            eps,
            steps,
            step_size,
            random_start: !a.no_random_start,
        },
        "trades" => {
            let beta = a.trades_beta.unwrap_or(6.0);
            if !(beta.is_finite() && beta >= 0.0) {
                bail!("--trades-beta {beta}: β must be a finite number ≥ 0");
            }
            Defense::Trades {
                eps,
                steps,
                step_size,
                beta,
            }
        }
        _ => {
            only(
                "--attack-steps",
                a.attack_steps.is_some(),
                "--defense pgd-at and trades (fgsm-at takes one step of --attack-step-size)",
            )?;
            Defense::FgsmAt {
                eps,
                alpha: a.attack_step_size.unwrap_or(1.25 * eps),
            }
        }
    };
    Ok((defense, ramp.0, ramp.1))
}

/// Trains and writes the model.
pub fn run(a: TrainArgs) -> Result<()> {
    let (mut graph, cfg, resume, data_s, limit, out) = if let Some(ck_path) = &a.resume {
        let flags = defense_flags(&a);
        if !flags.is_empty() {
            bail!(
                "--resume continues with the checkpoint's defense settings; drop {}",
                flags.join(", ")
            );
        }
        let (ck, graph) = Checkpoint::load(ck_path)?;
        let mut cfg = ck.config.clone();
        if let Some(e) = a.epochs {
            cfg.epochs = e;
        }
        if ck.epoch >= cfg.epochs {
            bail!(
                "{}: already trained for {} of {} epochs; pass --epochs N with N > {} to continue",
                ck_path.display(),
                ck.epoch,
                cfg.epochs,
                ck.epoch
            );
        }
        let data = ck.extra["data"]
            .as_str()
            .context("checkpoint lacks its data spec")?
            .to_string();
        let limit = ck.extra["limit"].as_u64().map(|v| v as usize);
        let out = ck.extra["out"]
            .as_str()
            .map(Into::into)
            .unwrap_or_else(|| a.out.clone());
        (graph, cfg, Some(ck), data, limit, out)
    } else {
        let data = a
            .data
            .clone()
            .context("--data is required (e.g. --data mnist:../shared/data/mnist)")?;
        let arch: Arch = a.arch.parse().map_err(anyhow::Error::msg)?;
        let optimizer: OptimizerKind = a.optimizer.parse().map_err(anyhow::Error::msg)?;
        let lr = a.lr.unwrap_or(match optimizer {
            OptimizerKind::Adam { .. } => 1e-3,
            OptimizerKind::Sgd { .. } => 0.05,
        });
        let (defense, eps_ramp_epochs, warmup_epochs) = parse_defense(&a)?;
        let cfg = TrainConfig {
            epochs: a.epochs.unwrap_or(3),
            batch_size: a.batch_size,
            lr,
            schedule: a
                .schedule
                .parse::<LrSchedule>()
                .map_err(anyhow::Error::msg)?,
            optimizer,
            weight_decay: a.weight_decay,
            seed: a.seed,
            checkpoint: None,
            defense,
            eps_ramp_epochs,
            warmup_epochs,
            val_attack_limit: DEFAULT_VAL_ATTACK_LIMIT,
            extra: serde_json::Value::Null,
        };
        cfg.validate()?;
        // The graph is built once the data's shape is known (below).
        let _ = arch;
        (
            ruse_graph::Graph::new("", "", vec![]),
            cfg,
            None,
            data,
            a.limit,
            a.out.clone(),
        )
    };
    let spec: DataSpec = data_s.parse()?;
    let train_data = ruse_data::load(&spec, Split::Train, limit)?;
    if train_data.is_empty() {
        bail!("{data_s}: no training samples");
    }
    let val = if a.val_limit > 0 {
        Some(ruse_data::load(&spec, Split::Test, Some(a.val_limit))?)
    } else {
        None
    };
    if resume.is_none() {
        let arch: Arch = a.arch.parse().map_err(anyhow::Error::msg)?;
        let normalize = parse_normalize(&a.normalize, &train_data)?;
        graph = build(
            arch,
            &ZooSpec {
                input: train_data.shape(),
                classes: train_data.num_classes,
                normalize,
                seed: a.seed,
            },
        )?;
        graph
            .metadata
            .insert("ruse.classes".into(), train_data.class_names.join(","));
        graph
            .metadata
            .insert("ruse.trained_on".into(), data_s.clone());
    }
    let mut cfg = cfg;
    let ck_path = {
        let mut s = out.as_os_str().to_owned();
        s.push(".ckpt");
        std::path::PathBuf::from(s)
    };
    cfg.checkpoint = (!a.no_checkpoint).then(|| ck_path.clone());
    cfg.val_attack_limit = a.val_attack_limit.unwrap_or(DEFAULT_VAL_ATTACK_LIMIT);
    eprintln!(
        "training {} on {} ({} samples) for {} epochs, batch {}, {:?} lr {}, seed {}",
        graph.name,
        data_s,
        train_data.len(),
        cfg.epochs,
        cfg.batch_size,
        cfg.optimizer,
        cfg.lr,
        cfg.seed
    );
    if let Some(eps) = cfg.defense.eps() {
        let ramp = match cfg.eps_ramp_epochs {
            0 => String::new(),
            k => format!(", ε ramped up over {k} epoch(s)"),
        };
        let ramp = match cfg.warmup_epochs {
            0 => ramp,
            w => format!(", {w} clean warm-up epoch(s){ramp}"),
        };
        let verified = if matches!(cfg.defense, Defense::Ibp { .. } | Defense::CrownIbp { .. }) {
            " and verified (IBP, then CROWN-IBP)"
        } else {
            ""
        };
        let check = match (&val, cfg.val_attack_limit) {
            (Some(v), n) if n > 0 => format!(
                "; validation under PGD-{VAL_PGD_STEPS}{verified} at ε {eps} on the first {} test samples",
                n.min(v.len())
            ),
            _ => String::new(),
        };
        eprintln!("defense: {}{ramp}{check}", cfg.defense);
    }
    let mut bars = TrainBars::new();
    let extra = json!({ "data": data_s, "limit": limit, "out": out });
    cfg.extra = extra;
    let report = ruse_train::train(
        &mut graph,
        &train_data,
        val.as_ref(),
        &cfg,
        resume,
        &mut bars,
    )?;
    ruse_graph::export::save_onnx(&graph, &out)?;
    let last = report.history.last();
    eprintln!(
        "wrote {} ({} parameters){}",
        out.display(),
        graph.param_count(),
        last.and_then(|s| s.val_accuracy)
            .map(|v| format!("; validation accuracy {:.2}%", v * 100.0))
            .unwrap_or_default()
            + &last
                .and_then(|s| s.val_robust_accuracy)
                .map(|v| format!(", under PGD-{VAL_PGD_STEPS} {:.2}%", v * 100.0))
                .unwrap_or_default()
            + &last
                .and_then(|s| s.val_verified_accuracy)
                .map(|v| format!(", verified {:.2}%", v * 100.0))
                .unwrap_or_default()
    );
    Ok(())
}
