//! Runs real processes through `HookRunner`: ordering and independence of
//! queues, timeouts and process-group kills, outcomes, environment and
//! arguments, output logging, `idle()` and bursts.

use std::fs;
use std::path::Path;
use std::sync::{Mutex, Once};
use std::time::Duration;

mod common;

use common::{is_alive, read_pid};
use hookrun::{HookRunner, Job, KILL_GRACE, MAX_LOGGED_LINES, Outcome};
use log::{Level, Log, Metadata, Record};
use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::{Instant, sleep, timeout};

/// Timeout for jobs that are expected to finish by themselves.
const AMPLE: Duration = Duration::from_secs(20);

/// Bound for waiting on something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

// ===== log capture =====

/// Keeps every log record so tests can check what a job logged. Tests run in
/// parallel, so each looks only at records of its own (uniquely named) jobs.
struct CapturedLog {
    records: Mutex<Vec<(Level, String)>>,
}

static CAPTURED: CapturedLog = CapturedLog {
    records: Mutex::new(Vec::new()),
};

impl Log for CapturedLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let message = record.args().to_string();
        self.records.lock().unwrap().push((record.level(), message));
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURED).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The messages logged at `level` that start with `prefix`.
fn logged(level: Level, prefix: &str) -> Vec<String> {
    CAPTURED
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, message)| *at == level && message.starts_with(prefix))
        .map(|(_, message)| message.clone())
        .collect()
}

// ===== helpers =====

/// `sh -c script sh args...`: inside the script the args are `$1`, `$2`, …
fn shell(name: &str, script: &str, args: &[&str], timeout: Duration) -> Job {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
    ];
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    Job::new(name, argv, timeout)
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

async fn outcome_of(receiver: tokio::sync::oneshot::Receiver<Outcome>) -> Outcome {
    timeout(AMPLE + KILL_GRACE + PROMPTLY, receiver)
        .await
        .expect("the job finishes before its timeout and kill grace are long over")
        .expect("the runner sends every outcome")
}

async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + PROMPTLY;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        sleep(Duration::from_millis(10)).await;
    }
}

/// Waits a little for `pid` to die (SIGKILL delivery is asynchronous).
async fn is_gone_soon(pid: i32) -> bool {
    let deadline = Instant::now() + PROMPTLY;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
    true
}

// ===== order and independence =====

