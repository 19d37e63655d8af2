//! VNN-LIB reader: the SMT-LIB subset used by VNN-COMP to state verification properties.
//!
//! Supported: `;` comments; `(declare-const X_i Real)` / `(declare-const Y_j Real)`; `(assert F)`
//! (several asserts conjoin); in formulas `and`, `or`, `<=`, `>=`, `<`, `>`, `=` (comparisons may
//! chain, `(<= a b c)` = `a <= b ∧ b <= c`); in terms numerals (`3`, `-0.5`, `1.5e-3`), `+`, `-`
//! (unary and n-ary), and `*` where at most one factor is not a constant. The no-op commands
//! `set-logic`, `set-info`, `check-sat`, `get-model` and `exit` are accepted and ignored.
//!
//! Semantics and choices:
//! - Strict comparisons are read as non-strict. This over-approximates the unsafe set by its
//!   boundary, which keeps `unsat` answers sound; it is also what VNN-COMP tools do.
//! - Any nesting of `and`/`or` is distributed into a disjunction of conjunctions; more than
//!   [`MAX_DNF_TERMS`] conjunctions is an error rather than an exponential blow-up.
//! - A constraint on inputs alone must be a bound on one input (`X_i <= c`, `c <= X_i`, `2*X_i >= c`
//!   …); general linear input constraints and constraints mixing `X` and `Y` are reported as not
//!   supported yet. Output constraints may be any linear form over `Y`.
//! - A bound `c·X_i <= d` with `|c| != 1` is divided out and rounded outward by one ulp, so the
//!   box never loses a point to rounding.
//! - Conjunctions whose input box is empty, or that contain a false constant comparison, can never
//!   be violated and are dropped; the rest are grouped by input box into [`Case`]s.
//! - Every input must be bounded above and below in every case; an unbounded input is an error
//!   naming the variable (interval bounds need a box).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::sexp::{self, Location, Sexp, SexpError};
use crate::spec::{Case, Conjunction, InputBox, LinearConstraint, Spec};

/// Most conjunctions a file may expand to after distributing `and` over `or`.
pub const MAX_DNF_TERMS: usize = 100_000;

/// Largest variable index accepted when the caller does not fix the counts (guards allocation).
const MAX_INFERRED_INDEX: usize = 1 << 24;

/// Everything that can be wrong with a VNN-LIB file; each message starts with `file:line:column`.
#[derive(Debug, thiserror::Error)]
pub enum VnnlibError {
    /// The file could not be read.
    #[error("{path}: cannot read VNN-LIB file: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The text is not well-formed (parentheses, tokens, numbers, arity).
    #[error("{at}: syntax error: {message}")]
    Syntax {
        /// Where the problem is.
        at: Location,
        /// What was found and what was expected.
        message: String,
    },
    /// An operator or command outside the supported subset.
    #[error("{at}: unknown operator '{name}' (expected {expected})")]
    UnknownOperator {
        /// Where the operator is.
        at: Location,
        /// The operator as written.
        name: String,
        /// The operators allowed at this place.
        expected: &'static str,
    },
    /// Valid VNN-LIB that ruse cannot represent yet (e.g. a general linear input constraint).
    #[error("{at}: not supported yet: {message}")]
    Unsupported {
        /// Where the construct is.
        at: Location,
        /// What the construct is and what is supported.
        message: String,
    },
    /// A variable used before (or without) its `declare-const`.
    #[error(
        "{at}: undeclared variable '{name}' (declare it first with (declare-const {name} Real))"
    )]
    Undeclared {
        /// Where it is used.
        at: Location,
        /// Its name.
        name: String,
    },
    /// A variable declared twice.
    #[error("{at}: '{name}' is declared twice (first at line {first_line})")]
    Duplicate {
        /// The second declaration.
        at: Location,
        /// The variable.
        name: String,
        /// Line of the first declaration.
        first_line: usize,
    },
    /// A variable the network does not have, or a declaration set that does not match it.
    #[error("{at}: {message}")]
    Shape {
        /// Where the mismatch shows.
        at: Location,
        /// Which variable or count does not fit, and the expected range.
        message: String,
    },
    /// An input without a lower or an upper bound.
    #[error("{at}: input {name} has no {side} bound{case}; every input needs both (add (assert ({op} {name} c)))")]
    Unbounded {
        /// The variable's declaration.
        at: Location,
        /// The variable.
        name: String,
        /// `"lower"` or `"upper"`.
        side: &'static str,
        /// `>=` or `<=`, for the hint.
        op: &'static str,
        /// Which disjunct, when there are several.
        case: String,
    },
    /// Distributing `and` over `or` would produce more than [`MAX_DNF_TERMS`] conjunctions.
    #[error("{at}: formula expands to more than {limit} conjunctions in disjunctive normal form; split the property into several files")]
    TooLarge {
        /// The `and` or `assert` that crossed the limit.
        at: Location,
        /// The limit.
        limit: usize,
    },
}

/// Input/output counts the caller knows (from the network); `None` = infer from declarations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dims {
    /// Number of network inputs, if known.
    pub n_inputs: Option<usize>,
    /// Number of network outputs, if known.
    pub n_outputs: Option<usize>,
}

/// Reads and parses a VNN-LIB file, inferring the input and output counts from its declarations.
pub fn parse_vnnlib_file(path: &Path) -> Result<Spec, VnnlibError> {
    parse_vnnlib_file_with(path, Dims::default())
}

