//! vrrpd's hook guarantees, proven by its hook journal: a burst of
//! transitions runs each instance's hooks once each, in event order, never
//! two at once; a hung hook is killed with its children at its timeout; an
//! insecure script is refused with the path in the message; `notify_fifo`
//! gets keepalived's lines in order, through to STOP.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::time::Duration;

use hapair_lab::{
    Hooks, Lab, VrrpInstance, Vrrpd, lab_lock, process_is_alive, require_root, vrrpd_config,
    wait_until,
};
use hookrun::{JournalEntry, JournalOutcome, KILL_GRACE, read_journal};

use crate::common::{POLL, wait_for_state};
use crate::vrrp_hooks::{hanging_hook, hanging_pids};

const VIP: &str = "10.99.0.100/24";

/// VRRPv3 with 0.2 s adverts: transitions within a second.
fn fast(priority: u8) -> VrrpInstance {
    VrrpInstance {
        version: 3,
        advert_int: Duration::from_millis(200),
        ..VrrpInstance::new(54, priority, VIP)
    }
}

/// A vrrpd config of `instances` with a `hooks:` section journalling to
/// `journal`, plus `extra` lines of that section (indented by two spaces).
fn config_with_hooks(instances: &[VrrpInstance], journal: &Path, extra: &str) -> String {
    format!(
        "{}hooks:\n  journal: {}\n{extra}",
        vrrpd_config(instances),
        yaml_string(journal)
    )
}

fn yaml_string(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("UTF-8 path")).expect("a string serializes")
}

fn argv_of(path: &Path) -> Vec<String> {
    vec![path.to_str().expect("UTF-8 path").to_owned()]
}

/// The journal's entries for queue `name`, panicking on corrupt lines.
fn journal_entries(journal: &Path, name: &str) -> Vec<JournalEntry> {
    let contents = read_journal(journal).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        contents.corrupt.is_empty(),
        "corrupt journal lines: {:#?}",
        contents.corrupt
    );
    contents
        .entries
        .into_iter()
        .filter(|entry| entry.queue == name)
        .collect()
}

/// The transitions vrrpd logged for `name`, as `[STATE, priority]` pairs:
/// the last two arguments keepalived's generic `notify` gets.
fn logged_transitions(log: &str, name: &str) -> Vec<[String; 2]> {
    let prefix = format!(" {name}: ");
    log.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(&prefix)?;
            let (_, to) = rest.split_once(" -> ")?;
            let (state, priority) = to.split_once(" (priority ")?;
            let priority = priority.strip_suffix(')')?;
            Some([state.to_owned(), priority.to_owned()])
        })
        .collect()
}

