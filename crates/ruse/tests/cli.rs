//! End-to-end tests of the `ruse` binary: every subcommand's help, the main job on the bundled
//! defaults, JSON outputs, predict from JSON and from a PNG, export → eval, training determinism
//! and resume, and clear errors (never a panic) for bad input.
//!
//! Tests that use the bundled default model need assets/models/mnist-cnn-pool.onnx to hold the
//! trained model. Error tests use the committed PyTorch fixture (tests/fixtures/torch_cnn.onnx, a
//! 1×28×28 → 10 CNN) so that they do not depend on it. Tests that train need ../shared/data and
//! skip with a note when it is absent.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{describe, fails, ok, path_str, root, run, shared_data};

/// A committed ONNX model with MNIST-shaped input (1×28×28) and 10 outputs.
fn fixture_model() -> String {
    let p = root().join("tests/fixtures/torch_cnn.onnx");
    assert!(p.is_file(), "missing fixture {}", p.display());
    p.to_str().unwrap().to_string()
}

/// Parses stdout as exactly one JSON object.
fn json_object(stdout: &str) -> Value {
    let text = stdout.trim();
    assert_eq!(
        text.lines().count(),
        1,
        "expected one line of JSON, got:\n{stdout}"
    );
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{stdout}"));
    assert!(v.is_object(), "not a JSON object: {stdout}");
    v
}

fn eval_json(args: &[&str]) -> Value {
    let mut a = vec!["eval"];
    a.extend_from_slice(args);
    a.push("--json");
    let v = json_object(&ok(&a));
    for k in ["model", "data", "n", "accuracy"] {
        assert!(v.get(k).is_some(), "eval --json lacks {k:?}: {v}");
    }
    let acc = v["accuracy"].as_f64().expect("accuracy is a number");
    assert!((0.0..=1.0).contains(&acc), "accuracy {acc} outside [0, 1]");
    v
}

/// Writes `values` as a flat JSON array.
fn write_json_input(path: &Path, values: &[f32]) {
    std::fs::write(path, serde_json::to_string(values).unwrap()).unwrap();
}

/// `{"output": [...], "class": k}` with 10 outputs and k their argmax.
fn predict(args: &[&str]) -> (Vec<f64>, usize) {
    let mut a = vec!["predict"];
    a.extend_from_slice(args);
    let v = json_object(&ok(&a));
    let output: Vec<f64> = v["output"]
        .as_array()
        .unwrap_or_else(|| panic!("no output array: {v}"))
        .iter()
        .map(|x| x.as_f64().expect("output holds numbers"))
        .collect();
    assert_eq!(output.len(), 10, "{v}");
    let class = v["class"]
        .as_u64()
        .unwrap_or_else(|| panic!("no class: {v}")) as usize;
    let argmax = output
        .iter()
        .enumerate()
        .fold(0, |b, (i, &x)| if x > output[b] { i } else { b });
    assert_eq!(class, argmax, "class is not the argmax of output: {v}");
    (output, class)
}

// ---- help ---------------------------------------------------------------------------------------

#[test]
fn help_works_for_every_subcommand() {
    let top = ok(&["--help"]);
    let subs: [(&str, &[&str]); 5] = [
        (
            "eval",
            &["--model", "--data", "--split", "--limit", "--json"],
        ),
        (
            "train",
            &[
                "--arch", "--data", "--epochs", "--seed", "--out", "--resume",
            ],
        ),
        ("inspect", &["--model", "--json"]),
        ("predict", &["--model", "--image", "--input"]),
        ("export", &["--model", "--out"]),
    ];
    for (sub, flags) in subs {
        assert!(top.contains(sub), "top-level help lacks {sub}:\n{top}");
        let h = ok(&[sub, "--help"]);
        assert!(
            h.contains("Usage:") && h.contains(sub),
            "ruse {sub} --help:\n{h}"
        );
        for f in flags {
            assert!(h.contains(f), "ruse {sub} --help lacks {f}:\n{h}");
        }
    }
}

// ---- the main job on bundled defaults -----------------------------------------------------------

#[test]
fn eval_default_prints_accuracy() {
    let out = ok(&["eval"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("accuracy"))
        .unwrap_or_else(|| panic!("no accuracy line:\n{out}"));
    assert!(line.contains('%') && line.contains("/1000)"), "{line}");
    let pct: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("cannot read the percentage in {line:?}"));
    assert!(
        pct >= 97.0,
        "bundled model scores only {pct}% on the bundled data"
    );
    assert!(out.contains("confusion matrix"), "{out}");
}

