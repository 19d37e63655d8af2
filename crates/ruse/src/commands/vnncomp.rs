//! `ruse vnncomp`: run a VNN-COMP benchmark folder and compare with its reference verdicts and
//! the published results of other tools.
//!
//! A benchmark folder holds `instances.csv` (rows `onnx,vnnlib,timeout`, paths relative to the
//! folder), optionally `reference_*.csv` (column `official_true_result` or
//! `consensus_of_3_tools`) and `results_TOOL.csv` (column `verdict`, optionally `run_time_s`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ruse_graph::Graph;
use ruse_verify::Method;

use super::verify::{load_network, load_property, options, parse_method, parse_timeout, recheck};
use crate::cli::VnncompArgs;

/// The verdicts a row can hold, in table order.
const VERDICTS: [&str; 5] = ["sat", "unsat", "unknown", "timeout", "error"];

/// Reference columns, in order of preference.
const REFERENCE_COLUMNS: [&str; 2] = ["official_true_result", "consensus_of_3_tools"];

/// (onnx, vnnlib) as written in the CSV files.
type Key = (String, String);

/// One row of instances.csv.
struct Instance {
    onnx: String,
    vnnlib: String,
    timeout: f64,
}

/// A benchmark folder with its instances, reference verdicts and tools' results.
struct Benchmark {
    name: String,
    dir: PathBuf,
    instances: Vec<Instance>,
    reference: HashMap<Key, String>,
    /// Tool name → (instance → (verdict, run time in seconds if given)).
    tools: BTreeMap<String, HashMap<Key, (String, Option<f64>)>>,
}

/// The outcome of one instance.
struct Row {
    key: Key,
    verdict: String,
    time_s: f64,
    timeout_s: f64,
    reference: Option<String>,
    decided_by: String,
    note: String,
}

impl Row {
    /// `Some(true)` if ours and the reference are the same sat/unsat, `Some(false)` if they
    /// contradict, `None` if either is not sat/unsat.
    fn agrees(&self) -> Option<bool> {
        let solved = |v: &str| v == "sat" || v == "unsat";
        match &self.reference {
            Some(r) if solved(r) && solved(&self.verdict) => Some(*r == self.verdict),
            _ => None,
        }
    }
}

