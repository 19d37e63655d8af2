//! End-to-end tests of `ruse certify --smoothing`: randomized smoothing on the bundled model with
//! few noise samples (per-sample answers, certified accuracy per radius, JSON, seeded
//! reproducibility), clear errors for bad settings, and the L∞ mode left as it was.

use serde_json::Value;

mod common;
use common::{fails_with, ok};

const TINY: [&str; 9] = [
    "certify",
    "--limit",
    "3",
    "--smoothing",
    "0.25",
    "--n0",
    "20",
    "--n",
    "200",
];

#[test]
fn smoothing_on_the_bundled_model() {
    let mut args = TINY.to_vec();
    args.extend(["--radii", "0,0.25,0.5,10", "--json"]);
    let stdout = ok(&args);
    let v: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{stdout}"));
    assert_eq!(v["n"], 3, "{v}");
    assert_eq!(v["method"], "smoothing", "{v}");
    assert_eq!(v["norm"], "l2", "{v}");
    assert_eq!(v["sigma"], 0.25, "{v}");
    assert_eq!(v["n0"], 20, "{v}");
    assert_eq!(v["n_noise"], 200, "{v}");
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3, "{v}");
    let mut abstained = 0;
    let mut correct_radii = Vec::new();
    for s in samples {
        let p = s["p_a_lower"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&p), "{s}");
        assert!(s["count"].as_u64().unwrap() <= 200, "{s}");
        if s["prediction"].is_null() {
            abstained += 1;
            assert!(s["radius"].is_null() && p < 0.5, "{s}");
            continue;
        }
        let r = s["radius"].as_f64().unwrap();
        // With 200 samples p̲_A ≤ 0.001^(1/200) ≈ 0.966, so R ≤ 0.25·Φ⁻¹(0.966) ≈ 0.46.
        assert!((0.0..0.4565).contains(&r), "{s}");
        if s["correct"].as_bool().unwrap() {
            assert_eq!(s["prediction"], s["label"], "{s}");
            correct_radii.push(r);
        }
    }
    assert_eq!(v["abstained"], abstained, "{v}");
    // Certified accuracy per radius: correct and radius ≥ r.
    let results = v["results"].as_array().unwrap();
    let radii = [0.0, 0.25, 0.5, 10.0];
    assert_eq!(results.len(), radii.len(), "{v}");
    for (row, r) in results.iter().zip(radii) {
        assert_eq!(row["radius"], r, "{v}");
        let want = correct_radii.iter().filter(|&&c| c >= r).count();
        assert_eq!(row["certified"], want, "radius {r}: {v}");
    }
    // The bundled CNN is confident on its first images: certified at radius 0.
    assert!(results[0]["certified"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(results[2]["certified"], 0, "{v}");
    assert!(v["seconds"].as_f64().unwrap() > 0.0, "{v}");

    // Same seed, same answers (times aside).
    let again: Value = serde_json::from_str(ok(&args).trim()).unwrap();
    let strip = |v: &Value| {
        let mut s = v["samples"].clone();
        for x in s.as_array_mut().unwrap() {
            x.as_object_mut().unwrap().remove("seconds");
        }
        (s, v["results"].clone())
    };
    assert_eq!(strip(&v), strip(&again));

    // The table.
    let table = ok(&TINY);
    for needle in [
        "smoothing",
        "σ 0.25",
        "prediction",
        "abstained",
        "certified accuracy",
        "L2 radius",
        "0.75",
    ] {
        assert!(table.contains(needle), "lacks {needle:?}:\n{table}");
    }
}

#[test]
fn smoothing_rejects_bad_settings() {
    let with = |extra: &[&'static str]| {
        let mut a = vec!["certify", "--limit", "1", "--smoothing"];
        a.extend_from_slice(extra);
        a
    };
    fails_with(1, &with(&["0"]), &["--smoothing", "> 0"]);
    fails_with(1, &with(&["-0.5"]), &["--smoothing", "> 0"]);
    fails_with(1, &with(&["NaN"]), &["--smoothing", "NaN"]);
    fails_with(
        1,
        &with(&["0.25", "--n0", "50", "--n", "10"]),
        &["--n", "--n0"],
    );
    fails_with(1, &with(&["0.25", "--n0", "0"]), &["--n0"]);
    fails_with(1, &with(&["0.25", "--alpha", "1"]), &["--alpha"]);
    fails_with(1, &with(&["0.25", "--alpha", "0"]), &["--alpha"]);
    fails_with(1, &with(&["0.25", "--alpha", "-0.1"]), &["--alpha"]);
    fails_with(1, &with(&["0.25", "--radii", "0,-1"]), &["--radii", "-1"]);
    fails_with(1, &with(&["0.25", "--radii", "-1"]), &["--radii", "-1"]);
    fails_with(1, &with(&["0.25", "--radii", "0,x"]), &["--radii", "x"]);
    fails_with(1, &with(&["0.25", "--batch-size", "0"]), &["--batch-size"]);
    // L∞ flags with --smoothing, smoothing flags without it, neither --eps nor --smoothing (exit
    // status 2 where the argument parser catches it).
    fails_with(2, &with(&["0.25", "--eps", "0.1"]), &["--eps"]);
    fails_with(2, &with(&["0.25", "--method", "crown"]), &["--method"]);
    fails_with(
        2,
        &["certify", "--limit", "1", "--n", "100"],
        &["--smoothing"],
    );
    for flag in ["--n0", "--n", "--alpha", "--radii", "--batch-size"] {
        fails_with(
            1,
            &["certify", "--eps", "0.1", flag, "5"],
            &[flag, "--smoothing"],
        );
    }
    fails_with(2, &["certify", "--limit", "1"], &["--eps"]);
}

#[test]
fn without_smoothing_certify_is_unchanged() {
    let stdout = ok(&[
        "certify",
        "--limit",
        "2",
        "--eps",
        "0.001",
        "--method",
        "ibp",
        "--timeout",
        "2",
        "--json",
    ]);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["norm"], "linf", "{v}");
    assert_eq!(v["method"], "ibp", "{v}");
    assert!(v.get("samples").is_none(), "{v}");
    let help = ok(&["certify", "--help"]);
    for flag in [
        "--smoothing",
        "--n0",
        "--n ",
        "--alpha",
        "--radii",
        "--batch-size",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}
