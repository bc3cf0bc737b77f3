//! Interoperability with libnbd's tools (`nbdinfo`, `nbdcopy`) over a Unix
//! socket, served the way `replicad` serves: a thin blocking loop that
//! moves bytes between the socket and a [`ServerConnection`] and carries out
//! requests on an in-memory disk. Skipped, with a message, when
//! `libnbd-bin` is not installed (`scripts/test.sh` installs it).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use nbd::{Command, Errno, Event, Export, Extent, Limits, Reply, ServerConnection};

const SIZE: usize = 4 << 20;
/// Allocation granularity of the in-memory disk.
const BLOCK: usize = 64 << 10;

/// A sparse in-memory disk: bytes plus which blocks hold data.
struct MemoryDisk {
    bytes: Vec<u8>,
    allocated: Vec<bool>,
}

impl MemoryDisk {
    fn new() -> MemoryDisk {
        MemoryDisk {
            bytes: vec![0; SIZE],
            allocated: vec![false; SIZE / BLOCK],
        }
    }

    fn execute(&mut self, command: Command) -> Result<Reply, Errno> {
        let range = command
            .range()
            .map(|range| range.start as usize..range.end as usize);
        match command {
            Command::Read { .. } => Ok(Reply::Data(self.bytes[range.unwrap()].to_vec())),
            Command::Write { offset, data, .. } => {
                let start = offset as usize;
                self.bytes[start..start + data.len()].copy_from_slice(&data);
                self.mark(start..start + data.len(), true);
                Ok(Reply::Done)
            }
            Command::Flush => Ok(Reply::Done),
            Command::Trim { .. } => {
                let range = range.unwrap();
                self.bytes[range.clone()].fill(0);
                self.mark(range, false);
                Ok(Reply::Done)
            }
            Command::WriteZeroes { no_hole, .. } => {
                let range = range.unwrap();
                self.bytes[range.clone()].fill(0);
                self.mark(range, no_hole);
                Ok(Reply::Done)
            }
            Command::BlockStatus { offset, length } => {
                let mut extents = Vec::new();
                let mut position = offset as usize;
                let end = position + length as usize;
                while position < end {
                    let block = position / BLOCK;
                    let run = BLOCK - position % BLOCK;
                    let run = run as u64;
                    extents.push(if self.allocated[block] {
                        Extent::data(run)
                    } else {
                        Extent::hole(run)
                    });
                    position += BLOCK - position % BLOCK;
                }
                Ok(Reply::Extents(extents))
            }
        }
    }

    /// Marks the blocks a range touches (allocating) or covers whole (freeing).
    fn mark(&mut self, range: std::ops::Range<usize>, allocated: bool) {
        if allocated {
            for block in range.start / BLOCK..range.end.div_ceil(BLOCK) {
                self.allocated[block] = true;
            }
        } else {
            for block in range.start.div_ceil(BLOCK)..range.end / BLOCK {
                self.allocated[block] = false;
            }
        }
    }
}

/// Serves one client until the connection is over.
fn serve_connection(mut stream: UnixStream, export: Export, disk: Arc<Mutex<MemoryDisk>>) {
    let mut connection = ServerConnection::new(export, Limits::default());
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        while let Some(bytes) = connection.poll_transmit() {
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
        if connection.is_closed() {
            return;
        }
        if connection.wants_input() {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => connection.receive_eof(),
                Ok(read) => connection.receive(&buffer[..read]),
            }
        }
        while let Some(event) = connection.poll_event() {
            if let Event::Request(request) = event {
                let result = disk.lock().unwrap().execute(request.command);
                connection.reply(request.id, result).unwrap();
            }
        }
    }
}

/// A server on a fresh socket, one thread per connection, for the life of
/// the test process.
struct Server {
    _directory: tempfile::TempDir,
    socket: PathBuf,
    disk: Arc<Mutex<MemoryDisk>>,
}

impl Server {
    fn start(export: Export) -> Server {
        let directory = tempfile::tempdir().unwrap();
        let socket = directory.path().join("r0.nbd");
        let listener = UnixListener::bind(&socket).unwrap();
        let disk = Arc::new(Mutex::new(MemoryDisk::new()));
        let shared = disk.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (export, disk) = (export.clone(), shared.clone());
                thread::spawn(move || serve_connection(stream, export, disk));
            }
        });
        Server {
            _directory: directory,
            socket,
            disk,
        }
    }

    fn uri(&self, export_name: &str) -> String {
        format!("nbd+unix:///{export_name}?socket={}", self.socket.display())
    }
}