/// Runs every selected instance, prints progress and the tables, writes the CSV.
pub fn run(a: VnncompArgs) -> Result<()> {
    let method = parse_method(&a.method)?;
    if !(a.timeout_scale.is_finite() && a.timeout_scale > 0.0) {
        bail!(
            "--timeout-scale must be a positive number, got {}",
            a.timeout_scale
        );
    }
    if let Some(cap) = a.timeout_cap {
        parse_timeout(cap, "--timeout-cap")?;
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let mut benches = Vec::new();
    for d in &a.dirs {
        for dir in benchmark_dirs(d)? {
            let mut b = read_benchmark(&dir)?;
            if let Some(f) = &a.filter {
                b.instances
                    .retain(|i| i.onnx.contains(f.as_str()) || i.vnnlib.contains(f.as_str()));
            }
            if let Some(n) = a.limit {
                b.instances.truncate(n);
            }
            benches.push(b);
        }
    }
    let total: usize = benches.iter().map(|b| b.instances.len()).sum();
    if total == 0 {
        bail!("no instances selected (check DIR and --filter)");
    }

    let mut csv = BufWriter::new(
        File::create(&a.out)
            .with_context(|| format!("cannot create results file '{}'", a.out.display()))?,
    );
    writeln!(
        csv,
        "benchmark,onnx,vnnlib,verdict,time_s,reference,agrees,timeout_s,decided_by,note"
    )?;
    csv.flush()?;

    let mut graphs: HashMap<PathBuf, std::result::Result<Graph, String>> = HashMap::new();
    let mut all_rows: Vec<Vec<Row>> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut index = 0;
    for b in &benches {
        println!(
            "{}: {} instances, timeout = official × {}{}, method {}",
            b.name,
            b.instances.len(),
            a.timeout_scale,
            a.timeout_cap
                .map(|c| format!(" capped at {c} s"))
                .unwrap_or_default(),
            method.name()
        );
        let mut rows = Vec::new();
        for inst in &b.instances {
            index += 1;
            let timeout_s = match a.timeout_cap {
                Some(cap) => (inst.timeout * a.timeout_scale).min(cap),
                None => inst.timeout * a.timeout_scale,
            };
            let row = run_instance(b, inst, timeout_s, method, a.seed, &mut graphs);
            let flag = match row.agrees() {
                Some(true) => "ok",
                Some(false) => "WRONG",
                None => "",
            };
            println!(
                "[{index:>4}/{total}] {:<10} {:<36} {:<40} {:<8} {:>8.2} s  ref {:<8} {flag}",
                b.name,
                file_name(&inst.onnx),
                file_name(&inst.vnnlib),
                row.verdict,
                row.time_s,
                row.reference.as_deref().unwrap_or("-"),
            );
            if row.verdict == "error" || row.verdict == "unknown" && !row.note.is_empty() {
                println!("            {}: {}", row.verdict, row.note);
            }
            if row.agrees() == Some(false) {
                let msg = format!(
                    "{}: {} {}: ruse says {}, the reference says {}",
                    b.name,
                    inst.onnx,
                    inst.vnnlib,
                    row.verdict,
                    row.reference.as_deref().unwrap_or("-")
                );
                eprintln!("!!! WRONG VERDICT: {msg}");
                wrong.push(msg);
            }
            write_row(&mut csv, &b.name, &row)?;
            csv.flush()?;
            rows.push(row);
        }
        all_rows.push(rows);
    }
    drop(csv);

    for (b, rows) in benches.iter().zip(&all_rows) {
        println!();
        print_table(b, rows);
    }
    println!();
    println!("results written to {}", a.out.display());
    if !wrong.is_empty() {
        println!();
        println!("!!! {} WRONG VERDICT(S) (sat vs unsat):", wrong.len());
        for w in &wrong {
            println!("!!!   {w}");
        }
        if a.check {
            bail!(
                "{} verdict(s) contradict the reference (see above)",
                wrong.len()
            );
        }
    } else if a.check {
        println!("check passed: no verdict contradicts the reference");
    }
    Ok(())
}

/// The benchmark folders named by `dir`: itself if it holds instances.csv, else its subfolders
/// that do (sorted).
fn benchmark_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("instances.csv").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    if !dir.is_dir() {
        bail!("benchmark folder '{}' does not exist", dir.display());
    }
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list '{}'", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("instances.csv").is_file())
        .collect();
    subs.sort();
    if subs.is_empty() {
        bail!(
            "'{}' holds no instances.csv (nor do its subfolders); expected a VNN-COMP benchmark folder",
            dir.display()
        );
    }
    Ok(subs)
}

/// Reads instances.csv, the reference verdicts and the tools' results of one folder.
fn read_benchmark(dir: &Path) -> Result<Benchmark> {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let path = dir.join("instances.csv");
    let mut instances = Vec::new();
    for (i, row) in read_csv(&path)?.into_iter().enumerate() {
        let line = i + 1;
        let [onnx, vnnlib, timeout] = row.as_slice() else {
            if row.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            bail!(
                "{}:{line}: expected 3 fields onnx,vnnlib,timeout, found {}",
                path.display(),
                row.len()
            );
        };
        let timeout = match timeout.trim().parse::<f64>() {
            Ok(t) if t.is_finite() && t > 0.0 => t,
            // A header line.
            _ if line == 1 => continue,
            _ => bail!(
                "{}:{line}: timeout '{timeout}' is not a positive number of seconds",
                path.display()
            ),
        };
        instances.push(Instance {
            onnx: onnx.trim().to_string(),
            vnnlib: vnnlib.trim().to_string(),
            timeout,
        });
    }
    let mut reference = HashMap::new();
    let mut tools = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list '{}'", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    for f in files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if stem.starts_with("reference_") {
            let table = read_table(&f)?;
            let col = REFERENCE_COLUMNS
                .iter()
                .find_map(|c| table.column(c))
                .with_context(|| {
                    format!(
                        "{}: no column {} in the header",
                        f.display(),
                        REFERENCE_COLUMNS.join(" or ")
                    )
                })?;
            for r in &table.rows {
                if let Some(k) = table.key(r) {
                    reference.insert(k, r[col].trim().to_ascii_lowercase());
                }
            }
        } else if let Some(tool) = stem.strip_prefix("results_") {
            let table = read_table(&f)?;
            let col = table
                .column("verdict")
                .with_context(|| format!("{}: no column verdict in the header", f.display()))?;
            let time = table.column("run_time_s");
            let mut m = HashMap::new();
            for r in &table.rows {
                if let Some(k) = table.key(r) {
                    let t = time.and_then(|t| r[t].trim().parse::<f64>().ok());
                    m.insert(k, (r[col].trim().to_ascii_lowercase(), t));
                }
            }
            tools.insert(tool.to_string(), m);
        }
    }
    Ok(Benchmark {
        name,
        dir: dir.to_path_buf(),
        instances,
        reference,
        tools,
    })
}

