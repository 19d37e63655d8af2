//! End-to-end tests of `ruse verify`, `ruse vnncomp` and `ruse certify`: VNN-COMP instances with
//! known verdicts (sat answers re-parsed and re-checked against the property), a hand-made
//! network and property pair with an obvious answer, clear errors for bad input, a benchmark run
//! with `--check`, and certified accuracy on the bundled model.
//!
//! Tests on ../shared/vnncomp skip with a note when it is absent (CI has it).

use std::path::{Path, PathBuf};

use ruse_graph::zoo::{self, Arch, ZooSpec};
use serde_json::Value;

mod common;
use common::{describe, fails_with, ok, path_str as s, run, shared_dir};

/// ../shared/vnncomp, if present (a note when not).
fn vnncomp() -> Option<PathBuf> {
    let p = shared_dir("vnncomp");
    if p.is_none() {
        eprintln!("note: ../shared/vnncomp not found; skipping");
    }
    p
}

/// Asserts that a `sat` result re-parses and its counterexample violates the property.
fn assert_valid_sat(result: &str, vnnlib: &Path) {
    assert_eq!(result.lines().next(), Some("sat"), "{result}");
    let ce = ruse_verify::parse_counterexample(result, Path::new("stdout"))
        .unwrap_or_else(|e| panic!("the counterexample does not parse: {e}\n{result}"));
    let spec = ruse_verify::parse_vnnlib_file(vnnlib).unwrap();
    assert_eq!(ce.x.len(), spec.n_inputs, "{result}");
    assert_eq!(ce.y.len(), spec.n_outputs, "{result}");
    assert!(
        spec.is_violated_by(&ce.x, &ce.y),
        "the counterexample does not violate {}:\n{result}",
        vnnlib.display()
    );
}

/// Writes a VNN-LIB file: every input in [lo, hi], then `assertion` over the outputs.
fn write_vnnlib(path: &Path, n_in: usize, n_out: usize, lo: f64, hi: f64, assertion: &str) {
    let mut t = String::new();
    for i in 0..n_in {
        t.push_str(&format!("(declare-const X_{i} Real)\n"));
    }
    for j in 0..n_out {
        t.push_str(&format!("(declare-const Y_{j} Real)\n"));
    }
    for i in 0..n_in {
        t.push_str(&format!(
            "(assert (>= X_{i} {lo:?}))\n(assert (<= X_{i} {hi:?}))\n"
        ));
    }
    t.push_str(assertion);
    t.push('\n');
    std::fs::write(path, t).unwrap();
}

/// A zoo MLP (2×2 input, 3 classes) saved as ONNX in `dir`.
fn tiny_mlp(dir: &Path) -> PathBuf {
    let g = zoo::build(
        Arch::Mlp,
        &ZooSpec {
            input: [1, 2, 2],
            classes: 3,
            normalize: None,
            seed: 7,
        },
    )
    .unwrap();
    let p = dir.join("mlp.onnx");
    ruse_graph::export::save_onnx(&g, &p).unwrap();
    p
}

// ---- ruse verify on VNN-COMP instances ----------------------------------------------------------

#[test]
fn verify_acasxu_known_unsat() {
    let Some(v) = vnncomp() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("result.txt");
    let onnx = v.join("acasxu/onnx/ACASXU_run2a_1_6_batch_2000.onnx");
    let vnnlib = v.join("acasxu/vnnlib/prop_3.vnnlib");
    let args = [
        "verify",
        "--onnx",
        s(&onnx),
        "--vnnlib",
        s(&vnnlib),
        "--timeout",
        "60",
        "--out",
        s(&out_file),
    ];
    let out = run(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.trim(), "unsat", "{}", describe(&args, &out));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().trim(), "unsat");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("decided by"), "{}", describe(&args, &out));
}

#[test]
fn verify_mnist_fc_known_sat_gives_a_checked_counterexample() {
    let Some(v) = vnncomp() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("result.txt");
    let onnx = v.join("mnist_fc/onnx/mnist-net_256x2.onnx");
    let vnnlib = v.join("mnist_fc/vnnlib/prop_1_0.03.vnnlib");
    let stdout = ok(&[
        "verify",
        "--onnx",
        s(&onnx),
        "--vnnlib",
        s(&vnnlib),
        "--timeout",
        "60",
        "--out",
        s(&out_file),
    ]);
    assert_valid_sat(&stdout, &vnnlib);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), stdout);
    assert!(
        stdout.contains("(X_783 ") && stdout.contains("(Y_9 "),
        "{stdout}"
    );
}

