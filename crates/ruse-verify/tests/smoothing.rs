//! Randomized smoothing: the statistics against scipy, and CERTIFY / PREDICT on linear models
//! where the smoothed classifier is known in closed form.
//!
//! For f(x) = [w·x + b > 0] and noise N(0, σ²I), the top class has probability
//! p = Φ(|w·x + b| / (σ‖w‖)), so the exact certified radius σ·Φ⁻¹(p) is the distance to the
//! boundary |w·x + b| / ‖w‖: CERTIFY's radius must approach it from below.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_graph::{Graph, Op, Operand};
use ruse_verify::smoothing::{
    beta_quantile, binomial_test_half, certify, clopper_pearson, clopper_pearson_lower, ln_gamma,
    normal_cdf, normal_quantile, predict, regularized_incomplete_beta, sample_counts,
    SmoothingOptions,
};

// ---- statistics against scipy -----------------------------------------------------------------

/// (k, n, α, lower, upper): the two-sided Clopper–Pearson interval at level 1 − α, from
/// scipy 1.17.1 as statsmodels' `proportion_confint(k, n, alpha, method="beta")` computes it:
/// `beta.ppf(α/2, k, n-k+1)` and `beta.ppf(1-α/2, k+1, n-k)` (0 and 1 at the ends).
const CLOPPER_PEARSON: [(usize, usize, f64, f64, f64); 9] = [
    (0, 10, 0.05, 0.0, 0.3084971078187607),
    (3, 10, 0.05, 0.06673951117773447, 0.6524528500599973),
    (10, 10, 0.05, 0.6915028921812392, 1.0),
    (50, 100, 0.01, 0.3688614373589241, 0.6311385626410759),
    (5, 7, 0.1, 0.341261436155336, 0.9466244995297628),
    (600, 1000, 0.002, 0.5510754739370525, 0.6475692880798176),
    (990, 1000, 0.001, 0.9749365668583673, 0.997292424400835),
    (9990, 10000, 0.001, 0.9974763699815818, 0.9997300116177676),
    (99876, 100000, 0.001, 0.9983494143722804, 0.9990938694504343),
];

/// (k, n, α, lower): the one-sided lower bound as the paper's code calls it,
/// `proportion_confint(k, n, alpha=2α, method="beta")[0]` = scipy `beta.ppf(α, k, n-k+1)`.
const ONE_SIDED: [(usize, usize, f64, f64); 4] = [
    (1000, 1000, 0.001, 0.9931160484209338),
    (950, 1000, 0.001, 0.925046780060944),
    (520, 1000, 0.001, 0.4706744673534513),
    (9000, 10000, 0.001, 0.8904097336749064),
];

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.17}, want {want:.17} (diff {:.3e})",
        (got - want).abs()
    );
}

#[test]
fn clopper_pearson_matches_scipy() {
    for (k, n, a, lo, hi) in CLOPPER_PEARSON {
        let (l, h) = clopper_pearson(k, n, a);
        close(l, lo, 1e-11, &format!("lower({k}, {n}, {a})"));
        close(h, hi, 1e-11, &format!("upper({k}, {n}, {a})"));
    }
    for (k, n, a, lo) in ONE_SIDED {
        close(
            clopper_pearson_lower(k, n, a),
            lo,
            1e-11,
            &format!("one-sided lower({k}, {n}, {a})"),
        );
    }
    // Closed form at k = n: the α quantile of Beta(n, 1) is α^(1/n).
    for n in [1, 7, 100, 100_000] {
        close(
            clopper_pearson_lower(n, n, 0.001),
            0.001f64.powf(1.0 / n as f64),
            1e-13,
            &format!("k = n = {n}"),
        );
    }
    assert_eq!(clopper_pearson_lower(0, 50, 0.01), 0.0);
}

