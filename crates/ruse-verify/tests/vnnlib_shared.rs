//! Parses every VNN-LIB file of the shared VNN-COMP benchmarks and re-checks every published
//! counterexample against its spec.
//!
//! The benchmarks live outside the repository (`../shared/vnncomp`); when they are absent the
//! tests print a note and pass, so the crate still tests on a bare checkout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ruse_verify::{parse_counterexample, parse_vnnlib_file, parse_vnnlib_file_with, Dims, Spec};

mod common;
use common::vnncomp;

/// Tolerance for re-checking published counterexamples: tools print values computed in f32
/// (e.g. an input at `0.05000000074505806` against a bound of `0.05`), so bounds and output
/// constraints may be missed by rounding, never by more than this.
const TOL: f64 = 1e-6;

fn vnnlib_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vnnlib"))
        .collect();
    files.sort();
    files
}

/// (benchmark subdirectory, spec directory, inputs, outputs, expected file count)
const BENCHMARKS: [(&str, &str, usize, usize, usize); 3] = [
    ("acasxu", "vnnlib", 5, 5, 10),
    ("mnist_fc", "vnnlib", 784, 10, 30),
    ("eran", "specs/mnist", 784, 10, 72),
];

#[test]
fn every_shared_spec_parses_with_the_right_shape() {
    let Some(root) = vnncomp() else { return };
    let start = Instant::now();
    let mut total = 0;
    for (bench, sub, n_in, n_out, count) in BENCHMARKS {
        let files = vnnlib_files(&root.join(bench).join(sub));
        assert_eq!(files.len(), count, "{bench}: number of .vnnlib files");
        for f in &files {
            let spec = parse_vnnlib_file(f).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (spec.n_inputs, spec.n_outputs),
                (n_in, n_out),
                "{}",
                f.display()
            );
            assert!(!spec.cases.is_empty(), "{}", f.display());
            for case in &spec.cases {
                assert_eq!(case.input.len(), n_in);
                assert!(case
                    .input
                    .lower
                    .iter()
                    .zip(&case.input.upper)
                    .all(|(l, u)| l <= u));
                assert!(!case.output.is_empty());
            }
            // The network's own counts give the same spec.
            let dims = Dims {
                n_inputs: Some(n_in),
                n_outputs: Some(n_out),
            };
            assert_eq!(parse_vnnlib_file_with(f, dims).unwrap(), spec);
            total += 1;
        }
    }
    println!(
        "parsed {total} shared specs (twice each) in {:?}",
        start.elapsed()
    );
}

#[test]
fn acasxu_prop_1_and_prop_6() {
    let Some(root) = vnncomp() else { return };
    let spec = parse_vnnlib_file(&root.join("acasxu/vnnlib/prop_1.vnnlib")).unwrap();
    assert_eq!(spec.cases.len(), 1);
    let case = &spec.cases[0];
    assert_eq!(case.input.lower, [0.6, -0.5, -0.5, 0.45, -0.5]);
    assert_eq!(case.input.upper, [0.679857769, 0.5, 0.5, 0.5, -0.45]);
    // (>= Y_0 3.991125645861615)  =>  -Y_0 + 3.991125645861615 <= 0
    assert_eq!(case.output.len(), 1);
    let c = &case.output[0].constraints;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].coeffs, [(0, -1.0)]);
    assert_eq!(c[0].constant, 3.991125645861615);

    // Property 6: two input boxes, each with the same four-way output disjunction.
    let spec = parse_vnnlib_file(&root.join("acasxu/vnnlib/prop_6.vnnlib")).unwrap();
    assert_eq!(spec.cases.len(), 2);
    assert_eq!(spec.cases[0].input.lower[1], 0.11140846);
    assert_eq!(spec.cases[1].input.upper[1], -0.11140846);
    for case in &spec.cases {
        assert_eq!(case.output.len(), 4);
        // (<= Y_j Y_0)  =>  -Y_0 + Y_j <= 0
        for (k, conj) in case.output.iter().enumerate() {
            assert_eq!(conj.constraints[0].coeffs, [(0, -1.0), (k + 1, 1.0)]);
        }
    }
}