#[test]
fn verify_mnist_fc_needs_relu_splits_and_proves_it() {
    // α-CROWN leaves all nine rows open here; the reference verdict is unsat.
    let Some(v) = vnncomp() else { return };
    let onnx = v.join("mnist_fc/onnx/mnist-net_256x2.onnx");
    let vnnlib = v.join("mnist_fc/vnnlib/prop_10_0.05.vnnlib");
    let args = [
        "verify",
        "--onnx",
        s(&onnx),
        "--vnnlib",
        s(&vnnlib),
        "--timeout",
        "120",
    ];
    let out = run(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "unsat");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("decided by relu-split"),
        "{}",
        describe(&args, &out)
    );
}

// ---- a hand-made pair with an obvious answer ----------------------------------------------------

#[test]
fn verify_tiny_mlp_obvious_answers() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = tiny_mlp(dir.path());
    // Outputs of a 4-input MLP with PyTorch-style initialisation on [0, 1] are far below 1e6.
    let never = dir.path().join("never.vnnlib");
    write_vnnlib(&never, 4, 3, 0.0, 1.0, "(assert (>= Y_0 1000000.0))");
    for method in ["ibp", "crown", "alpha", "bab"] {
        let out = ok(&[
            "verify",
            "--onnx",
            s(&onnx),
            "--vnnlib",
            s(&never),
            "--method",
            method,
            "--timeout",
            "30",
        ]);
        assert_eq!(out.trim(), "unsat", "method {method}");
    }
    // ...and every input is a counterexample of the opposite.
    let always = dir.path().join("always.vnnlib");
    write_vnnlib(
        &always,
        4,
        3,
        0.25,
        0.5,
        "(assert (or (and (<= Y_0 1000000.0)) (and (<= Y_1 -1000000.0))))",
    );
    let out = ok(&[
        "verify",
        "--onnx",
        s(&onnx),
        "--vnnlib",
        s(&always),
        "--timeout",
        "30",
        "--seed",
        "3",
    ]);
    assert_valid_sat(&out, &always);
    let ce = ruse_verify::parse_counterexample(&out, Path::new("stdout")).unwrap();
    assert!(ce.x.iter().all(|&x| (0.25..=0.5).contains(&x)), "{out}");
}

// ---- bad input ----------------------------------------------------------------------------------

#[test]
fn verify_rejects_bad_input_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = tiny_mlp(dir.path());
    let good = dir.path().join("good.vnnlib");
    write_vnnlib(&good, 4, 3, 0.0, 1.0, "(assert (>= Y_0 Y_1))");

    // Malformed: an unclosed parenthesis on line 2; the message has file:line:column.
    let bad = dir.path().join("bad.vnnlib");
    std::fs::write(&bad, "(declare-const X_0 Real)\n(assert (<= X_0 1.0)\n").unwrap();
    let bad_loc = format!("{}:2:", bad.display());
    fails_with(
        1,
        &["verify", "--onnx", s(&onnx), "--vnnlib", s(&bad)],
        &[&bad_loc],
    );
    // An unknown operator, also located.
    std::fs::write(&bad, "(declare-const X_0 Real)\n(assert (foo X_0 1.0))\n").unwrap();
    fails_with(
        1,
        &["verify", "--onnx", s(&onnx), "--vnnlib", s(&bad)],
        &[&bad_loc, "foo"],
    );
    // More inputs than the network has.
    let wide = dir.path().join("wide.vnnlib");
    write_vnnlib(&wide, 6, 3, 0.0, 1.0, "(assert (>= Y_0 Y_1))");
    fails_with(
        1,
        &["verify", "--onnx", s(&onnx), "--vnnlib", s(&wide)],
        &["wide.vnnlib", "X_4", "4 inputs"],
    );
    // Missing files.
    let missing = dir.path().join("missing.onnx");
    fails_with(
        1,
        &["verify", "--onnx", s(&missing), "--vnnlib", s(&good)],
        &["missing.onnx"],
    );
    let missing = dir.path().join("missing.vnnlib");
    fails_with(
        1,
        &["verify", "--onnx", s(&onnx), "--vnnlib", s(&missing)],
        &["missing.vnnlib"],
    );
    // Bad settings.
    fails_with(
        1,
        &[
            "verify",
            "--onnx",
            s(&onnx),
            "--vnnlib",
            s(&good),
            "--method",
            "magic",
        ],
        &["magic", "ibp, crown, alpha or bab"],
    );
    fails_with(
        1,
        &[
            "verify",
            "--onnx",
            s(&onnx),
            "--vnnlib",
            s(&good),
            "--timeout",
            "0",
        ],
        &["--timeout"],
    );
}

