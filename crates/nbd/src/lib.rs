//! The NBD (Network Block Device) server protocol, free of I/O.
//!
//! `replicad` exports each volume to the local host over NBD. This crate
//! is the protocol half of that: it turns the bytes a client sends into
//! [`Event`]s and the daemon's answers into bytes to send back, in the
//! quinn-proto style. It never touches a socket or a file; the daemon moves
//! bytes and does the `pread`/`pwrite`/`fdatasync`.
//!
//! What it speaks (see `doc/proto.md` of the NBD project):
//! - the fixed newstyle handshake with `NBD_FLAG_NO_ZEROES`; options
//!   `EXPORT_NAME`, `ABORT`, `LIST`, `INFO`, `GO` (with `NBD_INFO_EXPORT`,
//!   `NAME`, `DESCRIPTION`, `BLOCK_SIZE`), `STRUCTURED_REPLY`,
//!   `LIST_META_CONTEXT` and `SET_META_CONTEXT` (`base:allocation`); every
//!   other option is answered `NBD_REP_ERR_UNSUP` (no TLS);
//! - requests READ, WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES (NO_HOLE),
//!   BLOCK_STATUS (REQ_ONE) and DISC, answered with simple replies or, when
//!   negotiated, structured reply chunks.
//!
//! One [`ServerConnection`] serves one client of one [`Export`]. Everything
//! the client gets wrong is answered by the connection itself: the daemon
//! only sees [`Request`]s whose range lies inside the export and is not
//! empty. [`Limits`] bound what a hostile client can make it buffer.
//!
//! ```
//! use nbd::{Event, Export, Limits, Reply, ServerConnection};
//!
//! let mut connection = ServerConnection::new(Export::new("r0", 1 << 20), Limits::default());
//! let greeting = connection.poll_transmit().unwrap();
//! assert_eq!(&greeting[..8], b"NBDMAGIC");
//!
//! // The client: flags (fixed newstyle, no zeroes), then NBD_OPT_GO for the default export.
//! let mut client = vec![0, 0, 0, 3];
//! client.extend_from_slice(b"IHAVEOPT");
//! client.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0]);
//! // ... and a 512-byte read at offset 0 with cookie 9.
//! client.extend_from_slice(&[0x25, 0x60, 0x95, 0x13, 0, 0, 0, 0]);
//! client.extend_from_slice(&9u64.to_be_bytes());
//! client.extend_from_slice(&0u64.to_be_bytes());
//! client.extend_from_slice(&512u32.to_be_bytes());
//! connection.receive(&client);
//!
//! assert!(matches!(connection.poll_event(), Some(Event::HandshakeDone(_))));
//! let Some(Event::Request(request)) = connection.poll_event() else { panic!() };
//! connection.reply(request.id, Ok(Reply::Data(vec![0; 512]))).unwrap();
//! while let Some(bytes) = connection.poll_transmit() {
//!     // write `bytes` to the socket
//! #   let _ = bytes;
//! }
//! ```

mod connection;
mod export;
mod handshake;
mod outbox;
mod reply;
mod request;
pub mod wire;

pub use connection::{
    DisconnectReason, Event, Negotiated, ProtocolError, ReplyError, ServerConnection,
};
pub use export::{Export, Limits};
pub use reply::{Errno, Extent, MAX_EXTENTS_PER_REPLY, Reply};
pub use request::{Command, Request, RequestId};
