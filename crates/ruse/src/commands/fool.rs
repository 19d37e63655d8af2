//! `ruse fool`: fooling images from noise, one per class, with PNGs, a grid and fool.json.

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ruse_attack::fooling::{confidences, Ascent, Cppn, DirectImage, Evolution, FoolingImage};
use ruse_attack::Model;
use ruse_report::Image;
use serde_json::json;

use crate::cli::FoolArgs;
use crate::model::load_model;

/// Parses `--class`: a class number below `k`, or `all`.
fn parse_classes(s: &str, k: usize) -> Result<Vec<usize>> {
    if s.trim() == "all" {
        return Ok((0..k).collect());
    }
    let c: usize = s
        .trim()
        .parse()
        .with_context(|| format!("--class '{s}' is neither a class number nor 'all'"))?;
    if c >= k {
        bail!(
            "--class {c} is not a class of this model (it scores classes 0..={})",
            k - 1
        );
    }
    Ok(vec![c])
}

/// Maps an image from the model's domain to 8-bit grey levels and back, as the PNG stores it.
fn through_png(x: &[f32], (lo, hi): (f32, f32)) -> Vec<f32> {
    x.iter()
        .map(|v| {
            let q = (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() / 255.0;
            lo + (hi - lo) * q
        })
        .collect()
}

/// Encodes a C×H×W image in [0,1] (1 or 3 channels) as PNG at its own resolution.
fn png_bytes(px: &[f32], [c, h, w]: [usize; 3]) -> Result<Vec<u8>> {
    let to8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let plane = h * w;
    let mut bytes = Vec::new();
    let mut cur = std::io::Cursor::new(&mut bytes);
    match c {
        1 => image::GrayImage::from_raw(w as u32, h as u32, px.iter().map(|&v| to8(v)).collect())
            .context("image buffer size")?
            .write_to(&mut cur, image::ImageFormat::Png)?,
        3 => image::RgbImage::from_raw(
            w as u32,
            h as u32,
            (0..plane)
                .flat_map(|i| (0..3).map(move |k| to8(px[k * plane + i])))
                .collect(),
        )
        .context("image buffer size")?
        .write_to(&mut cur, image::ImageFormat::Png)?,
        _ => bail!("only 1- or 3-channel images can be written as PNG"),
    }
    Ok(bytes)
}

/// Runs the search and writes the images and the summary.
pub fn run(a: FoolArgs) -> Result<()> {
    anyhow::ensure!(
        a.confidence > 0.0 && a.confidence < 1.0,
        "--confidence must lie strictly between 0 and 1"
    );
    let m = load_model(&a.model)?;
    let g = &m.graph;
    let model = Model::new(g)?;
    let k = model.classes();
    let classes = parse_classes(&a.class, k)?;
    let shape: [usize; 3] = match g.input_shape() {
        [c, h, w] if *c == 1 || *c == 3 => [*c, *h, *w],
        s => bail!("ruse fool needs a model taking 1- or 3-channel images, this one takes {s:?}"),
    };
    let domain = g.input_domain;
    // Search a little past the bar, so the image still clears it after 8-bit rounding.
    let search_threshold = a.confidence + 0.5 * (1.0 - a.confidence);
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let t0 = std::time::Instant::now();
    let found: Vec<FoolingImage> = match a.method.as_str() {
        "direct" | "cppn" => {
            anyhow::ensure!(a.max_queries >= 1, "--max-queries must be ≥ 1");
            anyhow::ensure!(a.offspring >= 1, "--offspring must be ≥ 1");
            let evo = Evolution {
                max_queries: a.max_queries.saturating_mul(classes.len() as u64),
                offspring: a.offspring,
                threshold: search_threshold,
            };
            let d = model.input_len();
            if a.method == "direct" {
                evo.run(
                    &model,
                    &classes,
                    |r| DirectImage::random(d, domain, r),
                    &mut rng,
                )?
            } else {
                anyhow::ensure!(a.cppn_nodes >= 1, "--cppn-nodes must be ≥ 1");
                let nodes = a.cppn_nodes;
                evo.run(
                    &model,
                    &classes,
                    |r| Cppn::random(nodes, shape[0], r),
                    &mut rng,
                )?
            }
        }
        "gradient" => {
            anyhow::ensure!(a.steps >= 1, "--steps must be ≥ 1");
            anyhow::ensure!(
                a.blur_sigma >= 0.0 && a.blur_sigma.is_finite(),
                "--blur-sigma must be ≥ 0"
            );
            Ascent {
                steps: a.steps,
                step_size: a.step_size,
                l2_decay: a.l2_decay,
                blur_every: a.blur_every,
                blur_sigma: a.blur_sigma,
                threshold: search_threshold,
            }
            .run(&model, &classes, &mut rng)?
        }
        other => bail!("unknown --method '{other}': use direct, cppn or gradient"),
    };
    let seconds = t0.elapsed().as_secs_f64();
    // Re-check what is written: the 8-bit images, in a fresh forward pass.
    let written: Vec<Vec<f32>> = found
        .iter()
        .map(|f| through_png(&f.image, domain))
        .collect();
    let conf = confidences(&model, &written.concat(), &classes)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let unit = |x: &[f32]| -> Vec<f32> {
        x.iter()
            .map(|v| (v - domain.0) / (domain.1 - domain.0))
            .collect()
    };
    let mut grid = Vec::new();
    let mut per_class = Vec::new();
    println!(
        "class  confidence  {}  success",
        if a.method == "gradient" {
            "steps"
        } else {
            "queries"
        }
    );
    for ((f, x), &c) in found.iter().zip(&written).zip(&conf) {
        let px = unit(x);
        let path = a.out.join(format!("class_{}.png", f.class));
        std::fs::write(&path, png_bytes(&px, shape)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let ok = c >= a.confidence;
        grid.push(Image {
            pixels: px,
            shape,
            // Rounded down, so 99.96% never reads as 100.0.
            label: format!("{} {:.1}", f.class, (1000.0 * c).floor() / 10.0),
        });
        per_class.push(json!({
            "class": f.class,
            "method": a.method,
            "confidence": c,
            "confidence_before_8bit": f.confidence,
            "queries": f.queries,
            "steps": f.steps,
            "success": ok,
            "png": path.file_name().map(|n| n.to_string_lossy().to_string()),
        }));
        println!(
            "{:>5}  {:>9.2}%  {:>7}  {}",
            f.class,
            100.0 * c,
            if a.method == "gradient" {
                f.steps as u64
            } else {
                f.queries
            },
            if ok { "yes" } else { "no" }
        );
    }
    let grid_path = a.out.join("grid.png");
    let cols = grid.len().min(10);
    match ruse_report::image_grid::image_grid_png(&grid, cols, 4) {
        Some(png) => std::fs::write(&grid_path, png)
            .with_context(|| format!("cannot write {}", grid_path.display()))?,
        None => bail!("could not render the grid"),
    }
    let fooled = conf.iter().filter(|&&c| c >= a.confidence).count();
    let report = json!({
        "model": m.source,
        "model_sha256": m.sha256,
        "method": a.method,
        "seed": a.seed,
        "confidence_required": a.confidence,
        "max_queries_per_class": a.max_queries,
        "steps": a.steps,
        "fooled": fooled,
        "queries_meaning": if a.method == "gradient" {
            "gradient evaluations (one forward and one backward pass each) for this class"
        } else {
            "model evaluations spent by the whole run when this class first reached the bar (all classes share one population)"
        },
        "classes": per_class,
        "forwards": model.forwards(),
        "gradients": model.gradients(),
        "seconds": seconds,
    });
    let json_path = a.out.join("fool.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!(
        "{fooled}/{} classes at ≥ {:.0}% confidence ({seconds:.1} s); wrote {} PNGs, {} and {}",
        classes.len(),
        100.0 * a.confidence,
        classes.len(),
        grid_path.display(),
        json_path.display()
    );
    Ok(())
}