#[test]
fn mnist_fc_boxes_are_eps_balls_clipped_to_the_unit_interval() {
    let Some(root) = vnncomp() else { return };
    for (name, eps, label) in [
        ("prop_0_0.03", 0.03f32, 4),
        ("prop_3_0.05", 0.05f32, usize::MAX),
    ] {
        let spec = parse_vnnlib_file(&root.join(format!("mnist_fc/vnnlib/{name}.vnnlib"))).unwrap();
        let b = &spec.cases[0].input;
        let eps = f64::from(eps);
        let mut interior = 0;
        for (&l, &u) in b.lower.iter().zip(&b.upper) {
            assert!(
                (0.0..=1.0).contains(&l) && (0.0..=1.0).contains(&u),
                "{name}: [{l}, {u}]"
            );
            assert!(
                u - l <= 2.0 * eps + 1e-6,
                "{name}: [{l}, {u}] wider than 2 eps"
            );
            if l > 0.0 && u < 1.0 {
                interior += 1;
                assert!(
                    (u - l - 2.0 * eps).abs() < 1e-6,
                    "{name}: [{l}, {u}] is not 2 eps wide"
                );
            } else {
                // Clipped on one side: the other side is still within eps of the image.
                assert!(u - l >= eps - 1e-6 || l == 0.0, "{name}: [{l}, {u}]");
            }
        }
        assert!(interior > 50, "{name}: only {interior} unclipped pixels");
        if label != usize::MAX {
            // "Mnist property with label: 4": unsafe iff some other class scores at least Y_4.
            assert_eq!(spec.cases[0].output.len(), 9);
            for conj in &spec.cases[0].output {
                let c = &conj.constraints[0];
                assert!(c.coeffs.contains(&(label, 1.0)), "{c:?}");
            }
        }
    }
}

/// Reads `instances.csv` into (onnx stem, vnnlib path) pairs.
fn instances(bench: &Path) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(bench.join("instances.csv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            let stem = |p: &str| {
                Path::new(p.trim())
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            };
            (stem(cols[0]), bench.join(cols[1].trim()))
        })
        .collect()
}

#[test]
fn every_published_counterexample_violates_its_spec() {
    let Some(root) = vnncomp() else { return };
    let mut checked = 0;
    let mut specs: HashMap<PathBuf, Spec> = HashMap::new();
    for bench in ["acasxu", "mnist_fc", "eran"] {
        let dir = root.join(bench);
        let ce_root = dir.join("counterexamples");
        if !ce_root.is_dir() {
            continue;
        }
        // Counterexample name = <onnx stem>_<vnnlib stem>.
        let by_name: HashMap<String, PathBuf> = instances(&dir)
            .into_iter()
            .map(|(onnx, vnnlib)| {
                let v = vnnlib.file_stem().unwrap().to_string_lossy().into_owned();
                (format!("{onnx}_{v}"), vnnlib)
            })
            .collect();
        for tool in std::fs::read_dir(&ce_root).unwrap() {
            for f in std::fs::read_dir(tool.unwrap().path()).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_none_or(|x| x != "counterexample") {
                    continue;
                }
                let name = f.file_stem().unwrap().to_string_lossy().into_owned();
                let vnnlib = by_name
                    .get(&name)
                    .unwrap_or_else(|| panic!("{}: no instance named {name}", f.display()));
                let spec = specs
                    .entry(vnnlib.clone())
                    .or_insert_with(|| parse_vnnlib_file(vnnlib).unwrap());
                let text = std::fs::read_to_string(&f).unwrap();
                let ce = parse_counterexample(&text, &f).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    spec.is_violated_by_with_tol(&ce.x, &ce.y, TOL),
                    "{} does not violate {}",
                    f.display(),
                    vnnlib.display()
                );
                // Our own writer round-trips the pair exactly.
                let again =
                    parse_counterexample(&spec.format_counterexample(&ce.x, &ce.y), &f).unwrap();
                assert_eq!(again, ce);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 122, "number of published counterexamples");
}
