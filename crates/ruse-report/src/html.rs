//! The self-contained HTML report: report card, curve, image grids, warnings, settings.

use std::io::Cursor;

use base64::Engine;

use crate::audit::{AuditReport, ComparisonReport, Example, Section, Warning};
use crate::svg::{accuracy_curve, accuracy_curves, trim};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A C×H×W image in [0,1] (C = 1 or 3), upscaled `scale`× with nearest neighbour, as a PNG data URI.
pub fn png_data_uri(px: &[f32], shape: [usize; 3], scale: u32) -> Option<String> {
    let [c, h, w] = shape;
    if px.len() != c * h * w || !(c == 1 || c == 3) {
        return None;
    }
    let (sw, sh) = (w as u32 * scale, h as u32 * scale);
    let img = image::RgbImage::from_fn(sw, sh, |x, y| {
        let (xx, yy) = ((x / scale) as usize, (y / scale) as usize);
        let ch = |k: usize| (px[(k * h + yy) * w + xx].clamp(0.0, 1.0) * 255.0).round() as u8;
        if c == 1 {
            image::Rgb([ch(0); 3])
        } else {
            image::Rgb([ch(0), ch(1), ch(2)])
        }
    });
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The perturbation, amplified to fill [0,1] around mid-grey, for display.
pub fn amplified_difference(clean: &[f32], adv: &[f32]) -> Vec<f32> {
    let m = clean
        .iter()
        .zip(adv)
        .map(|(a, b)| (b - a).abs())
        .fold(1e-12f32, f32::max);
    clean
        .iter()
        .zip(adv)
        .map(|(a, b)| 0.5 + 0.5 * (b - a) / m)
        .collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}.warn{background:#fff3cd;border:1px solid #e0c36b;padding:8px 12px;margin:8px 0}.grid{display:flex;flex-wrap:wrap;gap:14px}.ex{border:1px solid #ddd;padding:6px;font-size:12px;text-align:center}.ex img{image-rendering:pixelated;margin:2px}code{background:#f4f4f4;padding:1px 4px}";

/// Renders the whole report.
pub fn render(r: &AuditReport, examples: &[Example], class_names: &[String], norm: &str) -> String {
    let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut h = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ruse audit</title><style>");
    h += STYLE;
    h += "</style></head><body>";
    h += &format!("<h1>ruse audit</h1><p>model <code>{}</code> (sha256 <code>{}</code>) on <code>{}</code>, {} samples, {norm} threat model, seed {}.</p>", esc(&r.model), &r.model_sha256[..r.model_sha256.len().min(16)], esc(&r.data), r.n, r.seed);
    h += "<h2>Report card</h2><table><tr><th class=\"l\">ε</th><th>robust accuracy</th>";
    let attack_names: Vec<String> = r
        .results
        .first()
        .map(|e| e.attacks.iter().map(|a| a.attack.clone()).collect())
        .unwrap_or_default();
    for a in &attack_names {
        h += &format!("<th>after {}</th>", esc(a));
    }
    h += "<th>median ‖δ‖ of adversarials</th></tr>";
    h += &format!(
        "<tr><td class=\"l\">0 (clean)</td><td>{:.2}%</td>{}<td></td></tr>",
        r.clean_accuracy * 100.0,
        "<td></td>".repeat(attack_names.len())
    );
    for e in &r.results {
        h += &format!(
            "<tr><td class=\"l\">{}</td><td><b>{:.2}%</b></td>",
            trim(e.eps),
            e.robust_accuracy * 100.0
        );
        for a in &e.attacks {
            h += &format!("<td>{:.2}%</td>", a.robust_accuracy * 100.0);
        }
        h += &format!(
            "<td>{}</td></tr>",
            e.median_adversarial_norm
                .map(|v| format!("{v:.4}"))
                .unwrap_or_default()
        );
    }
    h += "</table>";
    if let Some(mp) = &r.minimal_perturbation {
        h += &format!(
            "<p>Median minimal perturbation ({}, {}): <b>{}</b> over the {} of {} correctly classified samples it fooled.</p>",
            esc(&mp.method),
            esc(&mp.norm),
            mp.median.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
            mp.fooled,
            mp.searched
        );
    }
    let mut pts = vec![(0.0, r.clean_accuracy)];
    pts.extend(r.results.iter().map(|e| (e.eps, e.robust_accuracy)));
    h += "<h2>Accuracy vs ε</h2>";
    h += &accuracy_curve(&pts, norm);
    h += "<h2>Honesty checks</h2>";
    h += &warnings_html(&r.warnings);
    h += "<h2>Adversarial examples</h2><p>clean | adversarial | perturbation (amplified; grey = unchanged)</p><div class=\"grid\">";
    for ex in examples {
        let diff = amplified_difference(&ex.clean, &ex.adversarial);
        let imgs: Vec<String> = [&ex.clean, &ex.adversarial, &diff]
            .iter()
            .filter_map(|p| png_data_uri(p, ex.shape, 3))
            .map(|u| format!("<img src=\"{u}\" alt=\"\">"))
            .collect();
        h += &format!(
            "<div class=\"ex\">{}<br>ε={}: {} → <b>{}</b></div>",
            imgs.join(""),
            trim(ex.eps),
            esc(&name(ex.label)),
            esc(&name(ex.predicted))
        );
    }
    h += "</div>";
    for sec in &r.sections {
        h += &render_section(sec);
    }
    h += "<h2>Per-attack details</h2><table><tr><th class=\"l\">ε</th><th class=\"l\">attack</th><th>newly fooled</th><th>robust after</th><th>forward evals</th><th>gradient evals</th><th>seconds</th></tr>";
    for e in &r.results {
        for a in &e.attacks {
            h += &format!("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.2}%</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>", trim(e.eps), esc(&a.attack), a.new_successes, a.robust_accuracy * 100.0, a.forwards, a.gradients, a.seconds);
        }
    }
    h += "</table><h2>Reproduce</h2><table>";
    for (k, v) in &r.settings {
        h += &format!(
            "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
            esc(k),
            esc(v)
        );
    }
    h += &format!(
        "</table><p>ruse {} · {:.1} s</p></body></html>\n",
        esc(&r.ruse_version),
        r.seconds
    );
    h
}

/// Renders a comparison of several models (`ruse audit --compare`): one column per model with
/// clean, robust and certified accuracy per ε, one accuracy-vs-ε curve per model on the same
/// axes, each model's honesty-check flags, and the settings.
pub fn render_comparison(r: &ComparisonReport) -> String {
    let mut h = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ruse audit: comparison</title><style>");
    h += STYLE;
    h += "</style></head><body>";
    h += &format!(
        "<h1>ruse audit: {} models compared</h1><p>data <code>{}</code>, {} samples, {} threat model, preset {}, seed {}; certified accuracy by {}.</p>",
        r.models.len(),
        esc(&r.data),
        r.n,
        esc(&r.norm),
        esc(&r.preset),
        r.seed,
        esc(&r.certify_method)
    );
    h += "<h2>Report card</h2><table><tr><th class=\"l\"></th>";
    for m in &r.models {
        h += &format!(
            "<th>{}<br><small><code>{}</code></small></th>",
            esc(&m.name),
            &m.sha256[..m.sha256.len().min(12)]
        );
    }
    h += "</tr><tr><td class=\"l\">clean</td>";
    for m in &r.models {
        h += &format!("<td>{:.2}%</td>", m.clean * 100.0);
    }
    h += "</tr>";
    let cell = |v: Option<&f64>| {
        v.map(|v| format!("{:.2}%", v * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    for &e in &r.eps {
        let k = trim(e);
        h += &format!("<tr><td class=\"l\">robust at ε = {k}</td>");
        for m in &r.models {
            h += &format!("<td><b>{}</b></td>", cell(m.robust.get(&k)));
        }
        h += "</tr>";
    }
    if r.certify_method != "none" {
        for &e in &r.eps {
            let k = trim(e);
            h += &format!("<tr><td class=\"l\">certified at ε = {k}</td>");
            for m in &r.models {
                h += &format!(
                    "<td>{} <small>(of {})</small></td>",
                    cell(m.certified.get(&k)),
                    m.certified_n
                );
            }
            h += "</tr>";
        }
    }
    h += "<tr><td class=\"l\">honesty checks fired</td>";
    for m in &r.models {
        h += &format!("<td>{}</td>", m.warnings.len());
    }
    h += "</tr></table>";
    h += "<h2>Robust accuracy vs ε</h2>";
    let series: Vec<(String, Vec<(f64, f64)>)> = r
        .models
        .iter()
        .map(|m| {
            let mut pts = vec![(0.0, m.clean)];
            pts.extend(
                r.eps
                    .iter()
                    .filter_map(|&e| m.robust.get(&trim(e)).map(|&a| (e, a))),
            );
            (m.name.clone(), pts)
        })
        .collect();
    h += &accuracy_curves(&series, &r.norm);
    h += "<h2>Honesty checks</h2>";
    for m in &r.models {
        h += &format!("<h3>{}</h3>", esc(&m.name));
        h += &warnings_html(&m.warnings);
    }
    h += "<h2>Models</h2><table><tr><th class=\"l\">name</th><th class=\"l\">source</th><th class=\"l\">sha256</th><th>seconds</th></tr>";
    for m in &r.models {
        h += &format!(
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td><td>{:.1}</td></tr>",
            esc(&m.name),
            esc(&m.source),
            esc(&m.sha256),
            m.seconds
        );
    }
    h += "</table><h2>Reproduce</h2><table>";
    for (k, v) in &r.settings {
        h += &format!(
            "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
            esc(k),
            esc(v)
        );
    }
    h += &format!(
        "</table><p>ruse {} · {:.1} s</p></body></html>\n",
        esc(&r.ruse_version),
        r.seconds
    );
    h
}

/// The honesty-check flags with their evidence, or a line saying none fired.
fn warnings_html(warnings: &[Warning]) -> String {
    if warnings.is_empty() {
        return "<p>No check fired.</p>".into();
    }
    warnings
        .iter()
        .map(|w| {
            format!(
                "<div class=\"warn\"><b>{}</b>: {}<br><small>evidence: {}</small></div>",
                esc(&w.check),
                esc(&w.message),
                esc(&w.evidence)
            )
        })
        .collect()
}

/// Renders one section of an audit: heading, summary, table and image rows.
pub fn render_section(sec: &Section) -> String {
    let mut h = format!(
        "<h2 id=\"{}\">{}</h2><p>{}</p>",
        esc(&sec.id),
        esc(&sec.title),
        esc(&sec.summary)
    );
    if !sec.columns.is_empty() {
        h += "<table><tr>";
        for (i, c) in sec.columns.iter().enumerate() {
            h += &format!(
                "<th{}>{}</th>",
                if i == 0 { " class=\"l\"" } else { "" },
                esc(c)
            );
        }
        h += "</tr>";
        for row in &sec.rows {
            h += "<tr>";
            for (i, c) in row.iter().enumerate() {
                h += &format!(
                    "<td{}>{}</td>",
                    if i == 0 { " class=\"l\"" } else { "" },
                    esc(c)
                );
            }
            h += "</tr>";
        }
        h += "</table>";
    }
    for f in &sec.figures {
        h += &format!("<p>{}</p><div class=\"grid\">", esc(&f.caption));
        for im in &f.images {
            // Small images (MNIST, 32×32 signs) are scaled up so their pixels can be seen.
            let scale = (96 / im.shape[2].max(1)).clamp(1, 4) as u32;
            if let Some(u) = png_data_uri(&im.pixels, im.shape, scale) {
                h += &format!(
                    "<div class=\"ex\"><img src=\"{u}\" alt=\"\"><br>{}</div>",
                    esc(&im.label)
                );
            }
        }
        h += "</div>";
    }
    h
}
