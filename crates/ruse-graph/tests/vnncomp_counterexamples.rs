//! ONNX conformance: every network in ../shared/vnncomp loads, and every published counterexample
//! evaluates to its published outputs within 1e-4. Skips (with a note) when ../shared is absent.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ruse_graph::import::load_onnx;

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vnncomp");
    p.is_dir().then_some(p)
}

fn parse_counterexample(text: &str) -> (Vec<f32>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for tok in text
        .split('(')
        .map(|t| t.trim().trim_end_matches(')').trim())
    {
        let mut it = tok.split_whitespace();
        let (Some(name), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v: f64 = v
            .trim_end_matches(')')
            .parse()
            .expect("number in counterexample");
        if let Some(i) = name.strip_prefix("X_") {
            assert_eq!(i.parse::<usize>().unwrap(), xs.len());
            xs.push(v as f32);
        } else if let Some(i) = name.strip_prefix("Y_") {
            assert_eq!(i.parse::<usize>().unwrap(), ys.len());
            ys.push(v);
        }
    }
    (xs, ys)
}

fn onnx_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["onnx", "nets"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            v.extend(
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "onnx")),
            );
        }
    }
    v.sort();
    v
}

#[test]
fn every_vnncomp_network_loads_and_runs() {
    let Some(root) = shared() else {
        eprintln!("note: ../shared/vnncomp not found; skipping");
        return;
    };
    let mut n = 0;
    for bench in ["acasxu", "mnist_fc", "eran"] {
        for f in onnx_files(&root.join(bench)) {
            let g = load_onnx(&f).unwrap_or_else(|e| panic!("{e}"));
            let x = Tensor::zeros(
                [&[2usize][..], g.input_shape()].concat(),
                candle_core::DType::F32,
                &Device::Cpu,
            )
            .unwrap();
            let y = g
                .forward(&x)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(y.dims()[0], 2);
            n += 1;
        }
    }
    assert_eq!(n, 45 + 3 + 2, "expected 50 networks");
}

#[test]
fn published_counterexamples_reproduce() {
    let Some(root) = shared() else {
        eprintln!("note: ../shared/vnncomp not found; skipping");
        return;
    };
    let mut checked = 0;
    let mut worst = 0f64;
    for bench in ["acasxu", "mnist_fc", "eran"] {
        let nets = onnx_files(&root.join(bench));
        let graphs: Vec<_> = nets
            .iter()
            .map(|f| load_onnx(f).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let Ok(tools) = std::fs::read_dir(root.join(bench).join("counterexamples")) else {
            continue;
        };
        for tool in tools.flatten() {
            for ce in std::fs::read_dir(tool.path()).unwrap().flatten() {
                let stem = ce.path().file_stem().unwrap().to_string_lossy().to_string();
                // The network is the longest ONNX stem that prefixes the counterexample's name.
                let (i, _) = nets
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| {
                        stem.starts_with(&format!("{}_", n.file_stem().unwrap().to_string_lossy()))
                    })
                    .max_by_key(|(_, n)| n.as_os_str().len())
                    .unwrap_or_else(|| panic!("no network for {stem}"));
                let (xs, ys) = parse_counterexample(&std::fs::read_to_string(ce.path()).unwrap());
                let g = &graphs[i];
                assert_eq!(xs.len(), g.input_len(), "{stem}");
                assert_eq!(ys.len(), g.output_len(), "{stem}");
                let x =
                    Tensor::from_vec(xs, [&[1usize][..], g.input_shape()].concat(), &Device::Cpu)
                        .unwrap();
                let y: Vec<f32> = g
                    .forward(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for (a, b) in y.iter().zip(&ys) {
                    let d = (*a as f64 - b).abs();
                    worst = worst.max(d);
                    assert!(
                        d <= 1e-4,
                        "{stem}: output {a} vs published {b} (diff {d:e})"
                    );
                }
                checked += 1;
            }
        }
    }
    eprintln!("checked {checked} counterexamples, worst abs diff {worst:e}");
    assert!(checked >= 100, "only {checked} counterexamples found");
}
