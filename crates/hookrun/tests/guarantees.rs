//! The runner's records and guards with real processes: every run lands in
//! the journal with its queue, event, pid and outcome; script security
//! refuses what others can change; jobs run as `script_user`; a service is
//! restarted when it exits and stopped with its group.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{is_alive, read_pid};
use hookrun::{
    HookRunner, Job, Journal, JournalOutcome, Outcome, RunAs, RunSettings, Service, read_journal,
};
use tokio::time::{Instant, sleep, timeout};

const AMPLE: Duration = Duration::from_secs(20);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn settings(journal: &Path) -> RunSettings {
    RunSettings {
        journal: Some(Arc::new(Journal::new(journal, 1 << 20))),
        ..RunSettings::default()
    }
}

fn shell(name: &str, script: &str) -> Job {
    Job::new(
        name,
        vec!["/bin/sh".into(), "-c".into(), script.into()],
        AMPLE,
    )
}

/// The outcome of each run in the journal at `path`, oldest first.
fn journalled_outcomes(path: &Path) -> Vec<JournalOutcome> {
    read_journal(path)
        .unwrap()
        .entries
        .into_iter()
        .map(|entry| entry.outcome)
        .collect()
}

/// A root-owned 0755 directory holding an executable script; the
/// directory's permissions are the test's to change.
fn script_in_own_dir(dir: &Path, text: &str) -> std::path::PathBuf {
    let hooks = dir.join("hooks");
    fs::create_dir(&hooks).unwrap();
    fs::set_permissions(&hooks, fs::Permissions::from_mode(0o755)).unwrap();
    let script = hooks.join("promote");
    fs::write(&script, text).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test(flavor = "current_thread")]
