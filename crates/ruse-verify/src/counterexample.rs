//! Reader for VNN-COMP counterexample files `((X_0 v) … (Y_0 v) …)`, used to re-check the
//! counterexamples other tools publish (and our own, after writing them).

use std::path::Path;

use crate::sexp::{self, Location, Sexp};
use crate::vnnlib::VnnlibError;

/// A concrete input/output pair read from a counterexample file.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterexample {
    /// Input values `X_0 … X_{n-1}`.
    pub x: Vec<f64>,
    /// Output values `Y_0 … Y_{m-1}`.
    pub y: Vec<f64>,
}

/// Parses counterexample text; a leading `sat` line (the VNN-COMP result file form) is skipped.
///
/// Every `X_i` and `Y_j` from 0 to the largest index must appear exactly once.
pub fn parse_counterexample(text: &str, path: &Path) -> Result<Counterexample, VnnlibError> {
    let syntax = |at: usize, message: String| VnnlibError::Syntax {
        at: Location::of(text, path, at),
        message,
    };
    let forms = sexp::parse(text).map_err(|e| {
        let (at, what) = match e {
            sexp::SexpError::Unclosed(at) => (at, "this '(' is never closed"),
            sexp::SexpError::UnexpectedClose(at) => (at, "unexpected ')'"),
            sexp::SexpError::TooDeep(at) => (at, "nesting too deep"),
        };
        syntax(at, what.to_string())
    })?;
    let mut forms = forms.iter().peekable();
    if let Some(Sexp::Atom("sat", _)) = forms.peek() {
        forms.next();
    }
    let (Some(Sexp::List(pairs, _)), None) = (forms.next(), forms.next()) else {
        return Err(syntax(
            0,
            "expected one list of (X_i value) / (Y_j value) pairs".into(),
        ));
    };
    let mut x: Vec<Option<f64>> = Vec::new();
    let mut y: Vec<Option<f64>> = Vec::new();
    for pair in pairs {
        let (name, value, at) = match pair {
            Sexp::List(items, at) => match items.as_slice() {
                [Sexp::Atom(n, _), Sexp::Atom(v, _)] => (*n, *v, *at),
                _ => {
                    return Err(syntax(
                        *at,
                        "expected a pair (X_i value) or (Y_j value)".into(),
                    ))
                }
            },
            Sexp::Atom(_, at) => {
                return Err(syntax(
                    *at,
                    "expected a pair (X_i value) or (Y_j value)".into(),
                ))
            }
        };
        let (vec, index) = match (name.strip_prefix("X_"), name.strip_prefix("Y_")) {
            (Some(i), _) => (&mut x, i),
            (_, Some(i)) => (&mut y, i),
            _ => {
                return Err(syntax(
                    at,
                    format!("expected a variable X_i or Y_j, found '{name}'"),
                ))
            }
        };
        let index: usize = match index.parse() {
            Ok(i) if i < 1 << 24 => i,
            _ => return Err(syntax(at, format!("bad variable index in '{name}'"))),
        };
        let value: f64 = value
            .parse()
            .map_err(|_| syntax(at, format!("malformed number '{value}' for {name}")))?;
        if vec.len() <= index {
            vec.resize(index + 1, None);
        }
        if vec[index].replace(value).is_some() {
            return Err(syntax(at, format!("{name} appears twice")));
        }
    }
    let finish = |v: Vec<Option<f64>>, letter: char| {
        v.iter()
            .enumerate()
            .map(|(i, e)| e.ok_or_else(|| syntax(text.len(), format!("{letter}_{i} is missing"))))
            .collect::<Result<Vec<f64>, _>>()
    };
    Ok(Counterexample {
        x: finish(x, 'X')?,
        y: finish(y, 'Y')?,
    })
}
