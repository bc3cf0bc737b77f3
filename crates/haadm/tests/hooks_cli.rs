//! `haadm hooks` on a journal written through hookrun's `Journal`: the
//! runs in order, filtered by queue and count, as text or JSON, with
//! corrupt lines reported by number and skipped.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

use hookrun::{Journal, JournalEntry, JournalOutcome};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haadm"))
        .args(args)
        .output()
        .expect("haadm runs")
}

fn record(journal: &Path, queue: &str, exit_code: i32) {
    let entry = JournalEntry {
        queue: queue.to_owned(),
        hook: queue.to_owned(),
        argv: vec!["sh".into(), "-c".into(), format!("exit {exit_code}")],
        event: None,
        start: SystemTime::now(),
        duration_us: 1500,
        outcome: JournalOutcome::Exited { exit_code },
        pid: Some(42),
    };
    Journal::new(journal, 1 << 20).append(&entry).unwrap();
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn hooks_lists_filters_and_flags_corrupt_lines() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("hooks.journal");
    record(&journal, "VI_1", 0);
    record(&journal, "VI_2", 5);
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(b"{broken\n")
        .unwrap();
    record(&journal, "VI_1", 1);
    let journal_arg = journal.to_str().unwrap();

    let all = run(&["hooks", "--journal", journal_arg]);
    assert!(all.status.success());
    let lines: Vec<String> = stdout(&all).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].contains(" VI_1 - VI_1: exited 0, "), "{lines:#?}");
    assert!(lines[1].contains(" VI_2 - VI_2: exited 5, "), "{lines:#?}");
    assert!(lines[2].ends_with(": sh -c \"exit 1\""), "{lines:#?}");
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert!(
        stderr.contains(&format!(
            "{} line 3: not a journal entry",
            journal.display()
        )),
        "{stderr}"
    );

    let last = run(&[
        "hooks",
        "--journal",
        journal_arg,
        "--instance",
        "VI_1",
        "--last",
        "1",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&last.stdout).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["queue"], "VI_1");
    assert_eq!(entries[0]["outcome"], "exited");
    assert_eq!(entries[0]["exit_code"], 1);
}
