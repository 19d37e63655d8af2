//! A small hand-written SVG line chart (accuracy vs ε), so the report needs no plotting runtime.

/// Line colours of the curves, in order (cycled).
const COLOURS: [&str; 6] = [
    "#c0392b", "#2471a3", "#239b56", "#8e44ad", "#d68910", "#555555",
];

/// An accuracy-vs-ε curve as an inline SVG element; `points` are (ε, accuracy in [0,1]).
pub fn accuracy_curve(points: &[(f64, f64)], norm: &str) -> String {
    accuracy_curves(&[(String::new(), points.to_vec())], norm)
}

/// Several accuracy-vs-ε curves on the same axes, one colour each, with a legend naming them
/// (no legend for a single unnamed curve); each series is (name, (ε, accuracy in [0,1]) points).
pub fn accuracy_curves(series: &[(String, Vec<(f64, f64)>)], norm: &str) -> String {
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, p)| {
            let mut p = p.clone();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name.as_str(), p)
        })
        .collect();
    let mut ticks: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    ticks.sort_by(|a, b| a.total_cmp(b));
    ticks.dedup_by(|a, b| trim(*a) == trim(*b));
    let legend = series.len() > 1 || series.iter().any(|s| !s.0.is_empty());
    let (w, ml, mb, mt, mr) = (520.0, 56.0, 44.0, 16.0, 16.0);
    let h = 300.0
        + if legend {
            18.0 * series.len() as f64 + 6.0
        } else {
            0.0
        };
    let mb = mb + (h - 300.0);
    let max_eps = ticks.iter().copied().fold(0.0f64, f64::max).max(1e-12);
    let x = |e: f64| ml + e / max_eps * (w - ml - mr);
    let y = |a: f64| mt + (1.0 - a) * (h - mt - mb);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="accuracy versus epsilon">"#
    );
    s += &format!(
        r##"<rect x="{ml}" y="{mt}" width="{}" height="{}" fill="#fafafa" stroke="#999"/>"##,
        w - ml - mr,
        h - mt - mb
    );
    for i in 0..=4 {
        let a = i as f64 / 4.0;
        s += &format!(
            r##"<line x1="{ml}" x2="{}" y1="{y0}" y2="{y0}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end">{:.0}%</text>"##,
            w - mr,
            ml - 6.0,
            y(a) + 4.0,
            a * 100.0,
            y0 = y(a)
        );
    }
    for &e in &ticks {
        s += &format!(
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            x(e),
            h - mb + 16.0,
            trim(e)
        );
    }
    s += &format!(
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">ε ({norm})</text>"#,
        (ml + w - mr) / 2.0,
        h - mb + 38.0
    );
    s += &format!(
        r#"<text x="14" y="{}" font-size="12" transform="rotate(-90 14 {})" text-anchor="middle">accuracy</text>"#,
        (mt + h - mb) / 2.0,
        (mt + h - mb) / 2.0
    );
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(e, a)| format!("{:.1},{:.1}", x(e), y(a)))
            .collect();
        s += &format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let who = if name.is_empty() {
            String::new()
        } else {
            format!("{}: ", esc(name))
        };
        for &(e, a) in points {
            s += &format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{who}ε={}: {:.2}%</title></circle>"#,
                x(e),
                y(a),
                trim(e),
                a * 100.0
            );
        }
        if legend {
            let ly = 306.0 + 18.0 * k as f64;
            s += &format!(
                r#"<line x1="{ml}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}" font-size="12">{}</text>"#,
                ml + 24.0,
                ml + 30.0,
                ly + 4.0,
                esc(name)
            );
        }
    }
    s += "</svg>";
    s
}

/// ε printed without trailing zeros.
pub fn trim(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Escapes text for SVG/HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_curve_per_series_with_a_legend_only_when_named() {
        let one = accuracy_curve(&[(0.0, 0.99), (0.1, 0.7), (0.3, 0.0)], "linf");
        assert_eq!(one.matches("<polyline").count(), 1);
        assert_eq!(
            one.matches("<line x1=\"56\" x2=\"80\"").count(),
            0,
            "no legend"
        );
        let two = accuracy_curves(
            &[
                ("default".into(), vec![(0.0, 0.99), (0.3, 0.0)]),
                (
                    "<pgd-at>".into(),
                    vec![(0.0, 0.98), (0.1, 0.95), (0.3, 0.84)],
                ),
            ],
            "linf",
        );
        assert_eq!(two.matches("<polyline").count(), 2);
        assert!(two.contains("&lt;pgd-at&gt;") && !two.contains("<pgd-at>"));
        assert!(two.contains("#c0392b") && two.contains("#2471a3"));
        // The ε ticks are the union of the series' radii, each once.
        assert_eq!(two.matches(">0.1</text>").count(), 1);
    }
}
