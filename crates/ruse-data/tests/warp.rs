//! Properties of the warp utility: adjoint identity, identity map, exact 90° rotation, inverses.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ruse_data::warp::{rotate_translate, warp, warp_adjoint, Homography, WarpPlan};

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>() - 0.5).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

#[test]
fn adjoint_identity_on_random_warps() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for trial in 0..20 {
        let (src, out) = ([9 + trial % 5, 11], [10, 8 + trial % 4]);
        let h =
            Homography::perspective(rng.random_range(-0.02..0.02), rng.random_range(-0.02..0.02))
                .after(&rotate_translate(
                    rng.random_range(-1.0..1.0),
                    1.5,
                    -0.7,
                    src[0],
                    src[1],
                ))
                .after(&Homography::scale(rng.random_range(0.6..1.4), 1.1));
        let plan = WarpPlan::new(&h, src, out);
        let x = random(3 * src[0] * src[1], &mut rng);
        let y = random(3 * out[0] * out[1], &mut rng);
        let lhs = dot(&plan.apply(&x, 0.0), &y);
        let rhs = dot(&x, &plan.adjoint(&y));
        assert!(
            (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
            "trial {trial}: {lhs} vs {rhs}"
        );
        // The free functions agree with the plan on same-size grids.
        let sq = WarpPlan::new(&h, src, src);
        let xs = &x[..src[0] * src[1]];
        assert_eq!(warp(xs, [1, src[0], src[1]], &h, 0.3), sq.apply(xs, 0.3));
        let ys = random(src[0] * src[1], &mut rng);
        assert_eq!(warp_adjoint(&ys, [1, src[0], src[1]], &h), sq.adjoint(&ys));
    }
}

#[test]
fn identity_reproduces_the_image() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = random(2 * 7 * 5, &mut rng);
    let y = warp(&x, [2, 7, 5], &Homography::identity(), 9.0);
    for (a, b) in x.iter().zip(&y) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn quarter_turn_is_an_index_permutation() {
    let n = 6;
    let x: Vec<f32> = (0..n * n).map(|v| v as f32).collect();
    let h = rotate_translate(std::f64::consts::FRAC_PI_2, 0.0, 0.0, n, n);
    let y = warp(&x, [1, n, n], &h, -1.0);
    // Rotation by +90° about the centre sends source (x, y) to (n-1-y, x).
    for sy in 0..n {
        for sx in 0..n {
            let (ox, oy) = (n - 1 - sy, sx);
            assert!(
                (y[oy * n + ox] - x[sy * n + sx]).abs() < 1e-4,
                "({sx},{sy})"
            );
        }
    }
}

#[test]
fn shifts_fill_and_translate() {
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let y = warp(&x, [1, 4, 4], &Homography::translation(1.0, 0.0), 0.5);
    for r in 0..4 {
        assert_eq!(y[r * 4], 0.5, "the uncovered column is fill");
        for c in 1..4 {
            assert!((y[r * 4 + c] - x[r * 4 + c - 1]).abs() < 1e-5);
        }
    }
}

#[test]
fn inverse_and_quad_fit() {
    let h = Homography::perspective(0.01, -0.02)
        .after(&Homography::rotation(0.3))
        .after(&Homography::translation(2.0, -1.0));
    let inv = h.inverse().expect("invertible");
    let (x, y) = inv.apply(h.apply(3.0, 4.0).0, h.apply(3.0, 4.0).1);
    assert!((x - 3.0).abs() < 1e-9 && (y - 4.0).abs() < 1e-9);
    assert!(Homography::scale(0.0, 1.0).inverse().is_none());
    let src = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)];
    let dst = src.map(|(a, b)| h.apply(a, b));
    let fit = Homography::from_quad(src, dst).expect("four points in general position");
    let (u, v) = fit.apply(5.0, 7.0);
    let (u0, v0) = h.apply(5.0, 7.0);
    assert!((u - u0).abs() < 1e-6 && (v - v0).abs() < 1e-6);
}

#[test]
fn point_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, eps) = (8, 1e-3);
    let x = random(n * n, &mut rng);
    let at = |tx: f64, ty: f64| WarpPlan::new(&Homography::translation(-tx, -ty), [n, n], [n, n]);
    // Translating the image by -t samples the source at p + t: ∂out/∂t = ∂out/∂s.
    let base = at(0.3, 0.4);
    let (gx, gy) = base.point_gradient(&x, 0.0);
    let fx: Vec<f32> = at(0.3 + eps, 0.4).apply(&x, 0.0);
    let fy: Vec<f32> = at(0.3, 0.4 + eps).apply(&x, 0.0);
    let f0 = base.apply(&x, 0.0);
    for i in 0..n * n {
        let dx = (fx[i] - f0[i]) / eps as f32;
        let dy = (fy[i] - f0[i]) / eps as f32;
        assert!(
            (dx - gx[i]).abs() < 1e-2 && (dy - gy[i]).abs() < 1e-2,
            "pixel {i}"
        );
    }
}