fn export() -> Export {
    Export {
        description: Some("hapair test volume".to_owned()),
        multi_conn: true,
        ..Export::new("r0", SIZE as u64)
    }
}

/// Whether libnbd's tools are here; prints why a test is skipped if not.
fn have_libnbd_tools() -> bool {
    let found = ["nbdinfo", "nbdcopy"]
        .iter()
        .all(|tool| Process::new(tool).arg("--version").output().is_ok());
    if !found {
        eprintln!("skipped: nbdinfo/nbdcopy not found (apt-get install libnbd-bin)");
    }
    found
}

fn run(program: &str, arguments: &[&str]) -> Output {
    Process::new(program).args(arguments).output().unwrap()
}

fn stdout_of(program: &str, arguments: &[&str]) -> String {
    let output = run(program, arguments);
    assert!(
        output.status.success(),
        "{program} {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn nbdinfo_sees_the_export_its_size_flags_and_block_sizes() {
    if !have_libnbd_tools() {
        return;
    }
    let server = Server::start(export());
    let info = stdout_of("nbdinfo", &["--json", &server.uri("")]);
    for expected in [
        "\"export-size\": 4194304",
        "\"description\": \"hapair test volume\"",
        "\"is_read_only\": false",
        "\"can_flush\": true",
        "\"can_fua\": true",
        "\"can_trim\": true",
        "\"can_zero\": true",
        "\"can_multi_conn\": true",
        "\"can_df\": true",
        "\"block_size_maximum\": 33554432",
        "\"protocol\": \"newstyle-fixed\"",
    ] {
        assert!(info.contains(expected), "missing {expected} in:\n{info}");
    }
    let list = stdout_of("nbdinfo", &["--list", &server.uri("")]);
    assert!(list.contains("export=\"r0\""), "{list}");
}

#[test]
fn nbdinfo_is_refused_an_unknown_export() {
    if !have_libnbd_tools() {
        return;
    }
    let server = Server::start(export());
    // With LIBNBD_DEBUG, libnbd also prints the server's error message.
    let output = Process::new("nbdinfo")
        .arg(server.uri("other"))
        .env("LIBNBD_DEBUG", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server replied with error to opt_go request"),
        "{stderr}"
    );
    assert!(stderr.contains("no export named \"other\""), "{stderr}");
}

#[test]
fn nbdcopy_writes_and_reads_back_a_sparse_image_and_nbdinfo_maps_it() {
    if !have_libnbd_tools() {
        return;
    }
    let server = Server::start(export());
    let directory = tempfile::tempdir().unwrap();
    // Data in the first 128 KiB and at 2 MiB; zeroes elsewhere.
    let mut image = vec![0u8; SIZE];
    for (index, byte) in image[..2 * BLOCK].iter_mut().enumerate() {
        *byte = (index % 251) as u8 + 1;
    }
    image[2 << 20..(2 << 20) + 1000].fill(0xee);
    let source = write_file(directory.path(), "source.img", &image);
    stdout_of("nbdcopy", &[source.to_str().unwrap(), &server.uri("r0")]);
    assert!(
        server.disk.lock().unwrap().bytes == image,
        "the export differs from the image written"
    );

    let copy = directory.path().join("copy.img");
    stdout_of("nbdcopy", &[&server.uri(""), copy.to_str().unwrap()]);
    assert!(
        std::fs::read(&copy).unwrap() == image,
        "the image read back differs"
    );

    let map = stdout_of("nbdinfo", &["--map", &server.uri("")]);
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    // nbdcopy skips zero runs, so only the written blocks are allocated.
    assert_eq!(
        lines,
        vec![
            vec!["0", "131072", "0", "data"],
            vec!["131072", "1966080", "3", "hole,zero"],
            vec!["2097152", "65536", "0", "data"],
            vec!["2162688", "2031616", "3", "hole,zero"],
        ],
        "{map}"
    );
}

#[test]
fn nbdcopy_cannot_write_to_a_read_only_export() {
    if !have_libnbd_tools() {
        return;
    }
    let server = Server::start(Export {
        read_only: true,
        ..export()
    });
    let directory = tempfile::tempdir().unwrap();
    let source = write_file(directory.path(), "source.img", &vec![1u8; SIZE]);
    let output = run("nbdcopy", &[source.to_str().unwrap(), &server.uri("")]);
    assert!(
        !output.status.success(),
        "a copy to a read-only export succeeded"
    );
    assert!(
        server
            .disk
            .lock()
            .unwrap()
            .bytes
            .iter()
            .all(|&byte| byte == 0)
    );
}

fn write_file(directory: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}
