//! `ruse export`: write a model back out as ONNX (e.g. after setting its input domain).

use anyhow::Result;

use crate::cli::ExportArgs;
use crate::model::load_model;

/// Loads and re-exports.
pub fn run(a: ExportArgs) -> Result<()> {
    let m = load_model(&a.model)?;
    ruse_graph::export::save_onnx(&m.graph, &a.out)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
