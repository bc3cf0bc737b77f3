//! `haadm hooks`: what the hook journal says — every hook run of vrrpd,
//! replicad or `hookrun run --journal`, oldest first: when it started, its
//! queue (instance, group or resource), event number, name, outcome,
//! duration, pid and command line. Lines of the journal that cannot be read
//! are reported on stderr with their line number and skipped.

use std::path::{Path, PathBuf};

use hookrun::{JOURNAL_FILE_NAME, JournalEntry, format_time, read_journal, rotated_path};

/// `haadm hooks [--json] [--instance NAME] [--last N] [--journal PATH]`
#[derive(clap::Args)]
pub struct HooksArgs {
    /// Print the entries as a JSON array.
    #[arg(long)]
    json: bool,
    /// Only the runs of this instance, sync group or resource (queue).
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// Only the last N runs (after --instance).
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// The journal file (default: <run-dir>/hooks.journal; vrrpd's
    /// `hooks.journal` setting may put it elsewhere).
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
}

/// Prints the selected entries; unreadable lines go to stderr.
pub fn run(run_dir: &Path, args: &HooksArgs) -> Result<(), String> {
    let path = args
        .journal
        .clone()
        .unwrap_or_else(|| run_dir.join(JOURNAL_FILE_NAME));
    if !path.exists() && !rotated_path(&path).exists() {
        let hint = if args.journal.is_some() {
            "no hook has run yet, or the path is wrong"
        } else {
            "no hook has run yet, or the daemon writes it elsewhere: see vrrpd's \
             hooks.journal, and pass --journal PATH"
        };
        eprintln!("haadm: no hook journal at {} ({hint})", path.display());
    }
    let contents = read_journal(&path).map_err(|error| error.to_string())?;
    for corrupt in &contents.corrupt {
        eprintln!(
            "haadm: {} line {}: {} (skipped)",
            corrupt.path.display(),
            corrupt.line,
            corrupt.error
        );
    }
    let selected = select(&contents.entries, args.instance.as_deref(), args.last);
    if args.json {
        let json = serde_json::to_string_pretty(&selected).expect("journal entries serialize");
        println!("{json}");
    } else {
        for entry in selected {
            println!("{}", line(entry));
        }
    }
    Ok(())
}

fn select<'a>(
    entries: &'a [JournalEntry],
    queue: Option<&str>,
    last: Option<usize>,
) -> Vec<&'a JournalEntry> {
    let mut selected: Vec<&JournalEntry> = entries
        .iter()
        .filter(|entry| queue.is_none_or(|queue| entry.queue == queue))
        .collect();
    if let Some(last) = last {
        let skip = selected.len().saturating_sub(last);
        selected.drain(..skip);
    }
    selected
}

/// `START QUEUE #EVENT HOOK: OUTCOME, DURATION ms, pid PID: ARGV`
fn line(entry: &JournalEntry) -> String {
    let event = entry
        .event
        .map_or_else(|| "-".to_owned(), |event| format!("#{event}"));
    let pid = entry
        .pid
        .map_or_else(String::new, |pid| format!(", pid {pid}"));
    let argv: Vec<String> = entry
        .argv
        .iter()
        .map(|word| {
            if word.is_empty() || word.contains(|c: char| c.is_whitespace() || c == '"') {
                format!("{word:?}")
            } else {
                word.clone()
            }
        })
        .collect();
    format!(
        "{} {} {event} {}: {}, {:.1} ms{pid}: {}",
        format_time(entry.start),
        entry.queue,
        entry.hook,
        entry.outcome.describe(),
        entry.duration().as_secs_f64() * 1000.0,
        argv.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookrun::JournalOutcome;
    use std::time::{Duration, SystemTime};

    fn entry(queue: &str, event: u64) -> JournalEntry {
        JournalEntry {
            queue: queue.to_owned(),
            hook: format!("{queue} notify"),
            argv: vec!["/hooks/log".into(), "two words".into(), "MASTER".into()],
            event: Some(event),
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_064_800),
            duration_us: 12_345,
            outcome: JournalOutcome::Exited { exit_code: 0 },
            pid: Some(77),
        }
    }

    #[test]
    fn selects_by_queue_then_the_last_n() {
        let entries = [
            entry("VI_1", 1),
            entry("VI_2", 1),
            entry("VI_1", 2),
            entry("VI_1", 3),
        ];
        let events = |selected: Vec<&JournalEntry>| -> Vec<(String, u64)> {
            selected
                .iter()
                .map(|e| (e.queue.clone(), e.event.unwrap()))
                .collect()
        };
        assert_eq!(
            events(select(&entries, Some("VI_1"), Some(2))),
            [("VI_1".to_owned(), 2), ("VI_1".to_owned(), 3)]
        );
        assert_eq!(select(&entries, None, None).len(), 4);
        assert_eq!(select(&entries, None, Some(10)).len(), 4);
        assert!(select(&entries, Some("VI_9"), None).is_empty());
    }

    #[test]
    fn a_line_says_when_what_and_how_it_ended() {
        assert_eq!(
            line(&entry("VI_1", 3)),
            "2025-11-25T10:00:00.000000Z VI_1 #3 VI_1 notify: exited 0, 12.3 ms, pid 77: \
             /hooks/log \"two words\" MASTER"
        );
    }
}
