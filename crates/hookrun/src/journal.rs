//! The hook journal: one JSON line per finished hook run, appended to a file
//! that `haadm hooks` reads.
//!
//! Each line is written with a single `write` to a file opened with
//! `O_APPEND`, so lines of concurrent writers (vrrpd, replicad, `hookrun
//! run`) never interleave. The file is rotated when a line would take it
//! past its size bound: it becomes `<path>.1` (replacing the previous one)
//! and a new file starts. Writers take an exclusive `flock` on the file
//! while they check its size, rotate and write, so two processes never
//! rotate the same file twice.
//!
//! The reader returns the old file's entries, then the current file's, and
//! reports every line it cannot parse with its file and line number instead
//! of failing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::job::Outcome;

/// The size past which a journal file is rotated, unless configured.
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = 1024 * 1024;

/// The journal file's name in a daemon's run directory.
pub const JOURNAL_FILE_NAME: &str = "hooks.journal";

/// How many times an append reopens a file that another process rotated
/// while this one waited for the lock.
const ROTATION_RETRIES: usize = 8;

/// One finished hook run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The queue the hook ran on: the VRRP instance, sync group or resource.
    pub queue: String,
    /// The hook's name as its log lines show it, e.g. `VI_1 notify_master`.
    pub hook: String,
    pub argv: Vec<String>,
    /// The number of the event (state change) that ran it, counted per
    /// queue from 1; several hooks of one event share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
    /// When it was started (RFC 3339, UTC).
    #[serde(with = "rfc3339")]
    pub start: SystemTime,
    /// From its start until its leader process was reaped (0 when it never started).
    pub duration_us: u64,
    #[serde(flatten)]
    pub outcome: JournalOutcome,
    /// The leader's process id, when it was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl JournalEntry {
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us)
    }

    /// When the run ended (start + duration).
    pub fn end(&self) -> SystemTime {
        self.start + self.duration()
    }
}

/// `time` as the journal writes it: RFC 3339 in UTC with microseconds,
/// e.g. `2026-11-25T10:00:00.123456Z`.
pub fn format_time(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(timestamp) => format!("{timestamp:.6}"),
        // Outside jiff's range (years -9999..=9999): not a real clock reading.
        Err(error) => format!("(time out of range: {error})"),
    }
}

/// How a run ended, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JournalOutcome {
    Exited {
        exit_code: i32,
    },
    Signalled {
        signal: i32,
    },
    TimedOut,
    /// A long-running helper the daemon stopped on purpose.
    Stopped,
    /// Script security refused to run it; `error` says which path and why.
    Refused {
        error: String,
    },
    SpawnFailed {
        error: String,
    },
    WaitFailed {
        error: String,
    },
}

impl From<&Outcome> for JournalOutcome {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Exited { code, .. } => Self::Exited { exit_code: *code },
            Outcome::Signalled { signal, .. } => Self::Signalled { signal: *signal },
            Outcome::TimedOut { .. } => Self::TimedOut,
            Outcome::Stopped { .. } => Self::Stopped,
            Outcome::Refused { error } => Self::Refused {
                error: error.clone(),
            },
            Outcome::SpawnFailed { error } => Self::SpawnFailed {
                error: error.clone(),
            },
            Outcome::WaitFailed { error, .. } => Self::WaitFailed {
                error: error.clone(),
            },
        }
    }
}

impl JournalOutcome {
    /// A short description: `exited 0`, `timed out`, `refused: ...`.
    pub fn describe(&self) -> String {
        match self {
            Self::Exited { exit_code } => format!("exited {exit_code}"),
            Self::Signalled { signal } => format!("killed by signal {signal}"),
            Self::TimedOut => "timed out".to_owned(),
            Self::Stopped => "stopped".to_owned(),
            Self::Refused { error } => format!("refused: {error}"),
            Self::SpawnFailed { error } => format!("not started: {error}"),
            Self::WaitFailed { error } => format!("lost: {error}"),
        }
    }
}

