//! [`ServerConnection`]: one client connection, from the greeting to the
//! disconnect, as a state machine that turns received bytes into
//! [`Event`]s and the daemon's replies into bytes to send.
//!
//! Input is consumed as it comes, in pieces of any size: the connection
//! keeps at most one partial frame (a header, the data of one option, or
//! the payload of one WRITE). Everything the client gets wrong is answered
//! here — with an option error, an error reply, or by closing the
//! connection — so the daemon only ever sees valid requests inside the
//! export.

use std::collections::{HashMap, VecDeque};

use crate::export::{Export, Limits};
use crate::handshake::{self, option_name};
use crate::outbox::Outbox;
use crate::reply::{self, Errno, Reply};
use crate::request::{Command, Request, RequestId};
use crate::wire;

/// The metadata context id given to `base:allocation` by `NBD_OPT_SET_META_CONTEXT`.
const BASE_ALLOCATION_ID: u32 = 1;

/// Something the daemon must act on, from [`ServerConnection::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake ended with `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME`;
    /// requests follow.
    HandshakeDone(Negotiated),
    /// A valid request to carry out and answer with [`ServerConnection::reply`].
    Request(Request),
    /// The client is gone or must go; no more input is accepted. Requests
    /// already handed out must still be answered (for `NBD_CMD_DISC` the
    /// specification requires it); then [`ServerConnection::is_closed`]
    /// turns true once the output is sent. Emitted exactly once.
    Disconnect(DisconnectReason),
}

/// What the handshake settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The transmission flags the client was given.
    pub transmission_flags: u16,
    /// Whether replies use structured reply chunks (`NBD_OPT_STRUCTURED_REPLY`).
    pub structured_replies: bool,
    /// Whether `base:allocation` was selected, so BLOCK_STATUS requests can come.
    pub block_status: bool,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// The client sent `NBD_CMD_DISC` (a clean disconnect).
    #[error("client disconnected (NBD_CMD_DISC)")]
    ClientDisconnect,
    /// The client sent `NBD_OPT_ABORT` during the handshake.
    #[error("client ended the handshake (NBD_OPT_ABORT)")]
    ClientAbort,
    /// The daemon reported end of input ([`ServerConnection::receive_eof`]).
    #[error("client closed the connection{}", if *.mid_frame { " in the middle of a message" } else { "" })]
    Eof {
        /// Whether part of a message had arrived.
        mid_frame: bool,
    },
    /// The server is shutting down and the client chose an export with
    /// `NBD_OPT_EXPORT_NAME`, which has no way to report an error.
    #[error(
        "server is shutting down; closed a client that sent NBD_OPT_EXPORT_NAME, which cannot be refused with an error"
    )]
    Shutdown,
    /// The client broke the protocol in a way that leaves the connection unusable.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
}

/// A client mistake that closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Client flags other than fixed-newstyle (1) and no-zeroes (2); the
    /// specification requires closing.
    #[error(
        "client sent unknown handshake flags {0:#010x} (only 0x1 fixed-newstyle and 0x2 no-zeroes exist)"
    )]
    UnknownClientFlags(u32),
    /// An option that does not start with `IHAVEOPT`.
    #[error(
        "option header starts with {0:#018x} instead of IHAVEOPT (0x49484156454f5054); the client does not speak fixed newstyle NBD"
    )]
    BadOptionMagic(u64),
    /// A request that does not start with the request magic.
    #[error(
        "request header starts with {0:#010x} instead of the request magic 0x25609513; the stream is out of step"
    )]
    BadRequestMagic(u32),
    /// `NBD_OPT_EXPORT_NAME` with a name this server does not serve.
    #[error(
        "NBD_OPT_EXPORT_NAME asked for export {requested:?}, but this server serves only {served:?} (or the default name \"\")"
    )]
    UnknownExport {
        /// The name asked for (invalid UTF-8 replaced).
        requested: String,
        /// The export's name.
        served: String,
    },
    /// `NBD_OPT_EXPORT_NAME` for an export that is not available now.
    #[error("NBD_OPT_EXPORT_NAME refused: {0}")]
    Unavailable(String),
    /// `NBD_OPT_EXPORT_NAME` with a name longer than the option limit.
    #[error("NBD_OPT_EXPORT_NAME carries a {length}-byte name, over the {limit}-byte option limit")]
    ExportNameTooLong {
        /// Length of the name.
        length: u32,
        /// [`Limits::max_option_length`].
        limit: u32,
    },
    /// A WRITE whose payload exceeds the limit. Its payload would have to be
    /// read and thrown away; a client that sends one is not trusted to
    /// frame the stream, so the connection is closed instead.
    #[error("NBD_CMD_WRITE of {length} bytes exceeds the {limit}-byte payload limit")]
    WriteTooLarge {
        /// Length of the write.
        length: u32,
        /// [`Limits::max_payload`] as enforced.
        limit: u32,
    },
}

