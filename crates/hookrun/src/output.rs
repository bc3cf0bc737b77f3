//! Logs a job's stdout (info) and stderr (warn) line by line, prefixed with
//! the job's name, with bounds on line length, line count and on how long
//! the pipes are read after the job ended.

use std::sync::Arc;
use std::time::Duration;

use log::{Level, debug, log};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{ChildStderr, ChildStdout};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Longer lines are logged in pieces of this many bytes.
pub const MAX_LINE_BYTES: usize = 4096;

/// Lines logged per stream and job; further lines are read and counted but
/// not logged, so a chatty hook cannot flood the journal.
pub const MAX_LOGGED_LINES: usize = 1000;

/// The tasks reading one job's stdout and stderr.
pub(crate) struct OutputLoggers {
    job: Arc<str>,
    readers: Vec<JoinHandle<()>>,
}

impl OutputLoggers {
    /// Starts one reader task per pipe.
    pub(crate) fn start(
        job: &str,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    ) -> Self {
        let job: Arc<str> = Arc::from(job);
        let mut readers = Vec::with_capacity(2);
        if let Some(stdout) = stdout {
            readers.push(tokio::spawn(log_lines(job.clone(), stdout, Stream::Stdout)));
        }
        if let Some(stderr) = stderr {
            readers.push(tokio::spawn(log_lines(job.clone(), stderr, Stream::Stderr)));
        }
        Self { job, readers }
    }

    /// Lets the readers reach end of file for at most `limit`, then stops them
    /// (which closes the pipes).
    pub(crate) async fn finish(mut self, limit: Duration) {
        let all_read = async {
            for reader in &mut self.readers {
                // A reader task only fails by panicking, and it does not panic.
                let _ = reader.await;
            }
        };
        if timeout(limit, all_read).await.is_err() {
            debug!(
                "{}: its output is still open {} ms after it ended (a background \
                 process holds it); no longer reading it",
                self.job,
                limit.as_millis()
            );
            for reader in &self.readers {
                reader.abort();
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn level(self) -> Level {
        match self {
            Self::Stdout => Level::Info,
            Self::Stderr => Level::Warn,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

async fn log_lines(job: Arc<str>, pipe: impl AsyncRead + Unpin, stream: Stream) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::with_capacity(256);
    let mut lines_read = 0usize;
    loop {
        line.clear();
        let limit = MAX_LINE_BYTES as u64;
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                log!(
                    stream.level(),
                    "{job}: cannot read its {}: {error}",
                    stream.name()
                );
                break;
            }
        }
        lines_read += 1;
        if lines_read <= MAX_LOGGED_LINES {
            let text = String::from_utf8_lossy(&line);
            log!(
                stream.level(),
                "{job}: {}",
                text.trim_end_matches(['\n', '\r'])
            );
        } else if lines_read == MAX_LOGGED_LINES + 1 {
            log!(
                stream.level(),
                "{job}: more than {MAX_LOGGED_LINES} {} lines; the rest is not logged",
                stream.name()
            );
        }
    }
    if lines_read > MAX_LOGGED_LINES {
        log!(
            stream.level(),
            "{job}: {} more {} lines were not logged (only the first {MAX_LOGGED_LINES} are)",
            lines_read - MAX_LOGGED_LINES,
            stream.name()
        );
    }
}