/// Reads and parses a VNN-LIB file for a network with the given input/output counts.
pub fn parse_vnnlib_file_with(path: &Path, dims: Dims) -> Result<Spec, VnnlibError> {
    let text = std::fs::read_to_string(path).map_err(|source| VnnlibError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_vnnlib_with(&text, path, dims)
}

/// Parses VNN-LIB `text` (`path` only names it in errors), inferring the counts.
pub fn parse_vnnlib(text: &str, path: &Path) -> Result<Spec, VnnlibError> {
    parse_vnnlib_with(text, path, Dims::default())
}

/// Parses VNN-LIB `text` for a network with the given counts (`path` only names it in errors).
pub fn parse_vnnlib_with(text: &str, path: &Path, dims: Dims) -> Result<Spec, VnnlibError> {
    let forms = sexp::parse(text).map_err(|e| {
        let (at, message) = match e {
            SexpError::Unclosed(at) => (at, "this '(' is never closed (expected ')')".to_string()),
            SexpError::UnexpectedClose(at) => {
                (at, "unexpected ')' with no matching '('".to_string())
            }
            SexpError::TooDeep(at) => (
                at,
                format!("nesting deeper than {} levels", sexp::MAX_DEPTH),
            ),
        };
        VnnlibError::Syntax {
            at: Location::of(text, path, at),
            message,
        }
    })?;
    let mut p = Parser {
        text,
        path,
        dims,
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let mut common: Vec<Atom> = Vec::new();
    let mut product: Dnf = vec![Vec::new()];
    let mut always_false = false;
    for form in &forms {
        let Sexp::List(items, at) = form else {
            return Err(p.syntax(
                form.at(),
                "expected a command like (declare-const …) or (assert …)",
            ));
        };
        let Some(Sexp::Atom(head, head_at)) = items.first() else {
            return Err(p.syntax(*at, "expected a command name after '('"));
        };
        match *head {
            "declare-const" => p.declare(items, *at)?,
            "assert" => {
                if items.len() != 2 {
                    return Err(p.syntax(*at, "expected exactly one formula: (assert F)"));
                }
                let mut dnf = p.formula(&items[1])?;
                match dnf.len() {
                    0 => always_false = true,
                    // Single conjunctions (the bulk of every file) are kept out of the product.
                    1 => common.append(&mut dnf[0]),
                    _ => product = p.conjoin(product, dnf, *at)?,
                }
            }
            "set-logic" | "set-info" | "check-sat" | "get-model" | "exit" => {}
            other => {
                return Err(VnnlibError::UnknownOperator {
                    at: p.loc(*head_at),
                    name: other.to_string(),
                    expected: "declare-const or assert",
                })
            }
        }
    }
    p.finish(common, if always_false { Vec::new() } else { product })
}

/// A variable: input `X_i` or output `Y_j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Var {
    X(usize),
    Y(usize),
}

/// A linear term `Σ coeff·var + constant`.
#[derive(Debug, Clone, Default)]
struct Linear {
    terms: Vec<(Var, f64)>,
    constant: f64,
}

impl Linear {
    fn scale(&mut self, k: f64) {
        self.terms.iter_mut().for_each(|t| t.1 *= k);
        self.constant *= k;
    }

    fn add(&mut self, mut other: Linear) {
        self.terms.append(&mut other.terms);
        self.constant += other.constant;
    }

    /// Sorts by variable, merges repeats and drops zero coefficients.
    fn normalize(&mut self) {
        self.terms.sort_by_key(|t| t.0);
        let mut out: Vec<(Var, f64)> = Vec::with_capacity(self.terms.len());
        for &(v, c) in &self.terms {
            match out.last_mut() {
                Some(last) if last.0 == v => last.1 += c,
                _ => out.push((v, c)),
            }
        }
        out.retain(|t| t.1 != 0.0);
        self.terms = out;
    }
}

/// An atomic constraint after classification.
#[derive(Debug, Clone)]
enum Atom {
    /// `X_i >= value`.
    Lower(usize, f64),
    /// `X_i <= value`.
    Upper(usize, f64),
    /// A linear constraint over outputs.
    Output(LinearConstraint),
}

/// Disjunction of conjunctions of atoms (empty = false; one empty conjunction = true).
type Dnf = Vec<Vec<Atom>>;

struct Parser<'t> {
    text: &'t str,
    path: &'t Path,
    dims: Dims,
    /// Declaration offset per input index.
    inputs: Vec<Option<usize>>,
    /// Declaration offset per output index.
    outputs: Vec<Option<usize>>,
}

