//! `vrrpd -f keepalived.conf --check-config` against the real parser,
//! `keepalived -t -f keepalived.conf` (Debian's keepalived 2.2.7), for every
//! fixture in tests/fixtures/keepalived/ and every file of the shared
//! corpus (../shared/corpus/keepalived next to the project, read in place;
//! skipped with a note when absent).
//!
//! keepalived -t runs in private network, mount, UTS and IPC namespaces
//! (`unshare`) in which the interfaces the file names exist as tap devices,
//! so that it judges the configuration rather than this machine; it only
//! parses, and it cannot touch the root namespace's interfaces.
//!
//! Its exit code says: 0 clean; 2, 3, 4 keepalived would not start; 5, 6 it
//! would start but reports problems. (It also exits 0 after some problems it
//! prints, such as an include loop or a missing include: those count as
//! reported problems.) The verdicts agree when:
//! - keepalived is clean (exit 0, nothing printed) ⇒ vrrpd accepts the file (with
//!   `--allow-unsupported`: refusing unsafe keywords is hapair's choice,
//!   checked by the fixture tests of hapair-config);
//! - keepalived would not start ⇒ vrrpd refuses the file;
//! - keepalived reports problems ⇒ vrrpd refuses the file or warns; it is
//!   never silent about a file keepalived complains about.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The config id (`keepalived -i`, `vrrpd --node`) the fixtures are read as.
const FIXTURE_NODE: &str = "ha1";

fn vrrpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("vrrpd runs")
}

/// Why the real keepalived cannot be asked here, if it cannot.
fn keepalived_unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root (keepalived -t needs private namespaces)".into());
    }
    let found = Command::new("keepalived").arg("--version").output();
    match found {
        Ok(_) => None,
        Err(error) => Some(format!("keepalived is not installed: {error}")),
    }
}

