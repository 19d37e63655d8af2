//! `ruse sticker` and `ruse patch` end to end on the bundled model and data (short runs): the JSON
//! holds rates in [0, 1] and the grid is written; bad masks, classes and shapes are clear errors.

use std::process::Output;

use serde_json::Value;

mod common;
use common::run;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn rate(v: &Value, key: &str) -> f64 {
    let r = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!((0.0..=1.0).contains(&r), "{key} = {r}");
    r
}

#[test]
fn sticker_writes_json_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("st");
    let o = run(&[
        "sticker",
        "--index",
        "0",
        "--target",
        "3",
        "--steps",
        "40",
        "--views",
        "40",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sticker.json")).unwrap()).unwrap();
    rate(&v, "clean_view_accuracy");
    rate(&v, "success_rate");
    rate(&v, "random_sticker_success_rate");
    assert_eq!(v["target"], "3");
    assert_eq!(v["mask"], "four-rects");
    assert!(out.join("grid.png").is_file());
}

#[test]
fn patch_writes_json_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let o = run(&[
        "patch",
        "--limit",
        "120",
        "--target",
        "8",
        "--steps",
        "10",
        "--train",
        "60",
        "--test",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("patch.json")).unwrap()).unwrap();
    rate(&v, "success_rate");
    rate(&v, "random_patch_success_rate");
    assert!(out.join("grid.png").is_file());
}

#[test]
fn bad_sticker_settings_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "sticker",
                "--index",
                "0",
                "--mask",
                "rects:20,20,10,10",
                "--out",
                o,
            ],
            "leaves the 28×28",
        ),
        (
            &[
                "sticker",
                "--index",
                "0",
                "--mask",
                "/no/such/mask.png",
                "--out",
                o,
            ],
            "cannot read mask file",
        ),
        (
            &["sticker", "--index", "0", "--mask", "hearts", "--out", o],
            "unknown sticker mask",
        ),
        (
            &["sticker", "--index", "0", "--target", "7", "--out", o],
            "own class",
        ),
        (
            &["sticker", "--index", "0", "--target", "banana", "--out", o],
            "neither a class number",
        ),
        (
            &["sticker", "--index", "5000", "--out", o],
            "past the last sample",
        ),
        (
            &["sticker", "--index", "0", "--loss", "hinge", "--out", o],
            "unknown --loss",
        ),
        (
            &["patch", "--target", "8", "--shape", "hexagon", "--out", o],
            "unknown patch shape",
        ),
        (
            &["patch", "--target", "8", "--area", "1.5", "--out", o],
            "share of the image",
        ),
    ];
    for (args, want) in cases {
        let r = run(args);
        assert!(!r.status.success(), "{args:?} succeeded");
        let e = stderr(&r);
        assert!(e.contains(want), "{args:?}: expected '{want}' in: {e}");
        assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    }
}