#[test]
fn beta_and_normal_functions_match_scipy() {
    // scipy.stats.beta.cdf(0.3, 2.5, 4.0), beta.cdf(0.999, 1000, 2).
    close(
        regularized_incomplete_beta(0.3, 2.5, 4.0),
        0.3521975859067672,
        1e-14,
        "I_0.3(2.5, 4)",
    );
    close(
        regularized_incomplete_beta(0.999, 1000.0, 2.0),
        0.7353908495419277,
        1e-12,
        "I_0.999(1000, 2)",
    );
    // The quantile inverts the CDF.
    for (p, a, b) in [(0.01, 3.0, 8.0), (0.5, 1.0, 1.0), (0.999, 40.0, 2.0)] {
        let x = beta_quantile(p, a, b);
        close(
            regularized_incomplete_beta(x, a, b),
            p,
            1e-13,
            "I(quantile)",
        );
    }
    // Γ(5) = 24, Γ(1/2) = √π.
    close(ln_gamma(5.0), 24f64.ln(), 1e-13, "ln Γ(5)");
    close(
        ln_gamma(0.5),
        0.5 * std::f64::consts::PI.ln(),
        1e-13,
        "ln Γ(1/2)",
    );
    // scipy.stats.norm.ppf and norm.cdf.
    for (p, z) in [
        (0.5, 0.0),
        (0.975, 1.959963984540054),
        (0.999, 3.090232306167813),
        (1e-10, -6.361340902404056),
        (0.75, 0.6744897501960817),
        (0.999999, 4.753424308817087),
        (0.8413447460685429, 1.0),
    ] {
        close(normal_quantile(p), z, 1e-9, &format!("Φ⁻¹({p})"));
    }
    for (x, p) in [
        (0.0, 0.5),
        (1.0, 0.8413447460685429),
        (-2.5, 0.006209665325776132),
        (5.0, 0.9999997133484281),
    ] {
        close(normal_cdf(x), p, 1e-15, &format!("Φ({x})"));
    }
    assert_eq!(normal_quantile(1.0), f64::INFINITY);
    assert!(normal_quantile(1.5).is_nan());
}

#[test]
fn binomial_test_matches_scipy() {
    // scipy.stats.binomtest(k, n, 0.5).pvalue.
    for (k, n, p) in [
        (60, 100, 0.05688793364098089),
        (55, 100, 0.36820161732669615),
        (520, 1000, 0.2174482932041415),
        (0, 5, 0.0625),
        (7, 10, 0.34375),
        (500, 1000, 1.0),
    ] {
        close(
            binomial_test_half(k, n),
            p,
            1e-12,
            &format!("binomtest({k}, {n})"),
        );
    }
}

// ---- linear models ------------------------------------------------------------------------------

/// Two classes with logits [0, w·x + b]: class 1 iff w·x + b > 0.
fn linear(w: &[f32], b: f32) -> Graph {
    let d = w.len();
    let mut g = Graph::new("linear", "x", vec![d]);
    let mut rows = vec![0.0f32; d];
    rows.extend_from_slice(w);
    let wt = Tensor::from_vec(rows, (2, d), &Device::Cpu).unwrap();
    let bt = Tensor::from_vec(vec![0.0f32, b], 2, &Device::Cpu).unwrap();
    let (wp, bp) = (g.add_param("w", wt, true), g.add_param("b", bt, true));
    g.add_node(
        "fc",
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_b: true,
        },
        vec![Operand::Value(0), Operand::Param(wp), Operand::Param(bp)],
    )
    .unwrap();
    g
}

const W: [f32; 6] = [0.8, -0.5, 0.3, 1.1, -0.2, 0.6];
const B: f32 = -0.15;