async fn every_run_is_journalled_in_order_without_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("hooks.journal");
    let runner = HookRunner::with_settings(RunSettings {
        script_security: false,
        ..settings(&journal)
    });
    let mut last = None;
    for event in 1..=5 {
        let job = shell("VI_1 notify", "sleep 0.05; exit 3").for_event(event);
        last = Some(runner.submit("VI_1", job));
    }
    drop(runner.submit(
        "VI_2",
        Job::new("VI_2 notify", vec!["/nonexistent/hook".into()], AMPLE).for_event(1),
    ));
    let timed_out_job = Job {
        timeout: Duration::from_millis(200),
        ..shell("VI_4 notify", "sleep 30")
    };
    let cut = runner.submit("VI_4", timed_out_job);
    timeout(AMPLE, last.unwrap()).await.unwrap().unwrap();
    assert!(matches!(
        timeout(AMPLE, cut).await.unwrap().unwrap(),
        Outcome::TimedOut { .. }
    ));
    let contents = read_journal(&journal).unwrap();
    assert!(contents.corrupt.is_empty(), "{:?}", contents.corrupt);
    let vi1: Vec<_> = contents
        .entries
        .iter()
        .filter(|entry| entry.queue == "VI_1")
        .collect();
    assert_eq!(
        vi1.iter().map(|e| e.event.unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    for pair in vi1.windows(2) {
        assert!(pair[0].end() <= pair[1].start, "{pair:#?}");
    }
    for entry in &vi1 {
        assert_eq!(entry.outcome, JournalOutcome::Exited { exit_code: 3 });
        assert!(entry.duration() >= Duration::from_millis(50), "{entry:?}");
        assert!(entry.pid.is_some());
        assert_eq!(entry.argv[0], "/bin/sh");
    }
    let by_queue = |queue: &str| {
        contents
            .entries
            .iter()
            .find(|entry| entry.queue == queue)
            .unwrap_or_else(|| panic!("no {queue} entry in {:#?}", contents.entries))
    };
    let missing = by_queue("VI_2");
    assert!(
        matches!(&missing.outcome, JournalOutcome::SpawnFailed { error } if error.contains("/nonexistent/hook")),
        "{missing:?}"
    );
    assert_eq!(missing.pid, None);
    assert_eq!(by_queue("VI_4").outcome, JournalOutcome::TimedOut);
    assert_eq!(contents.entries.len(), 7);
}

#[tokio::test(flavor = "current_thread")]
async fn an_insecure_script_is_refused_and_journalled() {
    if !is_root() {
        eprintln!("skipping: script security applies to root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("hooks.journal");
    let ran = dir.path().join("ran");
    let script = script_in_own_dir(dir.path(), &format!("#!/bin/sh\ntouch {}\n", ran.display()));
    let hooks = script.parent().unwrap();
    chown(hooks, Some(0), Some(1000)).unwrap();
    fs::set_permissions(hooks, fs::Permissions::from_mode(0o775)).unwrap();
    let runner = HookRunner::with_settings(settings(&journal));
    let argv = vec![script.display().to_string()];
    let outcome = runner
        .submit("VI_1", Job::new("VI_1 notify_master", argv.clone(), AMPLE))
        .await
        .unwrap();
    let Outcome::Refused { error } = outcome else {
        panic!("expected a refusal, got {outcome:?}");
    };
    assert!(
        error.starts_with(&format!(
            "refusing to run {} as root: {} is writable by group 1000",
            script.display(),
            hooks.display()
        )),
        "{error}"
    );
    assert!(!ran.exists(), "the refused script ran");
    let entries = read_journal(&journal).unwrap().entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, JournalOutcome::Refused { error });
    assert_eq!(entries[0].argv, argv);

    // Run as another user, the same script may run (it can only harm that user).
    let nobody = RunAs::lookup("nobody", None).unwrap();
    let as_nobody = HookRunner::with_settings(RunSettings {
        run_as: Some(nobody),
        ..settings(&journal)
    });
    let id = dir.path().join("id");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let outcome = as_nobody
        .submit(
            "VI_1",
            shell(
                "VI_1 id",
                &format!("id -u > {0}; id -g >> {0}; id -G >> {0}", id.display()),
            ),
        )
        .await
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    let ids = fs::read_to_string(&id).unwrap();
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids[0], nobody.uid.to_string());
    assert_eq!(ids[1], nobody.gid.to_string());
    // Root's supplementary groups are dropped.
    assert_eq!(ids[2], nobody.gid.to_string());
}

#[tokio::test(flavor = "current_thread")]
async fn a_service_is_restarted_after_an_exit_and_stopped_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("hooks.journal");
    let starts = dir.path().join("starts");
    let child_pid = dir.path().join("child");
    // First run exits at once; later runs leave a child and wait.
    let script = format!(
        "echo start >> {starts}\n\
         if [ $(wc -l < {starts}) -eq 1 ]; then exit 1; fi\n\
         sleep 1000 & echo $! > {child}\nwait\n",
        starts = starts.display(),
        child = child_pid.display()
    );
    let service = Service::start(
        "reader",
        shell("reader", &script),
        RunSettings {
            script_security: false,
            ..settings(&journal)
        },
    );
    let deadline = Instant::now() + AMPLE;
    while !child_pid.exists() {
        assert!(Instant::now() < deadline, "the service was not restarted");
        sleep(Duration::from_millis(20)).await;
    }
    let pid = read_pid(&child_pid);
    // `sleep 1000` does not end by itself: after the grace it is stopped.
    timeout(AMPLE, service.stop(Duration::from_millis(300)))
        .await
        .expect("stop returns");
    // SIGKILL is delivered asynchronously: give it a moment.
    let deadline = Instant::now() + AMPLE;
    while is_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the service's child {pid} outlived stop()"
        );
        sleep(Duration::from_millis(20)).await;
    }
    let outcomes = journalled_outcomes(&journal);
    assert_eq!(
        outcomes,
        [
            JournalOutcome::Exited { exit_code: 1 },
            JournalOutcome::Stopped
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_service_finishing_within_its_grace_is_not_killed_nor_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("hooks.journal");
    let service = Service::start(
        "reader",
        shell("reader", "sleep 0.3"),
        RunSettings {
            script_security: false,
            ..settings(&journal)
        },
    );
    // Give it time to start, then ask it to finish.
    sleep(Duration::from_millis(100)).await;
    timeout(AMPLE, service.stop(AMPLE))
        .await
        .expect("stop returns");
    let outcomes = journalled_outcomes(&journal);
    assert_eq!(outcomes, [JournalOutcome::Exited { exit_code: 0 }]);
}
