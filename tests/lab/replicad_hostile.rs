//! Hostile NBD input against the running daemon, each case on its own raw
//! connection to the export's Unix socket: garbage in the handshake,
//! truncated frames, oversized lengths, requests past the end, unknown
//! commands, a write whose length the server must not believe. Afterwards
//! the daemon is still up, its memory stayed bounded, and the volume's
//! content is what it was.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use hapair_lab::{ReplicadNode, lab_lock, path_arg, program, random_bytes, require_root, run_ok};

const BACKING_SIZE: u64 = 64 << 20;
/// How long the server may take to answer, or to close a connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads sent by the client that never collects an answer, and their size.
const STALLED_READS: u64 = 2048;
const STALLED_READ_LENGTH: u32 = 1 << 20;
/// How long the daemon's memory is watched while that client stalls.
const STALL_WATCH: Duration = Duration::from_secs(3);
/// How much the daemon may grow for it: 64 reads in flight and 64 MiB of
/// queued answers, with room to spare.
const STALL_GROWTH_BOUND_KIB: u64 = 256 << 10;

// Protocol constants, from the NBD specification (doc/proto.md).
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const FLAG_FIXED_NEWSTYLE: u32 = 1;
const FLAG_NO_ZEROES: u32 = 2;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_ERR_UNSUP: u32 = 0x8000_0001;
const REP_ERR_TOO_BIG: u32 = 0x8000_0009;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// A hand-driven NBD client on a raw Unix socket.
struct RawClient {
    stream: UnixStream,
}

impl RawClient {
    /// Connects and reads the server's greeting (fixed newstyle).
    fn connect(node: &ReplicadNode) -> RawClient {
        let stream = UnixStream::connect(node.nbd_socket())
            .unwrap_or_else(|error| panic!("cannot connect to the export: {error}"));
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .expect("set a read timeout");
        let mut client = RawClient { stream };
        let greeting = client.read(18);
        assert_eq!(greeting[..8], NBDMAGIC.to_be_bytes(), "NBDMAGIC");
        assert_eq!(greeting[8..16], IHAVEOPT.to_be_bytes(), "IHAVEOPT");
        client
    }

    /// Connects and sends the client flags, ready for options.
    fn connect_for_options(node: &ReplicadNode) -> RawClient {
        let mut client = RawClient::connect(node);
        client.send(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
        client
    }

    /// Connects and negotiates the default export with NBD_OPT_GO: ready
    /// for requests (simple replies).
    fn connect_for_requests(node: &ReplicadNode) -> RawClient {
        let mut client = RawClient::connect_for_options(node);
        client.go();
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|error| panic!("cannot send to the server: {error}"));
    }

    /// Sends what it can: the server may close while a hostile frame is
    /// still being sent, which is its right.
    fn send_allowing_close(&mut self, bytes: &[u8]) {
        if let Err(error) = self.stream.write_all(bytes) {
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                ),
                "sending failed otherwise than by the server closing: {error}"
            );
        }
    }

    fn read(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.stream
            .read_exact(&mut bytes)
            .unwrap_or_else(|error| panic!("no {len}-byte answer from the server: {error}"));
        bytes
    }

    fn option(&mut self, option: u32, data: &[u8]) {
        let mut frame = IHAVEOPT.to_be_bytes().to_vec();
        frame.extend_from_slice(&option.to_be_bytes());
        frame.extend_from_slice(&u32::try_from(data.len()).expect("fits").to_be_bytes());
        frame.extend_from_slice(data);
        self.send(&frame);
    }

    /// One option reply: its type and data.
    fn option_reply(&mut self, option: u32) -> (u32, Vec<u8>) {
        let header = self.read(20);
        assert_eq!(
            header[..8],
            OPTION_REPLY_MAGIC.to_be_bytes(),
            "option reply magic"
        );
        assert_eq!(header[8..12], option.to_be_bytes(), "the option answered");
        let reply_type = u32::from_be_bytes(header[12..16].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes"));
        let data = self.read(usize::try_from(len).expect("fits"));
        (reply_type, data)
    }

    /// NBD_OPT_GO for the default export, then every reply up to the ACK.
    fn go(&mut self) {
        // Name length 0 (default export), no information requests.
        self.option(OPT_GO, &[0, 0, 0, 0, 0, 0]);
        loop {
            let (reply_type, data) = self.option_reply(OPT_GO);
            match reply_type {
                REP_ACK => return,
                error if error & 0x8000_0000 != 0 => panic!(
                    "NBD_OPT_GO refused ({error:#x}): {}",
                    String::from_utf8_lossy(&data)
                ),
                _ => {}
            }
        }
    }

    fn request(&mut self, kind: u16, cookie: u64, offset: u64, length: u32, payload: &[u8]) {
        let mut frame = REQUEST_MAGIC.to_be_bytes().to_vec();
        frame.extend_from_slice(&0u16.to_be_bytes());
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.extend_from_slice(&cookie.to_be_bytes());
        frame.extend_from_slice(&offset.to_be_bytes());
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(payload);
        self.send_allowing_close(&frame);
    }

    /// A simple reply to `cookie`: its error code.
    fn simple_reply(&mut self, cookie: u64) -> u32 {
        let reply = self.read(16);
        assert_eq!(
            reply[..4],
            SIMPLE_REPLY_MAGIC.to_be_bytes(),
            "simple reply magic"
        );
        assert_eq!(reply[8..16], cookie.to_be_bytes(), "the cookie answered");
        u32::from_be_bytes(reply[4..8].try_into().expect("4 bytes"))
    }

    /// Reads `length` bytes at `offset` on this connection.
    fn read_volume(&mut self, cookie: u64, offset: u64, length: u32) -> Vec<u8> {
        self.request(CMD_READ, cookie, offset, length, &[]);
        let error = self.simple_reply(cookie);
        assert_eq!(error, 0, "a valid read at {offset} fails with {error}");
        self.read(usize::try_from(length).expect("fits"))
    }

    /// Panics unless the server closes the connection within the timeout;
    /// whatever it sends before closing is ignored.
    fn expect_closed(mut self, case: &str) {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                    ) =>
                {
                    return;
                }
                Err(error) => panic!(
                    "{case}: the server should close the connection, but after \
                     {ANSWER_TIMEOUT:?}: {error}"
                ),
            }
        }
    }
}

