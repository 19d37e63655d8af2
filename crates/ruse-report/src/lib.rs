//! Audit results (serialised as `report.json`) and their self-contained HTML rendering
//! (`report.html`: inline SVG curve and inline PNG image grids, no external assets).

pub mod audit;
pub mod grid;
pub mod html;
pub mod image_grid;
pub mod svg;

pub use audit::{
    AttackSummary, AuditReport, ComparisonReport, EpsResult, Example, Figure, Image,
    MinimalPerturbation, ModelComparison, Section, Warning,
};