#[test]
fn a_burst_of_transitions_runs_hooks_once_each_in_event_order_one_at_a_time() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let journal = lab.dir().join("h1-hooks.journal");
    // Slower than the transitions come: the hooks queue up.
    let slow = lab.write_executable("slow-notify", "#!/bin/sh\nsleep 0.3\n");
    let flapping = |priority| {
        let instance = VrrpInstance {
            hooks: Hooks {
                notify: argv_of(&slow),
                notify_timeout: Some(Duration::from_secs(10)),
                ..Hooks::default()
            },
            ..fast(priority)
        };
        config_with_hooks(&[instance], &journal, "")
    };
    let _peer = Vrrpd::start(h2, &vrrpd_config(&[fast(100)]));
    let mut first = Vrrpd::start(h1, &flapping(200));
    wait_for_state(&first, "VI_1", "MASTER", Duration::from_secs(10));
    // Every reload changes the instance: it stops (STOP) and starts again
    // (BACKUP), and at 200 takes the address back from h2 (MASTER).
    for round in 0..6 {
        let priority = if round % 2 == 0 { 50 } else { 200 };
        first.reload(&flapping(priority));
        std::thread::sleep(Duration::from_millis(700));
    }
    // Shutdown waits for the queued hooks.
    let status = first.stop(Duration::from_secs(60));
    assert!(status.success(), "h1's vrrpd exited with {status}");

    let transitions = logged_transitions(&first.proc().log(), "VI_1");
    assert!(
        transitions.len() >= 2 + 6 * 2,
        "expected a burst of transitions, vrrpd logged {transitions:?}"
    );
    let entries = journal_entries(&journal, "VI_1");
    let events: Vec<u64> = entries.iter().filter_map(|entry| entry.event).collect();
    let expected: Vec<u64> = (1..=transitions.len() as u64).collect();
    assert_eq!(
        events, expected,
        "one hook run per transition, in event order: {entries:#?}"
    );
    let notified: Vec<[String; 2]> = entries
        .iter()
        .map(|entry| {
            assert_eq!(entry.argv[0], slow.to_str().unwrap(), "{entry:?}");
            assert_eq!(entry.argv.len(), 5, "{entry:?}");
            assert_eq!(entry.argv[1..3], ["INSTANCE", "VI_1"], "{entry:?}");
            [entry.argv[3].clone(), entry.argv[4].clone()]
        })
        .collect();
    assert_eq!(notified, transitions, "hooks saw the transitions in order");
    for entry in &entries {
        assert_eq!(
            entry.outcome,
            JournalOutcome::Exited { exit_code: 0 },
            "{entry:?}"
        );
    }
    for pair in entries.windows(2) {
        assert!(
            pair[0].end() <= pair[1].start,
            "two hooks of VI_1 overlapped: {pair:#?}"
        );
    }
}

#[test]
fn a_hung_hook_and_its_children_are_killed_at_its_timeout() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(1);
    let journal = lab.dir().join("hooks.journal");
    let pids_file = lab.dir().join("hang-pids");
    let hang = hanging_hook(&lab, &pids_file);
    let notify_timeout = Duration::from_secs(1);
    // notify_backup runs at once: every instance starts as backup.
    let instance = VrrpInstance {
        hooks: Hooks {
            notify_backup: argv_of(&hang),
            notify_timeout: Some(notify_timeout),
            ..Hooks::default()
        },
        ..fast(100)
    };
    let _vrrpd = Vrrpd::start(lab.host(1), &config_with_hooks(&[instance], &journal, ""));
    wait_until(Duration::from_secs(10), POLL, || pids_file.exists())
        .expect("notify_backup started within 10 s");
    let pids = hanging_pids(&pids_file);
    let bound = notify_timeout + KILL_GRACE + Duration::from_secs(5);
    wait_until(bound, POLL, || {
        !journal_entries(&journal, "VI_1").is_empty()
    })
    .unwrap_or_else(|| panic!("no journal entry within {bound:?}"));
    let entries = journal_entries(&journal, "VI_1");
    let entry = &entries[0];
    assert_eq!(entry.outcome, JournalOutcome::TimedOut, "{entry:?}");
    assert_eq!(entry.hook, "VI_1 notify_backup");
    assert_eq!(entry.pid, Some(pids[0]), "{entry:?}");
    assert!(
        entry.duration() >= notify_timeout && entry.duration() < notify_timeout + KILL_GRACE,
        "killed {:?} after it started; its timeout is {notify_timeout:?}",
        entry.duration()
    );
    for pid in pids {
        assert!(
            wait_until(Duration::from_secs(2), POLL, || !process_is_alive(pid)).is_some(),
            "process {pid} of the hung hook is still running"
        );
    }
}

