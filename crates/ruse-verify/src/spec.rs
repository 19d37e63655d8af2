//! The verification property every verifier stage works on.
//!
//! A [`Spec`] describes the *unsafe* region of a network with `n_inputs` inputs `X` and `n_outputs`
//! outputs `Y`, as VNN-LIB does: the property is violated ("sat") iff some input/output pair of the
//! network lies in
//!
//! ```text
//!   ⋃ over cases c:  c.input (a box over X)  ×  ⋃ over k: c.output[k] (a conjunction over Y)
//! ```
//!
//! where every output constraint is linear, `Σ_j c_j·Y_j + d <= 0`. This "cases" shape is the
//! general one: a VNN-LIB file can disjoin input boxes and output constraints together
//! (`(or (and X-bounds Y-constraints) …)`), and splitting by box keeps every case a plain box,
//! which is what interval bounds and input splitting want. A plain file with one box and one
//! output disjunction (acasxu properties 1–5, mnist_fc, eran) is a single case.
//!
//! Conventions: an empty `cases` list means the property can never be violated; a case whose
//! `output` holds an empty conjunction is violated by every input of its box.

use std::fmt::Write as _;

/// A box of inputs: `lower[i] <= X_i <= upper[i]` for every input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InputBox {
    /// Lower bound per input.
    pub lower: Vec<f64>,
    /// Upper bound per input.
    pub upper: Vec<f64>,
}

impl InputBox {
    /// Whether `x` lies in the box, each bound relaxed by `tol` (to accept values printed in f32).
    pub fn contains(&self, x: &[f64], tol: f64) -> bool {
        x.len() == self.lower.len()
            && x.iter()
                .zip(self.lower.iter().zip(&self.upper))
                .all(|(&v, (&l, &u))| v >= l - tol && v <= u + tol)
    }

    /// Number of inputs the box constrains.
    pub fn len(&self) -> usize {
        self.lower.len()
    }

    /// Whether the box constrains no input at all.
    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }
}

/// One linear output constraint `Σ coeffs[k].1 · Y_{coeffs[k].0} + constant <= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearConstraint {
    /// `(output index, coefficient)` pairs, sorted by index, without zero coefficients.
    pub coeffs: Vec<(usize, f64)>,
    /// Constant term `d`.
    pub constant: f64,
}

impl LinearConstraint {
    /// The left-hand side `Σ c_j·Y_j + d` at `y` (the constraint holds iff this is `<= 0`).
    pub fn value(&self, y: &[f64]) -> f64 {
        self.coeffs
            .iter()
            .map(|&(j, c)| c * y.get(j).copied().unwrap_or(f64::NAN))
            .sum::<f64>()
            + self.constant
    }

    /// Whether the constraint holds at `y`, allowing the left-hand side up to `tol` above zero.
    pub fn holds(&self, y: &[f64], tol: f64) -> bool {
        // NaN compares false, so an output of NaN never counts as a violation.
        self.value(y) <= tol
    }
}

/// A conjunction of linear output constraints (empty = always true).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conjunction {
    /// Constraints that must all hold.
    pub constraints: Vec<LinearConstraint>,
}

impl Conjunction {
    /// Whether every constraint holds at `y` within `tol`.
    pub fn holds(&self, y: &[f64], tol: f64) -> bool {
        self.constraints.iter().all(|c| c.holds(y, tol))
    }
}

/// One input box together with the output conditions that are unsafe on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Inputs this case ranges over.
    pub input: InputBox,
    /// Unsafe outputs: the disjunction of these conjunctions.
    pub output: Vec<Conjunction>,
}

/// A verification property: the union over `cases` of input box × unsafe output set.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Number of network inputs (`X_0 … X_{n-1}`).
    pub n_inputs: usize,
    /// Number of network outputs (`Y_0 … Y_{m-1}`).
    pub n_outputs: usize,
    /// Unsafe cases; the property is violated iff some case is.
    pub cases: Vec<Case>,
}

/// Why a robustness query could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The label does not name an output.
    #[error("label {label} is out of range: the network has {n_outputs} outputs (0..{n_outputs})")]
    LabelOutOfRange {
        /// Requested label.
        label: usize,
        /// Number of outputs.
        n_outputs: usize,
    },
    /// ε must be a finite, non-negative number.
    #[error("eps must be finite and >= 0, got {0}")]
    BadEps(f64),
    /// The domain must be a finite-or-infinite interval with `lo <= hi` (no NaN).
    #[error("input domain ({0}, {1}) is not an interval with lo <= hi")]
    BadDomain(f64, f64),
    /// An input value is NaN or lies so far outside the domain that its ε-ball misses it.
    #[error("x[{index}] = {value} is NaN or its eps-ball lies outside the input domain")]
    BadInput {
        /// Input index.
        index: usize,
        /// Offending value.
        value: f64,
    },
}

