//! Getting a connection to the peer: listening, dialing, knocking, the
//! parallel handshakes of accepted connections, authentication and
//! Settings; and the connection itself: [`Wire`], with the reader task
//! that receives messages (and answers Pings at once) and the writer task
//! that sends frames.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{info, warn};
use replica::auth::{AuthConfig, Authenticator, Progress, SharedSecret, random_challenge};
use replica::superblock::NodeName;
use replica::wire::{DigestAlgorithm, FrameDecoder, Message, ResourceName, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Ended, HANDSHAKE_TIMEOUT, LinkContext, TICK};

/// Most frames the writer task sends with one vectored write.
const MAX_FRAMES_PER_WRITE: usize = 32;
/// How long a knock may take to connect before it is given up.
const KNOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a closing side waits for its last message to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Accepted connections whose handshake may run at the same time, so that
/// connections that send nothing (or too little) cannot keep the real peer
/// waiting; more are closed at once.
const MAX_PENDING_HANDSHAKES: usize = 8;

/// One encoded message for a connection's writer task: the header with
/// the payload up to its block data, and the block data (often empty),
/// written together with one vectored write so that the block data is
/// never copied into a frame.
pub(super) type Frame = (Vec<u8>, Bytes);

pub(super) fn frame(message: Message) -> Frame {
    message.into_frame_parts()
}

/// Writes the parts of some frames, in order, with vectored writes until
/// all are out: frames queued together (acks, small writes) leave with one
/// system call.
async fn write_frames(writer: &mut OwnedWriteHalf, frames: &[Frame]) -> std::io::Result<()> {
    let mut parts: Vec<IoSlice<'_>> = frames
        .iter()
        .flat_map(|(head, bulk)| [IoSlice::new(head), IoSlice::new(bulk)])
        .filter(|part| !part.is_empty())
        .collect();
    let mut unwritten = &mut parts[..];
    while !unwritten.is_empty() {
        let written = writer.write_vectored(unwritten).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut unwritten, written);
    }
    Ok(())
}

/// The listener on this node's own address. A listening node retries
/// until it has one; for a dialing node it only hears knocks, so without
/// it the node still connects, at its own pace.
pub(super) async fn listen(
    context: &LinkContext,
    address: SocketAddr,
    dials: bool,
) -> Option<TcpListener> {
    let name = &context.config.name;
    let connect_int = context.config.net.connect_int;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return Some(listener),
            Err(bind_error) if dials => {
                warn!(
                    "{name}: cannot listen on {address} for the peer's knocks: {bind_error}; \
                     dialing every {connect_int:?} only"
                );
                return None;
            }
            Err(bind_error) => {
                warn!(
                    "{name}: cannot listen on {address} for the peer: {bind_error}; \
                     retrying in {connect_int:?}"
                );
                tokio::time::sleep(connect_int).await;
            }
        }
    }
}

/// A dialing node's pause before its next dial: `connect-int`, or less
/// when a knock arrives (the connection is closed unread).
pub(super) async fn wait_for_knock(listener: Option<&TcpListener>, connect_int: Duration) {
    let Some(listener) = listener else {
        tokio::time::sleep(connect_int).await;
        return;
    };
    let pause = tokio::time::sleep(connect_int);
    tokio::select! {
        () = pause => {}
        accepted = listener.accept() => match accepted {
            Ok((_, from)) => log::debug!("knock from {from}: dialing now"),
            // Accepting fails at once while it fails at all (no file
            // descriptors left): pause in full rather than spin.
            Err(_) => tokio::time::sleep(connect_int).await,
        }
    }
}

/// Tells the dialing peer that this node waits for it: connects and closes.
/// Nothing is sent; a peer that is not there is not an error.
pub(super) async fn knock(peer: SocketAddr) {
    let _ = tokio::time::timeout(KNOCK_TIMEOUT, TcpStream::connect(peer)).await;
}