/// Verifies one instance; every failure becomes an `error` row with its message.
fn run_instance(
    b: &Benchmark,
    inst: &Instance,
    timeout_s: f64,
    method: Method,
    seed: u64,
    graphs: &mut HashMap<PathBuf, std::result::Result<Graph, String>>,
) -> Row {
    let key = (inst.onnx.clone(), inst.vnnlib.clone());
    let onnx = b.dir.join(&inst.onnx);
    let graph = graphs
        .entry(onnx.clone())
        .or_insert_with(|| load_network(&onnx).map_err(|e| format!("{e:#}")));
    let start = Instant::now();
    let result = match graph {
        Ok(g) => (|| {
            let spec = load_property(&b.dir.join(&inst.vnnlib), g)?;
            let timeout = parse_timeout(timeout_s, "the instance's timeout")?;
            let o = ruse_verify::verify(g, &spec, &options(method, timeout, seed))?;
            let c = recheck(g, &spec, &o)?;
            anyhow::Ok((c, o))
        })(),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    let time_s = start.elapsed().as_secs_f64();
    let reference = b.reference.get(&key).cloned();
    match result {
        Ok((c, o)) => {
            let mut note = o.stats.note.clone();
            if let Some(why) = c.rejected {
                note = format!("the verifier's sat failed the CLI re-check: {why}");
            }
            Row {
                key,
                verdict: c.verdict.label().to_string(),
                time_s,
                timeout_s,
                reference,
                decided_by: o.stats.decided_by,
                note,
            }
        }
        Err(e) => Row {
            key,
            verdict: "error".into(),
            time_s,
            timeout_s,
            reference,
            decided_by: String::new(),
            note: format!("{e:#}"),
        },
    }
}

/// Prints one benchmark's table: ruse, each tool on the same instances, the reference.
fn print_table(b: &Benchmark, rows: &[Row]) {
    let n = rows.len();
    println!(
        "{}: {n} instance(s) ({} of them with a sat/unsat reference)",
        b.name,
        rows.iter()
            .filter(|r| matches!(r.reference.as_deref(), Some("sat" | "unsat")))
            .count()
    );
    println!(
        "{:<18} {:>5} {:>6} {:>8} {:>8} {:>6} {:>7} {:>10} {:>6} {:>6}",
        "tool",
        "sat",
        "unsat",
        "unknown",
        "timeout",
        "error",
        "solved",
        "time (s)",
        "agree",
        "wrong"
    );
    let line = |who: &str, verdicts: &[(Option<&str>, Option<f64>, Option<&str>)]| {
        let count = |v: &str| verdicts.iter().filter(|(x, _, _)| *x == Some(v)).count();
        let solved = count("sat") + count("unsat");
        let time: Option<f64> = verdicts.iter().map(|(_, t, _)| *t).sum();
        let (mut agree, mut wrong) = (0, 0);
        for (v, _, r) in verdicts {
            if let (Some(v @ ("sat" | "unsat")), Some(r @ ("sat" | "unsat"))) = (v, r) {
                if v == r {
                    agree += 1;
                } else {
                    wrong += 1;
                }
            }
        }
        let missing = verdicts.iter().filter(|(v, _, _)| v.is_none()).count();
        let other = verdicts.len() - missing - VERDICTS.iter().map(|v| count(v)).sum::<usize>();
        let mut tail = String::new();
        if missing > 0 {
            tail.push_str(&format!("  ({missing} not in its results)"));
        }
        if other > 0 {
            tail.push_str(&format!("  ({other} other verdicts)"));
        }
        let time = time.map_or("-".to_string(), |t| format!("{t:.2}"));
        println!(
            "{who:<18} {:>5} {:>6} {:>8} {:>8} {:>6} {:>7} {time:>10} {agree:>6} {wrong:>6}{tail}",
            count("sat"),
            count("unsat"),
            count("unknown"),
            count("timeout"),
            count("error"),
            solved,
        );
    };
    let ours: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                Some(r.verdict.as_str()),
                Some(r.time_s),
                r.reference.as_deref(),
            )
        })
        .collect();
    line("ruse", &ours);
    for (tool, results) in &b.tools {
        let theirs: Vec<_> = rows
            .iter()
            .map(|r| {
                let got = results.get(&r.key);
                (
                    got.map(|(v, _)| v.as_str()),
                    got.and_then(|(_, t)| *t),
                    r.reference.as_deref(),
                )
            })
            .collect();
        line(tool, &theirs);
    }
    let counts = |v: &str| {
        rows.iter()
            .filter(|r| r.reference.as_deref() == Some(v))
            .count()
    };
    println!(
        "{:<18} {:>5} {:>6} {:>8}   (unknown: no sat/unsat reference)",
        "reference",
        counts("sat"),
        counts("unsat"),
        n - counts("sat") - counts("unsat")
    );
    if !b.tools.is_empty() {
        println!("(other tools: their published verdicts and run times on these instances, on their own hardware and timeouts)");
    }
}

