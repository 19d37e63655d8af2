//! The spatial threat model and the signs data from the command line: `ruse audit --sections
//! spatial`, `ruse attack --attack spatial-*`, `ruse eval --model signs --data signs:…`.

use serde_json::Value;

mod common;
use common::{ok, run};

#[test]
fn audit_section_reports_each_search_below_clean_accuracy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().unwrap();
    let stdout = ok(&[
        "audit",
        "--sections",
        "spatial",
        "--limit",
        "40",
        "--eps",
        "0.1",
        "--out",
        out,
    ]);
    assert!(
        stdout.contains("== Spatial: rotations and translations =="),
        "{stdout}"
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let s = r["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "spatial")
        .expect("spatial section in report.json");
    let n = &s["numbers"];
    assert_eq!(n["samples"], 40);
    let clean = n["clean_accuracy"].as_f64().unwrap();
    assert!((clean - r["clean_accuracy"].as_f64().unwrap()).abs() < 1e-9);
    let searches = n["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 3);
    let worst = n["worst_of_all_accuracy"].as_f64().unwrap();
    for sr in searches {
        let a = sr["accuracy"].as_f64().unwrap();
        assert!(a <= clean && worst <= a, "{sr}");
    }
    // Rotating MNIST digits by up to 30° and shifting 3 px fools the default model often.
    assert!(worst < clean - 0.2, "worst {worst}, clean {clean}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("clean | worst transform found"));
}

#[test]
fn attack_command_runs_each_search_and_refuses_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    for attack in ["spatial-grid", "spatial-random", "spatial-grad"] {
        let out = dir.path().join(attack);
        let stdout = ok(&[
            "attack",
            "--attack",
            attack,
            "--limit",
            "20",
            "--max-angle",
            "20",
            "--steps",
            "5",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(stdout.contains("±20°, ±3.0 px"), "{stdout}");
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("attack.json")).unwrap())
                .unwrap();
        let (clean, robust) = (
            r["clean_accuracy"].as_f64().unwrap(),
            r["robust_accuracy"].as_f64().unwrap(),
        );
        assert!(robust < clean, "{attack}: {robust} vs {clean}");
    }
    let o = run(&[
        "attack",
        "--attack",
        "spatial-grid",
        "--limit",
        "5",
        "--target",
        "3",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("untargeted"));
    let o = run(&["attack", "--attack", "spatial-spin", "--limit", "5"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown spatial attack"));
}

#[test]
fn bundled_signs_model_on_signs_data() {
    let stdout = ok(&[
        "eval", "--model", "signs", "--data", "signs:0", "--limit", "300", "--json",
    ]);
    let r: Value = serde_json::from_str(stdout.trim()).expect("eval --json prints JSON");
    assert_eq!(r["n"], 300);
    assert!(r["accuracy"].as_f64().unwrap() >= 0.97, "{r}");
    let o = run(&["eval", "--model", "signs", "--data", "signs:abc"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("signs:abc") && err.contains("seed"), "{err}");
    // The MNIST model refuses RGB signs with a clear shape error.
    let o = run(&["eval", "--data", "signs:0", "--limit", "5"]);
    assert!(!o.status.success());
}