#[test]
fn verify_names_an_op_without_a_bound_rule() {
    let onnx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ops/softmax.onnx");
    let dir = tempfile::tempdir().unwrap();
    // Softmax outputs are below 1, so no falsifier can answer before the bounds are needed.
    let vnnlib = dir.path().join("softmax.vnnlib");
    write_vnnlib(&vnnlib, 7, 7, 0.0, 0.1, "(assert (>= Y_0 2.0))");
    fails_with(
        1,
        &[
            "verify",
            "--onnx",
            s(&onnx),
            "--vnnlib",
            s(&vnnlib),
            "--timeout",
            "10",
        ],
        &["softmax.onnx", "Softmax", "no bound rule"],
    );
}

// ---- ruse vnncomp -------------------------------------------------------------------------------

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn vnncomp_acasxu_slice_has_no_wrong_verdict() {
    let Some(v) = vnncomp() else { return };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("results.csv");
    let stdout = ok(&[
        "vnncomp",
        s(&v.join("acasxu")),
        "--limit",
        "3",
        "--timeout-cap",
        "5",
        "--check",
        "--out",
        s(&csv),
    ]);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('[')).count(),
        3,
        "{stdout}"
    );
    for needle in ["ruse", "alpha_beta_crown", "nnenum", "reference", "solved"] {
        assert!(stdout.contains(needle), "table lacks {needle}:\n{stdout}");
    }
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 4, "header + 3 rows");
    let h = &rows[0];
    for col in ["onnx", "vnnlib", "verdict", "time_s", "reference", "agrees"] {
        assert!(h.iter().any(|c| c == col), "results.csv lacks {col}: {h:?}");
    }
    let verdict = h.iter().position(|c| c == "verdict").unwrap();
    let agrees = h.iter().position(|c| c == "agrees").unwrap();
    for r in &rows[1..] {
        assert!(
            ["sat", "unsat", "unknown", "timeout"].contains(&r[verdict].as_str()),
            "{r:?}"
        );
        assert_ne!(r[agrees], "no", "wrong verdict: {r:?}");
    }
}