pub(super) async fn dial(address: SocketAddr) -> std::io::Result<TcpStream> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A connection as its owner sees it: the messages the reader task
/// received, in order, and the writer task's queue for sending.
pub(super) struct Wire {
    inbox: mpsc::UnboundedReceiver<Result<Message, String>>,
    pub(super) out: mpsc::UnboundedSender<Frame>,
    /// When the reader task last received a message.
    heard: Arc<Mutex<Instant>>,
    reader: JoinHandle<()>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Wire {
    pub(super) fn send(&self, message: Message) {
        let _ = self.out.send(frame(message));
    }

    /// The next message, or why there is none; cancel-safe.
    pub(super) async fn receive(&mut self) -> Result<Message, String> {
        self.inbox
            .recv()
            .await
            .unwrap_or_else(|| Err("the connection's reader ended".into()))
    }

    /// When the last message arrived, also one not yet taken with
    /// [`Self::receive`].
    pub(super) fn last_heard(&self) -> Instant {
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn receive_within(&mut self, limit: Duration) -> Result<Message, String> {
        tokio::time::timeout(limit, self.receive())
            .await
            .map_err(|_| format!("the peer sent nothing for {limit:?}"))?
    }
}

/// A connection: its receiving [`Wire`] and the task that writes what is
/// sent.
pub(super) struct Opened {
    pub(super) wire: Wire,
    pub(super) writer: JoinHandle<()>,
}

pub(super) fn open(stream: TcpStream) -> Opened {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer_half) = stream.into_split();
    let (out, mut queue) = mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(async move {
        let mut frames = Vec::with_capacity(MAX_FRAMES_PER_WRITE);
        while queue.recv_many(&mut frames, MAX_FRAMES_PER_WRITE).await > 0 {
            if write_frames(&mut writer_half, &frames).await.is_err() {
                return;
            }
            frames.clear();
        }
        let _ = writer_half.shutdown().await;
    });
    let (inbox_sender, inbox) = mpsc::unbounded_channel();
    let heard = Arc::new(Mutex::new(Instant::now()));
    let reader = tokio::spawn(read_messages(
        reader,
        out.clone(),
        inbox_sender,
        Arc::clone(&heard),
    ));
    let wire = Wire {
        inbox,
        out,
        heard,
        reader,
    };
    Opened { wire, writer }
}

/// The reader task: receives and decodes the peer's messages and passes
/// them on in order, until the connection ends (its last item says why).
/// A Ping it answers itself, at once, before passing it on: the owner may
/// be busy with the disk for a while (a barrier's flush, a range that a
/// write that hangs holds), and a slow disk is `ko-count`'s business, not
/// `ping-timeout`'s (DRBD, too, answers pings apart from its receiver).
/// What it passes on waits in memory until taken: as much as the peer has
/// sent and not had acknowledged.
async fn read_messages(
    mut reader: OwnedReadHalf,
    out: mpsc::UnboundedSender<Frame>,
    inbox: mpsc::UnboundedSender<Result<Message, String>>,
    heard: Arc<Mutex<Instant>>,
) {
    let mut decoder = FrameDecoder::new();
    loop {
        for decoded in decoder.by_ref() {
            *heard.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
            let decoded = decoded.map_err(|wire_error| wire_error.to_string());
            if matches!(decoded, Ok(Message::Ping)) {
                let _ = out.send(frame(Message::PingAck));
            }
            let failed = decoded.is_err();
            if inbox.send(decoded).is_err() || failed {
                return;
            }
        }
        let ended = match reader.read_buf(decoder.receive_buffer()).await {
            Ok(0) => match decoder.finish() {
                Ok(()) => "the peer closed the connection".to_string(),
                Err(wire_error) => wire_error.to_string(),
            },
            Ok(_) => continue,
            Err(read_error) => format!("reading from the peer: {read_error}"),
        };
        let _ = inbox.send(Err(ended));
        return;
    }
}

/// Sends what is queued, then closes.
pub(super) async fn close(opened: Opened) {
    drop(opened.wire);
    let _ = tokio::time::timeout(CLOSE_GRACE, opened.writer).await;
}

/// Accepts connections and runs their handshakes side by side (at most
/// [`MAX_PENDING_HANDSHAKES`]), until one ends other than in a refusal to
/// retry: that connection is the session's; the other pending ones are
/// closed. Refused ones are logged and closed.
pub(super) async fn accept_handshaken(
    context: &Arc<LinkContext>,
    listener: &TcpListener,
) -> (Opened, Result<(), Ended>) {
    let name = &context.config.name;
    let mut pending = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) if pending.len() >= MAX_PENDING_HANDSHAKES => {
                    warn!(
                        "{name}: connection from {from} closed: {MAX_PENDING_HANDSHAKES} \
                         handshakes are pending already"
                    );
                    drop(stream);
                }
                Ok((stream, from)) => {
                    info!("{name}: connection from {from}");
                    let context = Arc::clone(context);
                    pending.spawn(async move {
                        let mut opened = open(stream);
                        let handshaken = handshake(&context, &mut opened.wire).await;
                        (from, opened, handshaken)
                    });
                }
                Err(accept_error) => {
                    warn!("{name}: accepting a peer connection failed: {accept_error}");
                    tokio::time::sleep(TICK).await;
                }
            },
            Some(joined) = pending.join_next(), if !pending.is_empty() => {
                let Ok((from, opened, handshaken)) = joined else {
                    continue;
                };
                match handshaken {
                    Err(Ended::Retry(reason)) => {
                        warn!("{name}: connection from {from} refused: {reason}");
                        tokio::spawn(close(opened));
                    }
                    handshaken => return (opened, handshaken),
                }
            }
        }
    }
}

