//! `ruse train --defense …` end to end: bad adversarial-training flags are clear errors (no data
//! needed: they are refused before loading), and a seeded PGD-AT run reproduces byte for byte,
//! reports validation under PGD and resumes with the checkpoint's defense (needs ../shared/data,
//! skipped with a note when absent).

use std::path::Path;

use serde_json::Value;

mod common;
use common::{describe, ok_stderr, refused, run, shared_data};

#[test]
fn bad_defense_flags_are_clear_errors() {
    refused("--eps 0.3", &["--eps", "--defense none"]);
    refused("--defense none --trades-beta 1", &["--trades-beta"]);
    refused("--eps-ramp 3", &["--eps-ramp", "pgd-at"]);
    refused("--defense pgd-at", &["needs --eps"]);
    refused("--defense pgd-at --eps=-0.1", &["--eps -0.1", "≥ 0"]);
    refused("--defense trades --eps NaN", &["--eps NaN", "finite"]);
    refused(
        "--defense pgd-at --eps 0.3 --attack-steps 0",
        &["--attack-steps 0", "at least 1 step"],
    );
    refused(
        "--defense pgd-at --eps 0.3 --attack-step-size 0",
        &["--attack-step-size"],
    );
    refused(
        "--defense trades --eps 0.3 --trades-beta=-1",
        &["--trades-beta -1", "β"],
    );
    refused(
        "--defense pgd-at --eps 0.3 --trades-beta 1",
        &["--trades-beta", "trades"],
    );
    refused(
        "--defense fgsm-at --eps 0.3 --attack-steps 5",
        &["--attack-steps", "fgsm-at"],
    );
    refused(
        "--defense trades --eps 0.3 --no-random-start",
        &["--no-random-start"],
    );
    refused("--defense gaussian", &["needs --noise-sigma"]);
    refused(
        "--defense gaussian --noise-sigma=-1",
        &["--noise-sigma -1", "σ"],
    );
    refused(
        "--defense gaussian --noise-sigma 0.25 --eps 0.3",
        &["--eps", "do not apply to --defense gaussian"],
    );
    refused(
        "--defense pgd-at --eps 0.3 --noise-sigma 0.25",
        &["--noise-sigma", "--defense gaussian"],
    );
    refused(
        "--defense madry --eps 0.3",
        &["unknown defense 'madry'", "pgd-at, trades, fgsm-at"],
    );
    let args = [
        "train",
        "--resume",
        "/nonexistent.ckpt",
        "--defense",
        "trades",
    ];
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("checkpoint's defense"),
        "{}",
        describe(&args, &out)
    );
}

#[test]
fn pgd_at_is_seeded_validated_under_pgd_and_resumes_with_its_defense() {
    let Some(shared) = shared_data() else {
        eprintln!("note: ../shared/data not found; skipping the adversarial training test");
        return;
    };
    let data = format!("mnist:{}", shared.join("mnist").to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let train = |epochs: &str, out: &Path| {
        let args = format!(
            "train --arch mlp --limit 256 --val-limit 100 --val-attack-limit 50 --seed 2 \
             --defense pgd-at --eps 0.1 --attack-steps 3 --eps-ramp 2 --epochs {epochs}"
        );
        let mut a: Vec<&str> = args.split_whitespace().collect();
        a.extend(["--data", &data, "--out", out.to_str().unwrap()]);
        ok_stderr(&a)
    };
    let (a, b, c) = (
        dir.path().join("a.onnx"),
        dir.path().join("b.onnx"),
        dir.path().join("c.onnx"),
    );
    let log = train("1", &a);
    assert!(
        log.contains("PGD-AT") && log.contains("val PGD-10") && log.contains("ε 0.050"),
        "{log}"
    );
    train("1", &b);
    let ba = std::fs::read(&a).unwrap();
    assert!(
        !ba.is_empty() && ba == std::fs::read(&b).unwrap(),
        "same seed, different model"
    );

    let ck = dir.path().join("a.onnx.ckpt");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&ck).unwrap()).unwrap();
    let d = &meta["config"]["defense"];
    assert_eq!(d["kind"], "pgd-at", "{meta}");
    assert!((d["eps"].as_f64().unwrap() - 0.1).abs() < 1e-6, "{meta}");
    assert_eq!(meta["config"]["eps_ramp_epochs"], 2, "{meta}");
    assert!(
        meta["history"][0]["val_robust_accuracy"].is_number(),
        "{meta}"
    );

    // Resume keeps the defense (and its ramp): 1 + 1 epochs equal 2 straight, byte for byte.
    let log = ok_stderr(&[
        "train",
        "--resume",
        ck.to_str().unwrap(),
        "--epochs",
        "2",
        "--val-limit",
        "100",
        "--val-attack-limit",
        "50",
    ]);
    assert!(log.contains("PGD-AT") && log.contains("ε 0.100"), "{log}");
    train("2", &c);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&c).unwrap(),
        "1 epoch + resume differs from 2 epochs straight"
    );
}
