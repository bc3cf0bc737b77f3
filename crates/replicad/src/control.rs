//! The control protocol between `haadm` and `replicad`, as drbdsetup talks
//! to the DRBD kernel module: one JSON object per line over the Unix socket
//! `<run-dir>/replicad.sock`. The client sends one [`Request`]; the daemon
//! answers one [`Reply`] — or, for [`Request::Events`], a stream of event
//! lines until the client goes away.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The socket's path under the run directory.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("replicad.sock")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Attach the backing disk and bring the resource to Secondary.
    Up {
        resource: String,
    },
    /// Stop serving and detach; refused while Primary.
    Down {
        resource: String,
    },
    Primary {
        resource: String,
        force: bool,
    },
    Secondary {
        resource: String,
    },
    /// Start (or restart) the peer link; with `discard_my_data`, this
    /// node's changes lose if the connect finds a split brain.
    Connect {
        resource: String,
        #[serde(default)]
        discard_my_data: bool,
    },
    /// Stop the peer link: StandAlone until `connect`.
    Disconnect {
        resource: String,
    },
    /// Online verify against the peer (`verify-alg`); differing blocks
    /// are marked out of sync, not repaired.
    Verify {
        resource: String,
    },
    /// Discard this node's data: full resync from the peer.
    Invalidate {
        resource: String,
    },
    /// Discard the peer's data: full resync to the peer.
    InvalidateRemote {
        resource: String,
    },
    /// Start a new current generation; with `clear_bitmap`, on a fresh
    /// connected pair, both nodes become UpToDate without the initial sync.
    NewCurrentUuid {
        resource: String,
        #[serde(default)]
        clear_bitmap: bool,
    },
    /// End an I/O freeze of `fencing: resource-and-stonith` by hand (after
    /// making sure the peer is not Primary), as `drbdadm resume-io`.
    ResumeIo {
        resource: String,
    },
    /// Every resource, or one.
    Status {
        resource: Option<String>,
    },
    /// The events2-style stream: `exists` lines, `exists -`, then changes.
    Events,
}

/// Why a command failed, as the exit code `haadm` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The request makes no sense (unknown resource, malformed line).
    Invalid,
    /// A state change was refused (held open, still Primary, not up).
    Refused,
    /// Promotion needs UpToDate data: use --force if you know better.
    NeedUpToDate,
    /// The disk or metadata failed.
    Io,
}

impl Failure {
    /// The exit code `haadm` uses for this failure (see `haadm --help`).
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Io => 1,
            Failure::Invalid => 10,
            Failure::Refused => 11,
            Failure::NeedUpToDate => 17,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Reply {
    Done { resources: Vec<ResourceStatus> },
    Failed { failure: Failure, message: String },
}

/// What `haadm status` shows of one resource, in DRBD's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub name: String,
    /// `Primary` or `Secondary`.
    pub role: String,
    /// `UpToDate`, `Consistent`, `Outdated`, `Inconsistent`, `Diskless`.
    pub disk: String,
    /// Why the disk was detached (Diskless while up): the I/O error, or
    /// the `disk-timeout` it did not answer within.
    #[serde(default)]
    pub disk_error: Option<String>,
    /// Usable size in bytes.
    pub size: u64,
    /// NBD clients connected now.
    pub open_count: u32,
    /// Bytes marked out of sync with the peer (4 KiB blocks of the bitmap):
    /// what the next resync copies.
    #[serde(default)]
    pub out_of_sync: u64,
    /// I/O is suspended (DRBD's `suspended:fencing`): the Primary lost its
    /// peer with `fencing: resource-and-stonith`, and requests wait until
    /// the fence-peer handler fenced the peer, the peer is back, or
    /// `haadm resume-io`.
    #[serde(default)]
    pub suspended: bool,
    pub peer: PeerStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    /// `StandAlone`, `Connecting`, `Connected`.
    pub connection: String,
    /// `Primary`, `Secondary` or `Unknown` when not connected.
    pub role: String,
    /// The peer's disk, `DUnknown` when not connected.
    pub disk: String,
    /// `Off`, `Established`, `SyncSource`, `SyncTarget`.
    pub replication: String,
    /// Percent of the resync done, while one runs.
    pub done: Option<f64>,
    /// The running resync's average rate, in bytes per second (after its
    /// first second).
    #[serde(default)]
    pub resync_rate: Option<u64>,
    /// Seconds the running resync has left at that rate.
    #[serde(default)]
    pub eta: Option<u64>,
    /// Bytes this node sent or received as resync since replicad started.
    pub resynced_bytes: u64,
    /// The link is StandAlone because the connect found a split brain.
    pub split_brain: bool,
    /// Why the link is StandAlone, when it was not the operator's choice:
    /// a refused connect, a split brain, a peer cut off by `ko-count`.
    pub reason: Option<String>,
    /// Bytes the last online verify found out of sync (4 KiB blocks).
    #[serde(default)]
    pub verify_out_of_sync: u64,
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "replicad is not running (no answer on {path}): start it with `replicad -c CONFIG_DIR --run-dir {run_dir}`"
    )]
    NotRunning { path: PathBuf, run_dir: PathBuf },
    #[error("talking to replicad on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "replicad did not answer on {path} within {waited:?}: it may be stuck (on a backing \
         disk that hangs?); its log says more"
    )]
    NoAnswer { path: PathBuf, waited: Duration },
    #[error("replicad sent something that is not a reply: {0}")]
    Garbled(String),
}

