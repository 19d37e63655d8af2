//! One module per subcommand; each parses nothing, loads, calls the library and prints.

mod attack;
mod audit;
mod certify;
mod eval;
mod export;
mod inspect;
mod predict;
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
    }
}
