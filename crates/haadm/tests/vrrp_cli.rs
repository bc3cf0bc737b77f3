//! `haadm vrrp status` on state files laid out as vrrpd writes them: every
//! instance (or sync group) with its state, or one state word alone; the
//! file found under --run-dir or named by --state-file; exit 4 for a file
//! that cannot be read, 5 for a name it does not list, each with a message
//! that names the file.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const STATE: &str = r#"{
  "node": "ha1",
  "pid": 4321,
  "instances": [
    {"name": "VI_1", "state": "MASTER", "priority": 150, "effective_priority": 150,
     "master": "10.99.0.1", "vips": ["10.99.0.100/24"], "trackers": [],
     "counters": {"adverts_sent": 9, "adverts_received": 0, "transitions": 2, "drops": {}}},
    {"name": "VI_2", "state": "BACKUP", "priority": 100, "effective_priority": 100,
     "master": "10.99.0.2", "vips": [], "trackers": [],
     "counters": {"adverts_sent": 0, "adverts_received": 9, "transitions": 1, "drops": {}}}
  ],
  "sync_groups": [{"name": "G1", "state": "BACKUP", "members": ["VI_1", "VI_2"]}],
  "unmatched_drops": {}
}
"#;

fn haadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haadm"))
        .args(args)
        .output()
        .expect("haadm runs")
}

/// Panics unless `output` exited with `code`; returns its stdout and stderr.
#[track_caller]
fn expect(output: &Output, code: i32) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// A run directory holding vrrpd's state file with `text`.
fn run_dir_with(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("vrrp")).unwrap();
    fs::write(dir.path().join("vrrp/state.json"), text).unwrap();
    dir
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("a UTF-8 path")
}

#[test]
fn status_prints_every_instance_or_one_state_word() {
    let dir = run_dir_with(STATE);
    let run_dir = path(dir.path());

    let (all, _) = expect(&haadm(&["--run-dir", run_dir, "vrrp", "status"]), 0);
    assert_eq!(all, "VI_1 MASTER\nVI_2 BACKUP\n");
    let (one, _) = expect(&haadm(&["--run-dir", run_dir, "vrrp", "status", "VI_2"]), 0);
    assert_eq!(one, "BACKUP\n");
    let (groups, _) = expect(
        &haadm(&["--run-dir", run_dir, "vrrp", "status", "--group"]),
        0,
    );
    assert_eq!(groups, "G1 BACKUP\n");

    // --state-file names the file; the run directory is then not looked at.
    let file = dir.path().join("vrrp/state.json");
    let (named, _) = expect(
        &haadm(&[
            "--run-dir",
            "/nonexistent",
            "vrrp",
            "status",
            "VI_1",
            "--state-file",
            path(&file),
        ]),
        0,
    );
    assert_eq!(named, "MASTER\n");
}

#[test]
fn an_unknown_name_exits_5_naming_the_file() {
    let dir = run_dir_with(STATE);
    let file = dir.path().join("vrrp/state.json");
    let (out, err) = expect(
        &haadm(&["--run-dir", path(dir.path()), "vrrp", "status", "VI_9"]),
        5,
    );
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "haadm: {} lists no instance VI_9 (haadm vrrp status lists them)\n",
            file.display()
        )
    );
    // A group's name is not an instance's, and the other way round.
    let (_, err) = expect(
        &haadm(&[
            "--run-dir",
            path(dir.path()),
            "vrrp",
            "status",
            "VI_1",
            "--group",
        ]),
        5,
    );
    assert!(err.contains("lists no sync group VI_1"), "{err}");
}

#[test]
fn an_unreadable_state_file_exits_4_saying_why() {
    let empty = tempfile::tempdir().unwrap();
    let (out, err) = expect(
        &haadm(&["--run-dir", path(empty.path()), "vrrp", "status", "VI_1"]),
        4,
    );
    assert_eq!(out, "");
    let missing = empty.path().join("vrrp/state.json");
    assert!(
        err.starts_with(&format!(
            "haadm: cannot read vrrpd's state file {}: No such file",
            missing.display()
        )) && err.contains("is vrrpd running with this run directory?"),
        "{err}"
    );

    for (text, why) in [
        ("{\"pid\": 1, \"inst", "not JSON"),
        (
            "{\"pid\": 1, \"instances\": [{\"name\": \"VI_1\"}]}",
            "an instance without a \"state\" string",
        ),
        ("{\"instances\": []}", "no \"pid\" number"),
    ] {
        let dir = run_dir_with(text);
        let (out, err) = expect(
            &haadm(&["--run-dir", path(dir.path()), "vrrp", "status"]),
            4,
        );
        assert_eq!(out, "", "{text}");
        assert!(err.contains(why), "{text}: {err}");
    }
}
