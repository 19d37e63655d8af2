//! Loading models and datasets named on the command line.

use anyhow::{bail, Context, Result};
use ruse_data::{DataSpec, Dataset, Split};
use ruse_graph::Graph;
use sha2::{Digest, Sha256};

use crate::cli::{DataArgs, ModelArgs};

/// The bundled default model: a cnn-pool trained by ruse on MNIST (see assets/models/README.md).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../../assets/models/mnist-cnn-pool.onnx");

/// Models bundled in the binary, by the name `--model` / `--compare` accept: (name, ONNX bytes,
/// where it came from as reports print it). See assets/models/README.md for how each was trained.
pub const BUNDLED_MODELS: &[(&str, &[u8], &str)] = &[
    ("default", DEFAULT_MODEL, "default (bundled mnist cnn-pool)"),
    (
        "mnist-pgdat",
        include_bytes!("../../../assets/models/mnist-pgdat.onnx"),
        "mnist-pgdat (bundled PGD-AT mnist cnn-small, ε = 0.3)",
    ),
    (
        "mnist-ibp",
        include_bytes!("../../../assets/models/mnist-ibp.onnx"),
        "mnist-ibp (bundled IBP-trained mnist cnn-small, ε = 0.1)",
    ),
    (
        "signs",
        include_bytes!("../../../assets/models/signs-cnn.onnx"),
        "signs (bundled cnn-pool on synthetic traffic signs, 3×32×32, 12 classes)",
    ),
];

/// A loaded model with where it came from.
pub struct LoadedModel {
    /// The graph.
    pub graph: Graph,
    /// Path or "default".
    pub source: String,
    /// SHA-256 of the model bytes.
    pub sha256: String,
}

/// Parses `LO,HI`.
pub fn parse_domain(s: &str) -> Result<(f32, f32)> {
    let parts: Vec<&str> = s.split(',').collect();
    let [lo, hi] = parts.as_slice() else {
        bail!("input domain '{s}' must be LO,HI (e.g. 0,1)");
    };
    let lo: f32 = lo
        .trim()
        .parse()
        .with_context(|| format!("'{lo}' is not a number"))?;
    let hi: f32 = hi
        .trim()
        .parse()
        .with_context(|| format!("'{hi}' is not a number"))?;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        bail!("input domain '{s}' needs finite LO < HI");
    }
    Ok((lo, hi))
}

/// Loads `--model` (a file, `default` or another bundled name) and applies `--input-domain`.
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    let bundled = BUNDLED_MODELS.iter().find(|b| b.0 == args.model);
    let (bytes, source) = if let Some((_, bytes, source)) = bundled {
        (bytes.to_vec(), source.to_string())
    } else {
        let b = std::fs::read(&args.model).with_context(|| {
            let names: Vec<&str> = BUNDLED_MODELS.iter().map(|b| b.0).collect();
            format!(
                "cannot read model file '{}' (bundled models: {})",
                args.model,
                names.join(", ")
            )
        })?;
        (b, args.model.clone())
    };
    let mut graph = ruse_graph::import::import_onnx(&bytes, std::path::Path::new(&source))?;
    if let Some(d) = &args.input_domain {
        graph.input_domain = parse_domain(d)?;
    }
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    Ok(LoadedModel {
        graph,
        source,
        sha256,
    })
}

/// Loads `--data` (bundled, or KIND:DIR) with split and limit.
pub fn load_data(args: &DataArgs) -> Result<Dataset> {
    let split: Split = args.split.parse()?;
    let data = if args.data == "bundled" {
        let d = ruse_data::bundled_mnist_test()?;
        if split == Split::Train {
            bail!("the bundled data is a test subset only; use --data mnist:DIR for training data");
        }
        match args.limit {
            Some(n) => d.take(n),
            None => d,
        }
    } else {
        let spec: DataSpec = args.data.parse()?;
        ruse_data::load(&spec, split, args.limit)?
    };
    if data.is_empty() {
        bail!("dataset '{}' holds no samples", args.data);
    }
    Ok(data)
}

/// Loads a model and a dataset for attacking: the images must fit the model's input, lie in its
/// input domain, and have no more classes than the model scores.
pub fn load_for_attack(model: &ModelArgs, data: &DataArgs) -> Result<(LoadedModel, Dataset)> {
    let m = load_model(model)?;
    let d = load_data(data)?;
    let g = &m.graph;
    if g.input_shape() != d.shape() {
        bail!(
            "the model takes input {:?} but '{}' has images {:?}",
            g.input_shape(),
            data.data,
            d.shape()
        );
    }
    check_in_domain(&d, g.input_domain, &data.data)?;
    if g.output_shape().len() == 1 && d.num_classes > g.output_len() {
        bail!(
            "the model scores {} classes but '{}' has {}",
            g.output_len(),
            data.data,
            d.num_classes
        );
    }
    Ok((m, d))
}

/// Rejects data that lies outside the model's input domain (or is not finite): attacks clamp to
/// the domain, so such inputs would be moved before any perturbation and counted wrongly.
pub fn check_in_domain(data: &Dataset, domain: (f32, f32), what: &str) -> Result<()> {
    if let Some((i, v)) = data
        .images
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= domain.0 && **v <= domain.1))
    {
        bail!(
            "{what}: sample {} holds {v}, outside the model's input domain [{}, {}]; set --input-domain to the data's range",
            i / data.sample_len().max(1),
            domain.0,
            domain.1
        );
    }
    Ok(())
}
