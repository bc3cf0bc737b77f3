//! What the daemon serves ([`Export`]) and how much a client may make one
//! connection hold in memory ([`Limits`]).

use crate::wire;

/// The one export a [`ServerConnection`](crate::ServerConnection) serves.
///
/// Clients reach it under its own name or under the empty (default) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The name clients ask for (`nbd+unix:///NAME?socket=…`); also listed by `NBD_OPT_LIST`.
    pub name: String,
    /// Size in bytes. No request ever reaches the daemon past this size.
    pub size: u64,
    /// Advertise `NBD_FLAG_READ_ONLY` and answer WRITE, TRIM and
    /// WRITE_ZEROES with `EPERM` without involving the daemon.
    pub read_only: bool,
    /// Advertise `NBD_FLAG_CAN_MULTI_CONN`. Set it only if a FLUSH (or a FUA
    /// write) answered on one connection also makes durable every write
    /// already answered on every other connection to the same volume.
    pub multi_conn: bool,
    /// Shown to humans by `nbdinfo` (`NBD_INFO_DESCRIPTION`, and the
    /// detail of the `NBD_OPT_LIST` entry).
    pub description: Option<String>,
    /// Why the export cannot be used right now (e.g. the volume is
    /// Secondary), or `None` when it can. While set, `NBD_OPT_GO` and
    /// `NBD_OPT_INFO` are refused with `NBD_REP_ERR_UNKNOWN` ("not
    /// available") carrying this text, and `NBD_OPT_EXPORT_NAME` closes.
    pub unavailable: Option<String>,
}

impl Export {
    /// A writable export without multi-connection support or description.
    pub fn new(name: impl Into<String>, size: u64) -> Export {
        Export {
            name: name.into(),
            size,
            read_only: false,
            multi_conn: false,
            description: None,
            unavailable: None,
        }
    }

    /// Whether a client asking for `requested` means this export: the empty
    /// (default) name or this export's own name.
    pub fn answers_to(&self, requested: &[u8]) -> bool {
        requested.is_empty() || requested == self.name.as_bytes()
    }

    /// The transmission flags advertised for this export. `NBD_FLAG_SEND_DF`
    /// depends on whether the client negotiated structured replies, since
    /// the specification forbids it otherwise.
    pub fn transmission_flags(&self, structured_replies: bool) -> u16 {
        let mut flags = wire::FLAG_HAS_FLAGS | wire::FLAG_SEND_FLUSH | wire::FLAG_SEND_FUA;
        if self.read_only {
            flags |= wire::FLAG_READ_ONLY;
        } else {
            flags |= wire::FLAG_SEND_TRIM | wire::FLAG_SEND_WRITE_ZEROES;
        }
        if self.multi_conn {
            flags |= wire::FLAG_CAN_MULTI_CONN;
        }
        if structured_replies {
            // Reads are always answered with a single content chunk.
            flags |= wire::FLAG_SEND_DF;
        }
        flags
    }
}

/// How much one client connection may make the server hold.
///
/// With these limits, and a daemon that calls
/// [`receive`](crate::ServerConnection::receive) only while
/// [`wants_input`](crate::ServerConnection::wants_input) is true, one
/// connection holds at most: one partial frame (`max_payload` or
/// `max_option_length` bytes plus a header), `max_in_flight` requests (the
/// bytes of one `receive` call beyond them are held back undecoded until
/// replies free room), and `max_queued_output` bytes of unsent output plus
/// what one `receive` call and the replies to `max_in_flight` requests add
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest READ or WRITE length (advertised as the maximum block size
    /// when a client asks). Longer reads get `EINVAL`; a longer WRITE
    /// closes the connection, because its payload would have to be consumed
    /// and a client that sends one cannot be trusted to frame the stream.
    /// Values under 4096 are raised to 4096 (the specification requires
    /// the maximum to be at least the preferred block size), and values
    /// over `u32::MAX - 8` lowered to it (so a read fits one structured
    /// reply chunk).
    pub max_payload: u32,
    /// Largest option data buffered during the handshake. Longer data of a
    /// known option is skipped and answered `NBD_REP_ERR_TOO_BIG`
    /// (EXPORT_NAME, which has no error reply, closes the connection).
    pub max_option_length: u32,
    /// [`wants_input`](crate::ServerConnection::wants_input) turns false
    /// while this many requests await the daemon's reply (0 counts as 1).
    pub max_in_flight: usize,
    /// [`wants_input`](crate::ServerConnection::wants_input) turns false
    /// while this many bytes wait in [`poll_transmit`](crate::ServerConnection::poll_transmit)
    /// (0 counts as 1).
    pub max_queued_output: usize,
}

impl Limits {
    /// The smallest `max_payload` honoured (the preferred block size).
    pub const MIN_PAYLOAD: u32 = wire::PREFERRED_BLOCK_SIZE;

    /// The largest `max_payload` honoured: a read of this length plus its
    /// 8-byte offset fills the u32 length of one structured reply chunk.
    pub const MAX_PAYLOAD: u32 = u32::MAX - 8;

    /// `max_payload` as enforced: within [`Limits::MIN_PAYLOAD`] and [`Limits::MAX_PAYLOAD`].
    pub fn effective_max_payload(&self) -> u32 {
        self.max_payload.clamp(Self::MIN_PAYLOAD, Self::MAX_PAYLOAD)
    }
}

impl Default for Limits {
    /// 32 MiB payloads (the size the specification says clients may always
    /// use), 64 KiB options, 64 requests in flight, 64 MiB of queued output.
    fn default() -> Limits {
        Limits {
            max_payload: 32 << 20,
            max_option_length: 64 << 10,
            max_in_flight: 64,
            max_queued_output: 64 << 20,
        }
    }
}