/// The daemon's resident set size (VmRSS), in KiB.
fn memory_kib(node: &ReplicadNode) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", node.daemon().pid()))
        .expect("read the daemon's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc status:\n{status}"))
}

/// The handshake cases: none of them gets to transmission.
fn hostile_handshakes(node: &ReplicadNode, size: u64) {
    // Gone before sending anything.
    drop(RawClient::connect(node));

    // Client flags with bits the server does not know.
    let mut client = RawClient::connect(node);
    client.send(&u32::MAX.to_be_bytes());
    client.expect_closed("unknown client flags");

    // An option header without the IHAVEOPT magic.
    let mut client = RawClient::connect_for_options(node);
    client.send(b"GARBAGE!\0\0\0\x07\0\0\0\0");
    client.expect_closed("bad option magic");

    // Half an option header, then the end of input.
    let mut client = RawClient::connect_for_options(node);
    client.send(&IHAVEOPT.to_be_bytes()[..5]);
    client.stream.shutdown(Shutdown::Write).expect("shutdown");
    client.expect_closed("truncated option header");

    // A 4 GiB NBD_OPT_GO, of which a little is sent.
    let mut client = RawClient::connect_for_options(node);
    let mut frame = IHAVEOPT.to_be_bytes().to_vec();
    frame.extend_from_slice(&OPT_GO.to_be_bytes());
    frame.extend_from_slice(&u32::MAX.to_be_bytes());
    frame.extend_from_slice(&[0xee; 100 << 10]);
    client.send_allowing_close(&frame);
    let _ = client.stream.shutdown(Shutdown::Write);
    client.expect_closed("truncated 4 GiB option");

    // A 4 GiB NBD_OPT_EXPORT_NAME (no error reply exists for it).
    let mut client = RawClient::connect_for_options(node);
    let mut frame = IHAVEOPT.to_be_bytes().to_vec();
    frame.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
    frame.extend_from_slice(&u32::MAX.to_be_bytes());
    client.send_allowing_close(&frame);
    client.expect_closed("4 GiB export name");

    // A 1 MiB option, sent whole: refused as too big, and the handshake
    // goes on; so does it after an unknown option.
    let mut client = RawClient::connect_for_options(node);
    client.option(OPT_INFO, &[0x55; 1 << 20]);
    let (reply_type, _) = client.option_reply(OPT_INFO);
    assert_eq!(reply_type, REP_ERR_TOO_BIG, "a 1 MiB option is too big");
    client.option(0x1234, &[]);
    let (reply_type, _) = client.option_reply(0x1234);
    assert_eq!(reply_type, REP_ERR_UNSUP, "unknown option");
    client.go();
    let _ = client.read_volume(1, size - 4096, 4096);
}

