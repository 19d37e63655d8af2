//! `ruse audit --sections …`: threat models beyond L_p balls, one section of the report each.
//!
//! Each section is computed by its own function from the same model and data as the L_p audit;
//! this file only dispatches by name so the sections stay independent of one another.

use anyhow::{bail, Result};
use ruse_attack::Model;
use ruse_data::Dataset;
use ruse_report::Section;

/// What every section gets: the model, the audited data, the seed and the batch size.
pub struct SectionContext<'a> {
    /// The model under audit.
    pub model: &'a Model<'a>,
    /// The audited samples (already limited by `--limit`).
    pub data: &'a Dataset,
    /// Seed of the section's randomness.
    pub seed: u64,
    /// Samples per forward pass.
    pub batch: usize,
    /// Attack sections (sparse, blackbox): how many correctly classified samples to attack.
    pub section_samples: usize,
    /// Query-based sections: model queries per sample (None: the section's default).
    pub query_budget: Option<usize>,
}

/// A section's computation.
type SectionFn = fn(&SectionContext) -> Result<Section>;

/// The sections `--sections` accepts, by name, in the order `all` runs them.
const SECTIONS: &[(&str, SectionFn)] = &[
    ("spatial", super::section_spatial::spatial),
    ("stickers", super::section_stickers::stickers),
    ("sparse", super::section_sparse::sparse),
    ("blackbox", super::section_blackbox::blackbox),
    ("corruptions", super::section_corruptions::corruptions),
    ("fooling", super::section_fooling::fooling),
];

/// Parses `--sections` (comma-separated names, or `all`) into known names, in the order given.
pub fn parse_sections(s: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            out.extend(SECTIONS.iter().map(|(n, _)| n.to_string()));
        } else if SECTIONS.iter().any(|(n, _)| *n == name) {
            out.push(name.to_string());
        } else {
            bail!(
                "unknown audit section '{name}' (known: {}, or all)",
                SECTIONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    out.dedup();
    Ok(out)
}

/// Runs one named section.
pub fn run_section(name: &str, ctx: &SectionContext) -> Result<Section> {
    match SECTIONS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(ctx),
        None => bail!("unknown audit section '{name}'"),
    }
}

/// Prints a section as a plain-text table under its title.
pub fn print_section(s: &Section) {
    println!("\n== {} ==\n{}", s.title, s.summary);
    if s.columns.is_empty() {
        return;
    }
    let widths: Vec<usize> = (0..s.columns.len())
        .map(|i| {
            s.rows
                .iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&s.columns[i]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        println!("{}", parts.join("  "));
    };
    line(&s.columns);
    for r in &s.rows {
        line(r);
    }
}
