//! `ruse train --defense ibp …`: bad certified-training flags are clear errors (refused before any
//! data is loaded).

mod common;
use common::{refused, run};

#[test]
fn bad_certified_training_flags_are_clear_errors() {
    refused("--defense ibp", &["needs --eps"]);
    refused("--defense ibp --eps=-0.1", &["--eps -0.1", "≥ 0"]);
    refused(
        "--defense ibp --eps 0.1 --kappa-end 1.5",
        &["--kappa-end 1.5", "[0, 1]"],
    );
    refused(
        "--defense ibp --eps 0.1 --kappa-end=-0.5",
        &["--kappa-end -0.5"],
    );
    refused(
        "--defense ibp --eps 0.1 --attack-steps 3",
        &["--attack-steps", "ibp"],
    );
    refused(
        "--defense ibp --eps 0.1 --attack-step-size 0.01",
        &["--attack-step-size"],
    );
    refused(
        "--defense ibp --eps 0.1 --trades-beta 1",
        &["--trades-beta", "trades"],
    );
    refused(
        "--defense pgd-at --eps 0.3 --kappa-end 0.5",
        &["--kappa-end", "--defense ibp"],
    );
    refused("--kappa-end 0.5", &["--kappa-end", "--defense none"]);
    refused("--warmup 1", &["--warmup", "--defense none"]);
    refused(
        "--defense crown-ibp --eps 0.1 --kappa-end 2",
        &["--kappa-end 2", "[0, 1]"],
    );
    refused(
        "--defense crown-ibp --eps 0.1 --attack-steps 2",
        &["--attack-steps", "crown-ibp"],
    );
    refused(
        "--defense ibq --eps 0.1",
        &["unknown defense 'ibq'", "ibp, crown-ibp"],
    );
    let out = run(&[
        "train",
        "--resume",
        "/nonexistent.ckpt",
        "--kappa-end",
        "0.5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("--kappa-end"),
        "{stderr}"
    );
}