/// RFC 3339 timestamps in UTC, with microseconds.
mod rfc3339 {
    use std::time::SystemTime;

    use jiff::Timestamp;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_time(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        let timestamp: Timestamp = text
            .parse()
            .map_err(|error| D::Error::custom(format!("start {text:?}: {error}")))?;
        SystemTime::try_from(timestamp)
            .map_err(|error| D::Error::custom(format!("start {text:?}: {error}")))
    }
}

/// A journal that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("hook journal {}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error(
        "hook journal {}: another process keeps rotating it; this entry was not written",
        path.display()
    )]
    Contended { path: PathBuf },
}

fn io_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The writing side of a journal file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    max_bytes: u64,
}

impl Journal {
    /// A journal at `path` rotated past `max_bytes`. Nothing is opened
    /// until the first append; a missing directory is created then.
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            path: path.into(),
            max_bytes,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` as one line.
    pub fn append(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let mut line =
            serde_json::to_vec(entry).expect("a journal entry always serializes to JSON");
        line.push(b'\n');
        for _ in 0..ROTATION_RETRIES {
            let file = self.open()?;
            let locked = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| io_error(&self.path, "lock it")(errno.into()))?;
            let opened = locked.metadata().map_err(io_error(&self.path, "stat it"))?;
            if !self.still_at_path(&opened)? {
                // Rotated by another writer while this one waited: reopen.
                continue;
            }
            if opened.len() > 0 && opened.len() + line.len() as u64 > self.max_bytes {
                fs::rename(&self.path, rotated_path(&self.path))
                    .map_err(io_error(&self.path, "rotate it"))?;
                continue;
            }
            return (&*locked)
                .write_all(&line)
                .map_err(io_error(&self.path, "append to it"));
        }
        Err(JournalError::Contended {
            path: self.path.clone(),
        })
    }

    fn open(&self) -> Result<File, JournalError> {
        let open = || {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&self.path)
        };
        match open() {
            Err(error) if error.kind() == ErrorKind::NotFound => {
                if let Some(parent) = self.path.parent() {
                    fs::create_dir_all(parent).map_err(io_error(parent, "create its directory"))?;
                }
                open().map_err(io_error(&self.path, "open it"))
            }
            other => other.map_err(io_error(&self.path, "open it")),
        }
    }

    fn still_at_path(&self, opened: &fs::Metadata) -> Result<bool, JournalError> {
        match fs::metadata(&self.path) {
            Ok(current) => Ok(current.ino() == opened.ino() && current.dev() == opened.dev()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error(&self.path, "stat it")(error)),
        }
    }
}

/// Where a journal's previous file goes at rotation: `<path>.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// A line of a journal file that is not a journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptLine {
    pub path: PathBuf,
    /// Counted from 1.
    pub line: usize,
    pub error: String,
}

/// What a journal holds: its entries, oldest first, and the lines skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalContents {
    pub entries: Vec<JournalEntry>,
    pub corrupt: Vec<CorruptLine>,
}

/// Reads the journal at `path`: its rotated file, then the current one.
/// Missing files hold nothing.
pub fn read_journal(path: &Path) -> Result<JournalContents, JournalError> {
    let mut contents = JournalContents::default();
    for file in [rotated_path(path), path.to_path_buf()] {
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error(&file, "read it")(error)),
        };
        parse_lines(&file, &bytes, &mut contents);
    }
    Ok(contents)
}