/// The transmission cases, after a valid handshake.
fn hostile_requests(node: &ReplicadNode, size: u64) {
    // Reads and writes past the end are refused, and the connection
    // still serves; the write's payload was consumed, not applied.
    let mut client = RawClient::connect_for_requests(node);
    let last_block = client.read_volume(1, size - 4096, 4096);
    client.request(CMD_READ, 2, size - 4096, 8192, &[]);
    assert_eq!(client.simple_reply(2), EINVAL, "read past the end");
    client.request(CMD_WRITE, 3, size - 4096, 8192, &[0xee; 8192]);
    assert_eq!(client.simple_reply(3), ENOSPC, "write past the end");
    client.request(CMD_WRITE, 4, u64::MAX - 100, 4096, &[0xee; 4096]);
    assert_eq!(
        client.simple_reply(4),
        ENOSPC,
        "write at an offset that wraps"
    );
    client.request(CMD_READ, 5, size, 0, &[]);
    let reply = client.simple_reply(5);
    assert!(
        reply == 0 || reply == EINVAL,
        "an empty read at the end: {reply}"
    );
    // An unknown command type.
    client.request(0x55, 6, 0, 4096, &[]);
    assert_eq!(client.simple_reply(6), EINVAL, "unknown command");
    assert_eq!(
        client.read_volume(7, size - 4096, 4096),
        last_block,
        "the last block is unchanged and the connection still serves"
    );

    // A WRITE claiming 4 GiB: the server must not wait for, nor buffer,
    // what it claims; it closes.
    let mut client = RawClient::connect_for_requests(node);
    client.request(CMD_WRITE, 8, 0, u32::MAX, &[0xee; 1 << 20]);
    client.expect_closed("4 GiB write");

    // A request with a bad magic.
    let mut client = RawClient::connect_for_requests(node);
    client.send(&[0xde; 28]);
    client.expect_closed("bad request magic");

    // A truncated write: header and half its payload, then the end.
    let mut client = RawClient::connect_for_requests(node);
    client.request(CMD_WRITE, 9, 0, 8192, &[0xee; 4096]);
    client.stream.shutdown(Shutdown::Write).expect("shutdown");
    client.expect_closed("truncated write");
}

/// A Primary whose whole volume holds random data (flushed); also that
/// content, read back, and the volume's size.
fn primary_with_random_content() -> (ReplicadNode, u64, Vec<u8>) {
    let node = ReplicadNode::primary(BACKING_SIZE);
    let size = node.status()["size"].as_u64().expect("size");
    let content = node.new_path("content", "img");
    fs::write(&content, random_bytes(usize::try_from(size).expect("fits")))
        .expect("write random content");
    run_ok(&[
        path_arg(&program("nbdcopy")),
        "--flush",
        path_arg(&content),
        &node.nbd_uri(),
    ]);
    let before = node.read_export(0..size);
    (node, size, before)
}

/// The daemon still serves the volume as Primary, every hostile
/// connection is gone, and the content is `before`.
fn assert_unharmed(node: &ReplicadNode, size: u64, before: &[u8]) {
    let status = node.status();
    assert_eq!(status["role"], "Primary", "{status}");
    assert_eq!(status["disk"], "UpToDate", "{status}");
    node.wait_for_open_count(0);
    let after = node.read_export(0..size);
    assert!(before == after, "the volume's content changed");
}

#[test]
fn hostile_input_neither_stops_the_daemon_nor_changes_the_volume() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let (node, size, before) = primary_with_random_content();
    hostile_handshakes(&node, size);
    hostile_requests(&node, size);
    assert_unharmed(&node, size, &before);
}

#[test]
fn a_client_that_never_reads_its_replies_cannot_grow_the_daemon() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let (node, size, before) = primary_with_random_content();
    let baseline = memory_kib(&node);

    // 2 GiB of reads in 56 KiB of requests, whose answers are never
    // collected: the server may hold what its limits allow (64 requests in
    // flight, 64 MiB of queued answers), then must stop reading requests.
    // Sending them all may therefore block; the client gives up then.
    let client = RawClient::connect_for_requests(&node);
    client
        .stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .expect("set a write timeout");
    let mut requests = Vec::new();
    for cookie in 0..STALLED_READS {
        requests.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        requests.extend_from_slice(&0u16.to_be_bytes());
        requests.extend_from_slice(&CMD_READ.to_be_bytes());
        requests.extend_from_slice(&cookie.to_be_bytes());
        requests.extend_from_slice(&0u64.to_be_bytes());
        requests.extend_from_slice(&STALLED_READ_LENGTH.to_be_bytes());
    }
    if let Err(error) = (&client.stream).write_all(&requests) {
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "sending the reads failed otherwise than by the server not reading: {error}"
        );
    }
    let mut worst = baseline;
    let start = Instant::now();
    while start.elapsed() < STALL_WATCH {
        worst = worst.max(memory_kib(&node));
        assert!(
            worst < baseline + STALL_GROWTH_BOUND_KIB,
            "replicad grew from {baseline} KiB to {worst} KiB within {:?} for one client \
             that sent {STALLED_READS} reads of {STALLED_READ_LENGTH} bytes and reads no reply: \
             it must stop taking requests at its in-flight limit",
            start.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    drop(client);
    assert_unharmed(&node, size, &before);
}
