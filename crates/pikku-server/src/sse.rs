//! Topic streams of events channels as Server-Sent Events: the response body and the task that writes a stream's
//! connection queue into it.
//!
//! A stream is a connection like a socket's: registered, subscribed through the hub, bounded by the same
//! outbound queue and slow-consumer policy, pinged and timed out by the server's sweep, and closed on shutdown.
//! Its task takes what the connection's queue hands out, encodes it as events and hands each chunk to hyper
//! through a one-chunk slot: the queue stays the only place frames wait, so its bound is the stream's bound.
//! A chunk is handed over only once hyper took the previous one, and each hand-over counts as activity: a
//! client that stops reading stops the hand-overs, its queue fills (slow consumer) or its pings stop going out
//! (idle timeout), and either closes the stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::Frame;
use pikku_core::channel::Outgoing;
use pikku_core::runtime::LiveChannel;
use pikku_core::{DisconnectReason, OutFrame};
use tokio::sync::mpsc;

use crate::listener::HttpConnection;

/// The body of a stream response: the chunks the stream's task hands over, until it drops its end.
pub(crate) struct StreamBody {
    chunks: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A stream's body and the sending end its task writes to. The slot holds one chunk: frames wait in the
/// connection's bounded queue, not here.
pub(crate) fn channel() -> (mpsc::Sender<Bytes>, StreamBody) {
    let (tx, rx) = mpsc::channel(1);
    (tx, StreamBody { chunks: rx })
}

/// Encodes frames as events: each text frame is one event with a `data:` line per line of its text; a ping is
/// the comment `: ping`. Binary frames have no text form and are skipped.
pub(crate) fn encode(frames: impl Iterator<Item = OutFrame>) -> Bytes {
    let mut out = BytesMut::new();
    for frame in frames {
        match frame {
            OutFrame::Text(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                for line in text.lines() {
                    out.put_slice(b"data: ");
                    out.put_slice(line.as_bytes());
                    out.put_u8(b'\n');
                }
                if text.is_empty() {
                    out.put_slice(b"data: \n");
                }
                out.put_u8(b'\n');
            }
            OutFrame::Ping => out.put_slice(b": ping\n\n"),
            OutFrame::Binary(bytes) => {
                tracing::debug!(
                    len = bytes.len(),
                    "binary publication not sent on an event stream"
                );
            }
        }
    }
    out.freeze()
}

/// Writes an open, subscribed stream connection to its body until it closes, then runs its disconnect sequence.
/// `held` (the connection's counting guards) is dropped last.
pub(crate) async fn run<S, U, H>(
    live: LiveChannel<S, U>,
    tx: mpsc::Sender<Bytes>,
    http: Option<Arc<HttpConnection>>,
    close_timeout: Duration,
    held: H,
) where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let conn = live.connection().clone();
    let mut batch = VecDeque::new();
    let mut kept = VecDeque::new();
    let reason = loop {
        let next = tokio::select! {
            biased;
            () = tx.closed() => break DisconnectReason::ClientClosed(None),
            next = poll_fn(|cx| conn.poll_outgoing(cx, &mut batch, true)) => next,
        };
        let request = match next {
            Outgoing::Frames => {
                let chunk = encode(batch.drain(..));
                if chunk.is_empty() {
                    continue;
                }
                // Wait for hyper to take the previous chunk; a close request is acted on meanwhile.
                let permit = tokio::select! {
                    permit = tx.reserve() => permit,
                    next = poll_fn(|cx| conn.poll_outgoing(cx, &mut kept, false)) => match next {
                        Outgoing::Close(request) => {
                            break finish(&tx, request, Some(chunk), &mut kept, close_timeout).await;
                        }
                        Outgoing::Frames => unreachable!("frames are handed out only when writable"),
                    },
                };
                match permit {
                    Ok(permit) => permit.send(chunk),
                    Err(_) => break DisconnectReason::ClientClosed(None),
                }
                conn.touch();
                continue;
            }
            Outgoing::Close(request) => request,
        };
        break finish(&tx, request, None, &mut batch, close_timeout).await;
    };
    let reason = live.begin_disconnect(reason);
    // Ends the body: hyper writes the end of the response and closes the connection (`Connection: close`).
    drop(tx);
    let end = async {
        if let Some(http) = http {
            // A client that stopped reading cannot keep the connection: it is dropped after the close timeout.
            if tokio::time::timeout(close_timeout, http.finished())
                .await
                .is_err()
            {
                http.abort();
            }
        }
    };
    tokio::join!(end, live.run_disconnect(reason));
    drop(held);
}

/// Acts on a close request: the chunk waiting for hyper, if any, and the frames the request keeps go out first,
/// within the close timeout. Returns why the stream closes.
async fn finish(
    tx: &mpsc::Sender<Bytes>,
    request: pikku_core::channel::CloseRequest,
    pending: Option<Bytes>,
    kept: &mut VecDeque<OutFrame>,
    close_timeout: Duration,
) -> DisconnectReason {
    if request.flush {
        let rest = encode(kept.drain(..));
        let _ = tokio::time::timeout(close_timeout, async {
            for chunk in pending.into_iter().chain(Some(rest)) {
                if !chunk.is_empty() && tx.send(chunk).await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
    request.cause
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_events_and_pings_comments() {
        let frames = [
            OutFrame::text(r#"{"topic":"news","data":1}"#),
            OutFrame::Ping,
            OutFrame::Binary(Bytes::from_static(&[1, 2])),
            OutFrame::text("two\nlines"),
        ];
        assert_eq!(
            &encode(frames.into_iter())[..],
            b"data: {\"topic\":\"news\",\"data\":1}\n\n: ping\n\ndata: two\ndata: lines\n\n"
        );
    }
}
