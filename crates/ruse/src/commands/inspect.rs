//! `ruse inspect`: what a model is made of.

use anyhow::Result;
use ruse_graph::Operand;
use serde_json::json;

use crate::cli::InspectArgs;
use crate::model::load_model;

fn dims(v: &[usize]) -> String {
    let inner: Vec<String> = v.iter().map(|d| d.to_string()).collect();
    format!("[N, {}]", inner.join(", "))
}

/// Prints the model summary.
pub fn run(a: InspectArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    let g = &m.graph;
    if a.json {
        let nodes: Vec<_> = g
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "op": n.op.onnx_type(),
                    "output_shape": g.values[n.output].shape,
                    "params": n.inputs.iter().filter_map(|o| match o { Operand::Param(p) => Some(g.params[*p].tensor.dims().to_vec()), _ => None }).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "model": m.source,
                "sha256": m.sha256,
                "name": g.name,
                "input_shape": g.input_shape(),
                "output_shape": g.output_shape(),
                "input_domain": [g.input_domain.0, g.input_domain.1],
                "param_count": g.param_count(),
                "ops": g.op_histogram(),
                "nodes": nodes,
                "metadata": g.metadata,
            })
        );
        return Ok(());
    }
    println!("model         {}", m.source);
    println!("sha256        {}", m.sha256);
    println!(
        "input         {} {}",
        g.values[0].name,
        dims(g.input_shape())
    );
    println!("output        {}", dims(g.output_shape()));
    println!("input domain  [{}, {}]", g.input_domain.0, g.input_domain.1);
    println!(
        "parameters    {} in {} tensors",
        g.param_count(),
        g.params.len()
    );
    let hist: Vec<String> = g
        .op_histogram()
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    println!("ops           {}", hist.join(", "));
    for (k, v) in &g.metadata {
        println!("meta          {k} = {v}");
    }
    println!();
    println!(
        "{:<4} {:<20} {:<28} {:<22} weights",
        "#", "op", "node", "output"
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let w: Vec<String> = n
            .inputs
            .iter()
            .filter_map(|o| match o {
                Operand::Param(p) => Some(format!("{:?}", g.params[*p].tensor.dims())),
                Operand::Value(_) => None,
            })
            .collect();
        let mut name = n.name.clone();
        if name.len() > 27 {
            name.truncate(27);
        }
        println!(
            "{:<4} {:<20} {:<28} {:<22} {}",
            i,
            n.op.onnx_type(),
            name,
            dims(&g.values[n.output].shape),
            w.join(" ")
        );
    }
    Ok(())
}