/// Appends one row to results.csv.
fn write_row(w: &mut impl Write, bench: &str, r: &Row) -> Result<()> {
    let agrees = match r.agrees() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "",
    };
    let fields = [
        bench.to_string(),
        r.key.0.clone(),
        r.key.1.clone(),
        r.verdict.clone(),
        format!("{:.3}", r.time_s),
        r.reference.clone().unwrap_or_default(),
        agrees.to_string(),
        format!("{}", r.timeout_s),
        r.decided_by.clone(),
        r.note.clone(),
    ];
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    writeln!(w, "{}", line.join(","))?;
    Ok(())
}

/// A CSV field, quoted if it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The last path component of a relative path as written in a CSV.
fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// A CSV file with a header.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.trim() == name)
    }

    /// The (onnx, vnnlib) key of a row, if the table has those columns and the row is long enough.
    fn key(&self, row: &[String]) -> Option<Key> {
        let (o, v) = (self.column("onnx")?, self.column("vnnlib")?);
        let need = o.max(v).max(self.header.len().saturating_sub(1));
        (row.len() > need).then(|| (row[o].trim().to_string(), row[v].trim().to_string()))
    }
}

fn read_table(path: &Path) -> Result<Table> {
    let mut rows = read_csv(path)?;
    if rows.is_empty() {
        bail!(
            "{}: empty CSV file (expected a header line)",
            path.display()
        );
    }
    let header = rows.remove(0);
    rows.retain(|r| !r.iter().all(|f| f.trim().is_empty()));
    Ok(Table { header, rows })
}

/// Reads a CSV file (RFC 4180 quoting) into rows of fields.
fn read_csv(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    Ok(parse_csv(&text))
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_line_ends() {
        let rows = parse_csv("a,b,c\r\n\"x,1\",\"say \"\"hi\"\"\",3\nlast,,");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], ["a", "b", "c"]);
        assert_eq!(rows[1], ["x,1", "say \"hi\"", "3"]);
        assert_eq!(rows[2], ["last", "", ""]);
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(parse_csv(&format!("{}\n", csv_field("q\"x")))[0], ["q\"x"]);
    }

    #[test]
    fn agreement() {
        let row = |v: &str, r: Option<&str>| Row {
            key: Default::default(),
            verdict: v.into(),
            time_s: 0.0,
            timeout_s: 1.0,
            reference: r.map(String::from),
            decided_by: String::new(),
            note: String::new(),
        };
        assert_eq!(row("sat", Some("sat")).agrees(), Some(true));
        assert_eq!(row("unsat", Some("sat")).agrees(), Some(false));
        assert_eq!(row("sat", Some("unsat")).agrees(), Some(false));
        assert_eq!(row("timeout", Some("sat")).agrees(), None);
        assert_eq!(row("sat", Some("unknown")).agrees(), None);
        assert_eq!(row("unsat", None).agrees(), None);
    }
}