/// Hello, authentication, Settings; refusals are logged and retried.
pub(super) async fn handshake(context: &LinkContext, wire: &mut Wire) -> Result<(), Ended> {
    let config = &context.config;
    let (peer_name, _) = config.peer(&context.node).expect("a pair has two nodes");
    let retry = |what: String| Ended::Retry(what);
    let auth_config = AuthConfig {
        local_node: NodeName::new(&context.node).map_err(|e| retry(e.to_string()))?,
        peer_node: NodeName::new(peer_name).map_err(|e| retry(e.to_string()))?,
        resource: ResourceName::new(&config.name).map_err(|e| retry(e.to_string()))?,
        secret: match &config.net.auth {
            Some(auth) => Some(
                SharedSecret::new(auth.shared_secret.as_bytes())
                    .map_err(|e| retry(e.to_string()))?,
            ),
            None => None,
        },
    };
    let challenge = random_challenge().map_err(|e| retry(format!("no random challenge: {e}")))?;
    let mut authenticator =
        Authenticator::new(auth_config, challenge).map_err(|e| Ended::StandAlone {
            reason: e.to_string(),
            split_brain: false,
        })?;
    loop {
        while let Some(message) = authenticator.poll_transmit() {
            wire.send(message);
        }
        let message = wire
            .receive_within(HANDSHAKE_TIMEOUT)
            .await
            .map_err(|e| retry(format!("handshake failed: {e}")))?;
        match authenticator.receive(message) {
            Ok(Progress::InProgress) => {}
            Ok(Progress::Authenticated(_)) => break,
            Err(refusal) => {
                while let Some(message) = authenticator.poll_transmit() {
                    wire.send(message);
                }
                return Err(retry(format!("connection refused: {refusal}")));
            }
        }
    }
    let settings = {
        let state = context.link.lock();
        Settings {
            protocol: state.protocol,
            data_integrity: state.integrity,
        }
    };
    wire.send(Message::Settings(settings));
    match wire
        .receive_within(HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| retry(format!("waiting for the peer's settings: {e}")))?
    {
        Message::Settings(theirs) if theirs == settings => Ok(()),
        Message::Settings(theirs) => Err(Ended::StandAlone {
            reason: format!(
                "settings differ: this node has protocol {} and data-integrity-alg {}, \
                 the peer protocol {} and data-integrity-alg {}; make the configs equal",
                settings.protocol,
                integrity_name(settings.data_integrity),
                theirs.protocol,
                integrity_name(theirs.data_integrity),
            ),
            split_brain: false,
        }),
        Message::Disconnect { reason } => Err(retry(format!("the peer disconnected: {reason}"))),
        other => Err(retry(format!(
            "the peer sent {} where Settings belong",
            other.message_type()
        ))),
    }
}

fn integrity_name(algorithm: Option<DigestAlgorithm>) -> String {
    algorithm.map_or("none".into(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ends of a TCP connection on loopback, each opened.
    async fn connected() -> (Opened, Opened) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (open(dialed.unwrap()), open(accepted.unwrap().0))
    }

    #[tokio::test]
    async fn a_ping_is_answered_while_the_owner_takes_no_message() {
        let (mut peer, mut busy) = connected().await;
        let before = busy.wire.last_heard();
        peer.wire.send(Message::Ping);
        let answer = peer.wire.receive_within(Duration::from_secs(5)).await;
        assert!(matches!(answer, Ok(Message::PingAck)), "{answer:?}");
        assert!(busy.wire.last_heard() > before, "the Ping was heard");
        // The owner still gets everything, in order.
        peer.wire.send(Message::PingAck);
        assert!(matches!(busy.wire.receive().await, Ok(Message::Ping)));
        assert!(matches!(busy.wire.receive().await, Ok(Message::PingAck)));
        drop(peer);
        let ended = busy.wire.receive().await;
        assert_eq!(ended.unwrap_err(), "the peer closed the connection");
    }
}
