//! `ruse eval`: clean accuracy of a model on a dataset.

use anyhow::Result;
use serde_json::json;

use crate::cli::EvalArgs;
use crate::model::{load_data, load_model};
use crate::progress::bar;

/// Runs the evaluation and prints tables or one JSON object.
pub fn run(a: EvalArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size >= 1, "--batch-size must be ≥ 1");
    let m = load_model(&a.model)?;
    let data = load_data(&a.data)?;
    let pb = bar(data.len() as u64, "eval");
    let r = ruse_train::evaluate(&m.graph, &data, a.batch_size, |done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    if a.json {
        let out = json!({
            "model": m.source,
            "model_sha256": m.sha256,
            "data": a.data.data,
            "split": a.data.split,
            "n": r.n,
            "correct": r.correct,
            "accuracy": r.accuracy,
            "per_class_accuracy": r.per_class_accuracy,
            "confusion": r.confusion,
        });
        println!("{out}");
        return Ok(());
    }
    println!("model     {}", m.source);
    println!(
        "data      {} ({}, {} samples)",
        a.data.data, a.data.split, r.n
    );
    println!(
        "accuracy  {:.2}% ({}/{})",
        r.accuracy * 100.0,
        r.correct,
        r.n
    );
    println!();
    println!("class  name          n   accuracy");
    for (c, acc) in r.per_class_accuracy.iter().enumerate() {
        let n: usize = r.confusion[c].iter().sum();
        let name = data.class_names.get(c).map(String::as_str).unwrap_or("");
        match acc {
            Some(acc) => println!("{c:>5}  {name:<10} {n:>5}   {:>6.2}%", acc * 100.0),
            None => println!("{c:>5}  {name:<10} {n:>5}        -"),
        }
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted)");
    print!("     ");
    for c in 0..r.confusion.len() {
        print!("{c:>6}");
    }
    println!();
    for (t, row) in r.confusion.iter().enumerate() {
        print!("{t:>5}");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(())
}