impl Parser<'_> {
    fn loc(&self, at: usize) -> Location {
        Location::of(self.text, self.path, at)
    }

    fn syntax(&self, at: usize, message: impl Into<String>) -> VnnlibError {
        VnnlibError::Syntax {
            at: self.loc(at),
            message: message.into(),
        }
    }

    fn shape(&self, at: usize, message: String) -> VnnlibError {
        VnnlibError::Shape {
            at: self.loc(at),
            message,
        }
    }

    /// Splits `X_12` into (`X`, 12); `None` for any other name.
    fn split_name(name: &str) -> Option<(bool, usize)> {
        let (is_input, digits) = if let Some(d) = name.strip_prefix("X_") {
            (true, d)
        } else {
            (false, name.strip_prefix("Y_")?)
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        Some((is_input, digits.parse().ok()?))
    }

    fn declare(&mut self, items: &[Sexp<'_>], at: usize) -> Result<(), VnnlibError> {
        let (name, name_at) = match items {
            [_, Sexp::Atom(name, name_at), Sexp::Atom("Real", _)] => (*name, *name_at),
            [_, _, Sexp::Atom(sort, sort_at)] if *sort != "Real" => {
                return Err(self.syntax(*sort_at, format!("expected sort Real, found '{sort}'")))
            }
            _ => {
                return Err(self.syntax(
                    at,
                    "expected (declare-const X_i Real) or (declare-const Y_j Real)",
                ))
            }
        };
        let Some((is_input, index)) = Self::split_name(name) else {
            return Err(self.syntax(
                name_at,
                format!("expected a variable named X_<index> (input) or Y_<index> (output), found '{name}'"),
            ));
        };
        let (limit, kind, letter) = if is_input {
            (self.dims.n_inputs, "inputs", 'X')
        } else {
            (self.dims.n_outputs, "outputs", 'Y')
        };
        match limit {
            Some(n) if index >= n => {
                return Err(self.shape(
                    name_at,
                    format!(
                    "{name} does not exist: the network has {n} {kind} ({letter}_0 … {letter}_{})",
                    n.saturating_sub(1)
                ),
                ))
            }
            None if index >= MAX_INFERRED_INDEX => {
                return Err(self.shape(
                    name_at,
                    format!("{name}: index too large (at most {MAX_INFERRED_INDEX})"),
                ))
            }
            _ => {}
        }
        let decls = if is_input {
            &mut self.inputs
        } else {
            &mut self.outputs
        };
        if decls.len() <= index {
            decls.resize(index + 1, None);
        }
        if let Some(first) = decls[index] {
            let first_line = Location::of(self.text, self.path, first).line;
            return Err(VnnlibError::Duplicate {
                at: self.loc(name_at),
                name: name.to_string(),
                first_line,
            });
        }
        decls[index] = Some(name_at);
        Ok(())
    }

    /// Converts a formula to disjunctive normal form.
    fn formula(&self, f: &Sexp<'_>) -> Result<Dnf, VnnlibError> {
        let (items, at) = match f {
            Sexp::List(items, at) => (items, *at),
            Sexp::Atom(a, at) => {
                return match *a {
                    "true" => Ok(vec![Vec::new()]),
                    "false" => Ok(Vec::new()),
                    _ => Err(self.syntax(
                        *at,
                        format!("expected a formula such as (<= X_0 1) or (and …), found '{a}'"),
                    )),
                }
            }
        };
        let Some(Sexp::Atom(op, op_at)) = items.first() else {
            return Err(self.syntax(
                at,
                "expected an operator (and, or, <=, >=, <, >, =) after '('",
            ));
        };
        let args = &items[1..];
        match *op {
            "and" => {
                let mut acc: Dnf = vec![Vec::new()];
                for a in args {
                    acc = self.conjoin(acc, self.formula(a)?, at)?;
                }
                Ok(acc)
            }
            "or" => {
                let mut acc: Dnf = Vec::new();
                for a in args {
                    acc.append(&mut self.formula(a)?);
                    if acc.len() > MAX_DNF_TERMS {
                        return Err(VnnlibError::TooLarge {
                            at: self.loc(at),
                            limit: MAX_DNF_TERMS,
                        });
                    }
                }
                Ok(acc)
            }
            "<=" | ">=" | "<" | ">" | "=" => {
                if args.len() < 2 {
                    return Err(self.syntax(
                        at,
                        format!("'{op}' expects at least two terms, found {}", args.len()),
                    ));
                }
                let terms = args
                    .iter()
                    .map(|a| self.term(a))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut conj = Vec::new();
                for pair in terms.windows(2) {
                    let (a, b) = (&pair[0], &pair[1]);
                    // Everything becomes `lhs - rhs <= 0`; `=` is both directions.
                    let mut le = |lhs: &Linear, rhs: &Linear| -> Result<bool, VnnlibError> {
                        let mut e = lhs.clone();
                        let mut r = rhs.clone();
                        r.scale(-1.0);
                        e.add(r);
                        self.atom(e, at, &mut conj)
                    };
                    let ok = match *op {
                        "<=" | "<" => le(a, b)?,
                        ">=" | ">" => le(b, a)?,
                        _ => le(a, b)? & le(b, a)?,
                    };
                    if !ok {
                        return Ok(Vec::new());
                    }
                }
                Ok(vec![conj])
            }
            "not" | "=>" | "xor" | "ite" => Err(VnnlibError::Unsupported {
                at: self.loc(*op_at),
                message: format!(
                    "'{op}' in formulas (only and, or and comparisons of linear terms)"
                ),
            }),
            other => Err(VnnlibError::UnknownOperator {
                at: self.loc(*op_at),
                name: other.to_string(),
                expected: "and, or, <=, >=, <, >, =",
            }),
        }
    }

    /// Distributes `a ∧ b` for two DNFs, refusing to exceed [`MAX_DNF_TERMS`].
    fn conjoin(&self, a: Dnf, b: Dnf, at: usize) -> Result<Dnf, VnnlibError> {
        if a.len().saturating_mul(b.len()) > MAX_DNF_TERMS {
            return Err(VnnlibError::TooLarge {
                at: self.loc(at),
                limit: MAX_DNF_TERMS,
            });
        }
        if a.len() == 1 && a[0].is_empty() {
            return Ok(b);
        }
        let mut out = Vec::with_capacity(a.len() * b.len());
        for x in &a {
            for y in &b {
                let mut t = Vec::with_capacity(x.len() + y.len());
                t.extend(x.iter().cloned());
                t.extend(y.iter().cloned());
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Classifies `e <= 0` and pushes it onto `conj`; returns false if it is a false constant.
    fn atom(&self, mut e: Linear, at: usize, conj: &mut Vec<Atom>) -> Result<bool, VnnlibError> {
        e.normalize();
        if !e.constant.is_finite() || e.terms.iter().any(|t| !t.1.is_finite()) {
            return Err(self.syntax(at, "a coefficient or constant overflows to infinity"));
        }
        let inputs = e.terms.iter().filter(|t| matches!(t.0, Var::X(_))).count();
        if e.terms.is_empty() {
            // A comparison of constants: drop it when true, make the conjunction false otherwise.
            return Ok(e.constant <= 0.0);
        }
        if inputs == 0 {
            let coeffs = e
                .terms
                .iter()
                .map(|&(v, c)| match v {
                    Var::Y(j) | Var::X(j) => (j, c),
                })
                .collect();
            conj.push(Atom::Output(LinearConstraint {
                coeffs,
                constant: e.constant,
            }));
            return Ok(true);
        }
        if inputs != e.terms.len() {
            return Err(VnnlibError::Unsupported {
                at: self.loc(at),
                message: "a constraint mixing inputs (X) and outputs (Y); only input bounds and output constraints are supported".into(),
            });
        }
        let [(Var::X(i), c)] = e.terms[..] else {
            return Err(VnnlibError::Unsupported {
                at: self.loc(at),
                message: format!(
                    "a linear constraint over {} inputs; input constraints must bound one input (X_i <= c or X_i >= c)",
                    e.terms.len()
                ),
            });
        };
        // c·X_i + d <= 0  <=>  X_i <= -d/c (c > 0)  or  X_i >= -d/c (c < 0).
        let v = -e.constant / c;
        let exact = c.abs() == 1.0;
        conj.push(if c > 0.0 {
            Atom::Upper(i, if exact { v } else { v.next_up() })
        } else {
            Atom::Lower(i, if exact { v } else { v.next_down() })
        });
        Ok(true)
    }

    /// Converts a term to linear form.
    fn term(&self, t: &Sexp<'_>) -> Result<Linear, VnnlibError> {
        match t {
            Sexp::Atom(a, at) => {
                if let Some(v) = self.number(a, *at)? {
                    return Ok(Linear {
                        terms: Vec::new(),
                        constant: v,
                    });
                }
                let Some((is_input, index)) = Self::split_name(a) else {
                    return Err(self.syntax(
                        *at,
                        format!("expected a number or a declared variable (X_i, Y_j), found '{a}'"),
                    ));
                };
                let decls = if is_input {
                    &self.inputs
                } else {
                    &self.outputs
                };
                if !matches!(decls.get(index), Some(Some(_))) {
                    return Err(VnnlibError::Undeclared {
                        at: self.loc(*at),
                        name: a.to_string(),
                    });
                }
                let var = if is_input {
                    Var::X(index)
                } else {
                    Var::Y(index)
                };
                Ok(Linear {
                    terms: vec![(var, 1.0)],
                    constant: 0.0,
                })
            }
            Sexp::List(items, at) => {
                let Some(Sexp::Atom(op, op_at)) = items.first() else {
                    return Err(self.syntax(*at, "expected an operator (+, -, *) after '('"));
                };
                let args = items[1..]
                    .iter()
                    .map(|a| self.term(a))
                    .collect::<Result<Vec<_>, _>>()?;
                if args.is_empty() {
                    return Err(self.syntax(*at, format!("'{op}' expects at least one term")));
                }
                let mut it = args.into_iter();
                let mut acc = it.next().unwrap_or_default();
                match *op {
                    "+" => it.for_each(|a| acc.add(a)),
                    "-" => {
                        if it.len() == 0 {
                            acc.scale(-1.0);
                        }
                        for mut a in it {
                            a.scale(-1.0);
                            acc.add(a);
                        }
                    }
                    "*" => {
                        for a in it {
                            if a.terms.is_empty() {
                                acc.scale(a.constant);
                            } else if acc.terms.is_empty() {
                                let k = acc.constant;
                                acc = a;
                                acc.scale(k);
                            } else {
                                return Err(VnnlibError::Unsupported {
                                    at: self.loc(*at),
                                    message: "a product of two variables (only multiplication by a constant is linear)".into(),
                                });
                            }
                        }
                    }
                    other => {
                        return Err(VnnlibError::UnknownOperator {
                            at: self.loc(*op_at),
                            name: other.to_string(),
                            expected: "+, - or * in a term",
                        })
                    }
                }
                Ok(acc)
            }
        }
    }

    /// Parses a numeral (`12`, `-0.5`, `.5`, `1e-3`, `+2.0E+1`); `None` if `a` is not numeric.
    fn number(&self, a: &str, at: usize) -> Result<Option<f64>, VnnlibError> {
        let body = a.strip_prefix(['-', '+']).unwrap_or(a);
        if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return Ok(None);
        }
        // Check the shape ourselves: Rust's parser also takes "inf" and "NaN", which VNN-LIB does not.
        let b = body.as_bytes();
        let mut i = 0;
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - s
        };
        let mut n = digits(&mut i);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            n += digits(&mut i);
        }
        let mut ok = n > 0;
        if ok && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            ok = digits(&mut i) > 0;
        }
        let v = if ok && i == b.len() {
            a.parse::<f64>().ok()
        } else {
            None
        };
        match v {
            Some(v) if v.is_finite() => Ok(Some(v)),
            Some(_) => Err(self.syntax(at, format!("number '{a}' is out of the range of f64"))),
            None => Err(self.syntax(
                at,
                format!("malformed number '{a}' (expected e.g. 3, -0.5, 1.5e-3)"),
            )),
        }
    }

    /// Checks the declarations, builds every case's box and groups conjunctions by box.
    fn finish(&self, common: Vec<Atom>, product: Dnf) -> Result<Spec, VnnlibError> {
        let end = self.text.len();
        let n_inputs = self.count(&self.inputs, self.dims.n_inputs, 'X', "inputs", end)?;
        let n_outputs = self.count(&self.outputs, self.dims.n_outputs, 'Y', "outputs", end)?;
        let mut base = InputBox {
            lower: vec![f64::NEG_INFINITY; n_inputs],
            upper: vec![f64::INFINITY; n_inputs],
        };
        let mut base_out = Vec::new();
        apply(&common, &mut base, &mut base_out);
        let mut cases: Vec<Case> = Vec::new();
        let mut by_box: HashMap<Vec<u64>, usize> = HashMap::new();
        let several = product.len() > 1;
        for term in &product {
            let mut b = if several {
                base.clone()
            } else {
                std::mem::take(&mut base)
            };
            let mut out = base_out.clone();
            apply(term, &mut b, &mut out);
            // An empty box (some lower > upper) holds no input, so the conjunction cannot be violated.
            if b.lower.iter().zip(&b.upper).any(|(l, u)| l > u) {
                continue;
            }
            let conj = Conjunction { constraints: out };
            if !several {
                cases.push(Case {
                    input: b,
                    output: vec![conj],
                });
                continue;
            }
            let key: Vec<u64> = b
                .lower
                .iter()
                .chain(&b.upper)
                .map(|v| v.to_bits())
                .collect();
            match by_box.get(&key) {
                Some(&k) => cases[k].output.push(conj),
                None => {
                    by_box.insert(key, cases.len());
                    cases.push(Case {
                        input: b,
                        output: vec![conj],
                    });
                }
            }
        }
        for (k, case) in cases.iter().enumerate() {
            for i in 0..n_inputs {
                let side = if case.input.lower[i] == f64::NEG_INFINITY {
                    Some(("lower", ">="))
                } else if case.input.upper[i] == f64::INFINITY {
                    Some(("upper", "<="))
                } else {
                    None
                };
                if let Some((side, op)) = side {
                    return Err(VnnlibError::Unbounded {
                        at: self.loc(self.inputs[i].unwrap_or(end)),
                        name: format!("X_{i}"),
                        side,
                        op,
                        case: if cases.len() > 1 {
                            format!(" in disjunct {}", k + 1)
                        } else {
                            String::new()
                        },
                    });
                }
            }
        }
        Ok(Spec {
            n_inputs,
            n_outputs,
            cases,
        })
    }

    /// The number of variables of one kind; all of `0..n` must be declared.
    fn count(
        &self,
        decls: &[Option<usize>],
        expected: Option<usize>,
        letter: char,
        kind: &str,
        end: usize,
    ) -> Result<usize, VnnlibError> {
        let n = expected.unwrap_or(decls.len());
        if n == 0 {
            return Err(self.shape(
                end,
                format!("no {kind} declared (expected (declare-const {letter}_0 Real) …)"),
            ));
        }
        if let Some(missing) = (0..n).find(|&i| !matches!(decls.get(i), Some(Some(_)))) {
            let declared = decls.iter().filter(|d| d.is_some()).count();
            return Err(self.shape(
                end,
                format!("{letter}_{missing} is never declared: expected {letter}_0 … {letter}_{} ({n} {kind}), found {declared} declarations", n - 1),
            ));
        }
        Ok(n)
    }
}