#[test]
fn eval_json_has_model_data_n_accuracy() {
    let v = eval_json(&[]);
    assert_eq!(v["n"], 1000, "{v}");
    assert_eq!(v["data"], "bundled", "{v}");
    assert!(
        v["model"].as_str().is_some_and(|m| m.contains("default")),
        "{v}"
    );
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.97, "bundled model accuracy {acc} < 0.97");
    assert_eq!(
        v["per_class_accuracy"].as_array().map(Vec::len),
        Some(10),
        "{v}"
    );
}

#[test]
fn eval_limit() {
    let v = eval_json(&["--limit", "100"]);
    assert_eq!(v["n"], 100, "{v}");
}

#[test]
fn inspect_default_model() {
    let out = ok(&["inspect"]);
    assert!(
        out.contains("[N, 1, 28, 28]"),
        "input shape missing:\n{out}"
    );
    assert!(out.contains("[N, 10]"), "output shape missing:\n{out}");
    assert!(out.contains("parameters"), "{out}");
    assert!(out.contains("input domain"), "{out}");
    for op in ["Conv", "Relu", "MaxPool", "Gemm"] {
        assert!(out.contains(op), "op list lacks {op}:\n{out}");
    }

    let v = json_object(&ok(&["inspect", "--json"]));
    assert_eq!(v["input_shape"], serde_json::json!([1, 28, 28]), "{v}");
    assert_eq!(v["output_shape"], serde_json::json!([10]), "{v}");
    assert!(v["param_count"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["nodes"].as_array().is_some_and(|n| !n.is_empty()), "{v}");
    assert!(
        v["ops"].as_object().is_some_and(|o| o.contains_key("Conv")),
        "{v}"
    );
}

// ---- predict ------------------------------------------------------------------------------------

#[test]
fn predict_json_input() {
    let data = ruse_data::bundled_mnist_test().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.json");
    write_json_input(&x, data.image(0));
    let (_, class) = predict(&["--input", path_str(&x)]);
    assert!(class < 10);
}

#[test]
fn predict_png_image() {
    let data = ruse_data::bundled_mnist_test().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The first digit (of the first 20) that the model classifies right from its exact pixels.
    let mut chosen = None;
    for i in 0..20 {
        let x = dir.path().join(format!("x{i}.json"));
        write_json_input(&x, data.image(i));
        let (out, class) = predict(&["--input", path_str(&x)]);
        if class == data.labels[i] {
            chosen = Some((i, out));
            break;
        }
    }
    let (i, json_out) = chosen.expect("the model gets none of the first 20 bundled digits right");
    let (c, h, w) = (data.channels, data.height, data.width);
    assert_eq!((c, h, w), (1, 28, 28));
    let pixels: Vec<u8> = data
        .image(i)
        .iter()
        .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let png = dir.path().join(format!("digit-{}.png", data.labels[i]));
    image::GrayImage::from_raw(w as u32, h as u32, pixels)
        .unwrap()
        .save(&png)
        .unwrap();
    let (img_out, class) = predict(&["--image", path_str(&png)]);
    assert_eq!(
        class, data.labels[i],
        "PNG of bundled digit {i} misclassified"
    );
    // Same pixels → same scores (the PNG holds the dataset's exact 8-bit values).
    for (a, b) in img_out.iter().zip(&json_out) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{img_out:?} vs {json_out:?}"
        );
    }
}

// ---- export -------------------------------------------------------------------------------------

#[test]
fn export_then_eval_gives_same_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("exported.onnx");
    let m = path_str(&m);
    let out = run(&["export", "--out", m]);
    assert!(
        out.status.success(),
        "{}",
        describe(&["export", "--out", m], &out)
    );
    assert!(std::fs::metadata(m).unwrap().len() > 0);
    let a = eval_json(&[]);
    let b = eval_json(&["--model", m]);
    assert_eq!(b["model"], m, "{b}");
    assert_eq!(a["n"], b["n"]);
    assert_eq!(a["correct"], b["correct"], "default {a}\nexported {b}");
    assert_eq!(a["accuracy"], b["accuracy"]);
}

// ---- bad input: non-zero exit, a clear message, no panic ------------------------------------------

#[test]
fn error_missing_model_file() {
    fails(
        &["eval", "--model", "/nonexistent/model.onnx"],
        &["cannot read model file", "/nonexistent/model.onnx"],
    );
}

#[test]
fn error_corrupt_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("corrupt.onnx");
    // Deterministic pseudo-random bytes (xorshift64).
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    std::fs::write(&p, bytes).unwrap();
    for sub in ["eval", "inspect"] {
        fails(&[sub, "--model", path_str(&p)], &["corrupt.onnx"]);
    }
}

#[test]
fn error_json_input_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("short.json");
    write_json_input(&x, &[0.5; 783]);
    fails(
        &[
            "predict",
            "--model",
            &fixture_model(),
            "--input",
            path_str(&x),
        ],
        &["783", "784"],
    );
}