/// A connection to the daemon's control socket.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    reply_timeout: Option<Duration>,
}

impl Client {
    pub fn connect(run_dir: &Path) -> Result<Client, ClientError> {
        let path = socket_path(run_dir);
        let stream = UnixStream::connect(&path).map_err(|_| ClientError::NotRunning {
            path: path.clone(),
            run_dir: run_dir.to_path_buf(),
        })?;
        let writer = stream.try_clone().map_err(|source| ClientError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Client {
            path,
            reader: BufReader::new(stream),
            writer,
            reply_timeout: None,
        })
    }

    /// Gives up on a reply that takes longer than `timeout` (with
    /// [`ClientError::NoAnswer`]), for questions that must not hang on a
    /// stuck daemon (`haadm status`, `haadm check`).
    pub fn with_reply_timeout(self, timeout: Duration) -> Result<Client, ClientError> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(Client {
            reply_timeout: Some(timeout),
            ..self
        })
    }

    fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(request).expect("requests always serialize");
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn read_line(&mut self) -> Result<Option<String>, ClientError> {
        let mut line = String::new();
        let read = self.reader.read_line(&mut line).map_err(|source| {
            match (source.kind(), self.reply_timeout) {
                (ErrorKind::WouldBlock | ErrorKind::TimedOut, Some(waited)) => {
                    ClientError::NoAnswer {
                        path: self.path.clone(),
                        waited,
                    }
                }
                _ => ClientError::Io {
                    path: self.path.clone(),
                    source,
                },
            }
        })?;
        Ok((read > 0).then(|| line.trim_end().to_string()))
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        self.send(request)?;
        let line = self
            .read_line()?
            .ok_or_else(|| ClientError::Garbled("the connection closed before a reply".into()))?;
        serde_json::from_str(&line).map_err(|_| ClientError::Garbled(line))
    }

    /// Subscribes to events and calls `each` with every line until the
    /// daemon closes the stream or `each` returns false.
    pub fn events(mut self, mut each: impl FnMut(&str) -> bool) -> Result<(), ClientError> {
        self.send(&Request::Events)?;
        while let Some(line) = self.read_line()? {
            if !each(&line) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    use super::*;

    /// A daemon that takes the question and never answers: a client with a
    /// reply timeout gives up, saying so.
    #[test]
    fn a_reply_timeout_gives_up_on_a_daemon_that_does_not_answer() {
        let run_dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(socket_path(run_dir.path())).unwrap();
        let stuck = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut question = String::new();
            BufReader::new(&stream).read_line(&mut question).unwrap();
            std::thread::sleep(Duration::from_secs(1));
            question
        });
        let timeout = Duration::from_millis(200);
        let mut client = Client::connect(run_dir.path())
            .unwrap()
            .with_reply_timeout(timeout)
            .unwrap();
        let started = Instant::now();
        let answer = client.call(&Request::Status { resource: None });
        assert!(
            matches!(answer, Err(ClientError::NoAnswer { waited, .. }) if waited == timeout),
            "{answer:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(stuck.join().unwrap().contains("status"));
    }
}
