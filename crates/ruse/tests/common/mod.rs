//! Helpers shared by the `ruse` binary's integration tests: running the binary, describing a run
//! for an assertion message, and asserting success or a clear failure.
//!
//! Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// ../shared/NAME (next to the repository), if it is a directory.
pub fn shared_dir(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(name);
    p.is_dir().then_some(p)
}

/// ../shared/data, if present.
pub fn shared_data() -> Option<PathBuf> {
    shared_dir("data")
}

/// A path as `&str` (test paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs `ruse ARGS` with NO_COLOR=1 (and 2 kernel threads unless ARGS set --threads).
pub fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ruse"));
    if !args.contains(&"--threads") {
        cmd.args(["--threads", "2"]);
    }
    cmd.args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("cannot start the ruse binary")
}

/// The command line, exit status, stdout and stderr of a run, for assertion messages.
pub fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "ruse {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and asserts success without a panic; returns the whole output.
fn succeeds(args: &[&str]) -> Output {
    let out = run(args);
    let d = describe(args, &out);
    assert!(out.status.success(), "expected success:\n{d}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "panicked:\n{d}"
    );
    out
}

/// Runs and asserts success without a panic; returns stdout.
pub fn ok(args: &[&str]) -> String {
    String::from_utf8(succeeds(args).stdout).expect("stdout is UTF-8")
}

/// Runs and asserts success without a panic; returns stderr (where progress goes).
pub fn ok_stderr(args: &[&str]) -> String {
    String::from_utf8_lossy(&succeeds(args).stderr).to_string()
}

/// Asserts stderr holds `error` and every needle and no panic; returns stderr.
fn clear_error(args: &[&str], out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let d = describe(args, out);
    assert!(!stderr.contains("panicked"), "panicked:\n{d}");
    assert!(stderr.contains("error"), "no error message:\n{d}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{d}");
    }
    stderr
}

/// Runs and asserts failure with any exit code (not a signal: parse errors give 2), a clear error.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = run(args);
    let d = describe(args, &out);
    assert!(!out.status.success(), "expected failure:\n{d}");
    assert_ne!(out.status.code(), None, "killed by a signal:\n{d}");
    clear_error(args, &out, needles)
}

/// Runs and asserts exit status `status` with `error` and every needle on stderr, no panic.
pub fn fails_with(status: i32, args: &[&str], needles: &[&str]) -> String {
    let out = run(args);
    let d = describe(args, &out);
    assert_eq!(
        out.status.code(),
        Some(status),
        "expected exit status {status}:\n{d}"
    );
    clear_error(args, &out, needles)
}

/// `ruse train --data mnist:/nonexistent EXTRA` fails with exit status 1 and every needle.
pub fn refused(extra: &str, needles: &[&str]) {
    let mut args = vec!["train", "--data", "mnist:/nonexistent"];
    args.extend(extra.split(' '));
    let out = run(&args);
    let d = describe(&args, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{d}");
    assert!(!stderr.contains("panicked"), "{d}");
    for n in needles {
        assert!(stderr.contains(n), "missing '{n}':\n{d}");
    }
}
