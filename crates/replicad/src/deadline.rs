//! Giving up on a backing disk that does not answer (`disk-timeout`).
//!
//! A disk that hangs returns no error: its requests just never end. With
//! `disk-timeout` set, every request to the backing disk, data and
//! metadata, is waited for at most that long; then it counts as failed
//! with [`timed_out`], and `on-io-error` applies as to any I/O error (with
//! `detach`, the node goes on Diskless, through its peer). The request
//! itself cannot be taken back: its thread stays blocked in the kernel
//! until the disk answers, and whatever it then writes lands on a disk
//! that is no longer used (the peer records everything a detached node
//! misses, so re-attaching resyncs it).
//!
//! Data requests run on tokio's blocking pool and are waited for with a
//! timer ([`blocking_within`]). Metadata writes run under the metadata's
//! lock, which the whole daemon takes (status, the peer link), so a hung
//! one must give the lock back: [`MetadataFile`] does each write and sync
//! on a thread of its own and stops waiting for it at the limit.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use replica::store::Storage;

/// The error of a request the disk did not complete within `limit`.
pub fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the backing disk did not complete a request within disk-timeout ({:.1} s)",
            limit.as_secs_f64()
        ),
    )
}

/// Runs blocking disk work off the async threads; with a `limit`, gives up
/// waiting for it after that long ([`timed_out`]).
pub async fn blocking_within<T: Send + 'static>(
    limit: Option<Duration>,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let task = tokio::task::spawn_blocking(work);
    let joined = match limit {
        None => task.await,
        Some(limit) => tokio::time::timeout(limit, task)
            .await
            .map_err(|_| timed_out(limit))?,
    };
    joined.unwrap_or_else(|join| Err(io::Error::other(join.to_string())))
}

/// The file that holds a volume's metadata, whose writes and syncs give up
/// after `limit` (reads only happen while attaching, and wait).
pub struct MetadataFile {
    file: Arc<File>,
    limit: Option<Duration>,
}

impl MetadataFile {
    pub fn new(file: File, limit: Option<Duration>) -> MetadataFile {
        MetadataFile {
            file: Arc::new(file),
            limit,
        }
    }

    /// Runs `work` on the file, on a thread of its own when there is a
    /// limit, so that the caller can stop waiting for it.
    fn within_limit(
        &self,
        work: impl FnOnce(&File) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let Some(limit) = self.limit else {
            return work(&self.file);
        };
        let file = Arc::clone(&self.file);
        let (done, result) = sync_channel(1);
        std::thread::Builder::new()
            .name("metadata-io".into())
            .spawn(move || {
                let _ = done.send(work(&file));
            })?;
        match result.recv_timeout(limit) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(timed_out(limit)),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::other(
                "the metadata write ended without a result",
            )),
        }
    }
}

impl Storage for MetadataFile {
    fn size(&self) -> io::Result<u64> {
        self.file.as_ref().size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let data = data.to_vec();
        self.within_limit(move |file| file.write_all_at(&data, offset))
    }

    fn sync(&mut self) -> io::Result<()> {
        self.within_limit(File::sync_data)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;
    use std::time::Instant;

    use super::*;

    /// A FIFO with no reader: opening it for writing blocks until one
    /// comes, which stands for a disk that does not answer.
    struct Fifo {
        dir: tempfile::TempDir,
    }

    impl Fifo {
        fn new() -> Fifo {
            let dir = tempfile::tempdir().unwrap();
            nix::unistd::mkfifo(&dir.path().join("disk"), nix::sys::stat::Mode::S_IRWXU).unwrap();
            assert!(
                std::fs::metadata(dir.path().join("disk"))
                    .unwrap()
                    .file_type()
                    .is_fifo()
            );
            Fifo { dir }
        }

        /// Work that hangs until a reader opens the FIFO.
        fn hang(&self) -> impl FnOnce() -> io::Result<()> + Send + 'static {
            let path = self.dir.path().join("disk");
            move || std::fs::OpenOptions::new().write(true).open(path).map(drop)
        }

        /// Lets the hung work go on (it opens, then the reader leaves).
        fn release(&self) {
            drop(File::open(self.dir.path().join("disk")));
        }
    }

    #[tokio::test]
    async fn blocking_work_that_hangs_is_given_up_at_the_limit() {
        let fifo = Fifo::new();
        let limit = Duration::from_millis(200);
        let started = Instant::now();
        let error = blocking_within(Some(limit), fifo.hang()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            error.to_string().contains("disk-timeout (0.2 s)"),
            "{error}"
        );
        assert!(started.elapsed() >= limit);
        fifo.release();

        let answered = blocking_within(Some(limit), || Ok(7)).await.unwrap();
        assert_eq!(answered, 7, "work that ends in time gives its result");
        let error = blocking_within(None, || Err::<(), _>(io::Error::other("EIO")))
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "EIO", "an error of the work is its own");
    }

    #[test]
    fn a_metadata_write_that_hangs_gives_up_and_lets_go() {
        let fifo = Fifo::new();
        let file = tempfile::tempfile().unwrap();
        let limit = Duration::from_millis(200);
        let storage = MetadataFile::new(file, Some(limit));
        let hang = fifo.hang();
        let started = Instant::now();
        let error = storage.within_limit(move |_| hang()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit && started.elapsed() < 10 * limit);
        fifo.release();

        let mut storage = storage;
        storage.write_at(4096, b"metadata").unwrap();
        storage.sync().unwrap();
        let mut back = [0u8; 8];
        storage.read_at(4096, &mut back).unwrap();
        assert_eq!(&back, b"metadata", "writes in time land");
        assert_eq!(storage.size().unwrap(), 4096 + 8);
    }
}
