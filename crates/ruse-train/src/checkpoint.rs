//! Per-epoch checkpoints: the model as ONNX (`PATH.onnx`), the optimiser state as safetensors
//! (`PATH.state`), and the run's settings and history as JSON (`PATH`, written last so that a
//! checkpoint is only visible once complete).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ruse_graph::Graph;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::train::{EpochStats, TrainConfig};

/// Everything needed to continue a run after `epoch`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Last completed epoch.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// All parameter tensors of the graph, in id order.
    pub params: Vec<Tensor>,
    /// Optimiser first moments (per trainable parameter).
    pub m: Vec<Tensor>,
    /// Optimiser second moments (Adam).
    pub v: Vec<Tensor>,
    /// Epoch history so far.
    pub history: Vec<EpochStats>,
    /// The run's settings.
    pub config: TrainConfig,
    /// Caller's settings (e.g. the CLI's arch and data), kept verbatim.
    pub extra: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    epoch: usize,
    step: u64,
    n_m: usize,
    n_v: usize,
    history: Vec<EpochStats>,
    config: TrainConfig,
    extra: serde_json::Value,
}

const FORMAT: &str = "ruse-checkpoint-1";

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn err(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Checkpoint {
    /// Writes the checkpoint next to `path` (atomically per file, metadata last).
    pub fn save(&self, path: &Path, graph: &Graph) -> Result<()> {
        let mut g = graph.clone();
        g.set_params(&self.params)?;
        ruse_graph::export::save_onnx(&g, sibling(path, ".onnx"))?;
        let mut state: HashMap<String, Tensor> = HashMap::new();
        for (i, t) in self.m.iter().enumerate() {
            state.insert(format!("m.{i}"), t.clone());
        }
        for (i, t) in self.v.iter().enumerate() {
            state.insert(format!("v.{i}"), t.clone());
        }
        let st = sibling(path, ".state");
        let tmp = sibling(path, ".state.tmp");
        candle_core::safetensors::save(&state, &tmp).map_err(|e| err(path, e.to_string()))?;
        std::fs::rename(&tmp, &st).map_err(|e| err(path, e.to_string()))?;
        let meta = Meta {
            format: FORMAT.into(),
            epoch: self.epoch,
            step: self.step,
            n_m: self.m.len(),
            n_v: self.v.len(),
            history: self.history.clone(),
            config: self.config.clone(),
            extra: self.extra.clone(),
        };
        let json = serde_json::to_string_pretty(&meta).map_err(|e| err(path, e.to_string()))?;
        let tmp = sibling(path, ".tmp");
        std::fs::write(&tmp, json).map_err(|e| err(path, e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(path, e.to_string()))
    }

    /// Reads a checkpoint written by `save`; the graph is returned from the embedded ONNX.
    pub fn load(path: &Path) -> Result<(Checkpoint, Graph)> {
        let text =
            std::fs::read_to_string(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
        let meta: Meta = serde_json::from_str(&text)
            .map_err(|e| err(path, format!("not a ruse checkpoint: {e}")))?;
        if meta.format != FORMAT {
            return Err(err(
                path,
                format!("format '{}' is not {FORMAT}", meta.format),
            ));
        }
        let graph = ruse_graph::import::load_onnx(sibling(path, ".onnx"))?;
        let st = sibling(path, ".state");
        let state = candle_core::safetensors::load(&st, &Device::Cpu)
            .map_err(|e| err(&st, e.to_string()))?;
        let get = |k: String| {
            state
                .get(&k)
                .cloned()
                .ok_or_else(|| err(&st, format!("missing tensor {k}")))
        };
        let m = (0..meta.n_m)
            .map(|i| get(format!("m.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let v = (0..meta.n_v)
            .map(|i| get(format!("v.{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok((
            Checkpoint {
                epoch: meta.epoch,
                step: meta.step,
                params: graph.param_tensors(),
                m,
                v,
                history: meta.history,
                config: meta.config,
                extra: meta.extra,
            },
            graph,
        ))
    }
}