fn parse_lines(file: &Path, bytes: &[u8], contents: &mut JournalContents) {
    let complete = bytes.ends_with(b"\n");
    let mut lines: Vec<&[u8]> = bytes.split(|&byte| byte == b'\n').collect();
    // split() yields an empty piece after the final newline.
    if complete {
        lines.pop();
    }
    let last = lines.len();
    for (index, line) in lines.into_iter().enumerate() {
        let number = index + 1;
        let corrupt = |error: String| CorruptLine {
            path: file.to_path_buf(),
            line: number,
            error,
        };
        if number == last && !complete {
            contents.corrupt.push(corrupt(
                "the last line has no newline: its write was cut off".to_owned(),
            ));
            continue;
        }
        match serde_json::from_slice::<JournalEntry>(line) {
            Ok(entry) => contents.entries.push(entry),
            Err(error) => contents
                .corrupt
                .push(corrupt(format!("not a journal entry: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(queue: &str, event: u64) -> JournalEntry {
        JournalEntry {
            queue: queue.to_owned(),
            hook: format!("{queue} notify"),
            argv: vec!["/hooks/log".into(), "two words".into()],
            event: Some(event),
            start: SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_064_800_123_456),
            duration_us: 12_345,
            outcome: JournalOutcome::Exited { exit_code: 3 },
            pid: Some(4321),
        }
    }

    #[test]
    fn entries_round_trip_as_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/hooks.journal");
        let journal = Journal::new(&path, DEFAULT_JOURNAL_MAX_BYTES);
        let timed_out = JournalEntry {
            outcome: JournalOutcome::TimedOut,
            event: None,
            ..entry("VI_2", 1)
        };
        journal.append(&entry("VI_1", 1)).unwrap();
        journal.append(&timed_out).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.starts_with(
                r#"{"queue":"VI_1","hook":"VI_1 notify","argv":["/hooks/log","two words"],"event":1,"start":"2025-11-25T10:00:00.123456Z","duration_us":12345,"outcome":"exited","exit_code":3,"pid":4321}"#
            ),
            "{text}"
        );
        let read = read_journal(&path).unwrap();
        assert_eq!(read.entries, [entry("VI_1", 1), timed_out]);
        assert!(read.corrupt.is_empty());
    }

    #[test]
    fn rotates_past_its_bound_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.journal");
        let line_len = serde_json::to_vec(&entry("VI_1", 1)).unwrap().len() as u64 + 1;
        // Room for three lines per file.
        let journal = Journal::new(&path, line_len * 3);
        for event in 1..=8 {
            journal.append(&entry("VI_1", event)).unwrap();
        }
        // 1-3 went to the first file, 4-6 to the second (now .1), 7-8 are current.
        let events = |contents: JournalContents| -> Vec<u64> {
            contents
                .entries
                .iter()
                .map(|entry| entry.event.unwrap())
                .collect()
        };
        assert_eq!(events(read_journal(&path).unwrap()), [4, 5, 6, 7, 8]);
        assert_eq!(fs::metadata(&path).unwrap().len(), line_len * 2);
        assert_eq!(
            fs::metadata(rotated_path(&path)).unwrap().len(),
            line_len * 3
        );
    }

    #[test]
    fn corrupt_lines_are_reported_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.journal");
        let good = serde_json::to_string(&entry("VI_1", 1)).unwrap();
        let bad_time = good.replace("2025-11-25T10:00:00.123456Z", "yesterday");
        fs::write(
            &path,
            format!("{good}\nnot json\n{bad_time}\n{good}\n{{\"queue\":\"VI_1\""),
        )
        .unwrap();
        let read = read_journal(&path).unwrap();
        assert_eq!(read.entries.len(), 2);
        let lines: Vec<usize> = read.corrupt.iter().map(|c| c.line).collect();
        assert_eq!(lines, [2, 3, 5], "{:#?}", read.corrupt);
        assert!(
            read.corrupt[1].error.contains("yesterday"),
            "{:?}",
            read.corrupt[1]
        );
        assert!(
            read.corrupt[2].error.contains("cut off"),
            "{:?}",
            read.corrupt[2]
        );
        assert!(read.corrupt.iter().all(|c| c.path == path));
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let read = read_journal(&dir.path().join("none")).unwrap();
        assert_eq!(read, JournalContents::default());
    }
}
