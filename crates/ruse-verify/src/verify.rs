//! The verifier: falsify first, then bound (IBP, CROWN, α-CROWN), then branch and bound — input
//! splitting for low-dimensional inputs, ReLU splitting with β-CROWN split multipliers otherwise.
//!
//! `unsat` is only ever answered from sound bounds (see [`crate::crown`]); `sat` only with a
//! counterexample that a fresh f32 forward pass confirms.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ruse_graph::{Graph, Op, Operand};

use rayon::prelude::*;

use crate::crown::{self, Bounds, Intermediate, OptimizeOptions, Relaxation};
use crate::dense::DenseNet;
use crate::dense_beta::SplitDomain;
use crate::falsify::{check_points, f32_down, f32_up, falsify, recheck, FalsifyOptions};
use crate::ibp::{BoundError, Interval};
use crate::spec::{Case, Spec};
use crate::Counterexample;

/// How hard the verifier tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Interval bounds only.
    Ibp,
    /// CROWN (with CROWN bounds on every nonlinear layer's inputs).
    Crown,
    /// α-CROWN: CROWN with optimised ReLU lower slopes.
    Alpha,
    /// α-CROWN, then branch and bound (input or ReLU splits, β-CROWN multipliers).
    Bab,
}

impl Method {
    /// Parses `ibp`, `crown`, `alpha` / `alpha-crown`, `bab`.
    pub fn parse(s: &str) -> Option<Method> {
        match s.to_ascii_lowercase().as_str() {
            "ibp" => Some(Method::Ibp),
            "crown" => Some(Method::Crown),
            "alpha" | "alpha-crown" | "α-crown" => Some(Method::Alpha),
            "bab" | "beta" | "beta-crown" => Some(Method::Bab),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ibp => "ibp",
            Method::Crown => "crown",
            Method::Alpha => "alpha-crown",
            Method::Bab => "bab",
        }
    }
}

/// Settings of one verification run.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Wall-clock budget.
    pub timeout: Duration,
    /// Strongest method used.
    pub method: Method,
    /// Falsifier settings (its seed makes the run reproducible).
    pub falsify: FalsifyOptions,
    /// α-CROWN settings at the root.
    pub root: OptimizeOptions,
    /// α/β steps per branch-and-bound batch.
    pub bab_iterations: usize,
    /// Sub-domains bounded together.
    pub batch: usize,
    /// Inputs of at most this many dimensions are split in input space, others by ReLU.
    pub input_split_max_dims: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            timeout: Duration::from_secs(60),
            method: Method::Bab,
            falsify: FalsifyOptions::default(),
            root: OptimizeOptions::default(),
            bab_iterations: 8,
            batch: 64,
            input_split_max_dims: 16,
        }
    }
}

/// The answer, in VNN-COMP terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A counterexample, re-checked by a forward pass.
    Sat(Counterexample),
    /// Proved: no input of the spec reaches its unsafe outputs.
    Unsat,
    /// Neither proved nor refuted, and the method has nothing left to try.
    Unknown,
    /// The budget ran out.
    Timeout,
}

