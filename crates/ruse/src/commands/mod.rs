//! One module per subcommand; each parses nothing, loads, calls the library and prints.

mod attack;
mod audit;
mod certify;
mod corrupt;
mod eval;
mod export;
mod fool;
mod inspect;
mod predict;
mod section_blackbox;
mod section_corruptions;
mod section_fooling;
mod section_sparse;
mod section_spatial;
mod section_stickers;
mod sections;
mod sticker;
mod train;
mod verify;
mod vnncomp;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command};

/// Sets the thread count, then runs the chosen command.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        anyhow::ensure!(
            (1..=1024).contains(&n),
            "--threads must be between 1 and 1024"
        );
        // candle's matmul reads RAYON_NUM_THREADS; ruse's kernels use the global rayon pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot start the thread pool")?;
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Without RAYON_NUM_THREADS, candle recounts the physical cores — by reading
        // /proc/cpuinfo — inside every matrix product (≈ 9% of `ruse verify` on mnist_fc 256x4,
        // `perf record`). Pin its own default once; rayon's pool keeps its default size.
        let candle_threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", candle_threads.to_string());
        let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(logical)
            .build_global()
            .context("cannot start the thread pool")?;
    }
    if matches!(
        cli.command,
        Command::Verify(_) | Command::Vnncomp(_) | Command::Certify(_)
    ) && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // Bound propagation runs many small tensor ops; candle's worker pool spin-waits at a
        // barrier after each, which costs more than it gains (measured on 2 busy cores with
        // `ruse verify` on mnist_fc 256x4 prop_0_0.05, 20 s: 62 domains pooled, 358
        // single-threaded). Branch and bound parallelises over domains instead.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    match cli.command {
        Command::Attack(a) => attack::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Train(a) => train::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Export(a) => export::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Vnncomp(a) => vnncomp::run(a),
        Command::Certify(a) => certify::run(a),
        Command::Fool(a) => fool::run(a),
        Command::Corrupt(a) => corrupt::run(a),
        Command::Sticker(a) => sticker::run(a),
        Command::Patch(a) => sticker::run_patch(a),
    }
}