#[test]
fn error_json_input_not_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("nan.json");
    let mut v: Vec<Value> = vec![Value::from(0.5); 784];
    v[3] = Value::from("seven");
    std::fs::write(&x, serde_json::to_string(&v).unwrap()).unwrap();
    fails(
        &[
            "predict",
            "--model",
            &fixture_model(),
            "--input",
            path_str(&x),
        ],
        &["element 3 is not a number"],
    );
    std::fs::write(&x, "{\"not\": \"an array\"}").unwrap();
    fails(
        &[
            "predict",
            "--model",
            &fixture_model(),
            "--input",
            path_str(&x),
        ],
        &["array"],
    );
}

#[test]
fn error_unknown_data_kind() {
    fails(
        &["eval", "--model", &fixture_model(), "--data", "foo:bar"],
        &["unknown dataset kind", "foo"],
    );
}

#[test]
fn error_missing_data_dir() {
    fails(
        &[
            "eval",
            "--model",
            &fixture_model(),
            "--data",
            "mnist:/nonexistent",
        ],
        &["/nonexistent"],
    );
}

#[test]
fn error_train_split_of_bundled_data() {
    fails(
        &["eval", "--model", &fixture_model(), "--split", "train"],
        &["bundled", "mnist:DIR"],
    );
}

#[test]
fn error_empty_input_domain() {
    fails(
        &["eval", "--model", &fixture_model(), "--input-domain", "1,0"],
        &["1,0", "LO < HI"],
    );
}

#[test]
fn error_unknown_arch() {
    fails(
        &["train", "--arch", "vgg99", "--data", "mnist:/nonexistent"],
        &["unknown architecture 'vgg99'", "cnn-small"],
    );
}

#[test]
fn error_train_without_data() {
    fails(&["train", "--arch", "mlp"], &["--data is required"]);
}

#[test]
fn error_zero_threads() {
    fails(
        &["--threads", "0", "eval", "--model", &fixture_model()],
        &["--threads"],
    );
}

// ---- training: same seed → same bytes; resume ------------------------------------------------------

#[test]
fn train_is_deterministic_and_resumes() {
    let Some(shared) = shared_data() else {
        eprintln!("note: ../shared/data not found; skipping the training test");
        return;
    };
    let data = format!("mnist:{}", path_str(&shared.join("mnist")));
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.onnx");
    let b = dir.path().join("b.onnx");
    let train = |epochs: &str, out: &Path| {
        let args = format!(
            "--threads 2 train --arch mlp --limit 512 --val-limit 200 --seed 3 --epochs {epochs}"
        );
        let mut a: Vec<&str> = args.split(' ').collect();
        a.extend(["--data", &data, "--out", path_str(out)]);
        ok(&a)
    };
    train("1", &a);
    train("1", &b);
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!ba.is_empty());
    assert!(ba == bb, "same seed and threads gave different models");

    // The checkpoint continues up to --epochs and writes the model to its original --out.
    let ck = dir.path().join("a.onnx.ckpt");
    assert!(
        ck.is_file(),
        "no checkpoint written next to {}",
        a.display()
    );
    ok(&[
        "--threads",
        "2",
        "train",
        "--resume",
        path_str(&ck),
        "--epochs",
        "2",
        "--val-limit",
        "200",
    ]);
    let bc = std::fs::read(&a).unwrap();
    assert!(
        !bc.is_empty() && bc != ba,
        "resuming did not write a further-trained model"
    );
    // 1 epoch + resume to 2 equals 2 epochs in one go, bit for bit.
    let c = dir.path().join("c.onnx");
    train("2", &c);
    assert!(
        std::fs::read(&c).unwrap() == bc,
        "1 epoch + resume differs from 2 epochs straight"
    );
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&ck).unwrap()).unwrap();
    assert_eq!(meta["epoch"], 2, "checkpoint after resume: {meta}");
    // Already at the requested epoch count: a clear refusal.
    fails(
        &["train", "--resume", path_str(&ck), "--epochs", "2"],
        &["already trained"],
    );

    let v = eval_json(&["--model", path_str(&a), "--data", &data, "--limit", "200"]);
    assert_eq!(v["n"], 200, "{v}");
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.2,
        "an mlp after 2 epochs on 512 digits scores only {acc}"
    );
}

