//! The 15 common corruptions: seeded, shape- and range-preserving, effective, ordered by severity.

use rand_chacha::ChaCha8Rng;
use ruse_data::corruptions::{corrupt_dataset, sample_rng, Corruption, ALL, MAX_SEVERITY};
use ruse_data::Dataset;

/// A 32×32 RGB test card: colour gradients, a bright square and a dark disk.
fn rgb_card(variant: usize) -> Vec<f32> {
    let (h, w) = (32usize, 32usize);
    let mut v = vec![0f32; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let square = (8 + variant..20 + variant).contains(&x) && (6..18).contains(&y);
            let disk = ((x as f32 - 22.0).powi(2) + (y as f32 - 22.0).powi(2)) < 36.0;
            let base = [x as f32 / 31.0, y as f32 / 31.0, 0.5];
            for (c, b) in base.iter().enumerate() {
                v[c * h * w + i] = if disk {
                    0.05
                } else if square {
                    0.95
                } else {
                    0.2 + 0.6 * b
                };
            }
        }
    }
    v
}

fn mnist(n: usize) -> Dataset {
    ruse_data::bundled_mnist_test()
        .expect("bundled MNIST loads")
        .take(n)
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs() as f64)
        .sum::<f64>()
        / a.len() as f64
}

fn apply(c: Corruption, img: &[f32], shape: [usize; 3], sev: usize, i: usize) -> Vec<f32> {
    let mut rng: ChaCha8Rng = sample_rng(7, c, sev, i);
    c.apply(img, shape, sev, &mut rng)
        .unwrap_or_else(|e| panic!("{c} severity {sev}: {e}"))
}

#[test]
fn every_type_and_severity_is_seeded_keeps_shape_and_range_and_changes_the_image() {
    let d = mnist(4);
    let gray: Vec<(Vec<f32>, [usize; 3])> = (0..d.len())
        .map(|i| (d.image(i).to_vec(), d.shape()))
        .collect();
    let mut rgb: Vec<(Vec<f32>, [usize; 3])> = (0..2).map(|v| (rgb_card(v), [3, 32, 32])).collect();
    // Other sizes: a non-square RGB image and an 8×8 grey one (sklearn-digits size).
    let odd: Vec<f32> = (0..3 * 40 * 48)
        .map(|i| (i % 48) as f32 / 47.0 * 0.8 + ((i / 48) % 40 > 20) as u8 as f32 * 0.2)
        .collect();
    rgb.push((odd, [3, 40, 48]));
    let tiny: Vec<f32> = (0..64)
        .map(|i| if (i % 8 + i / 8) % 3 == 0 { 0.9 } else { 0.1 })
        .collect();
    rgb.push((tiny, [1, 8, 8]));
    for c in ALL {
        for sev in 1..=MAX_SEVERITY {
            for (i, (img, shape)) in gray.iter().chain(&rgb).enumerate() {
                let a = apply(c, img, *shape, sev, i);
                let b = apply(c, img, *shape, sev, i);
                assert_eq!(a, b, "{c} severity {sev} is not deterministic under a seed");
                assert_eq!(a.len(), img.len(), "{c} severity {sev} changed the size");
                assert!(
                    a.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
                    "{c} severity {sev} left [0,1]"
                );
                assert!(
                    mean_abs_diff(&a, img) > 1e-4,
                    "{c} severity {sev} did not change image {i} (shape {shape:?})"
                );
            }
        }
    }
}

#[test]
fn severity_five_perturbs_more_than_severity_one_for_every_type() {
    let d = mnist(24);
    for c in ALL {
        let mut per_sev = [0f64; MAX_SEVERITY];
        for (s, slot) in per_sev.iter_mut().enumerate() {
            let sev = s + 1;
            let mut total = 0.0;
            for i in 0..d.len() {
                total += mean_abs_diff(&apply(c, d.image(i), d.shape(), sev, i), d.image(i));
            }
            for v in 0..4 {
                let img = rgb_card(v);
                total += mean_abs_diff(&apply(c, &img, [3, 32, 32], sev, 100 + v), &img);
            }
            *slot = total / (d.len() + 4) as f64;
        }
        eprintln!("{c:>18}: {per_sev:.4?}");
        assert!(
            per_sev[4] > per_sev[0],
            "{c}: mean |Δ| at severity 5 ({:.4}) is not above severity 1 ({:.4})",
            per_sev[4],
            per_sev[0]
        );
    }
}

#[test]
fn seeds_matter_and_subsets_match_the_whole_set() {
    let d = mnist(6);
    let whole = corrupt_dataset(&d, Corruption::Snow, 3, 11, None).expect("snow");
    let sub = corrupt_dataset(&d, Corruption::Snow, 3, 11, Some(&[4, 1])).expect("snow");
    assert_eq!(sub.labels, vec![d.labels[4], d.labels[1]]);
    assert_eq!(sub.image(0), whole.image(4));
    assert_eq!(sub.image(1), whole.image(1));
    let other = corrupt_dataset(&d, Corruption::Snow, 3, 12, None).expect("snow");
    assert_ne!(
        other.images, whole.images,
        "a different seed gave the same snow"
    );
}

#[test]
fn bad_names_severities_and_shapes_are_clear_errors() {
    let e = "sparkle".parse::<Corruption>().unwrap_err().to_string();
    assert!(
        e.contains("unknown corruption 'sparkle'") && e.contains("gaussian_noise"),
        "{e}"
    );
    assert_eq!(
        "Zoom-Blur".parse::<Corruption>().ok(),
        Some(Corruption::ZoomBlur)
    );
    let img = vec![0.5f32; 16];
    let mut rng = sample_rng(0, Corruption::Fog, 1, 0);
    for sev in [0usize, 6] {
        let e = Corruption::Fog
            .apply(&img, [1, 4, 4], sev, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("severity {sev} is out of range")),
            "{e}"
        );
    }
    let e = Corruption::Fog
        .apply(&img, [1, 4, 5], 1, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs 20 values, got 16"), "{e}");
}
