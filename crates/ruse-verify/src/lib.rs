//! Verification for ruse: the properties to prove and, in time, the bounds and branch and bound
//! that prove them.
//!
//! This crate so far holds the property side: [`Spec`] (an input box per case and a disjunction
//! of linear output constraints, see [`spec`] for the exact meaning), built either from a VNN-LIB
//! file ([`parse_vnnlib_file`]) or from an image, ε and label ([`Spec::robustness`]); plus the
//! VNN-COMP counterexample format, written by [`Spec::format_counterexample`] and read back by
//! [`parse_counterexample`] so that every counterexample is re-checked with
//! [`Spec::is_violated_by`] before anyone trusts it.

pub mod counterexample;
pub mod crown;
pub mod dense;
pub mod dense_beta;
pub mod falsify;
pub mod ibp;
mod sexp;
pub mod smoothing;
pub mod spec;
pub mod verify;
pub mod vnnlib;

pub use counterexample::{parse_counterexample, Counterexample};
pub use sexp::Location;
pub use spec::{
    format_counterexample, Case, Conjunction, InputBox, LinearConstraint, Spec, SpecError,
};
pub use verify::{verify, Method, Verdict, VerifyError, VerifyOptions, VerifyOutcome, VerifyStats};
pub use vnnlib::{
    parse_vnnlib, parse_vnnlib_file, parse_vnnlib_file_with, parse_vnnlib_with, Dims, VnnlibError,
    MAX_DNF_TERMS,
};
