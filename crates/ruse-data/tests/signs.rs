//! The synthetic traffic-sign set: determinism, seeds, disjoint splits, balance, shapes, spec errors.

use ruse_data::signs::{self, canonical_sign, render_view, SignClass, ViewParams, CLASSES};
use ruse_data::{DataSpec, Split};

fn load(spec: &str, split: Split, limit: Option<usize>) -> ruse_data::Dataset {
    let spec: DataSpec = spec.parse().expect("spec parses");
    ruse_data::load(&spec, split, limit).expect("signs render")
}

#[test]
fn same_seed_same_bytes_and_prefixes_agree() {
    let a = load("signs:5:60", Split::Test, None);
    let b = load("signs:5:60", Split::Test, None);
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, b.labels);
    // A limit draws only a prefix, identical to the prefix of the full set.
    let c = load("signs:5:60", Split::Test, Some(13));
    assert_eq!(c.len(), 13);
    assert_eq!(&a.images[..c.images.len()], &c.images[..]);
}

#[test]
fn different_seeds_differ_and_splits_are_disjoint() {
    let a = load("signs:1:48", Split::Test, None);
    let b = load("signs:2:48", Split::Test, None);
    let t = load("signs:1:48", Split::Train, None);
    let d = a.sample_len();
    for i in 0..a.len() {
        assert_ne!(a.image(i), b.image(i), "seed 1 and 2 share sample {i}");
        for j in 0..t.len() {
            assert_ne!(a.image(i), t.image(j), "test {i} equals train {j}");
        }
    }
    // Images differ a lot, not by a rounding: mean absolute difference well above noise.
    let diff: f32 = a
        .images
        .iter()
        .zip(&b.images)
        .map(|(p, q)| (p - q).abs())
        .sum::<f32>()
        / (a.len() * d) as f32;
    assert!(diff > 0.05, "mean |Δ| {diff}");
}

#[test]
fn shapes_balance_range_and_names() {
    let k = CLASSES.len();
    let a = load("signs:3:120", Split::Test, None);
    assert_eq!((a.len(), a.shape(), a.num_classes), (120, [3, 32, 32], k));
    assert!(a.images.iter().all(|v| (0.0..=1.0).contains(v)));
    for c in 0..k {
        assert_eq!(a.labels.iter().filter(|&&l| l == c).count(), 120 / k);
    }
    assert_eq!(a.class_names[0], "stop");
    assert!(a.class_names.contains(&"speed 45".to_string()));
    assert_eq!(SignClass::Speed(45).label(), 3);
    let big = load("signs:3:12:64", Split::Train, None);
    assert_eq!(big.shape(), [3, 64, 64]);
    // Default sizes: 1000 test samples.
    assert_eq!(load("signs:9", Split::Test, Some(5)).len(), 5);
    let spec: DataSpec = "signs:9".parse().unwrap();
    assert_eq!(signs::SignsSpec::parse("9").unwrap().len, None);
    assert_eq!(spec.to_string(), "signs:9");
}

#[test]
fn bad_specs_are_clear_errors() {
    for (spec, needle) in [
        ("signs:abc", "seed \"abc\""),
        ("signs:1:0", "sample count 0"),
        ("signs:1:99999999", "out of range"),
        ("signs:1:10:4", "image size 4"),
        ("signs:1:10:100000", "image size 100000"),
        ("signs:1:x", "sample count \"x\""),
        ("signs:1:2:32:9", "SEED[:N[:SIZE]]"),
    ] {
        let parsed: DataSpec = spec.parse().expect("kind parses");
        let err = ruse_data::load(&parsed, Split::Test, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle) && err.contains(spec), "{spec}: {err}");
    }
}

#[test]
fn a_signs_spec_without_seed_says_what_to_write() {
    let err = "signs:".parse::<DataSpec>().unwrap_err().to_string();
    assert!(
        err.contains("signs needs a seed") && err.contains("SEED[:N[:SIZE]]"),
        "{err}"
    );
}

#[test]
fn canonical_signs_have_their_colours() {
    // Stop: red octagon with a white rim; centre row holds white text on red.
    let (rgb, alpha) = canonical_sign(SignClass::Stop, 64);
    let n = 64 * 64;
    assert!(
        alpha[0] < 0.01 && alpha[32 * 64 + 32] > 0.99,
        "corner transparent, centre opaque"
    );
    let red = (0..n)
        .filter(|&i| alpha[i] > 0.99 && rgb[i] > 0.7 && rgb[n + i] < 0.2)
        .count();
    let white = (0..n)
        .filter(|&i| alpha[i] > 0.99 && rgb[n + i] > 0.9)
        .count();
    assert!(red > n / 3 && white > n / 20, "red {red}, white {white}");
    // Priority road: yellow centre; keep right: blue.
    let (rgb, _) = canonical_sign(SignClass::Priority, 32);
    let c = 16 * 32 + 16;
    assert!(rgb[c] > 0.9 && rgb[1024 + c] > 0.7 && rgb[2048 + c] < 0.2);
    let (rgb, _) = canonical_sign(SignClass::KeepRight, 32);
    assert!(rgb[2048 + 4 * 32 + 16] > 0.6 && rgb[4 * 32 + 16] < 0.2);
    // Speed limits differ only in their digits, and do differ.
    let (s30, _) = canonical_sign(SignClass::Speed(30), 32);
    let (s80, _) = canonical_sign(SignClass::Speed(80), 32);
    assert!(
        s30.iter()
            .zip(&s80)
            .filter(|(a, b)| (*a - *b).abs() > 0.5)
            .count()
            > 20
    );
}

#[test]
fn frontal_view_shows_the_sign_over_the_background() {
    let (tex, alpha) = canonical_sign(SignClass::NoEntry, 64);
    let bg = vec![0.0f32; 3 * 32 * 32];
    let img = render_view(&tex, &alpha, &bg, 32, &ViewParams::frontal());
    // Centre: white bar; a bit above it: red; the corner: black background.
    let at = |ch: usize, y: usize, x: usize| img[ch * 1024 + y * 32 + x];
    assert!(at(0, 16, 16) > 0.9 && at(1, 16, 16) > 0.9);
    assert!(at(0, 8, 16) > 0.6 && at(1, 8, 16) < 0.2);
    assert!(at(0, 0, 0) < 0.01);
}

/// `SIGNS_DUMP=path.png cargo test --release -p ruse-data --test signs dump` writes a grid of
/// samples, for looking at the renders.
#[test]
fn dump() {
    let Ok(path) = std::env::var("SIGNS_DUMP") else {
        return;
    };
    let size: usize = std::env::var("SIGNS_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let d = load(&format!("signs:0:96:{size}"), Split::Test, None);
    let (cols, rows) = (12, 8);
    let (w, h) = (cols * size, rows * size);
    let mut buf = vec![0u8; w * h * 3];
    for i in 0..d.len() {
        let (r, c) = (i / cols, i % cols);
        for ch in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let v = d.image(i)[ch * size * size + y * size + x];
                    buf[((r * size + y) * w + c * size + x) * 3 + ch] = (v * 255.0) as u8;
                }
            }
        }
    }
    image::save_buffer(&path, &buf, w as u32, h as u32, image::ColorType::Rgb8).unwrap();
}
