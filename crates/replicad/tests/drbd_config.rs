//! `replicad -c` with DRBD's configuration: a refusal stops the start before
//! any resource is served, naming the file and line, and
//! `--allow-unsupported` is accepted. (Serving from a drbd.conf is the same
//! code path as from YAML once loaded; haadm's tests cover the loading.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/drbd")
        .join(relative)
}

fn replicad(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_replicad"))
        .args(args)
        .args(["--run-dir", "/nonexistent/hapair-run"])
        .output()
        .expect("replicad runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unsafe_drbd_options_stop_the_start_with_their_line() {
    let file = fixture("valid/unsafe-dual-primary.res");
    let (code, stderr) = replicad(&["-c", file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("unsafe-dual-primary.res:5: resource dual: net allow-two-primaries yes")
            && stderr.contains("--allow-unsupported"),
        "{stderr}"
    );
}

#[test]
fn drbd_syntax_errors_stop_the_start_with_their_line() {
    let file = fixture("invalid/stray-close.res");
    for extra in [&[][..], &["--allow-unsupported"][..]] {
        let mut args = vec!["-c", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, stderr) = replicad(&args);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.starts_with("replicad: ")
                && stderr.contains("stray-close.res:5: `}` closes no section"),
            "{stderr}"
        );
    }
}
