//! `ruse predict`: scores for one input, as JSON.

use std::io::Read;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde_json::json;

use crate::cli::PredictArgs;
use crate::model::load_model;

/// Reads the input, runs the model, prints `{"output": [...], "class": k}`.
pub fn run(a: PredictArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let g = &m.graph;
    let x: Vec<f32> = match (&a.image, &a.input) {
        (Some(img), None) => {
            let [c, h, w] = match g.input_shape() {
                [c, h, w] => [*c, *h, *w],
                s => bail!("this model takes input of shape {s:?}, not an image; give --input x.json instead"),
            };
            if c != 1 && c != 3 {
                bail!("this model takes {c}-channel input; images must map to 1 (gray) or 3 (RGB) channels");
            }
            ruse_data::load_image_file(img, c, h, w)?
        }
        (None, Some(path)) => {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read stdin")?;
                s
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
            };
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not valid JSON", path.display()))?;
            let arr = v.as_array().with_context(|| {
                format!("{}: expected a flat JSON array of numbers", path.display())
            })?;
            let mut out = Vec::with_capacity(arr.len());
            for (i, e) in arr.iter().enumerate() {
                let f = e.as_f64().with_context(|| {
                    format!("{}: element {i} is not a number ({e})", path.display())
                })?;
                if !f.is_finite() {
                    bail!("{}: element {i} is not finite", path.display());
                }
                out.push(f as f32);
            }
            if out.len() != g.input_len() {
                bail!(
                    "{}: {} numbers, but the model input {:?} needs {}",
                    path.display(),
                    out.len(),
                    g.input_shape(),
                    g.input_len()
                );
            }
            let (lo, hi) = g.input_domain;
            if let Some((i, v)) = out.iter().enumerate().find(|(_, v)| **v < lo || **v > hi) {
                eprintln!(
                    "warning: element {i} = {v} lies outside the model's input domain [{lo}, {hi}]"
                );
            }
            out
        }
        _ => bail!("give exactly one of --image FILE or --input FILE.json"),
    };
    let shape: Vec<usize> = std::iter::once(1)
        .chain(g.input_shape().iter().copied())
        .collect();
    let xt = Tensor::from_vec(x, shape, &Device::Cpu)?;
    let y: Vec<f32> = g.forward(&xt)?.flatten_all()?.to_vec1()?;
    let class = y
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0;
    println!("{}", json!({ "output": y, "class": class }));
    Ok(())
}
