//! `ruse audit --sections corruptions` and `ruse corrupt` on the bundled model and data: the
//! section's numbers are complete and consistent, and bad arguments are clear errors.

use serde_json::Value;

mod common;
use common::run;

#[test]
fn audit_section_reports_every_type_and_severity_and_a_consistent_mce() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().unwrap();
    let args = [
        "audit",
        "--sections",
        "corruptions",
        "--limit",
        "40",
        "--eps",
        "0.1",
        "--out",
        out,
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("== Common corruptions =="), "{stdout}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let s = r["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "corruptions")
        .expect("corruptions section in report.json");
    let n = &s["numbers"];
    assert_eq!(n["n"], 40);
    let per_type = n["per_type"].as_object().unwrap();
    assert_eq!(per_type.len(), 15);
    let clean = n["clean_accuracy"].as_f64().unwrap();
    assert!((clean - r["clean_accuracy"].as_f64().unwrap()).abs() < 1e-9);
    let mut errors = Vec::new();
    for (name, t) in per_type {
        let accs: Vec<f64> = t["accuracy_per_severity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(accs.len(), 5, "{name}");
        assert!(
            accs.iter().all(|a| (0.0..=1.0).contains(a)),
            "{name}: {accs:?}"
        );
        errors.push(1.0 - accs.iter().sum::<f64>() / 5.0);
    }
    let mce = errors.iter().sum::<f64>() / 15.0;
    assert!((n["mce"].as_f64().unwrap() - mce).abs() < 1e-9);
    let rel = errors.iter().map(|e| e - (1.0 - clean)).sum::<f64>() / 15.0;
    assert!((n["relative_mce"].as_f64().unwrap() - rel).abs() < 1e-9);
    // Corruptions hurt: fog at severity 5 costs the default model accuracy.
    let fog = per_type["fog"]["accuracy_per_severity"].as_array().unwrap();
    assert!(
        fog[4].as_f64().unwrap() < clean,
        "fog 5 did not lower accuracy"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Sample 0 under every corruption at severity 3"));
}

#[test]
fn corrupt_writes_a_grid_and_rejects_bad_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().unwrap();
    let o = run(&[
        "corrupt",
        "--type",
        "snow",
        "--severity",
        "all",
        "--count",
        "2",
        "--out",
        out,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = image::open(dir.path().join("grid.png")).expect("grid.png decodes");
    assert!(png.width() > 6 * 28 && png.height() > 2 * 28);
    for (args, want) in [
        (vec!["--type", "sparkle"], "unknown corruption 'sparkle'"),
        (vec!["--severity", "0"], "--severity 0 is out of range"),
        (vec!["--severity", "hard"], "neither a number 1–5 nor 'all'"),
    ] {
        let mut a = vec!["corrupt", "--out", out];
        a.extend(args);
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{a:?}: {err}");
    }
}
