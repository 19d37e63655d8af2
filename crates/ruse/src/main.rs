//! The `ruse` binary: parse the command line and hand over to the command.

use clap::Parser;

mod alloc;
mod cli;
mod commands;
mod model;
mod progress;

fn main() {
    alloc::tune();
    let args = cli::Cli::parse();
    if let Err(e) = commands::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