impl Verdict {
    /// `sat`, `unsat`, `unknown` or `timeout`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Sat(_) => "sat",
            Verdict::Unsat => "unsat",
            Verdict::Unknown => "unknown",
            Verdict::Timeout => "timeout",
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct VerifyStats {
    /// Sub-domains bounded in branch and bound.
    pub domains: u64,
    /// Deepest split.
    pub max_depth: usize,
    /// The stage that decided: falsify, ibp, crown, alpha-crown, input-split, relu-split.
    pub decided_by: String,
    /// Why the answer is unknown (when it is).
    pub note: String,
}

/// Result of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Wall time.
    pub elapsed: Duration,
    /// Statistics.
    pub stats: VerifyStats,
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The spec does not fit the network.
    #[error("the property does not fit the network: {0}")]
    Mismatch(String),
    /// Bounds failed (e.g. an op without a bound rule).
    #[error(transparent)]
    Bound(#[from] BoundError),
}

impl From<candle_core::Error> for VerifyError {
    fn from(e: candle_core::Error) -> Self {
        VerifyError::Bound(BoundError::Tensor(e))
    }
}

enum CaseResult {
    Proved(&'static str),
    Sat(Counterexample, &'static str),
    Unknown(String),
    Timeout,
}

/// Verifies `spec` on `graph`.
pub fn verify(
    graph: &Graph,
    spec: &Spec,
    opts: &VerifyOptions,
) -> Result<VerifyOutcome, VerifyError> {
    let start = Instant::now();
    let deadline = start + opts.timeout;
    if spec.n_inputs != graph.input_len() {
        return Err(VerifyError::Mismatch(format!(
            "it declares {} inputs X_0…, the network takes {} numbers {:?}",
            spec.n_inputs,
            graph.input_len(),
            graph.input_shape()
        )));
    }
    if spec.n_outputs != graph.output_len() {
        return Err(VerifyError::Mismatch(format!(
            "it declares {} outputs Y_0…, the network gives {}",
            spec.n_outputs,
            graph.output_len()
        )));
    }
    let mut stats = VerifyStats::default();
    let done = |verdict, mut stats: VerifyStats, by: &str| {
        if stats.decided_by.is_empty() {
            stats.decided_by = by.to_string();
        }
        Ok(VerifyOutcome {
            verdict,
            elapsed: start.elapsed(),
            stats,
        })
    };
    if spec.cases.is_empty() {
        return done(Verdict::Unsat, stats, "spec");
    }
    // A cheap falsification pass first: sat instances are usually found in a fraction of the
    // budget, and proving them is hopeless.
    let budget = opts
        .timeout
        .mul_f64(0.05)
        .clamp(Duration::from_millis(200), Duration::from_secs(5));
    if let Some(ce) = falsify(graph, spec, &opts.falsify, (start + budget).min(deadline))? {
        return done(Verdict::Sat(ce), stats, "falsify");
    }
    let mut unknown: Option<String> = None;
    let mut stages = Vec::new();
    for case in &spec.cases {
        match prove_case(graph, spec, case, opts, deadline, &mut stats)? {
            CaseResult::Proved(by) => stages.push(by),
            CaseResult::Sat(ce, by) => return done(Verdict::Sat(ce), stats, by),
            CaseResult::Timeout => return done(Verdict::Timeout, stats, "timeout"),
            CaseResult::Unknown(why) => unknown = Some(why),
        }
    }
    if let Some(why) = unknown {
        // Nothing left to prove with: look for a counterexample a while longer — with branch
        // and bound, in what is left of the budget; with a single bound method, as long again
        // as the first search (so that certifying many samples stays cheap).
        let mut f = opts.falsify;
        f.seed = f.seed.wrapping_add(1);
        let until = if opts.method == Method::Bab {
            f.rounds = usize::MAX;
            deadline
        } else {
            (Instant::now() + budget).min(deadline)
        };
        if let Some(ce) = falsify(graph, spec, &f, until)? {
            return done(Verdict::Sat(ce), stats, "falsify");
        }
        stats.note = why;
        let v = if opts.method == Method::Bab && Instant::now() >= deadline {
            Verdict::Timeout
        } else {
            Verdict::Unknown
        };
        return done(v, stats, "none");
    }
    // The strongest stage any case needed.
    let order = ["ibp", "crown", "alpha-crown", "input-split", "relu-split"];
    let by = order
        .iter()
        .rev()
        .find(|s| stages.contains(s))
        .copied()
        .unwrap_or("spec");
    done(Verdict::Unsat, stats, by)
}

/// Spec rows of a case and, per conjunction, the indices of its rows.
fn rows_of(case: &Case) -> (Vec<crate::LinearConstraint>, Vec<Vec<usize>>) {
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    for conj in &case.output {
        let mut g = Vec::new();
        for r in &conj.constraints {
            g.push(rows.len());
            rows.push(r.clone());
        }
        groups.push(g);
    }
    (rows, groups)
}

/// A conjunction is refuted when one of its rows is provably positive; a domain is safe when
/// every conjunction is refuted.
fn refuted(lb: &[f64], groups: &[Vec<usize>]) -> bool {
    groups
        .iter()
        .all(|g| g.iter().any(|&r| lb.get(r).is_some_and(|&v| v > 0.0)))
}

/// Rows that still matter: those of conjunctions not yet refuted.
fn open_rows(lb: &[f64], groups: &[Vec<usize>]) -> Vec<usize> {
    groups
        .iter()
        .filter(|g| !g.iter().any(|&r| lb[r] > 0.0))
        .flat_map(|g| g.iter().copied())
        .collect()
}

fn input_interval(
    graph: &Graph,
    lo: &[f64],
    hi: &[f64],
    b: usize,
) -> candle_core::Result<Interval> {
    let mut shape = vec![b];
    shape.extend_from_slice(graph.input_shape());
    Ok(Interval {
        lower: Tensor::from_slice(lo, shape.clone(), &Device::Cpu)?,
        upper: Tensor::from_slice(hi, shape, &Device::Cpu)?,
    })
}

fn prove_case(
    graph: &Graph,
    spec: &Spec,
    case: &Case,
    opts: &VerifyOptions,
    deadline: Instant,
    stats: &mut VerifyStats,
) -> Result<CaseResult, VerifyError> {
    let (lo, hi) = (&case.input.lower, &case.input.upper);
    if lo.iter().zip(hi).any(|(l, h)| l > h) {
        return Ok(CaseResult::Proved("spec")); // an empty box has no inputs
    }
    if lo
        .iter()
        .zip(hi)
        .any(|(l, h)| !(l.is_finite() && h.is_finite()))
    {
        return Ok(CaseResult::Unknown(
            "an input is unbounded; bounds need a finite box".into(),
        ));
    }
    let (rows, groups) = rows_of(case);
    if case.output.is_empty() {
        return Ok(CaseResult::Proved("spec"));
    }
    if groups.iter().any(|g| g.is_empty()) {
        // Every input of the box is unsafe; the f32 point nearest the centre shows it.
        let x: Vec<f32> = lo
            .iter()
            .zip(hi)
            .map(|(&l, &h)| {
                let c = (0.5 * (l + h)) as f32;
                c.clamp(f32_up(l), f32_down(h))
            })
            .collect();
        if let Some(ce) = recheck(graph, spec, &x)? {
            return Ok(CaseResult::Sat(ce, "spec"));
        }
    }
    let n_out = graph.output_len();
    let (c, d) = crown::spec_rows(&rows, n_out)?;
    let input = input_interval(graph, lo, hi, 1)?;

    // IBP.
    let vals = crate::ibp::ibp_batch(graph, input.clone())?;
    let out = vals[graph.output]
        .as_ref()
        .ok_or_else(|| BoundError::Input("the output was not reached".into()))?;
    let (ol, oh): (Vec<f64>, Vec<f64>) = (
        out.lower.flatten_all()?.to_vec1()?,
        out.upper.flatten_all()?.to_vec1()?,
    );
    let ibp_lb: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.coeffs
                .iter()
                .map(|&(j, v)| if v > 0.0 { v * ol[j] } else { v * oh[j] })
                .sum::<f64>()
                + r.constant
        })
        .collect();
    if refuted(&ibp_lb, &groups) {
        return Ok(CaseResult::Proved("ibp"));
    }
    if opts.method == Method::Ibp {
        return Ok(CaseResult::Unknown("IBP could not prove it".into()));
    }
    // CROWN, with CROWN bounds on the inputs of every nonlinearity.
    let bounds = match crown::compute_bounds(graph, &input, Intermediate::Crown) {
        Ok(b) => b,
        Err(BoundError::Unsupported { node, op, detail }) => {
            return Ok(CaseResult::Unknown(format!(
                "node '{node}' ({op}{detail}) has no linear bound rule; IBP could not prove it"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let (lb, _) = crown::crown_spec(graph, &bounds, &input, &c, &d, &Default::default())?;
    let lbv = lb.to_vec2::<f64>()?.remove(0);
    if refuted(&lbv, &groups) {
        return Ok(CaseResult::Proved("crown"));
    }
    if opts.method == Method::Crown {
        return Ok(CaseResult::Unknown("CROWN could not prove it".into()));
    }
    if Instant::now() >= deadline {
        return Ok(CaseResult::Timeout);
    }
    let root_opts = OptimizeOptions {
        deadline: Some(deadline),
        ..opts.root
    };
    let root = crown::optimize_spec(graph, &bounds, &input, &c, &d, None, None, None, root_opts)?;
    let lbv = root.lower.to_vec2::<f64>()?.remove(0);
    if refuted(&lbv, &groups) {
        return Ok(CaseResult::Proved("alpha-crown"));
    }
    if opts.method == Method::Alpha {
        return Ok(CaseResult::Unknown("α-CROWN could not prove it".into()));
    }
    if graph.input_len() <= opts.input_split_max_dims {
        input_split(graph, spec, case, &c, &d, &groups, opts, deadline, stats)
    } else if first_unsplittable(graph).is_some() {
        // Sigmoid / tanh networks: no neuron split here, so the whole budget goes to α-CROWN
        // rounds with ever more iterations on every layer's bounds.
        alpha_rounds(graph, &input, &c, &d, &groups, lbv, root_opts, deadline)
    } else {
        // Before splitting ReLUs, tighten every layer's bounds with its own optimised slopes
        // (α-CROWN on the intermediate layers): costly once, but every sub-domain inherits it.
        let (bounds, root) = if deadline.saturating_duration_since(Instant::now())
            >= Duration::from_secs(15)
        {
            // At most a third of what is left goes to this.
            let left = deadline.saturating_duration_since(Instant::now());
            let tight = crown::compute_bounds_until(
                graph,
                &input,
                Intermediate::Alpha { iterations: 6 },
                Some(Instant::now() + left / 3),
            )?;
            let again =
                crown::optimize_spec(graph, &tight, &input, &c, &d, None, None, None, root_opts)?;
            let lbv = again.lower.to_vec2::<f64>()?.remove(0);
            if refuted(&lbv, &groups) {
                return Ok(CaseResult::Proved("alpha-crown"));
            }
            (tight, again)
        } else {
            (bounds, root)
        };
        relu_split_per_conjunction(
            graph, spec, case, &c, &d, &groups, &bounds, &root, opts, deadline, stats,
        )
    }
}

/// ReLU branch and bound on each conjunction the root left open, one after another, hardest
/// first. The unsafe set is the union of the conjunctions, so refuting each on the whole box
/// refutes the case; a separate tree per conjunction bounds only its own rows (a robustness spec
/// has nine single-row conjunctions, and a joint tree would carry all nine through every
/// sub-domain) and branches on what costs those rows alone.
#[allow(clippy::too_many_arguments)]
fn relu_split_per_conjunction(
    graph: &Graph,
    spec: &Spec,
    case: &Case,
    c: &Tensor,
    d: &Tensor,
    groups: &[Vec<usize>],
    bounds: &Bounds,
    root: &crown::Optimized,
    opts: &VerifyOptions,
    deadline: Instant,
    stats: &mut VerifyStats,
) -> Result<CaseResult, VerifyError> {
    let root_lb = root.lower.to_vec2::<f64>()?.remove(0);
    // Best bound of a conjunction: it is refuted once any of its rows is positive.
    let best = |g: &[usize]| {
        g.iter()
            .map(|&r| root_lb[r])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let mut open: Vec<&Vec<usize>> = groups.iter().filter(|g| best(g) <= 0.0).collect();
    open.sort_by(|p, q| best(p).total_cmp(&best(q)));
    // Folded once for every conjunction's tree.
    let net = DenseNet::from_graph(graph)?;
    let mut unknown = None;
    for g in open {
        let idx = Tensor::from_vec(
            g.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            g.len(),
            &Device::Cpu,
        )?;
        let sub_root = root.select_rows(&idx)?;
        let sub_groups = vec![(0..g.len()).collect::<Vec<_>>()];
        match relu_split(
            graph,
            net.as_ref(),
            spec,
            case,
            &c.index_select(&idx, 0)?,
            &d.index_select(&idx, 0)?,
            &sub_groups,
            bounds,
            sub_root,
            opts,
            deadline,
            stats,
        )? {
            CaseResult::Proved(_) => {}
            CaseResult::Unknown(why) => unknown = Some(why),
            other => return Ok(other),
        }
    }
    Ok(match unknown {
        Some(why) => CaseResult::Unknown(why),
        None => CaseResult::Proved("relu-split"),
    })
}

/// The first nonlinearity that ReLU branch and bound cannot split (a sigmoid, tanh, …), if any.
fn first_unsplittable(graph: &Graph) -> Option<&ruse_graph::Node> {
    graph
        .nodes
        .iter()
        .find(|n| crown::is_nonlinear(&n.op) && !matches!(n.op, Op::Relu))
}

/// α-CROWN rounds until the deadline, for networks branch and bound cannot split: each round
/// re-optimises every intermediate layer's bounds (slopes of ReLUs, sigmoids and tanhs) with
/// twice the iterations of the last, then the specification's; every round's bound is sound,
/// and the best per row so far decides.
#[allow(clippy::too_many_arguments)]
fn alpha_rounds(
    graph: &Graph,
    input: &Interval,
    c: &Tensor,
    d: &Tensor,
    groups: &[Vec<usize>],
    mut best: Vec<f64>,
    root_opts: OptimizeOptions,
    deadline: Instant,
) -> Result<CaseResult, VerifyError> {
    let mut iterations = 8;
    while Instant::now() < deadline {
        let tight = crown::compute_bounds_until(
            graph,
            input,
            Intermediate::Alpha { iterations },
            Some(deadline),
        )?;
        let opts = OptimizeOptions {
            iterations: root_opts.iterations.max(2 * iterations),
            ..root_opts
        };
        let again = crown::optimize_spec(graph, &tight, input, c, d, None, None, None, opts)?;
        let lbv = again.lower.to_vec2::<f64>()?.remove(0);
        best.iter_mut().zip(&lbv).for_each(|(b, &v)| *b = b.max(v));
        if refuted(&best, groups) {
            return Ok(CaseResult::Proved("alpha-crown"));
        }
        iterations *= 2;
    }
    Ok(CaseResult::Timeout)
}

/// Branch and bound over the input box. On an affine/ReLU chain with few inputs, two strategies
/// take turns in doubling time slices, each resuming where it stopped: the coefficient-score
/// split (`score_input_split`) and the split that tries every dimension (`smart_input_split`);
/// each is much faster than the other on some instances, and turns cost the better one at most
/// about twice its own time. (Half the budget to one, then the other, made a larger budget
/// slower: a score-split instance of a few seconds waited out the first half.)
#[allow(clippy::too_many_arguments)]
fn input_split(
    graph: &Graph,
    spec: &Spec,
    case: &Case,
    c: &Tensor,
    d: &Tensor,
    groups: &[Vec<usize>],
    opts: &VerifyOptions,
    deadline: Instant,
    stats: &mut VerifyStats,
) -> Result<CaseResult, VerifyError> {
    let n = graph.input_len();
    let (lo, hi) = (&case.input.lower, &case.input.upper);
    let mut plain: Vec<BoxDom> = vec![(lo.clone(), hi.clone(), 0)];
    let dense = DenseNet::from_graph(graph)?;
    let (cv, dv): (Vec<f64>, Vec<f64>) = (c.flatten_all()?.to_vec1()?, d.to_vec1()?);
    let score = ScoreSplit {
        graph,
        spec,
        c,
        d,
        cv: &cv,
        dv: &dv,
        dense: dense.as_ref(),
        groups,
        opts,
    };
    let Some(net) = dense.as_ref().filter(|_| n <= SMART_SPLIT_MAX_DIMS) else {
        return score.run(&mut plain, deadline, stats);
    };
    let mut smart: Vec<SmartDom> = vec![(
        lo.clone(),
        hi.clone(),
        0,
        vec![f64::NEG_INFINITY; dv.len()],
        vec![0.0; dv.len() * n],
    )];
    let mut slice = Duration::from_millis(500);
    // A strategy that gives up (a box it cannot split further) leaves the turns to the other.
    let mut gave_up: [Option<String>; 2] = [None, None];
    loop {
        for (turn, quit) in gave_up.iter_mut().enumerate() {
            if quit.is_some() {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(CaseResult::Timeout);
            }
            let until = (now + slice).min(deadline);
            let r = if turn == 0 {
                score.run(&mut plain, until, stats)?
            } else {
                smart_input_split(
                    graph, spec, case, net, &cv, &dv, groups, opts, &mut smart, until, stats,
                )?
            };
            match r {
                CaseResult::Timeout => {}
                CaseResult::Unknown(why) => *quit = Some(why),
                done => return Ok(done),
            }
        }
        if let [Some(_), Some(why)] = &gave_up {
            return Ok(CaseResult::Unknown(why.clone()));
        }
        slice *= 2;
    }
}

/// An input sub-box and its depth.
type BoxDom = (Vec<f64>, Vec<f64>, usize);

/// A sub-box for `smart_input_split`: lower, upper, depth, the parent's bound per row (valid on
/// every sub-box, so a child's bound is the better of its own and its parent's — CROWN alone
/// is not monotone in the box), and the parent's input coefficients (the tie-break score).
type SmartDom = (Vec<f64>, Vec<f64>, usize, Vec<f64>, Vec<f64>);

/// What the coefficient-score input split needs besides its stack.
struct ScoreSplit<'a> {
    graph: &'a Graph,
    spec: &'a Spec,
    c: &'a Tensor,
    d: &'a Tensor,
    cv: &'a [f64],
    dv: &'a [f64],
    dense: Option<&'a DenseNet>,
    groups: &'a [Vec<usize>],
    opts: &'a VerifyOptions,
}

impl ScoreSplit<'_> {
    /// Splits the dimension whose width most loosens the bound of the open rows, bounding the
    /// halves with CROWN batch by batch, until `stack` is empty (proved) or `deadline` (the
    /// stack then holds what is left, to resume from).
    fn run(
        &self,
        stack: &mut Vec<BoxDom>,
        deadline: Instant,
        stats: &mut VerifyStats,
    ) -> Result<CaseResult, VerifyError> {
        let (graph, groups) = (self.graph, self.groups);
        let n = graph.input_len();
        let batch = self.opts.batch.max(1) * 4;
        while !stack.is_empty() {
            if Instant::now() >= deadline {
                return Ok(CaseResult::Timeout);
            }
            let take = stack.len().min(batch);
            let doms: Vec<_> = stack.split_off(stack.len() - take);
            let b = doms.len();
            let (lb, a): (Vec<Vec<f64>>, Vec<Vec<Vec<f64>>>) = if let Some(net) = self.dense {
                doms.par_iter()
                    .map(|(dl, dh, _)| {
                        let r = net.crown(dl, dh, self.cv, self.dv);
                        let rows = r.a_in.chunks(n).map(|x| x.to_vec()).collect();
                        (r.lower, rows)
                    })
                    .unzip()
            } else {
                let lo: Vec<f64> = doms.iter().flat_map(|d| d.0.iter().copied()).collect();
                let hi: Vec<f64> = doms.iter().flat_map(|d| d.1.iter().copied()).collect();
                let input = input_interval(graph, &lo, &hi, b)?;
                let bounds = crown::compute_bounds(graph, &input, Intermediate::Crown)?;
                let (lb, lin) =
                    crown::crown_spec(graph, &bounds, &input, self.c, self.d, &Default::default())?;
                (lb.to_vec2::<f64>()?, lin.a_in.to_vec3::<f64>()?)
            };
            stats.domains += b as u64;
            let mut points: Vec<f32> = Vec::new();
            for (k, (dlo, dhi, depth)) in doms.into_iter().enumerate() {
                if refuted(&lb[k], groups) {
                    continue;
                }
                stats.max_depth = stats.max_depth.max(depth);
                let open = open_rows(&lb[k], groups);
                // Candidate counterexamples: the centre and the minimiser of the worst open row.
                let worst = open
                    .iter()
                    .copied()
                    .min_by(|&p, &q| lb[k][p].total_cmp(&lb[k][q]))
                    .unwrap_or(0);
                points.extend(dlo.iter().zip(&dhi).map(|(&l, &h)| (0.5 * (l + h)) as f32));
                points.extend((0..n).map(|i| {
                    if a[k][worst][i] > 0.0 {
                        f32_up(dlo[i])
                    } else {
                        f32_down(dhi[i])
                    }
                }));
                let mut best = (0usize, -1.0f64);
                for i in 0..n {
                    let w = dhi[i] - dlo[i];
                    let s: f64 = open.iter().map(|&r| a[k][r][i].abs()).sum::<f64>() * w;
                    if s > best.1 && w > 0.0 {
                        best = (i, s);
                    }
                }
                let i = best.0;
                let mid = 0.5 * (dlo[i] + dhi[i]);
                if !(mid > dlo[i] && mid < dhi[i]) {
                    return Ok(CaseResult::Unknown(
                        "an input box cannot be split further".into(),
                    ));
                }
                let (mut l2, mut h1) = (dlo.clone(), dhi.clone());
                h1[i] = mid;
                l2[i] = mid;
                stack.push((dlo, h1, depth + 1));
                stack.push((l2, dhi, depth + 1));
            }
            if let Some(ce) = check_points(graph, self.spec, &points)? {
                return Ok(CaseResult::Sat(ce, "input-split"));
            }
        }
        Ok(CaseResult::Proved("input-split"))
    }
}

/// Inputs of at most this many dimensions are split by trying every dimension.
const SMART_SPLIT_MAX_DIMS: usize = 8;

/// The worst (smallest) bound among the rows of conjunctions not yet refuted; +∞ when every
/// conjunction is refuted.
fn worst_open(lb: &[f64], groups: &[Vec<usize>]) -> f64 {
    groups
        .iter()
        .map(|g| g.iter().map(|&r| lb[r]).fold(f64::NEG_INFINITY, f64::max))
        .fold(f64::INFINITY, f64::min)
}

/// Input splitting on the dense path that tries every dimension: each domain's 2·n halves are
/// bounded, and the dimension whose worse half is best is kept (its halves' bounds are already
/// known, so nothing is bounded twice). Much fewer domains than a gradient-based score when
/// the looseness comes from ReLUs made unstable by a dimension with small coefficients.
#[allow(clippy::too_many_arguments)]
fn smart_input_split(
    graph: &Graph,
    spec: &Spec,
    case: &Case,
    net: &DenseNet,
    cv: &[f64],
    dv: &[f64],
    groups: &[Vec<usize>],
    opts: &VerifyOptions,
    stack: &mut Vec<SmartDom>,
    deadline: Instant,
    stats: &mut VerifyStats,
) -> Result<CaseResult, VerifyError> {
    let n = graph.input_len();
    let batch = opts.batch.max(1);
    while !stack.is_empty() {
        if Instant::now() >= deadline {
            return Ok(CaseResult::Timeout);
        }
        let take = stack.len().min(batch);
        let doms: Vec<SmartDom> = stack.split_off(stack.len() - take);
        // Every domain's candidate halves: (domain, dim, lower half?, lo, hi).
        let mut cands: Vec<(usize, usize, Vec<f64>, Vec<f64>)> = Vec::new();
        for (k, (dlo, dhi, _, _, _)) in doms.iter().enumerate() {
            for i in 0..n {
                let mid = 0.5 * (dlo[i] + dhi[i]);
                if !(mid > dlo[i] && mid < dhi[i]) {
                    continue;
                }
                let (mut h1, mut l2) = (dhi.clone(), dlo.clone());
                h1[i] = mid;
                l2[i] = mid;
                cands.push((k, i, dlo.clone(), h1));
                cands.push((k, i, l2, dhi.clone()));
            }
        }
        let results: Vec<_> = cands
            .par_iter()
            .map(|(k, _, lo, hi)| {
                let mut r = net.crown(lo, hi, cv, dv);
                for (v, p) in r.lower.iter_mut().zip(&doms[*k].3) {
                    *v = v.max(*p);
                }
                r
            })
            .collect();
        stats.domains += cands.len() as u64;
        // Best dimension per domain; among (near) ties, the relatively widest, so that a
        // dimension whose split does not move the worst bound yet is not starved forever.
        let (root_lo, root_hi) = (&case.input.lower, &case.input.upper);
        // Tie-break: the parent's |coefficient| × width over its open rows, then relative width.
        let rel = |k: usize, i: usize| {
            let (dom, w) = (&doms[k], doms[k].1[i] - doms[k].0[i]);
            let open = open_rows(&dom.3, groups);
            let score: f64 = open.iter().map(|&r| dom.4[r * n + i].abs()).sum::<f64>() * w;
            let w0 = root_hi[i] - root_lo[i];
            (score, if w0 > 0.0 { w / w0 } else { 0.0 })
        };
        let mut best: Vec<Option<(usize, f64)>> = vec![None; doms.len()];
        for (t, (k, i, _, _)) in cands.iter().enumerate().step_by(2) {
            let w = worst_open(&results[t].lower, groups)
                .min(worst_open(&results[t + 1].lower, groups));
            let better = match best[*k] {
                None => true,
                Some((j, b)) => {
                    // Gains at the level of rounding noise are not gains.
                    let tie = (w - b).abs() <= 1e-6 * (1.0 + w.abs().max(b.abs()));
                    if tie {
                        let (a, b) = (rel(*k, *i), rel(*k, j));
                        a.0 > b.0 || (a.0 == b.0 && a.1 > b.1)
                    } else {
                        w > b
                    }
                }
            };
            if better {
                best[*k] = Some((*i, w));
            }
        }
        let mut points: Vec<f32> = Vec::new();
        for (k, dom) in doms.iter().enumerate() {
            let Some((dim, _)) = best[k] else {
                return Ok(CaseResult::Unknown(
                    "an input box cannot be split further".into(),
                ));
            };
            for (t, (kk, i, lo, hi)) in cands.iter().enumerate() {
                if *kk != k || *i != dim {
                    continue;
                }
                let r = &results[t];
                if refuted(&r.lower, groups) {
                    continue;
                }
                stats.max_depth = stats.max_depth.max(dom.2 + 1);
                // Candidate counterexamples: the centre and the minimiser of the worst open row.
                let open = open_rows(&r.lower, groups);
                let worst = open
                    .iter()
                    .copied()
                    .min_by(|&p, &q| r.lower[p].total_cmp(&r.lower[q]))
                    .unwrap_or(0);
                points.extend(lo.iter().zip(hi).map(|(&l, &h)| (0.5 * (l + h)) as f32));
                points.extend((0..n).map(|j| {
                    if r.a_in[worst * n + j] > 0.0 {
                        f32_up(lo[j])
                    } else {
                        f32_down(hi[j])
                    }
                }));
                stack.push((
                    lo.clone(),
                    hi.clone(),
                    dom.2 + 1,
                    r.lower.clone(),
                    r.a_in.clone(),
                ));
            }
        }
        if let Some(ce) = check_points(graph, spec, &points)? {
            return Ok(CaseResult::Sat(ce, "input-split"));
        }
    }
    Ok(CaseResult::Proved("input-split"))
}

/// One ReLU-split sub-problem.
struct Domain {
    /// Per ReLU layer: bounds of its inputs.
    lo: Vec<Vec<f64>>,
    hi: Vec<Vec<f64>>,
    /// Per ReLU layer: −1 split active, +1 split inactive, 0 free.
    sign: Vec<Vec<f64>>,
    /// Per ReLU layer: α and β, `[S × n]`, warm starts for the children.
    alpha: Vec<Vec<f32>>,
    beta: Vec<Vec<f32>>,
    /// Next split: (layer, neuron).
    branch: Option<(usize, usize)>,
    depth: usize,
}

/// BaBSR-style choice: the unstable neuron whose upper-line intercept costs the open rows most.
fn choose_branch(
    layers: &[(usize, usize)],
    coeffs: &[Vec<f64>],
    lo: &[Vec<f64>],
    hi: &[Vec<f64>],
    open: &[usize],
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, f64, f64)> = None;
    for (k, &(_, n)) in layers.iter().enumerate() {
        for j in 0..n {
            let (l, u) = (lo[k][j], hi[k][j]);
            if !(l < 0.0 && u > 0.0) {
                continue;
            }
            let icpt = -l * u / (u - l);
            let score: f64 = open
                .iter()
                .map(|&r| (-coeffs[k][r * n + j]).max(0.0))
                .sum::<f64>()
                * icpt;
            let better = match best {
                None => true,
                Some((_, _, s, w)) => score > s || (score == s && icpt > w),
            };
            if better {
                best = Some((k, j, score, icpt));
            }
        }
    }
    best.map(|(k, j, _, _)| (k, j))
}

#[allow(clippy::too_many_arguments)]
fn relu_split(
    graph: &Graph,
    net: Option<&DenseNet>,
    spec: &Spec,
    case: &Case,
    c: &Tensor,
    d: &Tensor,
    groups: &[Vec<usize>],
    root_bounds: &Bounds,
    root: crown::Optimized,
    opts: &VerifyOptions,
    deadline: Instant,
    stats: &mut VerifyStats,
) -> Result<CaseResult, VerifyError> {
    // Only ReLU networks: every nonlinearity must be splittable.
    if let Some(node) = first_unsplittable(graph) {
        return Ok(CaseResult::Unknown(format!(
            "branch and bound splits ReLUs only; node '{}' is {}",
            node.name,
            node.op.onnx_type()
        )));
    }
    let mut layers: Vec<(usize, usize)> = Vec::new(); // (node index, neurons)
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    let mut inputs: Vec<usize> = Vec::new();
    for (idx, node) in graph.nodes.iter().enumerate() {
        if crown::is_nonlinear(&node.op) {
            let Operand::Value(v) = node.inputs[0] else {
                return Ok(CaseResult::Unknown("ReLU of a constant".into()));
            };
            let shape = graph.values[v].shape.clone();
            layers.push((idx, shape.iter().product()));
            shapes.push(shape);
            inputs.push(v);
        }
    }
    let s = c.dim(0)?;
    let input = input_interval(graph, &case.input.lower, &case.input.upper, 1)?;
    let flat = |t: &Tensor| -> candle_core::Result<Vec<f64>> { t.flatten_all()?.to_vec1() };
    let mut lo = Vec::new();
    let mut hi = Vec::new();
    for &v in &inputs {
        let iv = root_bounds.values[v]
            .as_ref()
            .ok_or_else(|| BoundError::Input("ReLU input not bounded".into()))?;
        lo.push(flat(&iv.lower)?);
        hi.push(flat(&iv.upper)?);
    }
    // An affine/ReLU chain goes through the hand-written β-CROWN on f64 slices.
    let sizes: Vec<usize> = layers.iter().map(|&(_, n)| n).collect();
    let dense = match net {
        Some(net) if net.fits_relu_layers(&sizes) => {
            let deltas = net.allowances(&case.input.lower, &case.input.upper, &hi);
            let cv = flat(c)?;
            let dv = flat(d)?;
            Some((net, deltas, cv, dv))
        }
        _ => None,
    };
    let to_f32 = |t: &Tensor| -> candle_core::Result<Vec<f32>> {
        Ok(flat(t)?.into_iter().map(|v| v as f32).collect())
    };
    let mut alpha = Vec::new();
    let mut coeffs = Vec::new();
    for &(idx, n) in &layers {
        alpha.push(match root.alpha.get(&idx) {
            Some(t) => to_f32(t)?,
            None => vec![0.0; s * n],
        });
        coeffs.push(match root.relu_coeffs.get(&idx) {
            Some(t) => flat(t)?,
            None => vec![0.0; s * n],
        });
    }
    let root_lb = root.lower.to_vec2::<f64>()?.remove(0);
    let open = open_rows(&root_lb, groups);
    let branch = choose_branch(&layers, &coeffs, &lo, &hi, &open);
    let mut stack = vec![Domain {
        sign: layers.iter().map(|&(_, n)| vec![0.0; n]).collect(),
        beta: layers.iter().map(|&(_, n)| vec![0.0; s * n]).collect(),
        lo,
        hi,
        alpha,
        branch,
        depth: 0,
    }];
    let iters = OptimizeOptions {
        iterations: opts.bab_iterations.max(1),
        deadline: Some(deadline),
        ..opts.root
    };
    let mut exhausted = false;
    while !stack.is_empty() {
        if Instant::now() >= deadline {
            return Ok(CaseResult::Timeout);
        }
        let take = stack.len().min(opts.batch.max(1));
        let parents = stack.split_off(stack.len() - take);
        // Two children per parent.
        let mut kids: Vec<Domain> = Vec::with_capacity(2 * parents.len());
        for p in parents {
            let Some((k, j)) = p.branch else {
                exhausted = true;
                continue;
            };
            for active in [true, false] {
                let mut ch = Domain {
                    lo: p.lo.clone(),
                    hi: p.hi.clone(),
                    sign: p.sign.clone(),
                    alpha: p.alpha.clone(),
                    beta: p.beta.clone(),
                    branch: None,
                    depth: p.depth + 1,
                };
                if active {
                    ch.lo[k][j] = ch.lo[k][j].max(0.0);
                    ch.sign[k][j] = -1.0;
                } else {
                    ch.hi[k][j] = ch.hi[k][j].min(0.0);
                    ch.sign[k][j] = 1.0;
                }
                kids.push(ch);
            }
        }
        if kids.is_empty() {
            continue;
        }
        let b = kids.len();
        // Sub-batches bounded in parallel, one per thread (candle runs single-threaded here).
        let threads = rayon::current_num_threads().max(1);
        let chunk = b.div_ceil(threads).max(1);
        let parts = kids
            .par_chunks(chunk)
            .map(|part| match &dense {
                Some((net, deltas, cv, dv)) => Ok(dense_kids(
                    net,
                    deltas,
                    part,
                    &case.input.lower,
                    &case.input.upper,
                    cv,
                    dv,
                    iters,
                )),
                None => bound_kids(
                    graph,
                    part,
                    &layers,
                    &shapes,
                    s,
                    root_bounds,
                    &input,
                    c,
                    d,
                    iters,
                ),
            })
            .collect::<Result<Vec<_>, VerifyError>>()?;
        stats.domains += b as u64;
        let mut lb = Vec::with_capacity(b);
        let mut a_in = Vec::with_capacity(b);
        let mut per_layer_alpha = vec![Vec::new(); layers.len()];
        let mut per_layer_beta = vec![Vec::new(); layers.len()];
        let mut per_layer_coeffs = vec![Vec::new(); layers.len()];
        for p in parts {
            lb.extend(p.lb);
            a_in.extend(p.a_in);
            for k in 0..layers.len() {
                per_layer_alpha[k].extend_from_slice(&p.alpha[k]);
                per_layer_beta[k].extend_from_slice(&p.beta[k]);
                per_layer_coeffs[k].extend_from_slice(&p.coeffs[k]);
            }
        }
        let mut points: Vec<f32> = Vec::new();
        let n_in = graph.input_len();
        for (i, mut kid) in kids.into_iter().enumerate() {
            if refuted(&lb[i], groups) {
                continue;
            }
            stats.max_depth = stats.max_depth.max(kid.depth);
            let open = open_rows(&lb[i], groups);
            if let Some(&worst) = open.iter().min_by(|&&p, &&q| lb[i][p].total_cmp(&lb[i][q])) {
                let (lo, hi) = (&case.input.lower, &case.input.upper);
                for (t, &coef) in a_in[i][worst].iter().enumerate().take(n_in) {
                    points.push(if coef > 0.0 {
                        f32_up(lo[t])
                    } else {
                        f32_down(hi[t])
                    });
                }
            }
            let mut coeffs = Vec::with_capacity(layers.len());
            for (k, &(_, n)) in layers.iter().enumerate() {
                let sz = s * n;
                kid.alpha[k] = per_layer_alpha[k][i * sz..(i + 1) * sz]
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                kid.beta[k] = per_layer_beta[k][i * sz..(i + 1) * sz]
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                coeffs.push(per_layer_coeffs[k][i * sz..(i + 1) * sz].to_vec());
            }
            kid.branch = choose_branch(&layers, &coeffs, &kid.lo, &kid.hi, &open);
            stack.push(kid);
        }
        if let Some(ce) = check_points(graph, spec, &points)? {
            return Ok(CaseResult::Sat(ce, "relu-split"));
        }
    }
    if exhausted {
        return Ok(CaseResult::Unknown(
            "a sub-domain with every ReLU fixed could not be proved (the relaxation of the input box is not tight enough)".into(),
        ));
    }
    Ok(CaseResult::Proved("relu-split"))
}

/// Bounds of one sub-batch of ReLU-split domains.
struct KidBounds {
    lb: Vec<Vec<f64>>,
    a_in: Vec<Vec<Vec<f64>>>,
    alpha: Vec<Vec<f64>>,
    beta: Vec<Vec<f64>>,
    coeffs: Vec<Vec<f64>>,
}

/// β-CROWN bounds of `kids` on an affine/ReLU chain (`dense_beta`), in `bound_kids`' layout.
#[allow(clippy::too_many_arguments)]
fn dense_kids(
    net: &DenseNet,
    deltas: &[Vec<f64>],
    kids: &[Domain],
    x_lo: &[f64],
    x_hi: &[f64],
    c: &[f64],
    d: &[f64],
    iters: OptimizeOptions,
) -> KidBounds {
    let doms: Vec<SplitDomain> = kids
        .iter()
        .map(|k| SplitDomain {
            lo: &k.lo,
            hi: &k.hi,
            sign: &k.sign,
            alpha: &k.alpha,
            beta: &k.beta,
        })
        .collect();
    let out = net.beta_crown(x_lo, x_hi, c, d, deltas, &doms, iters);
    let s = d.len();
    let n_in = x_lo.len();
    KidBounds {
        lb: out.lower.chunks(s).map(<[f64]>::to_vec).collect(),
        a_in: out
            .a_in
            .chunks(s * n_in)
            .map(|dom| dom.chunks(n_in).map(<[f64]>::to_vec).collect())
            .collect(),
        alpha: out.alpha,
        beta: out.beta,
        coeffs: out.coeffs,
    }
}

/// β-CROWN bounds (α and β warm-started from the parents) for `kids`.
#[allow(clippy::too_many_arguments)]
fn bound_kids(
    graph: &Graph,
    kids: &[Domain],
    layers: &[(usize, usize)],
    shapes: &[Vec<usize>],
    s: usize,
    root_bounds: &Bounds,
    input: &Interval,
    c: &Tensor,
    d: &Tensor,
    iters: OptimizeOptions,
) -> Result<KidBounds, VerifyError> {
    let flat = |t: &Tensor| -> candle_core::Result<Vec<f64>> { t.flatten_all()?.to_vec1() };
    let b = kids.len();
    let mut relax_map: HashMap<usize, Relaxation> = HashMap::new();
    let mut alpha_init = HashMap::new();
    let mut beta_init = HashMap::new();
    let mut splits = HashMap::new();
    for (k, &(idx, _)) in layers.iter().enumerate() {
        let mut full = vec![b];
        full.extend_from_slice(&shapes[k]);
        let cat = |f: &dyn Fn(&Domain) -> &Vec<f64>| -> candle_core::Result<Tensor> {
            let v: Vec<f64> = kids.iter().flat_map(|d| f(d).iter().copied()).collect();
            Tensor::from_vec(v, full.clone(), &Device::Cpu)
        };
        let iv = Interval {
            lower: cat(&|d| &d.lo[k])?,
            upper: cat(&|d| &d.hi[k])?,
        };
        relax_map.insert(idx, crown::relax(&Op::Relu, &iv)?);
        splits.insert(idx, cat(&|d| &d.sign[k])?);
        let mut sfull = vec![b, s];
        sfull.extend_from_slice(&shapes[k]);
        let a: Vec<f64> = kids
            .iter()
            .flat_map(|d| d.alpha[k].iter().map(|&v| v as f64))
            .collect();
        alpha_init.insert(idx, Tensor::from_vec(a, sfull.clone(), &Device::Cpu)?);
        let bt: Vec<f64> = kids
            .iter()
            .flat_map(|d| d.beta[k].iter().map(|&v| v as f64))
            .collect();
        beta_init.insert(idx, Tensor::from_vec(bt, sfull, &Device::Cpu)?);
    }
    let bounds = Bounds {
        // Root intervals (valid in every sub-domain) for the rules that read them.
        values: root_bounds.values.clone(),
        relax: relax_map,
        allowance: root_bounds.allowance.clone(),
    };
    let opt = crown::optimize_spec(
        graph,
        &bounds,
        input,
        c,
        d,
        Some(&alpha_init),
        Some(&splits),
        Some(&beta_init),
        iters,
    )?;
    let lb = opt.lower.to_vec2::<f64>()?;
    let a_in = opt.a_in.to_vec3::<f64>()?;
    let mut per_layer_alpha = Vec::new();
    let mut per_layer_beta = Vec::new();
    let mut per_layer_coeffs = Vec::new();
    for &(idx, n) in layers {
        let get = |m: &HashMap<usize, Tensor>| -> candle_core::Result<Vec<f64>> {
            match m.get(&idx) {
                Some(t) => flat(t),
                None => Ok(vec![0.0; b * s * n]),
            }
        };
        per_layer_alpha.push(get(&opt.alpha)?);
        per_layer_beta.push(get(&opt.beta)?);
        per_layer_coeffs.push(get(&opt.relu_coeffs)?);
    }
    Ok(KidBounds {
        lb,
        a_in,
        alpha: per_layer_alpha,
        beta: per_layer_beta,
        coeffs: per_layer_coeffs,
    })
}
