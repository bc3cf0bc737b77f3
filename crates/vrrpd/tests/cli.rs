//! vrrpd's command line without a network: `--check-config` accepts every
//! example in configs/, and a bad file is refused with the file, the field
//! and what is wrong, before anything starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vrrpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(args)
        .output()
        .expect("vrrpd runs")
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vrrp-")
        })
        .collect();
    found.sort();
    found
}

#[test]
fn every_example_config_passes_check_config() {
    let examples = examples();
    assert!(!examples.is_empty(), "configs/ holds no vrrp-*.yaml");
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        // Files with per-node sections are checked as each node.
        let nodes: &[&str] = if text.contains("nodes:") {
            &["ha1", "ha2"]
        } else {
            &["ha1"]
        };
        for node in nodes {
            let output = vrrpd(&[
                "--check-config",
                "-f",
                path.to_str().unwrap(),
                "--node",
                node,
            ]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{} as {node}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(stdout.contains("configuration OK"), "{stdout}");
        }
    }
}

#[test]
fn a_bad_config_is_refused_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrp.yaml");
    std::fs::write(
        &path,
        "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 300\n    virtual_ipaddress: [10.0.0.1/24]\n",
    )
    .unwrap();
    for extra in [&["--check-config"][..], &[][..]] {
        let mut args = vec!["-f", path.to_str().unwrap(), "--node", "ha1", "--run-dir"];
        args.push(dir.path().to_str().unwrap());
        args.extend_from_slice(extra);
        let output = vrrpd(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("vrrp.yaml"), "{stderr}");
        assert!(stderr.contains("virtual_router_id"), "{stderr}");
        assert!(stderr.contains("300"), "{stderr}");
        assert!(
            !dir.path().join("vrrp/state.json").exists(),
            "nothing started"
        );
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let output = vrrpd(&["--check-config", "-f", "/nonexistent/vrrp.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/vrrp.yaml"), "{stderr}");
}

#[test]
fn unknown_arguments_are_refused() {
    let output = vrrpd(&["--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-such-flag"));
}