#[tokio::test(flavor = "current_thread")]
async fn jobs_of_one_queue_run_one_at_a_time_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    // Earlier jobs sleep longer: run in parallel, they would finish out of order.
    let script = r#"mkdir "$1/lock" || echo "job $2 overlapped" >> "$1/errors"
        sleep "$3"
        echo "$2" >> "$1/order"
        rmdir "$1/lock""#;
    let receivers: Vec<_> = (0..12)
        .map(|index| {
            let pause = format!("0.0{}", 9 - (index % 4) * 3);
            let job = shell(
                &format!("order-{index}"),
                script,
                &[path_arg(dir.path()), &index.to_string(), &pause],
                AMPLE,
            );
            runner.submit("order", job)
        })
        .collect();
    for receiver in receivers {
        let outcome = outcome_of(receiver).await;
        assert!(outcome.success(), "{outcome:?}");
    }
    let order = fs::read_to_string(dir.path().join("order")).unwrap();
    let expected: String = (0..12).map(|index| format!("{index}\n")).collect();
    assert_eq!(order, expected);
    assert!(
        !dir.path().join("errors").exists(),
        "{}",
        fs::read_to_string(dir.path().join("errors")).unwrap()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocked_queue_does_not_delay_other_queues() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let blocker = runner.submit(
        "blocked",
        shell(
            "independence-blocker",
            r#"touch "$1/started"; while [ ! -e "$1/release" ]; do sleep 0.01; done"#,
            &[path_arg(dir.path())],
            AMPLE,
        ),
    );
    wait_for_file(&dir.path().join("started")).await;
    let behind_blocker = runner.submit(
        "blocked",
        shell(
            "independence-behind",
            r#"touch "$1/behind""#,
            &[path_arg(dir.path())],
            AMPLE,
        ),
    );
    let other = runner.submit(
        "other",
        shell(
            "independence-other",
            r#"touch "$1/other""#,
            &[path_arg(dir.path())],
            AMPLE,
        ),
    );

    let other = timeout(PROMPTLY, other)
        .await
        .expect("the other queue's job is not held up by the blocked queue")
        .unwrap();
    assert!(other.success(), "{other:?}");
    assert!(dir.path().join("other").exists());
    let mut blocker = blocker;
    let mut behind_blocker = behind_blocker;
    assert_eq!(blocker.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(behind_blocker.try_recv(), Err(TryRecvError::Empty));
    assert!(
        !dir.path().join("behind").exists(),
        "ran before the blocker finished"
    );

    fs::write(dir.path().join("release"), "").unwrap();
    assert!(outcome_of(blocker).await.success());
    assert!(outcome_of(behind_blocker).await.success());
    assert!(dir.path().join("behind").exists());
}

// ===== timeouts =====

#[tokio::test(flavor = "current_thread")]
async fn a_job_past_its_timeout_is_stopped_by_sigterm() {
    capture_logs();
    let runner = HookRunner::new();
    let limit = Duration::from_millis(200);
    let job = Job::new("timeout-sleep", vec!["sleep".into(), "60".into()], limit);
    let started = Instant::now();
    let outcome = outcome_of(runner.submit("timeout-sleep", job)).await;
    let Outcome::TimedOut { duration } = outcome else {
        panic!("expected a timeout, got {outcome:?}");
    };
    assert!(duration >= limit, "{duration:?}");
    // sleep dies on SIGTERM, so no SIGKILL grace is waited out.
    assert!(duration < limit + KILL_GRACE, "{duration:?}");
    assert!(started.elapsed() < limit + KILL_GRACE + PROMPTLY);
    assert!(!outcome.success());
    let logged = logged(Level::Warn, "timeout-sleep: timed out");
    assert_eq!(logged.len(), 1, "{logged:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let limit = Duration::from_millis(500);
    // The ignored SIGTERM is inherited by the sleep, too.
    let job = shell(
        "timeout-stubborn",
        r#"trap "" TERM; sleep 60 & echo $! > "$1/sleep.pid"; wait"#,
        &[path_arg(dir.path())],
        limit,
    );
    let outcome = outcome_of(runner.submit("timeout-stubborn", job)).await;
    let Outcome::TimedOut { duration } = outcome else {
        panic!("expected a timeout, got {outcome:?}");
    };
    assert!(duration >= limit + KILL_GRACE, "{duration:?}");
    assert!(duration < limit + KILL_GRACE + PROMPTLY, "{duration:?}");
    let sleeper = read_pid(&dir.path().join("sleep.pid"));
    assert!(
        is_gone_soon(sleeper).await,
        "pid {sleeper} survived SIGKILL"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_timed_out_job_loses_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let limit = Duration::from_millis(500);
    // The leader dies on SIGTERM; its child ignores SIGTERM and would live on.
    let job = shell(
        "timeout-grandchild",
        r#"(trap "" TERM; exec sleep 60) & echo $! > "$1/grandchild.pid"; sleep 60"#,
        &[path_arg(dir.path())],
        limit,
    );
    let outcome = outcome_of(runner.submit("timeout-grandchild", job)).await;
    let Outcome::TimedOut { duration } = outcome else {
        panic!("expected a timeout, got {outcome:?}");
    };
    // The leftovers are killed as soon as the leader is gone, not after the grace.
    assert!(duration < limit + KILL_GRACE, "{duration:?}");
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    assert!(
        is_gone_soon(grandchild).await,
        "grandchild {grandchild} survived"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_background_process_holding_the_output_does_not_hold_up_the_queue() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let started = Instant::now();
    let leaver = runner.submit(
        "leaver",
        shell(
            "leaver-first",
            r#"sleep 30 & echo $! > "$1/background.pid"; echo leaving"#,
            &[path_arg(dir.path())],
            AMPLE,
        ),
    );
    let next = runner.submit("leaver", shell("leaver-next", "true", &[], AMPLE));
    let outcome = outcome_of(leaver).await;
    assert!(
        matches!(outcome, Outcome::Exited { code: 0, .. }),
        "{outcome:?}"
    );
    assert!(outcome_of(next).await.success());
    // Not the 20 s timeout nor the 30 s background sleep.
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    assert_eq!(
        logged(Level::Info, "leaver-first: leaving"),
        ["leaver-first: leaving"]
    );

    let background = read_pid(&dir.path().join("background.pid"));
    assert!(
        is_alive(background),
        "a job that exits by itself leaves its background processes"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(background),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_job_flooding_its_output_is_still_stopped_at_its_timeout() {
    capture_logs();
    let runner = HookRunner::new();
    let limit = Duration::from_millis(300);
    let started = Instant::now();
    let job = Job::new("flood", vec!["yes".into(), "flood".into()], limit);
    let outcome = outcome_of(runner.submit("flood", job)).await;
    assert!(matches!(outcome, Outcome::TimedOut { .. }), "{outcome:?}");
    assert!(
        started.elapsed() < limit + KILL_GRACE,
        "{:?}",
        started.elapsed()
    );
    let lines = logged(Level::Info, "flood: flood");
    assert_eq!(lines.len(), MAX_LOGGED_LINES);
}

// ===== output logging =====

#[tokio::test(flavor = "current_thread")]
async fn output_is_logged_by_line_with_stderr_as_warnings_and_capped() {
    capture_logs();
    let runner = HookRunner::new();
    let total = MAX_LOGGED_LINES + 500;
    let job = shell(
        "chatty",
        r#"echo "to stderr" >&2; printf 'no newline at end' >&2; seq 1 "$1""#,
        &[&total.to_string()],
        AMPLE,
    );
    assert!(outcome_of(runner.submit("chatty", job)).await.success());

    let numbered: Vec<String> = logged(Level::Info, "chatty: ")
        .into_iter()
        .filter(|message| message["chatty: ".len()..].parse::<usize>().is_ok())
        .collect();
    let expected: Vec<String> = (1..=MAX_LOGGED_LINES)
        .map(|n| format!("chatty: {n}"))
        .collect();
    assert_eq!(numbered, expected);
    assert_eq!(
        logged(Level::Info, "chatty: 500 more stdout lines were not logged").len(),
        1
    );
    assert_eq!(
        logged(Level::Warn, "chatty: "),
        ["chatty: to stderr", "chatty: no newline at end"]
    );
    assert_eq!(
        logged(Level::Info, "chatty: exited with code 0 after").len(),
        1
    );
}

// ===== outcomes, environment, arguments =====

#[tokio::test(flavor = "current_thread")]
async fn outcomes_report_exit_codes_and_signals() {
    capture_logs();
    let runner = HookRunner::new();
    let failing = runner.submit("outcomes", shell("outcome-exit3", "exit 3", &[], AMPLE));
    let passing = runner.submit("outcomes", shell("outcome-exit0", "exit 0", &[], AMPLE));
    let killed = runner.submit(
        "outcomes",
        shell("outcome-kill", "kill -KILL $$", &[], AMPLE),
    );

    let failing = outcome_of(failing).await;
    assert!(
        matches!(failing, Outcome::Exited { code: 3, .. }),
        "{failing:?}"
    );
    assert!(!failing.success());
    let passing = outcome_of(passing).await;
    assert!(
        matches!(passing, Outcome::Exited { code: 0, .. }),
        "{passing:?}"
    );
    assert!(passing.success());
    let killed = outcome_of(killed).await;
    assert!(
        matches!(killed, Outcome::Signalled { signal: 9, .. }),
        "{killed:?}"
    );
    assert!(!killed.success());

    assert_eq!(
        logged(Level::Warn, "outcome-exit3: exited with code 3 after").len(),
        1
    );
    assert_eq!(
        logged(Level::Info, "outcome-exit0: exited with code 0 after").len(),
        1
    );
    assert_eq!(
        logged(
            Level::Warn,
            "outcome-kill: killed by signal 9 (SIGKILL) after"
        )
        .len(),
        1
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_job_that_cannot_start_fails_and_its_queue_goes_on() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("hook.sh");
    fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    let runner = HookRunner::new();
    let missing = runner.submit(
        "spawn",
        Job::new("spawn-missing", vec!["/nonexistent/hook.sh".into()], AMPLE),
    );
    let denied = runner.submit(
        "spawn",
        Job::new(
            "spawn-denied",
            vec![path_arg(&not_executable).into()],
            AMPLE,
        ),
    );
    let empty = runner.submit("spawn", Job::new("spawn-empty", Vec::new(), AMPLE));
    let after = runner.submit("spawn", shell("spawn-after", "exit 0", &[], AMPLE));

    let Outcome::SpawnFailed { error } = outcome_of(missing).await else {
        panic!("a missing program cannot start");
    };
    assert!(error.contains("/nonexistent/hook.sh"), "{error}");
    assert!(error.contains("No such file"), "{error}");
    let Outcome::SpawnFailed { error } = outcome_of(denied).await else {
        panic!("a non-executable file cannot start");
    };
    assert!(error.contains(path_arg(&not_executable)), "{error}");
    assert!(error.contains("Permission denied"), "{error}");
    assert!(matches!(
        outcome_of(empty).await,
        Outcome::SpawnFailed { .. }
    ));
    assert!(outcome_of(after).await.success());
    assert_eq!(
        logged(Level::Warn, "spawn-missing: could not be started: ").len(),
        1
    );
}

#[tokio::test(flavor = "current_thread")]
async fn extra_variables_are_added_to_the_daemon_environment() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let job = shell(
        "env",
        r#"printf '%s\n%s\n%s' "$HOOK_STATE" "$HOOK_INSTANCE" "$PATH" > "$1/env""#,
        &[path_arg(dir.path())],
        AMPLE,
    )
    .with_env("HOOK_STATE", "MASTER now")
    .with_env("HOOK_INSTANCE", "VI_1");
    assert!(outcome_of(runner.submit("env", job)).await.success());
    let inherited_path = std::env::var("PATH").expect("the test runs with a PATH");
    assert_eq!(
        fs::read_to_string(dir.path().join("env")).unwrap(),
        format!("MASTER now\nVI_1\n{inherited_path}")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn arguments_arrive_intact() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let tricky = [
        "one two",
        " leading",
        "trailing ",
        "",
        "quote'and\"double",
        "$HOME;*",
    ];
    let mut args = vec![path_arg(dir.path())];
    args.extend(tricky);
    let job = shell(
        "args",
        r#"out="$1/args"; shift; for arg; do printf '[%s]\n' "$arg"; done > "$out""#,
        &args,
        AMPLE,
    );
    assert!(outcome_of(runner.submit("args", job)).await.success());
    let expected: String = tricky.iter().map(|arg| format!("[{arg}]\n")).collect();
    assert_eq!(
        fs::read_to_string(dir.path().join("args")).unwrap(),
        expected
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_job_has_its_own_process_group_and_stdin_on_dev_null() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    // Field 5 of /proc/PID/stat is the process group id.
    let job = shell(
        "isolation",
        r#"{ readlink /proc/self/fd/0; cut -d' ' -f5 /proc/$$/stat; echo $$; } > "$1/isolation""#,
        &[path_arg(dir.path())],
        AMPLE,
    );
    assert!(outcome_of(runner.submit("isolation", job)).await.success());
    let report = fs::read_to_string(dir.path().join("isolation")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert_eq!(lines[0], "/dev/null");
    assert_eq!(lines[1], lines[2], "the job leads its own process group");
}

// ===== idle and bursts =====

#[tokio::test(flavor = "current_thread")]
async fn idle_waits_for_every_job_on_every_queue() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    timeout(PROMPTLY, runner.idle())
        .await
        .expect("a runner without jobs is idle");

    let mut receivers = Vec::new();
    for (queue, pause) in [("idle-a", "0.3"), ("idle-b", "0.1"), ("idle-c", "0.2")] {
        for step in 0..2 {
            let job = shell(
                &format!("{queue}-{step}"),
                r#"sleep "$2"; touch "$1/$3""#,
                &[path_arg(dir.path()), pause, &format!("{queue}-{step}")],
                AMPLE,
            );
            receivers.push((format!("{queue}-{step}"), runner.submit(queue, job)));
        }
    }
    timeout(AMPLE, runner.idle())
        .await
        .expect("the jobs finish");
    for (name, mut receiver) in receivers {
        assert!(dir.path().join(&name).exists(), "{name} has not run");
        let outcome = receiver
            .try_recv()
            .expect("idle() resolves after every outcome is sent");
        assert!(outcome.success(), "{name}: {outcome:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn idle_does_not_wait_for_jobs_submitted_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let earlier = runner.submit("late", shell("late-earlier", "true", &[], AMPLE));
    let idle = runner.idle();
    let mut later = runner.submit(
        "late",
        shell(
            "late-later",
            r#"while [ ! -e "$1/release" ]; do sleep 0.01; done"#,
            &[path_arg(dir.path())],
            AMPLE,
        ),
    );
    timeout(PROMPTLY, idle)
        .await
        .expect("idle() waits only for the earlier job");
    assert!(outcome_of(earlier).await.success());
    assert_eq!(later.try_recv(), Err(TryRecvError::Empty));

    fs::write(dir.path().join("release"), "").unwrap();
    timeout(PROMPTLY, runner.idle())
        .await
        .expect("the later job finishes");
    assert!(
        later
            .try_recv()
            .expect("the later job has finished")
            .success()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_jobs_runs_each_job_exactly_once_in_order() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let runner = HookRunner::new();
    let queues = ["burst-0", "burst-1", "burst-2", "burst-3"];
    let per_queue = 25;
    let mut kept = Vec::new();
    for index in 0..per_queue {
        for queue in queues {
            let job = shell(
                &format!("{queue} job {index}"),
                r#"echo "$2" >> "$1/$3""#,
                &[path_arg(dir.path()), &index.to_string(), queue],
                AMPLE,
            );
            let receiver = runner.submit(queue, job);
            // Callers may drop the receiver; the job must run all the same.
            if index % 2 == 0 {
                kept.push(receiver);
            }
        }
    }
    timeout(AMPLE, runner.idle())
        .await
        .expect("the burst finishes");

    let expected: String = (0..per_queue).map(|index| format!("{index}\n")).collect();
    for queue in queues {
        let ran = fs::read_to_string(dir.path().join(queue)).unwrap();
        assert_eq!(ran, expected, "queue {queue}");
        let warnings = logged(Level::Warn, &format!("hook queue {queue}: "));
        assert!(
            warnings
                .iter()
                .any(|warning| warning.contains("waits behind")),
            "the backlog of {queue} was not reported: {warnings:?}"
        );
    }
    for mut receiver in kept {
        assert!(receiver.try_recv().expect("finished").success());
    }
}