impl Spec {
    /// The standard L∞ robustness query around `x`: violated iff some input within `eps` of `x`
    /// (clamped to `domain`) gives `Y_j >= Y_label` for some `j != label`.
    ///
    /// The box is rounded outward by one ulp before clamping, so it contains the real-valued ball
    /// even though `x ± eps` is computed in floating point (a verifier that proves the box safe
    /// has then proved the exact ball safe).
    pub fn robustness(
        x: &[f64],
        eps: f64,
        label: usize,
        n_outputs: usize,
        domain: (f64, f64),
    ) -> Result<Spec, SpecError> {
        if label >= n_outputs {
            return Err(SpecError::LabelOutOfRange { label, n_outputs });
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(SpecError::BadEps(eps));
        }
        let (lo, hi) = domain;
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(SpecError::BadDomain(lo, hi));
        }
        let mut lower = Vec::with_capacity(x.len());
        let mut upper = Vec::with_capacity(x.len());
        for (index, &value) in x.iter().enumerate() {
            let (l, u) = if eps == 0.0 {
                (value, value)
            } else {
                ((value - eps).next_down(), (value + eps).next_up())
            };
            // `f64::max` ignores NaN, so a NaN input must be caught before clamping.
            let (l, u) = (l.max(lo), u.min(hi));
            if value.is_nan() || l > u {
                return Err(SpecError::BadInput { index, value });
            }
            lower.push(l);
            upper.push(u);
        }
        // Y_j - Y_label >= 0  <=>  Y_label - Y_j <= 0: one conjunction per competing class.
        let output = (0..n_outputs)
            .filter(|&j| j != label)
            .map(|j| {
                let mut coeffs = vec![(label, 1.0), (j, -1.0)];
                coeffs.sort_by_key(|&(i, _)| i);
                Conjunction {
                    constraints: vec![LinearConstraint {
                        coeffs,
                        constant: 0.0,
                    }],
                }
            })
            .collect();
        Ok(Spec {
            n_inputs: x.len(),
            n_outputs,
            cases: vec![Case {
                input: InputBox { lower, upper },
                output,
            }],
        })
    }

    /// Whether the concrete pair (`x`, `y`) violates the property exactly (no tolerance).
    ///
    /// Pairs of the wrong length never violate: they cannot be a counterexample for this network.
    pub fn is_violated_by(&self, x: &[f64], y: &[f64]) -> bool {
        self.is_violated_by_with_tol(x, y, 0.0)
    }

    /// Like [`Spec::is_violated_by`], but every input bound and output constraint may be missed
    /// by up to `tol` (published counterexamples are often printed from f32 computations).
    pub fn is_violated_by_with_tol(&self, x: &[f64], y: &[f64], tol: f64) -> bool {
        if x.len() != self.n_inputs || y.len() != self.n_outputs {
            return false;
        }
        self.cases
            .iter()
            .any(|c| c.input.contains(x, tol) && c.output.iter().any(|k| k.holds(y, tol)))
    }

    /// The VNN-COMP counterexample text `((X_0 v)\n(X_1 v)\n…\n(Y_0 v)\n…)`.
    ///
    /// Values use Rust's shortest round-trip formatting, so parsing them back gives the same bits.
    pub fn format_counterexample(&self, x: &[f64], y: &[f64]) -> String {
        format_counterexample(x, y)
    }
}

/// The VNN-COMP counterexample text for (`x`, `y`), values printed so they round-trip exactly.
pub fn format_counterexample(x: &[f64], y: &[f64]) -> String {
    let mut s = String::with_capacity(24 * (x.len() + y.len()) + 2);
    s.push('(');
    let vars = x
        .iter()
        .enumerate()
        .map(|(i, v)| ('X', i, v))
        .chain(y.iter().enumerate().map(|(i, v)| ('Y', i, v)));
    for (k, (name, i, v)) in vars.enumerate() {
        if k > 0 {
            s.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "({name}_{i} {v:?})");
    }
    s.push(')');
    s
}