/// Tightens `b` with the bounds in `atoms` and appends their output constraints to `out`.
fn apply(atoms: &[Atom], b: &mut InputBox, out: &mut Vec<LinearConstraint>) {
    for a in atoms {
        match a {
            Atom::Lower(i, v) => b.lower[*i] = b.lower[*i].max(*v),
            Atom::Upper(i, v) => b.upper[*i] = b.upper[*i].min(*v),
            Atom::Output(c) => out.push(c.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLS: &str = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n";
    const BOX: &str =
        "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= X_1 1))\n(assert (>= X_1 0))\n";

    fn parse(body: &str) -> Result<Spec, VnnlibError> {
        parse_vnnlib(&format!("{DECLS}{body}"), Path::new("t.vnnlib"))
    }

    /// The error message for `body`, which must fail.
    fn err(body: &str) -> String {
        match parse(body) {
            Ok(s) => panic!("expected an error, parsed {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_starts(msg: &str, prefix: &str) {
        assert!(
            msg.starts_with(prefix),
            "'{msg}' does not start with '{prefix}'"
        );
    }

    #[test]
    fn simple_box_and_output() {
        let s = parse(&format!("{BOX}(assert (>= Y_0 Y_1))")).unwrap();
        assert_eq!((s.n_inputs, s.n_outputs), (2, 3));
        assert_eq!(s.cases.len(), 1);
        assert_eq!(
            s.cases[0].input,
            InputBox {
                lower: vec![0.0, 0.0],
                upper: vec![1.0, 1.0]
            }
        );
        let c = &s.cases[0].output[0].constraints[0];
        assert_eq!(c.coeffs, [(0, -1.0), (1, 1.0)]);
        assert_eq!(c.constant, 0.0);
        assert!(s.is_violated_by(&[0.5, 0.5], &[2.0, 1.0, 0.0]));
        assert!(!s.is_violated_by(&[0.5, 0.5], &[0.0, 1.0, 0.0]));
        assert!(!s.is_violated_by(&[1.5, 0.5], &[2.0, 1.0, 0.0]));
    }

    #[test]
    fn scientific_notation_and_negative_literals() {
        let s = parse(
            "(assert (<= X_0 1.5e-3))(assert (>= X_0 -2.5E+1))\n\
             (assert (>= X_1 (- 0.5)))(assert (<= (* 2 X_1) 1.0))\n\
             (assert (<= (+ Y_0 (* -1 Y_1) (- Y_2) 3) (- 1e0 2)))",
        )
        .unwrap();
        let b = &s.cases[0].input;
        assert_eq!(b.lower, [-25.0, -0.5]);
        // 2·X_1 <= 1 is divided out and rounded outward by one ulp.
        assert_eq!(b.upper, [1.5e-3, 0.5f64.next_up()]);
        let c = &s.cases[0].output[0].constraints[0];
        assert_eq!(c.coeffs, [(0, 1.0), (1, -1.0), (2, -1.0)]);
        assert_eq!(c.constant, 4.0);
        // Constant on the left, variable on the right, `*` with the constant second.
        let s = parse("(assert (>= 1 X_0))(assert (< -1 X_0))(assert (<= (* X_1 -3) 3))(assert (<= X_1 0))(assert (> Y_0 0))").unwrap();
        let b = &s.cases[0].input;
        assert_eq!((b.lower[0], b.upper[0]), (-1.0, 1.0));
        assert_eq!((b.lower[1], b.upper[1]), ((-1.0f64).next_down(), 0.0));
    }

    #[test]
    fn dnf_distributes_and_over_or() {
        // (a ∨ b) ∧ ((c ∧ (d ∨ e)) ∨ f) on outputs = ac d, ac e, a f, bcd, bce, bf.
        let s = parse(&format!(
            "{BOX}(assert (and (or (<= Y_0 0) (<= Y_1 0)) (or (and (<= Y_2 0) (or (>= Y_0 1) (>= Y_1 1))) (>= Y_2 5))))"
        ))
        .unwrap();
        assert_eq!(s.cases.len(), 1);
        let out = &s.cases[0].output;
        assert_eq!(out.len(), 6);
        assert_eq!(
            out.iter().map(|c| c.constraints.len()).collect::<Vec<_>>(),
            [3, 3, 2, 3, 3, 2]
        );
        assert!(s.is_violated_by(&[0.0, 0.0], &[-1.0, 1.0, 6.0]));
        assert!(!s.is_violated_by(&[0.0, 0.0], &[1.0, 1.0, -1.0]));
    }

    #[test]
    fn disjunction_mixing_inputs_and_outputs_groups_by_box() {
        // Two boxes, each with its own output condition, and a shared output disjunction.
        let s = parse(
            "(assert (<= X_1 1))(assert (>= X_1 0))\n\
             (assert (or (and (>= X_0 0) (<= X_0 1) (<= Y_0 Y_1)) (and (>= X_0 2) (<= X_0 3) (<= Y_0 Y_2))))\n\
             (assert (or (>= Y_1 0) (>= Y_2 0)))\n\
             (assert (or (and (>= X_0 10) (<= X_0 9)) (<= Y_0 100)))",
        )
        .unwrap();
        assert_eq!(s.cases.len(), 2);
        assert_eq!(s.cases[0].input.upper, [1.0, 1.0]);
        assert_eq!(s.cases[1].input.lower, [2.0, 0.0]);
        assert!(s.cases.iter().all(|c| c.output.len() == 2));
        assert!(s.is_violated_by(&[2.5, 0.5], &[0.0, -1.0, 1.0]));
        assert!(!s.is_violated_by(&[0.5, 0.5], &[0.0, -1.0, 1.0]));
        assert!(!s.is_violated_by(&[1.5, 0.5], &[0.0, 1.0, 1.0]));
    }

    #[test]
    fn dims_from_the_caller() {
        let text = format!("{DECLS}{BOX}(assert (<= Y_0 0))");
        let p = Path::new("t.vnnlib");
        let dims = Dims {
            n_inputs: Some(2),
            n_outputs: Some(3),
        };
        assert_eq!(
            parse_vnnlib_with(&text, p, dims).unwrap(),
            parse_vnnlib(&text, p).unwrap()
        );
        let e = parse_vnnlib_with(
            &text,
            p,
            Dims {
                n_inputs: Some(1),
                n_outputs: None,
            },
        )
        .unwrap_err();
        assert_starts(
            &e.to_string(),
            "t.vnnlib:2:16: X_1 does not exist: the network has 1 inputs",
        );
        let e = parse_vnnlib_with(
            &text,
            p,
            Dims {
                n_inputs: None,
                n_outputs: Some(4),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("Y_3 is never declared"), "{e}");
    }

    #[test]
    fn syntax_errors_name_file_line_column() {
        assert_starts(
            &err("(assert (<= X_0 1)"),
            "t.vnnlib:6:1: syntax error: this '(' is never closed",
        );
        assert_starts(
            &err("(assert (<= X_0 1)))"),
            "t.vnnlib:6:20: syntax error: unexpected ')'",
        );
        assert_starts(
            &err("(assert (<= X_0 1.2.3))"),
            "t.vnnlib:6:17: syntax error: malformed number '1.2.3'",
        );
        assert_starts(
            &err("(assert (<= X_0 inf))"),
            "t.vnnlib:6:17: syntax error: expected a number or a declared variable",
        );
        assert_starts(
            &err("(assert (<= X_0 1e999))"),
            "t.vnnlib:6:17: syntax error: number '1e999' is out of the range",
        );
        assert_starts(
            &err("(assert (<= X_0))"),
            "t.vnnlib:6:9: syntax error: '<=' expects at least two terms",
        );
        assert_starts(
            &err("(assert)"),
            "t.vnnlib:6:1: syntax error: expected exactly one formula",
        );
        assert_starts(
            &err("X_0"),
            "t.vnnlib:6:1: syntax error: expected a command",
        );
        assert_starts(
            &err("(declare-const Z_0 Real)"),
            "t.vnnlib:6:16: syntax error: expected a variable named X_<index>",
        );
        assert_starts(
            &err("(declare-const X_2 Int)"),
            "t.vnnlib:6:20: syntax error: expected sort Real, found 'Int'",
        );
        // Columns count characters, not bytes.
        assert_starts(
            &err("; é\n(assert (<= X_0 ü))"),
            "t.vnnlib:7:17: syntax error",
        );
    }

    #[test]
    fn unknown_operators() {
        assert_starts(
            &err("(assert (<= (/ X_0 2) 1))"),
            "t.vnnlib:6:14: unknown operator '/' (expected +, - or * in a term)",
        );
        assert_starts(
            &err("(assert (nand (<= X_0 1)))"),
            "t.vnnlib:6:10: unknown operator 'nand'",
        );
        assert_starts(
            &err("(define-fun f () Real 1)"),
            "t.vnnlib:6:2: unknown operator 'define-fun' (expected declare-const or assert)",
        );
        assert_starts(
            &err("(assert (not (<= X_0 1)))"),
            "t.vnnlib:6:10: not supported yet: 'not'",
        );
    }

    #[test]
    fn unsupported_constraints() {
        assert_starts(
            &err("(assert (<= X_0 Y_0))"),
            "t.vnnlib:6:9: not supported yet: a constraint mixing inputs (X) and outputs (Y)",
        );
        assert_starts(
            &err("(assert (<= (+ X_0 X_1) 1))"),
            "t.vnnlib:6:9: not supported yet: a linear constraint over 2 inputs",
        );
        assert_starts(
            &err("(assert (<= (* Y_0 Y_1) 1))"),
            "t.vnnlib:6:13: not supported yet: a product of two variables",
        );
    }

    #[test]
    fn declaration_errors() {
        assert_starts(
            &err("(assert (<= X_0 Y_7))"),
            "t.vnnlib:6:17: undeclared variable 'Y_7'",
        );
        assert_starts(
            &err("(declare-const Y_1 Real)"),
            "t.vnnlib:6:16: 'Y_1' is declared twice (first at line 4)",
        );
        // X_3 declared but X_2 not: the inferred count 4 has a hole.
        assert_starts(
            &err(&format!("(declare-const X_3 Real){BOX}")),
            "t.vnnlib:10:1: X_2 is never declared",
        );
        assert_starts(
            &err("(declare-const X_01 Real)"),
            "t.vnnlib:6:16: syntax error: expected a variable named",
        );
    }

    #[test]
    fn unbounded_inputs_are_errors() {
        let e = err("(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= X_1 1))");
        assert_starts(&e, "t.vnnlib:2:16: input X_1 has no lower bound; every input needs both (add (assert (>= X_1 c)))");
        let e = err("(assert (<= X_1 1))(assert (>= X_1 0))(assert (or (and (<= X_0 1) (>= X_0 0)) (>= X_0 5)))");
        assert_starts(
            &e,
            "t.vnnlib:1:16: input X_0 has no upper bound in disjunct 2",
        );
    }

    #[test]
    fn dnf_blow_up_is_refused() {
        // 2^20 conjunctions from twenty binary disjunctions in one `and`.
        let or = "(or (<= Y_0 0) (<= Y_1 0))".repeat(20);
        let e = err(&format!("{BOX}(assert (and {or}))"));
        assert_starts(
            &e,
            "t.vnnlib:10:9: formula expands to more than 100000 conjunctions",
        );
        // The same spread over separate asserts is caught at the assert that crosses the limit.
        let asserts = "(assert (or (<= Y_0 0) (<= Y_1 0)))\n".repeat(20);
        assert_starts(
            &err(&format!("{BOX}{asserts}")),
            "t.vnnlib:26:1: formula expands to more than",
        );
    }

    #[test]
    fn constant_and_empty_cases() {
        // A true constant comparison is dropped; a false one removes its conjunction.
        let s = parse(&format!(
            "{BOX}(assert (or (and (<= 1 2) (<= Y_0 0)) (and (<= 2 1) (<= Y_1 0))))"
        ))
        .unwrap();
        assert_eq!(s.cases[0].output.len(), 1);
        // An always-false assert: the property can never be violated.
        let s = parse(&format!("{BOX}(assert (<= 2 1))")).unwrap();
        assert!(s.cases.is_empty());
        assert!(!s.is_violated_by(&[0.0, 0.0], &[0.0, 0.0, 0.0]));
        // No output assert: any input in the box violates.
        let s = parse(BOX).unwrap();
        assert!(s.is_violated_by(&[0.0, 1.0], &[5.0, 5.0, 5.0]));
        // Equality fixes an input; chained comparisons conjoin.
        let s =
            parse("(assert (= X_0 0.25))(assert (<= 0 X_1 1))(assert (<= Y_0 Y_1 Y_2))").unwrap();
        assert_eq!(
            s.cases[0].input,
            InputBox {
                lower: vec![0.25, 0.0],
                upper: vec![0.25, 1.0]
            }
        );
        assert_eq!(s.cases[0].output[0].constraints.len(), 2);
    }

    #[test]
    fn no_panic_on_garbage() {
        for text in [
            "",
            ")",
            "(",
            "((((",
            "(assert",
            "(assert ())",
            "(() ())",
            "(declare-const)",
            "(assert (<= (- ) 1))",
            "(assert (<= (+) 1))",
            "(assert (or))",
            "(assert (and))",
            "\u{0}\u{ff}",
        ] {
            let r = parse_vnnlib(text, Path::new("g.vnnlib"));
            if let Err(e) = r {
                assert!(e.to_string().starts_with("g.vnnlib:"), "{e}");
            }
        }
        let deep = format!("{}{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse_vnnlib(&deep, Path::new("g")).is_err());
    }

    #[test]
    fn robustness_query() {
        let s = Spec::robustness(&[0.0, 0.5, 1.0], 0.1, 1, 3, (0.0, 1.0)).unwrap();
        assert_eq!((s.n_inputs, s.n_outputs, s.cases.len()), (3, 3, 1));
        let b = &s.cases[0].input;
        assert_eq!(b.lower[0], 0.0);
        assert_eq!(b.upper[2], 1.0);
        assert!(
            b.lower[1] < 0.4
                && b.lower[1] > 0.399_999_999
                && b.upper[1] > 0.6
                && b.upper[1] < 0.600_000_001
        );
        assert!(b.upper[0] >= 0.1 && b.lower[2] <= 0.9);
        // One conjunction per other class: Y_1 - Y_j <= 0.
        let out = &s.cases[0].output;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].constraints[0].coeffs, [(0, -1.0), (1, 1.0)]);
        assert_eq!(out[1].constraints[0].coeffs, [(1, 1.0), (2, -1.0)]);
        let x = [0.05, 0.5, 0.95];
        assert!(!s.is_violated_by(&x, &[0.0, 1.0, 0.5]));
        assert!(
            s.is_violated_by(&x, &[0.0, 1.0, 1.0]),
            "a tie counts as a violation"
        );
        assert!(
            !s.is_violated_by(&[0.05, 0.75, 0.95], &[0.0, 1.0, 2.0]),
            "outside the ball"
        );
        assert!(!s.is_violated_by(&x, &[0.0, 1.0]), "wrong output count");
        assert!(Spec::robustness(&[0.0], 0.1, 3, 3, (0.0, 1.0)).is_err());
        assert!(Spec::robustness(&[0.0], -0.1, 0, 3, (0.0, 1.0)).is_err());
        assert!(Spec::robustness(&[f64::NAN], 0.1, 0, 3, (0.0, 1.0)).is_err());
        assert!(Spec::robustness(&[5.0], 0.1, 0, 3, (0.0, 1.0)).is_err());
        assert!(Spec::robustness(&[0.5], 0.1, 0, 3, (1.0, 0.0)).is_err());
        // eps = 0 pins the input exactly.
        let s = Spec::robustness(&[0.3], 0.0, 0, 2, (0.0, 1.0)).unwrap();
        assert_eq!(
            s.cases[0].input,
            InputBox {
                lower: vec![0.3],
                upper: vec![0.3]
            }
        );
    }

    #[test]
    fn counterexample_text_round_trips() {
        let s = Spec::robustness(&[0.1, 0.2], 0.1, 0, 2, (0.0, 1.0)).unwrap();
        let x = [0.1 + 0.2, 1e-7];
        let y = [-0.0, 1.0 / 3.0];
        let text = s.format_counterexample(&x, &y);
        assert_eq!(
            text,
            "((X_0 0.30000000000000004)\n(X_1 1e-7)\n(Y_0 -0.0)\n(Y_1 0.3333333333333333))"
        );
        let ce = crate::parse_counterexample(&format!("sat\n{text}"), Path::new("c")).unwrap();
        assert_eq!(
            ce.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            x.map(f64::to_bits)
        );
        assert_eq!(
            ce.y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y.map(f64::to_bits)
        );
        let e = crate::parse_counterexample("((X_0 1)\n(X_0 2))", Path::new("c")).unwrap_err();
        assert_starts(&e.to_string(), "c:2:1: syntax error: X_0 appears twice");
        let e = crate::parse_counterexample("((X_1 1))", Path::new("c")).unwrap_err();
        assert_starts(&e.to_string(), "c:1:10: syntax error: X_0 is missing");
    }
}
