//! A small hand-written SVG line chart (accuracy vs ε), so the report needs no plotting runtime.

/// An accuracy-vs-ε curve as an inline SVG element; `points` are (ε, accuracy in [0,1]).
pub fn accuracy_curve(points: &[(f64, f64)], norm: &str) -> String {
    let mut points = points.to_vec();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let points = points.as_slice();
    let (w, h, ml, mb, mt, mr) = (520.0, 300.0, 56.0, 44.0, 16.0, 16.0);
    let max_eps = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-12);
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
    for &(e, _) in points {
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
        h - 6.0
    );
    s += &format!(
        r#"<text x="14" y="{}" font-size="12" transform="rotate(-90 14 {})" text-anchor="middle">accuracy</text>"#,
        (mt + h - mb) / 2.0,
        (mt + h - mb) / 2.0
    );
    let path: Vec<String> = points
        .iter()
        .map(|&(e, a)| format!("{:.1},{:.1}", x(e), y(a)))
        .collect();
    s += &format!(
        r##"<polyline fill="none" stroke="#c0392b" stroke-width="2" points="{}"/>"##,
        path.join(" ")
    );
    for &(e, a) in points {
        s += &format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#c0392b"><title>ε={}: {:.2}%</title></circle>"##,
            x(e),
            y(a),
            trim(e),
            a * 100.0
        );
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