/// A daemon mistake in [`ServerConnection::reply`]. Nothing is sent, and
/// the request stays in flight so the daemon can answer it properly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The id is not awaiting a reply.
    #[error(
        "{0} is not awaiting a reply: it was already answered, or came from another connection"
    )]
    UnknownRequest(RequestId),
    /// The kind of reply does not fit the command.
    #[error("{id} is an {command}, which cannot be answered with {reply}")]
    WrongReply {
        /// The request.
        id: RequestId,
        /// The command's name.
        command: &'static str,
        /// The variant of [`Reply`] given.
        reply: &'static str,
    },
    /// A READ answered with the wrong number of bytes.
    #[error("{id} is an NBD_CMD_READ of {expected} bytes, but the reply carries {actual} bytes")]
    DataLength {
        /// The request.
        id: RequestId,
        /// The length asked for.
        expected: u32,
        /// The length given.
        actual: usize,
    },
    /// A BLOCK_STATUS answered with no non-empty extent.
    #[error(
        "{0} is an NBD_CMD_BLOCK_STATUS answered without any extent of nonzero length; give one, or answer Reply::Done"
    )]
    NoExtents(RequestId),
}

/// The commands of the transmission phase this server hands to the daemon
/// or answers itself, decoded from the request's type field (`NBD_CMD_DISC`
/// is handled before decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommandKind {
    Read,
    Write,
    Flush,
    Trim,
    WriteZeroes,
    BlockStatus,
}

impl CommandKind {
    fn from_wire(kind: u16) -> Option<CommandKind> {
        Some(match kind {
            wire::CMD_READ => CommandKind::Read,
            wire::CMD_WRITE => CommandKind::Write,
            wire::CMD_FLUSH => CommandKind::Flush,
            wire::CMD_TRIM => CommandKind::Trim,
            wire::CMD_WRITE_ZEROES => CommandKind::WriteZeroes,
            wire::CMD_BLOCK_STATUS => CommandKind::BlockStatus,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            CommandKind::Read => "NBD_CMD_READ",
            CommandKind::Write => "NBD_CMD_WRITE",
            CommandKind::Flush => "NBD_CMD_FLUSH",
            CommandKind::Trim => "NBD_CMD_TRIM",
            CommandKind::WriteZeroes => "NBD_CMD_WRITE_ZEROES",
            CommandKind::BlockStatus => "NBD_CMD_BLOCK_STATUS",
        }
    }

    fn changes_data(self) -> bool {
        matches!(
            self,
            CommandKind::Write | CommandKind::Trim | CommandKind::WriteZeroes
        )
    }
}

/// A decoded request header.
#[derive(Debug, Clone, Copy)]
struct RequestHeader {
    flags: u16,
    kind: u16,
    cookie: u64,
    offset: u64,
    length: u32,
}

/// A request handed to the daemon and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Pending {
    cookie: u64,
    kind: CommandKind,
    offset: u64,
    length: u32,
    only_one_extent: bool,
}

/// What a valid request header asks of the connection.
enum Accepted {
    /// Nothing to do (a zero-length READ, WRITE, TRIM or WRITE_ZEROES):
    /// answered with success here.
    Empty(CommandKind),
    /// Work for the daemon.
    Work(CommandKind),
}

/// What is being read from the client.
#[derive(Debug)]
enum Input {
    ClientFlags,
    OptionHeader,
    /// Buffering `length` bytes of option data into `frame`.
    OptionData {
        option: u32,
        length: usize,
    },
    /// Throwing away the data of an option that is answered without it.
    OptionSkip {
        option: u32,
        remaining: u32,
        then: AfterSkip,
    },
    RequestHeader,
    WritePayload {
        header: RequestHeader,
        data: Vec<u8>,
    },
    Ended,
}

/// How an option whose data is skipped is answered.
#[derive(Debug)]
enum AfterSkip {
    /// `NBD_OPT_ABORT`: acknowledge and end.
    Abort,
    /// An option error reply.
    Refuse { reply_type: u32, message: String },
}

/// One client connection, from the greeting to the disconnect.
///
/// The daemon's loop:
///
/// 1. after [`new`](Self::new), write what [`poll_transmit`](Self::poll_transmit) returns;
/// 2. while [`wants_input`](Self::wants_input), read from the socket and pass
///    the bytes to [`receive`](Self::receive) (at end of file, call
///    [`receive_eof`](Self::receive_eof));
/// 3. handle every [`poll_event`](Self::poll_event): carry out each
///    [`Event::Request`] (in any order, concurrently if it likes) and
///    answer it with [`reply`](Self::reply);
/// 4. write everything [`poll_transmit`](Self::poll_transmit) returns;
/// 5. close the socket when [`is_closed`](Self::is_closed).
#[derive(Debug)]
pub struct ServerConnection {
    export: Export,
    limits: Limits,
    input: Input,
    /// The partial fixed-size frame (flags, header, option data) being read.
    frame: Vec<u8>,
    outbox: Outbox,
    events: VecDeque<Event>,
    in_flight: HashMap<RequestId, Pending>,
    next_request: u64,
    no_zeroes: bool,
    structured_replies: bool,
    base_allocation: bool,
    shutting_down: bool,
    /// Bytes received while [`Limits::max_in_flight`] requests were
    /// unanswered: decoded as replies free room, never more than one
    /// `receive` call's worth (the daemon reads only while
    /// [`ServerConnection::wants_input`]).
    held_back: Vec<u8>,
    /// The client closed its side while bytes were held back.
    eof_after_held_back: bool,
}

