//! `ruse train`: train a zoo model (or resume a checkpoint) and write ONNX.

use anyhow::{bail, Context, Result};
use ruse_data::{DataSpec, Dataset, Split};
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_train::checkpoint::Checkpoint;
use ruse_train::{LrSchedule, OptimizerKind, TrainConfig};
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

/// Trains and writes the model.
pub fn run(a: TrainArgs) -> Result<()> {
    let (mut graph, cfg, resume, data_s, limit, out) = if let Some(ck_path) = &a.resume {
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
    );
    Ok(())
}