fn w_norm() -> f64 {
    W.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

/// A point at signed distance `t` from the boundary of [`linear`]`(W, B)`, moved along it by a
/// random offset (so the points differ in every coordinate).
fn point_at(t: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let norm = w_norm();
    let unit: Vec<f64> = W.iter().map(|&v| v as f64 / norm).collect();
    // Random point, projected onto the boundary, then moved t along the unit normal.
    let r: Vec<f64> = (0..W.len())
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    let s: f64 = r.iter().zip(&unit).map(|(a, u)| a * u).sum::<f64>() + B as f64 / norm;
    r.iter()
        .zip(&unit)
        .map(|(a, u)| (a - (s - t) * u) as f32)
        .collect()
}

/// Exact signed distance of x to the boundary (in f64).
fn signed_distance(x: &[f32]) -> f64 {
    let s: f64 = x
        .iter()
        .zip(W)
        .map(|(&a, w)| a as f64 * w as f64)
        .sum::<f64>()
        + B as f64;
    s / w_norm()
}

fn opts(sigma: f64, n: usize) -> SmoothingOptions {
    SmoothingOptions {
        sigma,
        n0: 100,
        n,
        alpha: 0.001,
        batch_size: 500,
    }
}

#[test]
fn linear_model_radius_matches_the_closed_form_and_never_exceeds_the_distance() {
    let g = linear(&W, B);
    let sigma = 0.5;
    let n = 4000;
    let o = opts(sigma, n);
    let mut pts = ChaCha8Rng::seed_from_u64(11);
    let mut checked = 0;
    for i in 0..40 {
        // Distances spread over [-1.5, 1.5], away from the boundary (near it: another test).
        let t = -1.5 + 3.0 * (i as f64 + 0.5) / 40.0;
        if t.abs() < 0.15 {
            continue;
        }
        let x = point_at(t, &mut pts);
        let dist = signed_distance(&x);
        assert!((dist - t).abs() < 1e-5, "point construction: {dist} vs {t}");
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + i);
        let c = certify(&g, &x, &o, &mut rng).unwrap();
        let truth = usize::from(dist > 0.0);
        let radius_bound = dist.abs() + 1e-4;
        assert!(
            c.radius <= radius_bound,
            "t = {t}: certified radius {} exceeds the true distance {}",
            c.radius,
            dist.abs()
        );
        // p of the true class, and the Monte-Carlo band of CERTIFY's radius: the radii that
        // counts within 5 standard deviations of n·p would give.
        let p = normal_cdf(dist.abs() / sigma);
        let sd = (p * (1.0 - p) * n as f64).sqrt();
        let k_at = |z: f64| ((n as f64 * p + z * sd).round().clamp(0.0, n as f64)) as usize;
        let r_at = |k: usize| sigma * normal_quantile(clopper_pearson_lower(k, n, o.alpha));
        let (r_lo, r_hi) = (r_at(k_at(-5.0)), r_at(k_at(5.0)));
        assert_eq!(c.class, Some(truth), "t = {t}: {c:?}");
        assert!(
            c.radius >= r_lo - 1e-12 && c.radius <= r_hi + 1e-12,
            "t = {t}: radius {} outside the Monte-Carlo band [{r_lo}, {r_hi}] ({c:?})",
            c.radius
        );
        // The plain estimate σ·Φ⁻¹(k/n) recovers the distance (the closed form) unless p is so
        // close to 1 that n samples cannot resolve it.
        if p < 0.995 {
            let est = sigma * normal_quantile(c.count as f64 / n as f64);
            let band = sigma
                * (normal_quantile((p + 5.0 * sd / n as f64).min(1.0 - 1e-9))
                    - normal_quantile(p - 5.0 * sd / n as f64));
            assert!(
                (est - dist.abs()).abs() <= band,
                "t = {t}: σ·Φ⁻¹(k/n) = {est}, distance {}, band {band}",
                dist.abs()
            );
        }
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn abstains_near_the_boundary() {
    let g = linear(&W, B);
    let o = opts(0.5, 2000);
    let mut pts = ChaCha8Rng::seed_from_u64(5);
    for (i, t) in [-0.004, -0.001, 0.0005, 0.003].into_iter().enumerate() {
        let x = point_at(t, &mut pts);
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let c = certify(&g, &x, &o, &mut rng).unwrap();
        assert_eq!(c.class, None, "t = {t}: p ≈ 1/2 must abstain: {c:?}");
        assert_eq!(c.radius, 0.0);
        assert!(c.p_a_lower < 0.5);
        let p = predict(&g, &x, &o, &mut rng).unwrap();
        assert_eq!(p.class, None, "t = {t}: PREDICT must abstain: {p:?}");
        assert!(p.p_value > o.alpha);
        assert_eq!(p.count_a + p.count_b, o.n);
    }
    // Far from it, both answer with the true class.
    for t in [-1.0, 0.8] {
        let x = point_at(t, &mut pts);
        let truth = usize::from(t > 0.0);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        assert_eq!(certify(&g, &x, &o, &mut rng).unwrap().class, Some(truth));
        let p = predict(&g, &x, &o, &mut rng).unwrap();
        assert_eq!(p.class, Some(truth), "{p:?}");
        assert!(p.p_value <= o.alpha);
    }
}

#[test]
fn noise_has_the_requested_standard_deviation() {
    // f(x) = [x > 0] in one dimension: P(class 1 at x) = Φ(x / σ).
    let g = linear(&[1.0], 0.0);
    let n = 20_000;
    for (x, sigma) in [(0.3f32, 1.0f64), (-1.0, 0.5), (0.05, 0.1)] {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let counts = sample_counts(&g, &[x], sigma, n, 777, &mut rng).unwrap();
        assert_eq!(counts.iter().sum::<usize>(), n);
        let p = normal_cdf(x as f64 / sigma);
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        let got = counts[1] as f64 / n as f64;
        assert!(
            (got - p).abs() < 5.0 * sd,
            "x = {x}, σ = {sigma}: share {got}, expected {p} ± {sd}"
        );
    }
}

#[test]
fn seeded_runs_repeat_and_batch_size_only_changes_speed() {
    let g = linear(&W, B);
    let mut pts = ChaCha8Rng::seed_from_u64(2);
    let x = point_at(0.2, &mut pts);
    let o = opts(0.5, 1500);
    let run = |seed: u64, batch: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        certify(
            &g,
            &x,
            &SmoothingOptions {
                batch_size: batch,
                ..o
            },
            &mut rng,
        )
        .unwrap()
    };
    let a = run(42, 500);
    assert_eq!(a, run(42, 500));
    assert_eq!(a, run(42, 64));
    assert_eq!(a, run(42, 1));
    // Another seed draws other noise (p ≈ 0.66 here: the counts differ).
    assert_ne!(a.count, run(43, 500).count);
}

#[test]
fn bad_settings_and_inputs_are_errors() {
    let g = linear(&W, B);
    let x = vec![0.0f32; W.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let base = opts(0.5, 200);
    let bad = [
        (SmoothingOptions { sigma: 0.0, ..base }, "σ"),
        (
            SmoothingOptions {
                sigma: f64::NAN,
                ..base
            },
            "σ",
        ),
        (SmoothingOptions { n: 50, ..base }, "n0"),
        (SmoothingOptions { n0: 0, ..base }, "n0"),
        (SmoothingOptions { alpha: 1.0, ..base }, "α"),
        (SmoothingOptions { alpha: 0.0, ..base }, "α"),
        (
            SmoothingOptions {
                batch_size: 0,
                ..base
            },
            "batch",
        ),
    ];
    for (o, needle) in bad {
        let e = certify(&g, &x, &o, &mut rng).unwrap_err().to_string();
        assert!(e.contains(needle), "{o:?}: {e}");
        assert!(predict(&g, &x, &o, &mut rng).is_err());
    }
    let e = certify(&g, &[0.0; 3], &base, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("6"), "{e}");
}