impl ServerConnection {
    /// A connection that has queued the greeting (fixed newstyle, no zeroes).
    pub fn new(export: Export, limits: Limits) -> ServerConnection {
        let mut outbox = Outbox::default();
        outbox.push_bytes(&handshake::greeting());
        ServerConnection {
            export,
            limits,
            input: Input::ClientFlags,
            frame: Vec::new(),
            outbox,
            events: VecDeque::new(),
            in_flight: HashMap::new(),
            next_request: 0,
            no_zeroes: false,
            structured_replies: false,
            base_allocation: false,
            shutting_down: false,
            held_back: Vec::new(),
            eof_after_held_back: false,
        }
    }

    /// The export this connection serves.
    pub fn export(&self) -> &Export {
        &self.export
    }

    /// Feeds bytes read from the client, split anywhere. Ignored once the
    /// input has ended (after [`Event::Disconnect`]).
    ///
    /// Decoding stops while [`Limits::max_in_flight`] requests await a
    /// reply; the rest of `bytes` is held back and decoded as replies free
    /// room, so a client pipelining thousands of requests cannot make the
    /// daemon start them all at once.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.held_back.is_empty() {
            self.decode(bytes);
        } else {
            self.held_back.extend_from_slice(bytes);
        }
    }

    fn decode(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !matches!(self.input, Input::Ended) {
            if self.in_flight.len() >= self.limits.max_in_flight.max(1) {
                self.held_back.extend_from_slice(bytes);
                return;
            }
            let state = std::mem::replace(&mut self.input, Input::Ended);
            self.input = self.step(state, &mut bytes);
        }
    }

    /// Decodes held-back input once there is room again.
    fn resume(&mut self) {
        if !self.held_back.is_empty() && self.in_flight.len() < self.limits.max_in_flight.max(1) {
            let held_back = std::mem::take(&mut self.held_back);
            self.decode(&held_back);
        }
        if self.held_back.is_empty() && self.eof_after_held_back {
            self.eof_after_held_back = false;
            self.receive_eof();
        }
    }

    /// While the payload of a WRITE is coming in (and input is wanted):
    /// the buffer it is collected in, and how many more bytes of the
    /// stream belong to it. A daemon may append up to that many received
    /// bytes to the buffer directly, sparing the copy of [`Self::receive`]
    /// (e.g. tokio's `read_buf` into its spare capacity), then must call
    /// [`Self::payload_received`].
    pub fn payload_buffer(&mut self) -> Option<(&mut Vec<u8>, usize)> {
        if !self.wants_input() {
            return None;
        }
        match &mut self.input {
            Input::WritePayload { header, data } => {
                let missing = header.length as usize - data.len();
                Some((data, missing))
            }
            _ => None,
        }
    }

    /// Bytes were appended to [`Self::payload_buffer`]: once the payload is
    /// complete, the request is decoded.
    ///
    /// # Panics
    /// If more bytes were appended than the payload has.
    pub fn payload_received(&mut self) {
        if let Input::WritePayload { header, data } = &self.input {
            assert!(
                data.len() <= header.length as usize,
                "{} bytes appended to a payload of {}",
                data.len(),
                header.length
            );
            if data.len() == header.length as usize {
                let state = std::mem::replace(&mut self.input, Input::Ended);
                let mut nothing: &[u8] = &[];
                self.input = self.step(state, &mut nothing);
            }
        }
    }

    /// The client closed its side (read returned 0, or the socket failed).
    pub fn receive_eof(&mut self) {
        if matches!(self.input, Input::Ended) {
            return;
        }
        if !self.held_back.is_empty() {
            self.eof_after_held_back = true;
            return;
        }
        let between_frames = matches!(
            self.input,
            Input::ClientFlags | Input::OptionHeader | Input::RequestHeader
        ) && self.frame.is_empty();
        self.input = self.end(DisconnectReason::Eof {
            mid_frame: !between_frames,
        });
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to write to the client. The stream is the
    /// concatenation of the buffers; their boundaries mean nothing. A READ
    /// reply's data buffer is passed through without a copy.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop()
    }

    /// Whether the daemon should read more from the client: false once
    /// the input ended, while [`Limits::max_in_flight`] requests await a
    /// reply, or while [`Limits::max_queued_output`] bytes wait to be sent
    /// (a client that does not read its replies must not make the server
    /// buffer without bound).
    pub fn wants_input(&self) -> bool {
        !matches!(self.input, Input::Ended)
            && self.held_back.is_empty()
            && !self.eof_after_held_back
            && self.in_flight.len() < self.limits.max_in_flight.max(1)
            && self.outbox.queued_bytes() < self.limits.max_queued_output.max(1)
    }

    /// Requests handed out (or waiting in [`poll_event`](Self::poll_event))
    /// that have not been answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the connection is over: input ended, every event polled,
    /// every request answered and every byte handed to the daemon. The
    /// daemon closes the socket now.
    pub fn is_closed(&self) -> bool {
        matches!(self.input, Input::Ended)
            && self.events.is_empty()
            && self.in_flight.is_empty()
            && self.outbox.is_empty()
    }

    /// Starts a polite shutdown, as the specification describes: requests
    /// already handed out are still answered normally, further requests are
    /// answered `ESHUTDOWN` and further options `NBD_REP_ERR_SHUTDOWN`, after
    /// which the client is expected to disconnect. (An `NBD_OPT_EXPORT_NAME`
    /// cannot be refused, so it closes the connection.) The daemon may still
    /// drop the socket at any time, e.g. after a timeout.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Answers request `id`: `Ok` with the reply the command calls for (see
    /// [`Command`]), or `Err` with the error to report. Replies may come in
    /// any order; each is encoded as the client negotiated (simple reply,
    /// or structured chunks).
    pub fn reply(&mut self, id: RequestId, result: Result<Reply, Errno>) -> Result<(), ReplyError> {
        let pending = *self
            .in_flight
            .get(&id)
            .ok_or(ReplyError::UnknownRequest(id))?;
        let wrong_reply = |reply: &'static str| ReplyError::WrongReply {
            id,
            command: pending.kind.name(),
            reply,
        };
        match (result, pending.kind) {
            (Err(errno), _) => self.send_error(pending.cookie, errno, ""),
            (Ok(Reply::Data(data)), CommandKind::Read) => {
                if data.len() != pending.length as usize {
                    return Err(ReplyError::DataLength {
                        id,
                        expected: pending.length,
                        actual: data.len(),
                    });
                }
                self.send_read_data(pending, data);
            }
            (Ok(Reply::Data(_)), _) => return Err(wrong_reply("Reply::Data")),
            (Ok(Reply::Done), CommandKind::Read) => return Err(wrong_reply("Reply::Done")),
            (Ok(Reply::Done), CommandKind::BlockStatus) => {
                let everything_allocated = [(pending.length, 0)];
                self.send_block_status(pending.cookie, &everything_allocated);
            }
            (Ok(Reply::Done), _) => self
                .outbox
                .push_bytes(&reply::simple_reply(0, pending.cookie)),
            (Ok(Reply::Extents(extents)), CommandKind::BlockStatus) => {
                let descriptors = reply::block_status_descriptors(
                    &extents,
                    pending.length,
                    pending.only_one_extent,
                );
                if descriptors.is_empty() {
                    return Err(ReplyError::NoExtents(id));
                }
                self.send_block_status(pending.cookie, &descriptors);
            }
            (Ok(Reply::Extents(_)), _) => return Err(wrong_reply("Reply::Extents")),
        }
        self.in_flight.remove(&id);
        self.resume();
        Ok(())
    }

    /// Consumes what `state` needs from `bytes` and returns the next state.
    fn step(&mut self, state: Input, bytes: &mut &[u8]) -> Input {
        match state {
            Input::ClientFlags => {
                if !self.fill_frame(bytes, wire::CLIENT_FLAGS_LEN) {
                    return Input::ClientFlags;
                }
                let flags = wire::be_u32(&self.frame, 0);
                self.frame.clear();
                self.on_client_flags(flags)
            }
            Input::OptionHeader => {
                if !self.fill_frame(bytes, wire::OPTION_HEADER_LEN) {
                    return Input::OptionHeader;
                }
                let magic = wire::be_u64(&self.frame, 0);
                let option = wire::be_u32(&self.frame, 8);
                let length = wire::be_u32(&self.frame, 12);
                self.frame.clear();
                self.on_option_header(magic, option, length)
            }
            Input::OptionData { option, length } => {
                if !self.fill_frame(bytes, length) {
                    return Input::OptionData { option, length };
                }
                let data = std::mem::take(&mut self.frame);
                self.on_option(option, &data)
            }
            Input::OptionSkip {
                option,
                remaining,
                then,
            } => {
                let skipped = bytes.len().min(remaining as usize);
                *bytes = &bytes[skipped..];
                // `skipped` is at most `remaining`, a u32.
                let remaining = remaining - skipped as u32;
                if remaining > 0 {
                    return Input::OptionSkip {
                        option,
                        remaining,
                        then,
                    };
                }
                self.after_skip(option, then)
            }
            Input::RequestHeader => {
                if !self.fill_frame(bytes, wire::REQUEST_HEADER_LEN) {
                    return Input::RequestHeader;
                }
                let magic = wire::be_u32(&self.frame, 0);
                let header = RequestHeader {
                    flags: wire::be_u16(&self.frame, 4),
                    kind: wire::be_u16(&self.frame, 6),
                    cookie: wire::be_u64(&self.frame, 8),
                    offset: wire::be_u64(&self.frame, 16),
                    length: wire::be_u32(&self.frame, 24),
                };
                self.frame.clear();
                self.on_request_header(magic, header)
            }
            Input::WritePayload { header, mut data } => {
                let wanted = header.length as usize - data.len();
                let taken = wanted.min(bytes.len());
                data.extend_from_slice(&bytes[..taken]);
                *bytes = &bytes[taken..];
                if taken < wanted {
                    return Input::WritePayload { header, data };
                }
                self.on_request(header, data)
            }
            Input::Ended => {
                *bytes = &[];
                Input::Ended
            }
        }
    }

    /// Moves bytes into `frame` until it holds `wanted`; true when it does.
    fn fill_frame(&mut self, bytes: &mut &[u8], wanted: usize) -> bool {
        let taken = wanted.saturating_sub(self.frame.len()).min(bytes.len());
        self.frame.extend_from_slice(&bytes[..taken]);
        *bytes = &bytes[taken..];
        self.frame.len() == wanted
    }

    /// Ends the input for `reason`, freeing the partial frame.
    fn end(&mut self, reason: DisconnectReason) -> Input {
        self.frame = Vec::new();
        self.events.push_back(Event::Disconnect(reason));
        Input::Ended
    }

    fn on_client_flags(&mut self, flags: u32) -> Input {
        if flags & !wire::KNOWN_CLIENT_FLAGS != 0 {
            return self.end(ProtocolError::UnknownClientFlags(flags).into());
        }
        // A client without FLAG_C_FIXED_NEWSTYLE only ever sends
        // EXPORT_NAME, which fixed newstyle handles the same way.
        self.no_zeroes = flags & wire::FLAG_C_NO_ZEROES != 0;
        Input::OptionHeader
    }

    fn on_option_header(&mut self, magic: u64, option: u32, length: u32) -> Input {
        if magic != wire::IHAVEOPT {
            return self.end(ProtocolError::BadOptionMagic(magic).into());
        }
        let name = option_name(option);
        if self.shutting_down && option != wire::OPT_ABORT {
            if option == wire::OPT_EXPORT_NAME {
                return self.end(DisconnectReason::Shutdown);
            }
            let message = format!("{name} refused: the server is shutting down");
            return self.skip(option, length, wire::REP_ERR_SHUTDOWN, message);
        }
        match option {
            wire::OPT_ABORT => self.skip_then(option, length, AfterSkip::Abort),
            wire::OPT_LIST | wire::OPT_STRUCTURED_REPLY if length > 0 => {
                let message = format!("{name} takes no data, but the client sent {length} bytes");
                self.skip(option, length, wire::REP_ERR_INVALID, message)
            }
            wire::OPT_LIST
            | wire::OPT_STRUCTURED_REPLY
            | wire::OPT_EXPORT_NAME
            | wire::OPT_INFO
            | wire::OPT_GO
            | wire::OPT_LIST_META_CONTEXT
            | wire::OPT_SET_META_CONTEXT => {
                let limit = self.limits.max_option_length;
                if length > limit {
                    if option == wire::OPT_EXPORT_NAME {
                        return self.end(ProtocolError::ExportNameTooLong { length, limit }.into());
                    }
                    let message = format!(
                        "{name} carries {length} bytes of data; this server accepts at most {limit}"
                    );
                    return self.skip(option, length, wire::REP_ERR_TOO_BIG, message);
                }
                if length == 0 {
                    return self.on_option(option, &[]);
                }
                let length = length as usize;
                self.frame.reserve_exact(length);
                Input::OptionData { option, length }
            }
            _ => {
                let message = format!("{name} is not supported by this server");
                self.skip(option, length, wire::REP_ERR_UNSUP, message)
            }
        }
    }

    /// Skips `length` bytes of option data, then refuses the option.
    fn skip(&mut self, option: u32, length: u32, reply_type: u32, message: String) -> Input {
        self.skip_then(
            option,
            length,
            AfterSkip::Refuse {
                reply_type,
                message,
            },
        )
    }

    fn skip_then(&mut self, option: u32, length: u32, then: AfterSkip) -> Input {
        if length == 0 {
            return self.after_skip(option, then);
        }
        Input::OptionSkip {
            option,
            remaining: length,
            then,
        }
    }

    fn after_skip(&mut self, option: u32, then: AfterSkip) -> Input {
        match then {
            AfterSkip::Abort => {
                self.send_option_reply(option, wire::REP_ACK, &[]);
                self.end(DisconnectReason::ClientAbort)
            }
            AfterSkip::Refuse {
                reply_type,
                message,
            } => {
                self.send_option_reply(option, reply_type, wire::spec_string(&message));
                Input::OptionHeader
            }
        }
    }

    /// Handles an option whose data (within the limit) has arrived.
    fn on_option(&mut self, option: u32, data: &[u8]) -> Input {
        match option {
            wire::OPT_EXPORT_NAME => self.on_export_name(data),
            wire::OPT_LIST => {
                let name = self.export.name.as_bytes();
                let description =
                    wire::spec_string(self.export.description.as_deref().unwrap_or(""));
                let mut server = Vec::with_capacity(4 + name.len() + description.len());
                server.extend_from_slice(&(name.len() as u32).to_be_bytes());
                server.extend_from_slice(name);
                server.extend_from_slice(description);
                self.send_option_reply(option, wire::REP_SERVER, &server);
                self.send_option_reply(option, wire::REP_ACK, &[]);
                Input::OptionHeader
            }
            wire::OPT_STRUCTURED_REPLY => {
                self.structured_replies = true;
                self.send_option_reply(option, wire::REP_ACK, &[]);
                Input::OptionHeader
            }
            wire::OPT_INFO | wire::OPT_GO => self.on_info(option, data),
            wire::OPT_LIST_META_CONTEXT | wire::OPT_SET_META_CONTEXT => {
                self.on_meta_context(option, data)
            }
            _ => {
                let message = format!("{} is not supported by this server", option_name(option));
                self.send_option_reply(option, wire::REP_ERR_UNSUP, message.as_bytes());
                Input::OptionHeader
            }
        }
    }

    fn on_export_name(&mut self, name: &[u8]) -> Input {
        if !self.export.answers_to(name) {
            return self.end(
                ProtocolError::UnknownExport {
                    requested: String::from_utf8_lossy(name).into_owned(),
                    served: self.export.name.clone(),
                }
                .into(),
            );
        }
        if let Some(reason) = self.export.unavailable.clone() {
            return self.end(ProtocolError::Unavailable(reason).into());
        }
        let flags = self.export.transmission_flags(self.structured_replies);
        self.outbox.push_bytes(&self.export.size.to_be_bytes());
        self.outbox.push_bytes(&flags.to_be_bytes());
        if !self.no_zeroes {
            self.outbox.push_bytes(&[0u8; wire::EXPORT_NAME_PADDING]);
        }
        self.enter_transmission(flags)
    }

    fn on_info(&mut self, option: u32, data: &[u8]) -> Input {
        let request = match handshake::parse_info_request(data) {
            Ok(request) => request,
            Err(problem) => {
                let message = format!("{} data is malformed: {problem}", option_name(option));
                self.send_option_reply(option, wire::REP_ERR_INVALID, message.as_bytes());
                return Input::OptionHeader;
            }
        };
        if !self.export.answers_to(request.name) {
            let message = self.unknown_export_message(request.name);
            self.send_option_reply(option, wire::REP_ERR_UNKNOWN, wire::spec_string(&message));
            return Input::OptionHeader;
        }
        if let Some(reason) = self.export.unavailable.clone() {
            self.send_option_reply(option, wire::REP_ERR_UNKNOWN, wire::spec_string(&reason));
            return Input::OptionHeader;
        }
        let flags = self.export.transmission_flags(self.structured_replies);
        let mut export = Vec::with_capacity(12);
        export.extend_from_slice(&wire::INFO_EXPORT.to_be_bytes());
        export.extend_from_slice(&self.export.size.to_be_bytes());
        export.extend_from_slice(&flags.to_be_bytes());
        self.send_option_reply(option, wire::REP_INFO, &export);
        if request.requests.contains(&wire::INFO_NAME) {
            let name = self.export.name.clone();
            self.send_info_string(option, wire::INFO_NAME, &name);
        }
        if request.requests.contains(&wire::INFO_DESCRIPTION)
            && let Some(description) = self.export.description.clone()
        {
            self.send_info_string(option, wire::INFO_DESCRIPTION, &description);
        }
        if request.requests.contains(&wire::INFO_BLOCK_SIZE) {
            let mut sizes = Vec::with_capacity(14);
            sizes.extend_from_slice(&wire::INFO_BLOCK_SIZE.to_be_bytes());
            sizes.extend_from_slice(&wire::MIN_BLOCK_SIZE.to_be_bytes());
            sizes.extend_from_slice(&wire::PREFERRED_BLOCK_SIZE.to_be_bytes());
            sizes.extend_from_slice(&self.limits.effective_max_payload().to_be_bytes());
            self.send_option_reply(option, wire::REP_INFO, &sizes);
        }
        self.send_option_reply(option, wire::REP_ACK, &[]);
        if option == wire::OPT_GO {
            self.enter_transmission(flags)
        } else {
            Input::OptionHeader
        }
    }

    fn on_meta_context(&mut self, option: u32, data: &[u8]) -> Input {
        let setting = option == wire::OPT_SET_META_CONTEXT;
        if setting {
            // The specification: the selection is replaced even when the option fails.
            self.base_allocation = false;
        }
        let name = option_name(option);
        if !self.structured_replies {
            let message = format!("{name} needs NBD_OPT_STRUCTURED_REPLY first");
            self.send_option_reply(option, wire::REP_ERR_INVALID, message.as_bytes());
            return Input::OptionHeader;
        }
        let request = match handshake::parse_meta_context_request(data) {
            Ok(request) => request,
            Err(problem) => {
                let message = format!("{name} data is malformed: {problem}");
                self.send_option_reply(option, wire::REP_ERR_INVALID, message.as_bytes());
                return Input::OptionHeader;
            }
        };
        if !self.export.answers_to(request.name) {
            let message = self.unknown_export_message(request.name);
            self.send_option_reply(option, wire::REP_ERR_UNKNOWN, wire::spec_string(&message));
            return Input::OptionHeader;
        }
        let selects_base_allocation = if setting {
            request
                .queries
                .iter()
                .any(|query| *query == wire::BASE_ALLOCATION.as_bytes())
        } else {
            // Listing: no query lists everything; "base:" is the namespace wildcard.
            request.queries.is_empty()
                || request.queries.iter().any(|query| {
                    *query == wire::BASE_ALLOCATION.as_bytes()
                        || *query == wire::BASE_NAMESPACE.as_bytes()
                })
        };
        if selects_base_allocation {
            // Listed contexts carry id 0, as the specification asks.
            let id = if setting { BASE_ALLOCATION_ID } else { 0 };
            let mut context = Vec::with_capacity(4 + wire::BASE_ALLOCATION.len());
            context.extend_from_slice(&id.to_be_bytes());
            context.extend_from_slice(wire::BASE_ALLOCATION.as_bytes());
            self.send_option_reply(option, wire::REP_META_CONTEXT, &context);
            self.base_allocation = setting;
        }
        self.send_option_reply(option, wire::REP_ACK, &[]);
        Input::OptionHeader
    }

    fn unknown_export_message(&self, requested: &[u8]) -> String {
        format!(
            "no export named {:?}; this server serves {:?} (also reachable as the default export \"\")",
            String::from_utf8_lossy(requested),
            self.export.name
        )
    }

    fn enter_transmission(&mut self, transmission_flags: u16) -> Input {
        self.events.push_back(Event::HandshakeDone(Negotiated {
            transmission_flags,
            structured_replies: self.structured_replies,
            block_status: self.base_allocation,
        }));
        Input::RequestHeader
    }

    fn send_option_reply(&mut self, option: u32, reply_type: u32, data: &[u8]) {
        // Every reply's data is bounded by the 4096-byte string limit or a
        // fixed layout, so its length fits in u32.
        self.outbox.push_bytes(&handshake::option_reply_header(
            option,
            reply_type,
            data.len() as u32,
        ));
        self.outbox.push_bytes(data);
    }

    fn send_info_string(&mut self, option: u32, info: u16, text: &str) {
        let text = wire::spec_string(text);
        let mut payload = Vec::with_capacity(2 + text.len());
        payload.extend_from_slice(&info.to_be_bytes());
        payload.extend_from_slice(text);
        self.send_option_reply(option, wire::REP_INFO, &payload);
    }

    fn on_request_header(&mut self, magic: u32, header: RequestHeader) -> Input {
        if magic != wire::REQUEST_MAGIC {
            return self.end(ProtocolError::BadRequestMagic(magic).into());
        }
        if header.kind == wire::CMD_WRITE && header.length > 0 {
            let limit = self.limits.effective_max_payload();
            if header.length > limit {
                return self.end(
                    ProtocolError::WriteTooLarge {
                        length: header.length,
                        limit,
                    }
                    .into(),
                );
            }
            return Input::WritePayload {
                header,
                data: Vec::with_capacity(header.length as usize),
            };
        }
        self.on_request(header, Vec::new())
    }

    /// Handles a complete request (a WRITE with its payload).
    fn on_request(&mut self, header: RequestHeader, data: Vec<u8>) -> Input {
        if header.kind == wire::CMD_DISC {
            return self.end(DisconnectReason::ClientDisconnect);
        }
        match self.check_request(&header) {
            Err((errno, message)) => self.send_error(header.cookie, errno, &message),
            Ok(Accepted::Empty(kind)) => {
                if kind == CommandKind::Read && self.structured_replies {
                    self.outbox.push_bytes(&reply::chunk_header(
                        wire::REPLY_FLAG_DONE,
                        wire::REPLY_TYPE_NONE,
                        header.cookie,
                        0,
                    ));
                } else {
                    self.outbox
                        .push_bytes(&reply::simple_reply(0, header.cookie));
                }
            }
            Ok(Accepted::Work(kind)) => self.hand_out(header, kind, data),
        }
        Input::RequestHeader
    }

    /// Checks everything the specification says about a request against
    /// this export and what was negotiated.
    fn check_request(&self, header: &RequestHeader) -> Result<Accepted, (Errno, String)> {
        let RequestHeader {
            flags,
            kind,
            offset,
            length,
            ..
        } = *header;
        let Some(kind) = CommandKind::from_wire(kind) else {
            return Err((Errno::Inval, format!("unknown command type {kind}")));
        };
        let name = kind.name();
        if self.shutting_down {
            return Err((
                Errno::Shutdown,
                "the server is shutting down; please disconnect".to_owned(),
            ));
        }
        let mut allowed_flags = wire::CMD_FLAG_FUA;
        match kind {
            CommandKind::Read if self.structured_replies => allowed_flags |= wire::CMD_FLAG_DF,
            CommandKind::WriteZeroes => allowed_flags |= wire::CMD_FLAG_NO_HOLE,
            CommandKind::BlockStatus => allowed_flags |= wire::CMD_FLAG_REQ_ONE,
            _ => {}
        }
        if flags & !allowed_flags != 0 {
            return Err((
                Errno::Inval,
                format!("command flags {flags:#06x} are not valid for {name} on this connection"),
            ));
        }
        if kind == CommandKind::Flush {
            if offset != 0 || length != 0 {
                return Err((
                    Errno::Inval,
                    format!(
                        "{name} must have offset and length 0, not offset {offset} and length {length}"
                    ),
                ));
            }
            return Ok(Accepted::Work(kind));
        }
        if kind == CommandKind::BlockStatus && !self.base_allocation {
            return Err((
                Errno::Inval,
                format!("{name} needs base:allocation selected with NBD_OPT_SET_META_CONTEXT"),
            ));
        }
        if kind.changes_data() && self.export.read_only {
            return Err((
                Errno::Perm,
                format!("{name} refused: export {:?} is read-only", self.export.name),
            ));
        }
        let size = self.export.size;
        if offset
            .checked_add(u64::from(length))
            .is_none_or(|end| end > size)
        {
            // The specification: ENOSPC for writes past the end, EINVAL otherwise.
            let errno = match kind {
                CommandKind::Write | CommandKind::WriteZeroes => Errno::NoSpc,
                _ => Errno::Inval,
            };
            return Err((
                errno,
                format!(
                    "{name} of {length} bytes at offset {offset} ends past the export size of {size} bytes"
                ),
            ));
        }
        let limit = self.limits.effective_max_payload();
        if kind == CommandKind::Read && length > limit {
            return Err((
                Errno::Inval,
                format!("{name} of {length} bytes exceeds this server's {limit}-byte limit"),
            ));
        }
        if length == 0 {
            if kind == CommandKind::BlockStatus {
                return Err((
                    Errno::Inval,
                    format!("{name} of length 0 has no extent to report"),
                ));
            }
            return Ok(Accepted::Empty(kind));
        }
        Ok(Accepted::Work(kind))
    }

    /// Turns a valid request into an event for the daemon.
    fn hand_out(&mut self, header: RequestHeader, kind: CommandKind, data: Vec<u8>) {
        let RequestHeader {
            flags,
            cookie,
            offset,
            length,
            ..
        } = header;
        let fua = flags & wire::CMD_FLAG_FUA != 0;
        let command = match kind {
            CommandKind::Read => Command::Read { offset, length },
            CommandKind::Write => Command::Write {
                offset,
                data: data.into(),
                fua,
            },
            CommandKind::Flush => Command::Flush,
            CommandKind::Trim => Command::Trim {
                offset,
                length,
                fua,
            },
            CommandKind::WriteZeroes => Command::WriteZeroes {
                offset,
                length,
                fua,
                no_hole: flags & wire::CMD_FLAG_NO_HOLE != 0,
            },
            CommandKind::BlockStatus => Command::BlockStatus { offset, length },
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.in_flight.insert(
            id,
            Pending {
                cookie,
                kind,
                offset,
                length,
                only_one_extent: flags & wire::CMD_FLAG_REQ_ONE != 0,
            },
        );
        self.events.push_back(Event::Request(Request {
            id,
            cookie,
            command,
        }));
    }

    fn send_error(&mut self, cookie: u64, errno: Errno, message: &str) {
        if self.structured_replies {
            self.outbox
                .push_bytes(&reply::error_chunk(cookie, errno, message));
        } else {
            self.outbox
                .push_bytes(&reply::simple_reply(errno.code(), cookie));
        }
    }

    fn send_read_data(&mut self, pending: Pending, data: Vec<u8>) {
        if self.structured_replies {
            // The length is at most the enforced payload limit, which
            // leaves room for the 8-byte offset in the u32 length field.
            let header = reply::chunk_header(
                wire::REPLY_FLAG_DONE,
                wire::REPLY_TYPE_OFFSET_DATA,
                pending.cookie,
                8 + pending.length,
            );
            self.outbox.push_bytes(&header);
            self.outbox.push_bytes(&pending.offset.to_be_bytes());
        } else {
            self.outbox
                .push_bytes(&reply::simple_reply(0, pending.cookie));
        }
        self.outbox.push_owned(data);
    }

    fn send_block_status(&mut self, cookie: u64, descriptors: &[(u32, u32)]) {
        let chunk = reply::block_status_chunk(cookie, BASE_ALLOCATION_ID, descriptors);
        self.outbox.push_bytes(&chunk);
    }
}
