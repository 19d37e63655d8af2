//! `ruse corrupt`: a few images under common corruptions, as a PNG grid.

use anyhow::{bail, Context, Result};
use ruse_data::corruptions::{sample_rng, Corruption, ALL, MAX_SEVERITY};
use ruse_report::Image;

use crate::cli::CorruptArgs;
use crate::model::load_data;

/// Parses `--type` (a name or `all`).
pub fn parse_types(s: &str) -> Result<Vec<Corruption>> {
    if s.trim() == "all" {
        return Ok(ALL.to_vec());
    }
    s.split(',')
        .map(|t| {
            t.parse::<Corruption>()
                .map_err(|e| anyhow::anyhow!("--type: {e}"))
        })
        .collect()
}

/// Parses `--severity` (1–5 or `all`).
fn parse_severities(s: &str) -> Result<Vec<usize>> {
    if s.trim() == "all" {
        return Ok((1..=MAX_SEVERITY).collect());
    }
    let v: usize = s
        .trim()
        .parse()
        .with_context(|| format!("--severity '{s}' is neither a number 1–5 nor 'all'"))?;
    if !(1..=MAX_SEVERITY).contains(&v) {
        bail!("--severity {v} is out of range: corruption severities are 1 to {MAX_SEVERITY}");
    }
    Ok(vec![v])
}

/// Writes grid.png: per image one row per corruption, clean first, then each severity.
pub fn run(a: CorruptArgs) -> Result<()> {
    let types = parse_types(&a.kind)?;
    let severities = parse_severities(&a.severity)?;
    anyhow::ensure!(a.count >= 1, "--count must be ≥ 1");
    let data = load_data(&a.data)?;
    let shape = data.shape();
    if !(shape[0] == 1 || shape[0] == 3) {
        bail!(
            "'{}' has {}-channel images; the grid shows 1- or 3-channel images",
            a.data.data,
            shape[0]
        );
    }
    let n = a.count.min(data.len());
    let mut cells = Vec::new();
    for i in 0..n {
        for &t in &types {
            cells.push(Image {
                pixels: data.image(i).to_vec(),
                shape,
                label: String::new(),
            });
            for &s in &severities {
                let mut rng = sample_rng(a.seed, t, s, i);
                cells.push(Image {
                    pixels: t.apply(data.image(i), shape, s, &mut rng)?,
                    shape,
                    label: s.to_string(),
                });
            }
        }
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let path = a.out.join("grid.png");
    let png = ruse_report::image_grid::image_grid_png(&cells, severities.len() + 1, a.scale)
        .context("could not render the grid")?;
    std::fs::write(&path, png).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}: {n} image(s) × rows {} × columns clean, severity {}",
        path.display(),
        types
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        severities
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
