//! `ruse verify`: prove or refute one VNN-LIB property of an ONNX network, VNN-COMP style.
//!
//! Also holds what `vnncomp` and `certify` share with it: the method and timeout settings, and the
//! CLI's own re-check of every `sat` (a fresh f32 forward pass of the counterexample's input must
//! violate the property, or the answer is downgraded to `unknown`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use ruse_graph::Graph;
use ruse_verify::{Counterexample, Dims, Method, Spec, Verdict, VerifyOptions, VerifyOutcome};

use crate::cli::VerifyArgs;

/// Parses `--method`.
pub fn parse_method(s: &str) -> Result<Method> {
    Method::parse(s).with_context(|| {
        format!("unknown verification method '{s}' (expected ibp, crown, alpha or bab)")
    })
}

/// Checks a timeout in seconds given on the command line.
pub fn parse_timeout(secs: f64, flag: &str) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        bail!("{flag} must be a positive number of seconds, got {secs}");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Verifier settings from the command line's method, budget and seed.
pub fn options(method: Method, timeout: Duration, seed: u64) -> VerifyOptions {
    let mut o = VerifyOptions {
        timeout,
        method,
        ..VerifyOptions::default()
    };
    o.falsify.seed = seed;
    o
}

/// Loads an ONNX network, naming the file in any error.
pub fn load_network(path: &Path) -> Result<Graph> {
    if !path.is_file() {
        bail!("cannot read ONNX file '{}': no such file", path.display());
    }
    ruse_graph::import::load_onnx(path)
        .with_context(|| format!("cannot load ONNX network '{}'", path.display()))
}

/// Parses a VNN-LIB file for `graph` (variables it does not have are errors with file:line:column).
pub fn load_property(path: &Path, graph: &Graph) -> Result<Spec> {
    if !path.is_file() {
        bail!(
            "cannot read VNN-LIB file '{}': no such file",
            path.display()
        );
    }
    let dims = Dims {
        n_inputs: Some(graph.input_len()),
        n_outputs: Some(graph.output_len()),
    };
    Ok(ruse_verify::parse_vnnlib_file_with(path, dims)?)
}

/// A verifier's answer after the CLI's own check.
pub struct Checked {
    /// The verdict to report; a `Sat` here holds a counterexample whose output comes from the
    /// CLI's own forward pass and violates the property exactly.
    pub verdict: Verdict,
    /// Why a `sat` of the library was downgraded to `unknown`, if it was.
    pub rejected: Option<String>,
}

/// Re-checks a `sat` outcome once more: the counterexample's input, rounded to f32, is run through
/// the network and the fresh output must violate `spec` exactly. Other verdicts pass through.
pub fn recheck(graph: &Graph, spec: &Spec, outcome: &VerifyOutcome) -> Result<Checked> {
    let Verdict::Sat(ce) = &outcome.verdict else {
        return Ok(Checked {
            verdict: outcome.verdict.clone(),
            rejected: None,
        });
    };
    Ok(match confirm(graph, spec, ce)? {
        Ok(fresh) => Checked {
            verdict: Verdict::Sat(fresh),
            rejected: None,
        },
        Err(why) => Checked {
            verdict: Verdict::Unknown,
            rejected: Some(why),
        },
    })
}

/// The counterexample as the CLI reports it (x rounded to f32, y from a fresh forward pass), or
/// why it does not hold up.
fn confirm(
    graph: &Graph,
    spec: &Spec,
    ce: &Counterexample,
) -> Result<std::result::Result<Counterexample, String>> {
    if ce.x.len() != graph.input_len() {
        return Ok(Err(format!(
            "the counterexample has {} inputs, the network takes {}",
            ce.x.len(),
            graph.input_len()
        )));
    }
    let x32: Vec<f32> = ce.x.iter().map(|&v| v as f32).collect();
    let mut shape = vec![1];
    shape.extend_from_slice(graph.input_shape());
    let y = graph
        .forward(&Tensor::from_slice(&x32, shape, &Device::Cpu)?)
        .context("forward pass of the counterexample failed")?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    let x: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    if spec.is_violated_by(&x, &y) {
        Ok(Ok(Counterexample { x, y }))
    } else if x.iter().zip(&ce.x).any(|(a, b)| a != b) {
        Ok(Err(
            "the counterexample's input is not exactly representable in f32, and rounded to f32 it does not violate the property".into(),
        ))
    } else {
        Ok(Err(
            "a fresh forward pass of the counterexample's input gives outputs that do not violate the property".into(),
        ))
    }
}

/// The VNN-COMP result text: `sat` followed by the counterexample, or the verdict alone.
pub fn result_text(v: &Verdict) -> String {
    match v {
        Verdict::Sat(ce) => format!("sat\n{}", ruse_verify::format_counterexample(&ce.x, &ce.y)),
        other => other.label().to_string(),
    }
}

/// One line for humans: verdict, time and how it was decided.
pub fn describe(checked: &Checked, o: &VerifyOutcome) -> String {
    let mut s = format!(
        "{} in {:.2} s (decided by {}, {} domains, depth {})",
        checked.verdict.label(),
        o.elapsed.as_secs_f64(),
        if o.stats.decided_by.is_empty() {
            "-"
        } else {
            &o.stats.decided_by
        },
        o.stats.domains,
        o.stats.max_depth
    );
    if !o.stats.note.is_empty() {
        s.push_str(&format!("; {}", o.stats.note));
    }
    if let Some(why) = &checked.rejected {
        s.push_str(&format!(
            "; the verifier answered sat but the CLI's re-check failed ({why}), so the answer is unknown"
        ));
    }
    s
}

/// Runs the verifier on one network and property and prints the result.
pub fn run(a: VerifyArgs) -> Result<()> {
    let method = parse_method(&a.method)?;
    let timeout = parse_timeout(a.timeout, "--timeout")?;
    let graph = load_network(&a.onnx)?;
    let spec = load_property(&a.vnnlib, &graph)?;
    let outcome = ruse_verify::verify(&graph, &spec, &options(method, timeout, a.seed))
        .with_context(|| {
            format!(
                "cannot verify '{}' on '{}'",
                a.vnnlib.display(),
                a.onnx.display()
            )
        })?;
    let checked = recheck(&graph, &spec, &outcome)?;
    let text = result_text(&checked.verdict);
    eprintln!("{}", describe(&checked, &outcome));
    if let Some(out) = &a.out {
        std::fs::write(out, format!("{text}\n"))
            .with_context(|| format!("cannot write the result to '{}'", out.display()))?;
    }
    println!("{text}");
    Ok(())
}