#[test]
fn audit_writes_a_report_card_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args([
            "audit", "--limit", "40", "--eps", "0.05,0.3", "--seed", "3", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("clean") && stdout.contains("after pgd"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for key in [
        "clean_accuracy",
        "robust_accuracy",
        "results",
        "settings",
        "seed",
        "model_sha256",
        "ruse_version",
        "warnings",
    ] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    let ra = &json["robust_accuracy"];
    let (small, large) = (ra["0.05"].as_f64().unwrap(), ra["0.3"].as_f64().unwrap());
    assert!(large <= small && small <= json["clean_accuracy"].as_f64().unwrap());
    assert!(
        large <= 0.05,
        "an undefended MNIST CNN at ε = 0.3 keeps {large}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("data:image/png;base64,"));
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "no external assets"
    );
    // Same seed, same numbers.
    let out2 = dir.path().join("audit2");
    let o2 = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args([
            "audit", "--limit", "40", "--eps", "0.05,0.3", "--seed", "3", "--out",
        ])
        .arg(&out2)
        .output()
        .unwrap();
    assert!(o2.status.success());
    let json2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["robust_accuracy"], json2["robust_accuracy"]);
}

#[test]
fn audit_rejects_bad_settings_clearly() {
    for (args, needle) in [
        (vec!["audit", "--eps=-0.1"], "must be a finite number"),
        (vec!["audit", "--eps", "3"], "exceeds the width"),
        (vec!["audit", "--eps", "abc"], "is not a number"),
        (vec!["audit", "--norm", "l7"], "unknown norm"),
        (vec!["audit", "--preset", "huge"], "unknown preset"),
        (
            vec!["audit", "--sections", "dance"],
            "unknown audit section 'dance'",
        ),
        (
            vec!["audit", "--sections", "sparse", "--section-samples", "0"],
            "--section-samples must be ≥ 1",
        ),
        (
            vec!["audit", "--sections", "blackbox", "--query-budget", "0"],
            "--query-budget must be ≥ 1",
        ),
        (
            vec![
                "audit",
                "--sections",
                "spatial",
                "--compare",
                "default",
                "mnist-pgdat",
            ],
            "not with --compare",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ops/relu.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args(["audit", "--model"])
        .arg(&fixture)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("takes input"),
        "{stderr}"
    );
}

#[test]
fn attack_writes_json_and_a_png_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("atk");
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args([
            "attack", "--attack", "pgd", "--eps", "0.3", "--steps", "10", "--limit", "30", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("robust accuracy") && stdout.contains("success rate"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("attack.json")).unwrap()).unwrap();
    assert_eq!(json["n"], 30);
    let samples = json["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 30);
    for s in samples {
        assert!(s["norm"].as_f64().unwrap() <= 0.3 + 1e-5);
        if s["success"].as_bool().unwrap() {
            assert_ne!(s["adversarial_prediction"], s["label"]);
        }
    }
    assert!(
        json["robust_accuracy"].as_f64().unwrap() <= 0.1,
        "PGD at ε = 0.3 should fool the undefended model"
    );
    let png = std::fs::read(out.join("grid.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Targeted, and bad settings.
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args([
            "attack", "--target", "3", "--eps", "0.3", "--steps", "20", "--limit", "20", "--out",
        ])
        .arg(dir.path().join("t"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("target class 3"));
    for (args, needle) in [
        (vec!["attack", "--attack", "nope"], "unknown attack"),
        (
            vec!["attack", "--attack", "cw"],
            "C&W is implemented for untargeted L2",
        ),
        (vec!["attack", "--target", "10"], "not a class"),
        (vec!["attack", "--steps", "0"], "--steps"),
        (
            vec!["attack", "--attack", "apgd-t", "--target", "1"],
            "picks its own targets",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(needle) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn attack_runs_fab_t_and_lbfgs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fab");
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args([
            "attack", "--attack", "fab-t", "--eps", "0.15", "--steps", "10", "--limit", "10",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("fab-t(10 steps × 9 targets)"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("attack.json")).unwrap()).unwrap();
    let samples = json["samples"].as_array().unwrap();
    assert!(samples.iter().any(|s| s["success"].as_bool().unwrap()));
    for s in samples {
        assert!(s["norm"].as_f64().unwrap() <= 0.15 + 1e-5);
        if s["success"].as_bool().unwrap() {
            assert_ne!(s["adversarial_prediction"], s["label"]);
        }
    }
    let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
        .args([
            "attack", "--attack", "lbfgs", "--norm", "l2", "--eps", "3", "--target", "3",
            "--steps", "20", "--limit", "4", "--out",
        ])
        .arg(dir.path().join("lbfgs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("target class 3"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (args, needle) in [
        (
            vec!["attack", "--attack", "fab", "--target", "1"],
            "untargeted here",
        ),
        (
            vec!["attack", "--attack", "fab-t", "--target", "1"],
            "picks its own targets",
        ),
        (
            vec!["attack", "--attack", "lbfgs", "--limit", "2"],
            "use --norm l2",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ruse"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(needle) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
