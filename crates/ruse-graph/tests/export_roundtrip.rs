//! Export → import round trips: every zoo architecture and every ONNX fixture must come back with
//! the same outputs (bit for bit, up to 1e-6), ops, parameters, shapes, input domain and metadata.
//!
//! With `RUSE_EXPORT_CHECK_DIR` set, each exported model is also written there as `<name>.onnx`
//! with `<name>.json` holding a seeded input batch of 3 and ruse's output on it, for
//! `tools/onnxruntime_check.py DIR` (see `tools/export_check.sh`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::export::{save_onnx, to_onnx, to_onnx_bytes};
use ruse_graph::import::{import_onnx, load_onnx};
use ruse_graph::zoo::{build, Arch, ZooSpec};
use ruse_graph::Graph;

const BATCH: usize = 3;
const TOL: f32 = 1e-6;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Where to write models and reference outputs for onnxruntime, if asked to.
fn check_dir() -> Option<PathBuf> {
    let d = std::env::var_os("RUSE_EXPORT_CHECK_DIR")?;
    let d = PathBuf::from(d);
    std::fs::create_dir_all(&d).unwrap();
    Some(d)
}

/// A seeded batch of `BATCH` inputs drawn uniformly from the graph's input domain.
fn random_batch(g: &Graph, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = g.input_domain;
    let n = BATCH * g.input_len();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..=hi)).collect();
    let mut shape = vec![BATCH];
    shape.extend_from_slice(g.input_shape());
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Exports, re-imports and compares; returns the problems found (empty when all is well).
fn roundtrip(name: &str, g: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    let bytes = to_onnx_bytes(g).unwrap_or_else(|e| panic!("{name}: export failed: {e}"));
    let fake = PathBuf::from(format!("<export of {name}>"));
    let g2 = import_onnx(&bytes, &fake).unwrap_or_else(|e| panic!("{name}: re-import failed: {e}"));

    let x = random_batch(g, 0x5eed);
    let y1 = g
        .forward(&x)
        .unwrap_or_else(|e| panic!("{name}: forward failed: {e}"));
    let y2 = g2
        .forward(&x)
        .unwrap_or_else(|e| panic!("{name}: forward of re-import failed: {e}"));
    if y1.dims() != y2.dims() {
        problems.push(format!(
            "{name}: output shape {:?} became {:?}",
            y1.dims(),
            y2.dims()
        ));
    } else {
        let (a, b) = (flat(&y1), flat(&y2));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        if diff > TOL || a.iter().zip(&b).any(|(p, q)| p.is_nan() != q.is_nan()) {
            problems.push(format!("{name}: outputs differ by {diff:e}"));
        }
    }
    if g.op_histogram() != g2.op_histogram() {
        problems.push(format!(
            "{name}: op histogram {:?} became {:?}",
            g.op_histogram(),
            g2.op_histogram()
        ));
    }
    if g.param_count() != g2.param_count() {
        problems.push(format!(
            "{name}: {} parameters became {}",
            g.param_count(),
            g2.param_count()
        ));
    }
    if g.params.len() != g2.params.len() {
        problems.push(format!(
            "{name}: {} parameter tensors became {}",
            g.params.len(),
            g2.params.len()
        ));
    }
    if g.input_shape() != g2.input_shape() || g.output_shape() != g2.output_shape() {
        problems.push(format!(
            "{name}: shapes {:?} -> {:?} became {:?} -> {:?}",
            g.input_shape(),
            g.output_shape(),
            g2.input_shape(),
            g2.output_shape()
        ));
    }
    if g.input_domain != g2.input_domain {
        problems.push(format!(
            "{name}: input domain {:?} became {:?}",
            g.input_domain, g2.input_domain
        ));
    }
    if g.metadata != g2.metadata {
        problems.push(format!(
            "{name}: metadata {:?} became {:?}",
            g.metadata, g2.metadata
        ));
    }
    // Trainable flags survive for weights (normalisation constants may come back either way,
    // since ONNX does not record them).
    for (p, q) in g.params.iter().zip(&g2.params) {
        if p.tensor.dims() != q.tensor.dims() {
            problems.push(format!(
                "{name}: parameter '{}' {:?} became '{}' {:?}",
                p.name,
                p.tensor.dims(),
                q.name,
                q.tensor.dims()
            ));
        }
    }
    // Exporting the re-imported graph gives the same file: export is a fixed point.
    let bytes2 = to_onnx_bytes(&g2).unwrap();
    if bytes2 != bytes {
        problems.push(format!(
            "{name}: re-export differs ({} bytes vs {})",
            bytes2.len(),
            bytes.len()
        ));
    }

    if let Some(dir) = check_dir() {
        std::fs::write(dir.join(format!("{name}.onnx")), &bytes).unwrap();
        let json = serde_json::json!({
            "input_shape": x.dims(),
            "input": flat(&x),
            "output_shape": y1.dims(),
            "output": flat(&y1),
        });
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_string(&json).unwrap(),
        )
        .unwrap();
    }
    problems
}

