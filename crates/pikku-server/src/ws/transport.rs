//! What the connection driver needs from the upgraded connection beyond reading and writing it.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;

/// An upgraded connection.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Whether the peer has closed its side or the connection has failed, found without reading from it.
    ///
    /// A connection whose inbound queue is full stops reading, so it would learn that its client left only once
    /// it reads again. Where this returns `false` because nothing can be read yet, `cx` is woken when that changes;
    /// otherwise the caller asks again when woken for another reason (the server's sweep wakes paused connections).
    fn poll_hung_up(&self, cx: &mut Context<'_>) -> bool;
}

impl Transport for TcpStream {
    fn poll_hung_up(&self, cx: &mut Context<'_>) -> bool {
        match self.poll_read_ready(cx) {
            // No bytes and no end of stream: the waker is kept, and the peer's FIN or reset will wake it.
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            // Readable: bytes are waiting, or the peer closed (perhaps behind the bytes). The readiness tokio keeps
            // for the socket tells which, at once and without a system call.
            Poll::Ready(Ok(())) => {
                let ready = pin!(self.ready(Interest::READABLE));
                match ready.poll(cx) {
                    Poll::Ready(Ok(ready)) => ready.is_read_closed(),
                    Poll::Ready(Err(_)) => true,
                    Poll::Pending => false,
                }
            }
        }
    }
}

/// A connection hyper keeps boxed (not a plain TCP stream): nothing to ask it, so a paused connection learns that
/// its peer left from the heartbeat's failed write or the idle timeout.
impl Transport for TokioIo<Upgraded> {
    fn poll_hung_up(&self, _cx: &mut Context<'_>) -> bool {
        false
    }
}