/// `keepalived -t -f FILE [-i ID]` in private namespaces with `interfaces`
/// present, run from the file's directory; its exit code and output.
fn keepalived_check(file: &Path, interfaces: &[String], config_id: &str) -> (i32, String) {
    let mut script = String::from("set -e; ip link set lo up; ");
    for name in interfaces {
        script.push_str(&format!(
            "ip tuntap add dev '{name}' mode tap; ip link set '{name}' up; "
        ));
    }
    script.push_str("set +e; exec keepalived -t -f \"$1\" -i \"$2\"");
    let output = Command::new("unshare")
        .args([
            "--net", "--mount", "--uts", "--ipc", "--", "sh", "-c", &script, "sh",
        ])
        .arg(file.file_name().unwrap())
        .arg(config_id)
        .current_dir(file.parent().unwrap())
        .output()
        .expect("unshare runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// keepalived's verdict on a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Clean,
    Complains,
    WouldNotStart,
}

/// keepalived's verdict, and whether vrrpd's agrees with it (see the module
/// doc): the reason if not.
fn compare(file: &Path, interfaces: &[String], config_id: &str) -> (Verdict, Option<String>) {
    let (keepalived_rc, keepalived_says) = keepalived_check(file, interfaces, config_id);
    let path = file.to_str().unwrap();
    let output = vrrpd(&[
        "--check-config",
        "--allow-unsupported",
        "--node",
        config_id,
        "-f",
        path,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let accepted = output.status.success();
    let warned = stderr.contains("warning:") || stderr.contains("unsupported:");
    let verdict = match keepalived_rc {
        0 if keepalived_says.trim().is_empty() => Verdict::Clean,
        0 | 5 | 6 => Verdict::Complains,
        2..=4 => Verdict::WouldNotStart,
        other => panic!("{path}: keepalived -t exited {other}: {keepalived_says}"),
    };
    let agree = match verdict {
        Verdict::Clean => accepted,
        Verdict::Complains => !accepted || warned,
        Verdict::WouldNotStart => !accepted,
    };
    let reason = (!agree).then(|| {
        format!(
            "{path}: keepalived -t exited {keepalived_rc} ({}) but vrrpd {} ({})",
            keepalived_says.trim(),
            if accepted {
                "accepted it"
            } else {
                "refused it"
            },
            stderr.trim()
        )
    });
    (verdict, reason)
}

/// Compares every file; panics listing the disagreements, or when a kind
/// of verdict in `expected` never occurred (the comparison would then prove
/// less than it claims).
fn assert_agreement(files: &[(PathBuf, Vec<String>, String)], expected: &[Verdict]) {
    let mut seen = Vec::new();
    let mut disagreements = Vec::new();
    for (file, interfaces, config_id) in files {
        let (verdict, reason) = compare(file, interfaces, config_id);
        seen.push(verdict);
        disagreements.extend(reason);
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    for verdict in expected {
        assert!(
            seen.contains(verdict),
            "no file got {verdict:?} from keepalived: {seen:?}"
        );
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keepalived")
}

/// Every fixture's entry file: `*.conf`, or a directory's `keepalived.conf`
/// / `a.conf`.
fn fixture_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(fixtures()).expect("the fixtures exist") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for name in ["keepalived.conf", "a.conf"] {
                if path.join(name).exists() {
                    found.push(path.join(name));
                }
            }
        } else if path.extension().is_some_and(|e| e == "conf") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn fixtures_agree_with_keepalived() {
    if let Some(why) = keepalived_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let interfaces = vec!["eth0".to_owned(), "eth1".to_owned()];
    let files: Vec<_> = fixture_files()
        .into_iter()
        .map(|file| (file, interfaces.clone(), FIXTURE_NODE.to_owned()))
        .collect();
    assert!(files.len() >= 15, "{files:?}");
    assert_agreement(
        &files,
        &[Verdict::Clean, Verdict::Complains, Verdict::WouldNotStart],
    );
}

#[test]
fn corpus_agrees_with_keepalived() {
    if let Some(why) = keepalived_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    // The shared corpus sits next to the project: ../shared/corpus.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let Ok(validation) = std::fs::read_to_string(corpus.join("validation.json")) else {
        eprintln!("skipped: no corpus at {}", corpus.display());
        return;
    };
    let validation: serde_json::Value = serde_json::from_str(&validation).unwrap();
    let entries = validation["keepalived"]
        .as_array()
        .expect("keepalived entries");
    assert!(!entries.is_empty());
    let mut files = Vec::new();
    for entry in entries {
        let file = corpus
            .join("keepalived")
            .join(entry["file"].as_str().unwrap());
        let interfaces: Vec<String> = entry["ifaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap().to_owned())
            .collect();
        // Files with `@ID` lines are judged as the id they were written for.
        let config_id = entry["config_id"].as_str().unwrap_or(FIXTURE_NODE);
        files.push((file, interfaces, config_id.to_owned()));
    }
    assert_agreement(
        &files,
        &[Verdict::Clean, Verdict::Complains, Verdict::WouldNotStart],
    );
}

#[test]
fn unsupported_keywords_stop_the_start_unless_allowed() {
    let file = fixtures().join("09-unsupported-vmac.conf");
    let path = file.to_str().unwrap();
    let refused = vrrpd(&["--check-config", "--node", FIXTURE_NODE, "-f", path]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("{path}:6: `use_vmac` is not supported")),
        "{stderr}"
    );
    let allowed = vrrpd(&[
        "--check-config",
        "--allow-unsupported",
        "--node",
        FIXTURE_NODE,
        "-f",
        path,
    ]);
    let stdout = String::from_utf8_lossy(&allowed.stdout);
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(allowed.status.success(), "{stderr}");
    assert!(
        stdout.contains("keepalived configuration OK for node ha1: 1 instance(s): VI_VMAC"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{path}:6: unsupported: `use_vmac`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:7: warning: `lower_prio_no_advert`")),
        "{stderr}"
    );
}

#[test]
fn node_name_selects_config_id_lines() {
    let file = fixtures().join("03-syntax-forms.conf");
    for node in ["ha1", "ha2"] {
        let output = vrrpd(&[
            "--check-config",
            "--node",
            node,
            "-f",
            file.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    for (name, line) in [
        ("bad-unclosed-block.conf", 2),
        ("bad-extra-brace.conf", 9),
        ("bad-missing-value.conf", 5),
    ] {
        let file = fixtures().join(name);
        let path = file.to_str().unwrap();
        let output = vrrpd(&["--check-config", "--allow-unsupported", "-f", path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("vrrpd: {path}:{line}: ")),
            "{name}: {stderr}"
        );
    }
}