fn zoo(arch: Arch, input: [usize; 3], normalize: Option<(Vec<f32>, Vec<f32>)>) -> Graph {
    build(
        arch,
        &ZooSpec {
            input,
            classes: 10,
            normalize,
            seed: 17,
        },
    )
    .unwrap_or_else(|e| panic!("{arch}: {e}"))
}

fn report(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn zoo_mnist_with_normalisation() {
    let mut problems = Vec::new();
    for arch in Arch::ALL {
        let g = zoo(arch, [1, 28, 28], Some((vec![0.1307], vec![0.3081])));
        assert_eq!(g.op_histogram().get("Sub"), Some(&1), "{arch}");
        problems.extend(roundtrip(&format!("zoo_{}_mnist", arch.name()), &g));
    }
    report(problems);
}

#[test]
fn zoo_cifar_with_signed_domain() {
    let mut problems = Vec::new();
    for arch in Arch::ALL {
        let mut g = zoo(arch, [3, 32, 32], None);
        g.input_domain = (-1.0, 1.0);
        g.metadata.insert("ruse.test".into(), "a=1, b=\"2\"".into());
        problems.extend(roundtrip(&format!("zoo_{}_cifar", arch.name()), &g));
    }
    report(problems);
}

#[test]
fn input_domain_survives() {
    let mut g = zoo(Arch::CnnSmall, [1, 28, 28], None);
    assert_eq!(g.input_domain, (0.0, 1.0));
    for domain in [(-1.0, 1.0), (-0.4242, 2.5), (0.1, 0.3), (-255.0, 255.0)] {
        g.input_domain = domain;
        let g2 = import_onnx(&to_onnx_bytes(&g).unwrap(), Path::new("<mem>")).unwrap();
        assert_eq!(g2.input_domain, domain);
    }
    // Through a file as well.
    g.input_domain = (-1.0, 1.0);
    let p = std::env::temp_dir().join(format!("ruse_export_roundtrip_{}.onnx", std::process::id()));
    save_onnx(&g, &p).unwrap();
    let g2 = load_onnx(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(g2.input_domain, (-1.0, 1.0));
    assert_eq!(
        g2.metadata.get("ruse.arch").map(String::as_str),
        Some("cnn-small")
    );
}

#[test]
fn exported_model_declares_symbolic_batch_and_opset() {
    let g = zoo(Arch::CnnPool, [1, 28, 28], None);
    let m = to_onnx(&g).unwrap();
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(m.opset_import[0].version, ruse_graph::export::EXPORT_OPSET);
    let gp = m.graph.unwrap();
    for vi in [&gp.input[0], &gp.output[0]] {
        let dims = &vi
            .r#type
            .as_ref()
            .unwrap()
            .tensor_type
            .as_ref()
            .unwrap()
            .shape
            .as_ref()
            .unwrap()
            .dim;
        assert_eq!(dims[0].dim_param.as_deref(), Some("N"), "{}", vi.name);
    }
    // Any batch size runs on the re-imported graph.
    let g2 = import_onnx(&to_onnx_bytes(&g).unwrap(), Path::new("<mem>")).unwrap();
    for b in [1, 5] {
        let x = Tensor::zeros((b, 1, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(g2.forward(&x).unwrap().dims(), &[b, 10]);
    }
}

fn fixture_paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("ops"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    assert!(v.len() >= 20, "expected the op fixtures, found {}", v.len());
    v.push(fixtures_dir().join("torch_cnn.onnx"));
    v
}

#[test]
fn fixtures() {
    let mut problems = Vec::new();
    for p in fixture_paths() {
        let g = load_onnx(&p).unwrap_or_else(|e| panic!("{e}"));
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        problems.extend(roundtrip(&format!("fixture_{stem}"), &g));
    }
    report(problems);
}

#[test]
fn fixture_with_signed_domain() {
    let mut g = load_onnx(fixtures_dir().join("torch_cnn.onnx")).unwrap();
    g.input_domain = (-1.0, 1.0);
    report(roundtrip("fixture_torch_cnn_signed_domain", &g));
}