/// A benchmark folder built here: one instance whose reference claims the opposite of the truth,
/// one whose network is missing; `--check` must fail loudly, and the run must go on past the error.
#[test]
fn vnncomp_check_fails_on_a_wrong_verdict_and_records_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("tinybench");
    std::fs::create_dir_all(bench.join("onnx")).unwrap();
    std::fs::create_dir_all(bench.join("vnnlib")).unwrap();
    tiny_mlp(&bench.join("onnx"));
    write_vnnlib(
        &bench.join("vnnlib/always.vnnlib"),
        4,
        3,
        0.0,
        1.0,
        "(assert (<= Y_0 1000000.0))",
    );
    write_vnnlib(
        &bench.join("vnnlib/never.vnnlib"),
        4,
        3,
        0.0,
        1.0,
        "(assert (>= Y_0 1000000.0))",
    );
    std::fs::write(
        bench.join("instances.csv"),
        "onnx/mlp.onnx,vnnlib/always.vnnlib,10\n\
         onnx/gone.onnx,vnnlib/always.vnnlib,10\n\
         onnx/mlp.onnx,vnnlib/never.vnnlib,10\n",
    )
    .unwrap();
    std::fs::write(
        bench.join("reference_test.csv"),
        "onnx,vnnlib,official_true_result\n\
         onnx/mlp.onnx,vnnlib/always.vnnlib,unsat\n\
         onnx/mlp.onnx,vnnlib/never.vnnlib,unsat\n",
    )
    .unwrap();
    std::fs::write(
        bench.join("results_othertool.csv"),
        "onnx,vnnlib,verdict,run_time_s\n\
         onnx/mlp.onnx,vnnlib/always.vnnlib,sat,1.5\n\
         onnx/mlp.onnx,vnnlib/never.vnnlib,unsat,2.5\n",
    )
    .unwrap();
    let csv = dir.path().join("r.csv");
    let args = [
        "vnncomp",
        s(&bench),
        "--check",
        "--timeout-cap",
        "10",
        "--out",
        s(&csv),
    ];
    let out = run(&args);
    let d = describe(&args, &out);
    assert_eq!(out.status.code(), Some(1), "{d}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("WRONG"), "{d}");
    assert!(
        stderr.contains("WRONG VERDICT") && stderr.contains("error"),
        "{d}"
    );
    assert!(stdout.contains("othertool"), "{d}");
    assert!(stdout.contains("gone.onnx"), "{d}");
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 4, "{d}");
    let verdicts: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    assert_eq!(verdicts, ["sat", "error", "unsat"], "{d}");
    assert_eq!(rows[1][6], "no", "{d}");
    assert_eq!(rows[3][6], "yes", "{d}");

    // Without --check the same run reports but succeeds; --filter and --limit select.
    let out = ok(&[
        "vnncomp",
        s(&bench),
        "--filter",
        "never",
        "--limit",
        "1",
        "--out",
        s(&csv),
    ]);
    assert_eq!(csv_rows(&csv).len(), 2, "{out}");
    fails_with(
        1,
        &["vnncomp", s(&dir.path().join("nothing-here"))],
        &["nothing-here"],
    );
}

// ---- ruse certify -------------------------------------------------------------------------------

#[test]
fn certify_bundled_model_with_crown() {
    let stdout = ok(&[
        "certify",
        "--limit",
        "5",
        "--eps",
        "0.002,0.01",
        "--method",
        "crown",
        "--timeout",
        "2",
        "--json",
    ]);
    let v: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{stdout}"));
    assert_eq!(v["n"], 5, "{v}");
    assert_eq!(v["method"], "crown", "{v}");
    let clean = v["clean_correct"].as_u64().unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    for r in results {
        let sum: u64 = ["certified", "falsified", "unknown", "timeout"]
            .iter()
            .map(|k| r[k].as_u64().unwrap())
            .sum();
        assert_eq!(sum, clean, "every correct sample gets one verdict: {v}");
    }
    // A radius of 0.002 is small enough for interval bounds on this CNN.
    assert!(results[0]["certified"].as_u64().unwrap() >= 1, "{v}");
    // Certified accuracy cannot rise with ε.
    assert!(results[1]["certified"].as_u64() <= results[0]["certified"].as_u64());

    let table = ok(&[
        "certify",
        "--limit",
        "2",
        "--eps",
        "0.001",
        "--method",
        "ibp",
        "--timeout",
        "2",
    ]);
    for needle in ["clean", "certified", "falsified", "0.001"] {
        assert!(table.contains(needle), "{table}");
    }
    fails_with(1, &["certify", "--eps=-1"], &["--eps"]);
    fails_with(
        1,
        &["certify", "--eps", "0.1", "--method", "nope"],
        &["nope"],
    );
}

#[test]
fn help_lists_the_prove_commands_and_their_flags() {
    let top = ok(&["--help"]);
    let subs: [(&str, &[&str]); 3] = [
        (
            "verify",
            &[
                "--onnx",
                "--vnnlib",
                "--timeout",
                "--method",
                "--seed",
                "--out",
            ],
        ),
        (
            "vnncomp",
            &[
                "--timeout-scale",
                "--timeout-cap",
                "--limit",
                "--filter",
                "--method",
                "--out",
                "--check",
            ],
        ),
        (
            "certify",
            &[
                "--model",
                "--data",
                "--limit",
                "--eps",
                "--method",
                "--timeout",
                "--json",
            ],
        ),
    ];
    for (sub, flags) in subs {
        assert!(top.contains(sub), "top-level help lacks {sub}:\n{top}");
        let h = ok(&[sub, "--help"]);
        for f in flags {
            assert!(h.contains(f), "ruse {sub} --help lacks {f}:\n{h}");
        }
    }
}