#[test]
fn an_insecure_script_is_refused_with_its_path_in_log_and_journal() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(1);
    let journal = lab.dir().join("hooks.journal");
    let ran = lab.dir().join("insecure-ran");
    // A root-owned script in a directory group 1000 may write to.
    let dir = lab.dir().join("shared-hooks");
    fs::create_dir(&dir).expect("create the hook directory");
    let script = dir.join("backup-hook");
    fs::write(&script, format!("#!/bin/sh\ntouch {}\n", ran.display())).expect("write the hook");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the hook");
    chown(&dir, Some(0), Some(1000)).expect("chown the directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o775)).expect("chmod the directory");
    let instance = VrrpInstance {
        hooks: Hooks {
            notify_backup: argv_of(&script),
            ..Hooks::default()
        },
        ..fast(100)
    };
    let vrrpd = Vrrpd::start(lab.host(1), &config_with_hooks(&[instance], &journal, ""));
    let refusal = format!(
        "refusing to run {} as root: {} is writable by group 1000",
        script.display(),
        dir.display()
    );
    wait_until(Duration::from_secs(10), POLL, || {
        vrrpd.proc().log().contains(&refusal)
    })
    .unwrap_or_else(|| {
        panic!(
            "vrrpd did not log {refusal:?}: {}",
            vrrpd.proc().log_path().display()
        )
    });
    let entries = journal_entries(&journal, "VI_1");
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert!(
        matches!(&entries[0].outcome, JournalOutcome::Refused { error } if error.starts_with(&refusal)),
        "{:?}",
        entries[0]
    );
    assert!(!ran.exists(), "the refused script ran");
    // The daemon goes on regardless: alone, it becomes master.
    wait_for_state(&vrrpd, "VI_1", "MASTER", Duration::from_secs(10));
}

#[test]
fn notify_fifo_gets_every_line_in_order_through_stop() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let journal = lab.dir().join("h1-hooks.journal");
    let fifo = lab.dir().join("h1-vrrp.fifo");
    let received = lab.dir().join("fifo-lines");
    // As keepalived's notify_fifo_script: the FIFO's path is its last argument.
    let reader = lab.write_executable(
        "fifo-reader",
        &format!(
            "#!/bin/sh\nwhile read -r line; do echo \"$line\" >> {}; done < \"$1\"\n",
            received.display()
        ),
    );
    let hooks = format!(
        "  notify_fifo: {}\n  notify_fifo_script: {}\n",
        yaml_string(&fifo),
        yaml_string(&reader)
    );
    let lines = || -> Vec<String> {
        fs::read_to_string(&received)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let mut first = Vrrpd::start(h1, &config_with_hooks(&[fast(150)], &journal, &hooks));
    wait_for_state(&first, "VI_1", "MASTER", Duration::from_secs(10));
    let second = Vrrpd::start(h2, &vrrpd_config(&[fast(200)]));
    wait_for_state(&second, "VI_1", "MASTER", Duration::from_secs(10));
    wait_for_state(&first, "VI_1", "BACKUP", Duration::from_secs(10));
    let expected = [
        "INSTANCE \"VI_1\" BACKUP 150",
        "INSTANCE \"VI_1\" MASTER 150",
        "INSTANCE \"VI_1\" BACKUP 150",
    ];
    wait_until(Duration::from_secs(5), POLL, || lines().len() >= 3);
    assert_eq!(lines(), expected, "lines read from {}", fifo.display());

    let status = first.stop(Duration::from_secs(30));
    assert!(status.success(), "h1's vrrpd exited with {status}");
    let got = lines();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(got[..3], expected);
    assert!(got[3].starts_with("INSTANCE \"VI_1\" STOP "), "{got:#?}");
    // vrrpd closed the FIFO after the last line: the reader read to its end
    // and exited by itself (a reader that did not would have been stopped).
    let reader_runs = journal_entries(&journal, "notify_fifo_script");
    assert_eq!(reader_runs.len(), 1, "{reader_runs:#?}");
    assert_eq!(
        reader_runs[0].outcome,
        JournalOutcome::Exited { exit_code: 0 }
    );
    let reader_pid = reader_runs[0].pid.expect("the reader was started");
    assert!(
        !process_is_alive(reader_pid),
        "the FIFO reader outlived vrrpd"
    );
}
