//! Registering a socket with tokio's reactor. Since tokio 1.54 the only
//! non-deprecated way is the `unsafe` `AsyncFd::register`, whose contract a
//! `socket2::Socket` always meets; this module states why, once, so that the
//! daemons (where `unsafe` is forbidden) get a safe call.

use std::io;

use socket2::Socket;
use tokio::io::unix::AsyncFd;

/// Hands `socket` to tokio's reactor, which then reports when it is readable
/// or writable.
///
/// Put the socket in non-blocking mode first (`set_nonblocking(true)`):
/// tokio only waits for readiness, the reads and writes themselves are plain
/// system calls on the socket. Must be called inside a tokio runtime with I/O
/// enabled (it panics otherwise, as `AsyncFd` does). Never replace the socket
/// through `AsyncFd::get_mut`: tokio forbids exchanging the registered
/// descriptor for another one.
pub fn register_async(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `AsyncFd::register` needs a descriptor that is open, stays open
    // and keeps referring to the same socket for the AsyncFd's whole life, and
    // `as_raw_fd` returning that same descriptor every time. A
    // `socket2::Socket` owns its descriptor: it was open when the Socket was
    // made, only dropping the Socket closes it, and `as_raw_fd` always returns
    // it. The AsyncFd takes the Socket by value and owns it from here on, so
    // the descriptor stays open until the AsyncFd is dropped or gives the
    // Socket back with `into_inner`, which deregisters it first.
    let registered = unsafe { AsyncFd::register(socket) };
    registered.map_err(|err| {
        let (_socket, cause) = err.into_parts();
        io::Error::new(
            cause.kind(),
            format!("cannot register a socket with tokio's reactor (epoll): {cause}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};
    use std::io::Read;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    /// A non-blocking UDP socket bound to an ephemeral port on loopback.
    fn loopback_udp() -> Socket {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        socket
    }

    #[test]
    fn registered_socket_becomes_readable_when_a_datagram_arrives() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let sender = loopback_udp();
            let receiver = register_async(loopback_udp()).expect("register with the reactor");
            let receiver_address = receiver.get_ref().local_addr().unwrap();

            let idle = tokio::time::timeout(Duration::from_millis(50), receiver.readable()).await;
            assert!(idle.is_err(), "readable before anything was sent");

            sender.send_to(b"advert", &receiver_address).unwrap();
            let mut guard = tokio::time::timeout(Duration::from_secs(5), receiver.readable())
                .await
                .expect("readable() did not complete within 5 s of the datagram")
                .expect("readiness of the registered socket");
            let mut buffer = [0u8; 16];
            let received = guard
                .try_io(|socket| Read::read(&mut socket.get_ref(), &mut buffer))
                .expect("the socket was ready, so recv must not block")
                .expect("recv on the registered socket");
            assert_eq!(&buffer[..received], b"advert");
        });
    }
}
