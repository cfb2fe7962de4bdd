//! The server side of RFC 6455 after the HTTP upgrade: frame decoding with the protocol's limits and close codes,
//! and vectored writes of shared payloads.
//!
//! # Memory
//! An idle connection holds no read or write buffer. Reads go through a buffer on the stack; only the bytes of an
//! incomplete frame are kept on the heap, and that buffer is released once the frame completes. The heap buffer
//! grows with the bytes that actually arrived, never with the length a header declares: a large frame is read
//! straight into the heap only once as many of its bytes are there as the read asks for, so what a connection
//! holds is at most about twice what its client sent. Every byte held (partial frames and messages being
//! reassembled) is charged to the server's inbound budget. Outgoing frames keep their payload `Bytes` (shared
//! between all subscribers of a publication) and a 10-byte header each, and are written with one vectored write
//! per batch.
//!
//! # Closing
//! After a protocol violation the rest of the stream cannot be framed, so it is never decoded again: the close
//! frame goes out, the write side is shut, and whatever the client still sends is read and discarded until it
//! closes its side (see `WsStream::poll_discard`). Dropping a socket with unread input would make the kernel
//! answer with a reset, and a client that sees the reset may lose the close frame it had not read yet.

pub mod frame;
mod transport;

pub(crate) use transport::Transport;

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::budget::InboundBudget;
use frame::{opcode, parse_close, parse_header, unmask, Violation};

/// Bytes read per read call, through a stack buffer.
const READ_CHUNK: usize = 8 * 1024;
/// Bytes of a frame that must have arrived before the rest is read straight into the heap buffer; below it,
/// reads go through the stack and only what arrived is kept.
const DIRECT_READ_MIN: usize = 64 * 1024;
/// Largest read into the heap buffer of an incomplete frame.
const MAX_HEAP_READ: usize = 256 * 1024;
/// Slices handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// A decoded message or control event, borrowed from the read buffer.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// A complete text message (UTF-8 checked).
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A pong (activity only); pings are answered here.
    Pong,
    /// The peer's close frame, with its code if it sent one. The echo is queued.
    Close(Option<u16>),
}

/// Why reading stopped for good.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A protocol violation; the close frame is queued.
    Violation(Violation),
    /// The transport failed or ended without a close frame.
    Io,
}

struct OutFrame {
    header: [u8; 10],
    header_len: usize,
    payload: Bytes,
}

/// One WebSocket connection's framing state over the upgraded IO.
pub(crate) struct WsStream<T> {
    io: T,
    max_message: usize,
    /// Bytes of an incomplete frame (empty, with no allocation, between frames).
    pending: BytesMut,
    /// A fragmented message being reassembled: its opcode and bytes so far.
    /// Boxed: most connections never fragment, and the slot then costs a pointer.
    fragments: Option<Box<(u8, BytesMut)>>,
    out: VecDeque<OutFrame>,
    /// Bytes of `out[0]` already written.
    written: usize,
    close_sent: bool,
    close_received: bool,
    /// A pong is queued and not yet written.
    unsent_pong: bool,
    /// A violation was found: the stream is out of step and is never decoded again.
    broken: bool,
    /// A complete frame was decoded since the last [`take_frame_seen`](Self::take_frame_seen).
    frame_seen: bool,
    /// `pending` holds the start of a frame whose end has not arrived.
    incomplete: bool,
    budget: Arc<InboundBudget>,
    /// Bytes of `pending` and `fragments` charged to the budget.
    charged: usize,
}

impl<T> Drop for WsStream<T> {
    fn drop(&mut self) {
        self.budget.adjust(&mut self.charged, 0);
    }
}

impl<T: Transport> WsStream<T> {
    /// Whether the peer has hung up, found without reading (see [`Transport::poll_hung_up`]).
    pub(crate) fn poll_hung_up(&self, cx: &mut Context<'_>) -> bool {
        self.io.poll_hung_up(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WsStream<T> {
    pub(crate) fn new(io: T, max_message: usize, budget: Arc<InboundBudget>) -> Self {
        Self {
            io,
            max_message,
            pending: BytesMut::new(),
            fragments: None,
            out: VecDeque::new(),
            written: 0,
            close_sent: false,
            close_received: false,
            unsent_pong: false,
            broken: false,
            frame_seen: false,
            incomplete: false,
            budget,
            charged: 0,
        }
    }

    /// A stream whose first bytes were already read (by the HTTP server, past the upgrade request).
    pub(crate) fn with_buffered(
        io: T,
        buffered: &[u8],
        max_message: usize,
        budget: Arc<InboundBudget>,
    ) -> Self {
        let mut ws = Self::new(io, max_message, budget);
        if !buffered.is_empty() {
            ws.pending = BytesMut::from(buffered);
            ws.note_incomplete();
            ws.recharge();
        }
        ws
    }

    /// Whether a frame or a fragmented message has started arriving and is not complete: the frame timeout runs.
    pub(crate) fn mid_message(&self) -> bool {
        self.incomplete || self.fragments.is_some()
    }

    /// Whether this connection holds inbound bytes (complete or not) in its buffers.
    pub(crate) fn holds_inbound(&self) -> bool {
        !self.pending.is_empty() || self.fragments.is_some()
    }

    /// Whether a complete frame (a message, a fragment, a ping or pong) arrived since the last call. Only these
    /// count as activity for the idle timeout: a client dripping bytes inside a frame is not active.
    pub(crate) fn take_frame_seen(&mut self) -> bool {
        std::mem::take(&mut self.frame_seen)
    }

    /// Whether the stream is past a protocol violation (never decoded again).
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Charges what the buffers hold now to the budget.
    fn recharge(&mut self) {
        let held =
            self.pending.capacity() + self.fragments.as_deref().map_or(0, |(_, b)| b.capacity());
        self.budget.adjust(&mut self.charged, held);
    }

    /// Notes whether `pending` ends in an incomplete frame (it is empty, or complete frames wait in it).
    fn note_incomplete(&mut self) {
        self.incomplete = !self.pending.is_empty()
            && match parse_header(&self.pending, self.max_message) {
                Ok(Some(h)) => self.pending.len() < h.header_len + h.payload_len,
                Ok(None) => true,
                Err(_) => false,
            };
    }

    /// Queues a data or control frame. Nothing is queued after a close frame.
    pub(crate) fn queue(&mut self, opcode: u8, payload: Bytes) {
        if self.close_sent {
            return;
        }
        let mut header = [0u8; 10];
        let header_len = frame::encode_header(opcode, payload.len(), &mut header);
        if self.out.capacity() == 0 {
            // One slot, not the usual four: it is kept between writes, and most writes are one frame.
            self.out.reserve_exact(1);
        }
        self.out.push_back(OutFrame {
            header,
            header_len,
            payload,
        });
    }

    /// Whether frames are waiting to be written.
    pub(crate) fn has_pending_writes(&self) -> bool {
        !self.out.is_empty()
    }

    /// Queues a close frame with `code` and `reason` (truncated to fit a control frame).
    pub(crate) fn queue_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = Vec::with_capacity(2 + cut);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..cut]);
        self.queue(opcode::CLOSE, Bytes::from(payload));
        self.close_sent = true;
    }

    /// Writes queued frames with vectored writes, then flushes the IO.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, frame) in self.out.iter().enumerate() {
                if count + 2 > MAX_IOVECS {
                    break;
                }
                let skip = if i == 0 { self.written } else { 0 };
                if skip < frame.header_len {
                    slices[count] = IoSlice::new(&frame.header[skip..frame.header_len]);
                    count += 1;
                }
                let payload_skip = skip.saturating_sub(frame.header_len);
                if payload_skip < frame.payload.len() {
                    slices[count] = IoSlice::new(&frame.payload[payload_skip..]);
                    count += 1;
                }
            }
            let n = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.advance(n);
        }
        if self.out.capacity() > 16 {
            // Give a burst's queue back; what stays is a slot or two.
            self.out = VecDeque::new();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.out.front() else {
                return;
            };
            let remaining = front.header_len + front.payload.len() - self.written;
            if n >= remaining {
                n -= remaining;
                self.written = 0;
                if let Some(sent) = self.out.pop_front() {
                    if sent.header[0] & 0x0F == opcode::PONG {
                        self.unsent_pong = false;
                    }
                }
            } else {
                self.written += n;
                n = 0;
            }
        }
    }

    /// Shuts the write side down (after the close handshake).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    /// Reads once and hands every complete message to `on_event`, which returns false to stop for now (the rest
    /// stays buffered). `Ready(Ok(()))`: progress was made; `Pending`: no data yet.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        on_event: &mut dyn FnMut(Event<'_>) -> bool,
    ) -> Poll<Result<(), ReadError>> {
        let result = self.poll_read_inner(cx, on_event);
        self.note_incomplete();
        self.recharge();
        result
    }

    fn poll_read_inner(
        &mut self,
        cx: &mut Context<'_>,
        on_event: &mut dyn FnMut(Event<'_>) -> bool,
    ) -> Poll<Result<(), ReadError>> {
        if self.close_received || self.broken {
            return Poll::Ready(Err(ReadError::Io));
        }
        if self.pending.is_empty() {
            return self.read_into_stack(cx, on_event);
        }
        let mut pending = std::mem::take(&mut self.pending);
        // Complete frames may already be buffered (the handler asked us to stop earlier).
        let consumed = match self.decode(&mut pending, on_event) {
            Ok(n) => n,
            Err(v) => return Poll::Ready(Err(self.violation(v))),
        };
        if consumed > 0 {
            self.keep(pending, consumed);
            return Poll::Ready(Ok(()));
        }
        // An incomplete frame: read more of it. The buffer grows by what arrives, never by what the header claims.
        let needed = parse_header(&pending, self.max_message)
            .ok()
            .flatten()
            .map_or(READ_CHUNK, |h| h.header_len + h.payload_len - pending.len());
        let read = if pending.len() >= DIRECT_READ_MIN {
            // Many bytes of this frame have arrived already: read the next ones straight into the heap, at most as
            // many as are there, so the buffer at most doubles what the client really sent.
            let chunk = needed.min(pending.len()).min(MAX_HEAP_READ);
            let start = pending.len();
            pending.resize(start + chunk, 0);
            let mut buf = ReadBuf::new(&mut pending[start..]);
            let read = Pin::new(&mut self.io).poll_read(cx, &mut buf);
            let filled = buf.filled().len();
            pending.truncate(start + filled);
            read.map_ok(|()| filled)
        } else {
            let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut stack);
            let read = Pin::new(&mut self.io).poll_read(cx, &mut buf);
            pending.extend_from_slice(buf.filled());
            read.map_ok(|()| buf.filled().len())
        };
        match read {
            Poll::Pending => {
                self.pending = pending;
                Poll::Pending
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(ReadError::Io)),
            Poll::Ready(Ok(0)) => Poll::Ready(Err(ReadError::Io)),
            Poll::Ready(Ok(_)) => match self.decode(&mut pending, on_event) {
                Ok(consumed) => {
                    self.keep(pending, consumed);
                    Poll::Ready(Ok(()))
                }
                Err(v) => Poll::Ready(Err(self.violation(v))),
            },
        }
    }

    /// Reads and throws away whatever the peer sends, without decoding: the lingering part of a close. `Ready(Ok(true))`
    /// once the peer closed its side (or the transport failed), `Ready(Ok(false))` after discarding some bytes.
    pub(crate) fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        self.pending = BytesMut::new();
        self.fragments = None;
        self.recharge();
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(buf.filled().is_empty()),
            Poll::Ready(Err(_)) => Poll::Ready(true),
        }
    }

    /// The common case: nothing buffered, so read through a stack buffer and keep only an incomplete tail.
    fn read_into_stack(
        &mut self,
        cx: &mut Context<'_>,
        on_event: &mut dyn FnMut(Event<'_>) -> bool,
    ) -> Poll<Result<(), ReadError>> {
        // Left uninitialised: the reader fills it, and only the filled part is ever looked at.
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(ReadError::Io)),
            Poll::Ready(Ok(())) => {
                let data = buf.filled_mut();
                let filled = data.len();
                if filled == 0 {
                    return Poll::Ready(Err(ReadError::Io));
                }
                match self.decode(data, on_event) {
                    Ok(consumed) => {
                        if consumed < filled {
                            self.pending.extend_from_slice(&buf.filled()[consumed..]);
                        }
                        Poll::Ready(Ok(()))
                    }
                    Err(v) => Poll::Ready(Err(self.violation(v))),
                }
            }
        }
    }

    /// Keeps the unconsumed tail of `buf`; an empty buffer is dropped so an idle connection holds nothing. A tail
    /// behind consumed frames is copied into a buffer of its own size, so a large buffer is never kept alive by a
    /// few bytes at its end (and the budget charges what is really held).
    fn keep(&mut self, buf: BytesMut, consumed: usize) {
        self.pending = if consumed == 0 {
            buf
        } else if consumed < buf.len() {
            BytesMut::from(&buf[consumed..])
        } else {
            BytesMut::new()
        };
    }

    /// Queues the close frame for a violation and reports it; the stream is never decoded again.
    fn violation(&mut self, violation: Violation) -> ReadError {
        self.broken = true;
        self.pending = BytesMut::new();
        self.fragments = None;
        self.queue_close(violation.code(), violation.reason());
        ReadError::Violation(violation)
    }

    /// Decodes complete frames from `data`; returns how many bytes were consumed.
    fn decode(
        &mut self,
        data: &mut [u8],
        on_event: &mut dyn FnMut(Event<'_>) -> bool,
    ) -> Result<usize, Violation> {
        let mut at = 0;
        loop {
            let rest = &mut data[at..];
            let Some(header) = parse_header(rest, self.max_message)? else {
                return Ok(at);
            };
            let total = header.header_len + header.payload_len;
            if rest.len() < total {
                return Ok(at);
            }
            let payload = &mut rest[header.header_len..total];
            unmask(payload, header.mask);
            at += total;
            self.frame_seen = true;
            if !self.on_frame(header.fin, header.opcode, payload, on_event)? || self.close_received
            {
                return Ok(at);
            }
        }
    }

    /// Handles one unmasked frame; returns whether to keep decoding.
    fn on_frame(
        &mut self,
        fin: bool,
        op: u8,
        payload: &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> bool,
    ) -> Result<bool, Violation> {
        match op {
            opcode::TEXT | opcode::BINARY => {
                if self.fragments.is_some() {
                    return Err(Violation::Protocol("expected a continuation frame"));
                }
                if fin {
                    return deliver(op, payload, on_event);
                }
                self.fragments = Some(Box::new((op, BytesMut::from(payload))));
                Ok(true)
            }
            opcode::CONTINUATION => {
                let Some((_, buf)) = self.fragments.as_deref_mut() else {
                    return Err(Violation::Protocol("unexpected continuation frame"));
                };
                if buf.len() + payload.len() > self.max_message {
                    return Err(Violation::TooBig);
                }
                buf.extend_from_slice(payload);
                if !fin {
                    return Ok(true);
                }
                let (op, buf) = *self.fragments.take().expect("checked above");
                deliver(op, &buf, on_event)
            }
            opcode::CLOSE => {
                let code = parse_close(payload)?;
                self.close_received = true;
                if !self.close_sent {
                    // Echo the peer's status code (RFC 6455, section 5.5.1).
                    let echo = code
                        .map(|c| Bytes::copy_from_slice(&c.to_be_bytes()))
                        .unwrap_or_default();
                    self.queue(opcode::CLOSE, echo);
                    self.close_sent = true;
                }
                on_event(Event::Close(code));
                Ok(false)
            }
            opcode::PING => {
                // One pong waiting to be written is enough: a client that pings without reading cannot grow the
                // write queue (RFC 6455, section 5.5.3, allows answering only some pings).
                if !self.unsent_pong {
                    self.queue(opcode::PONG, Bytes::copy_from_slice(payload));
                    self.unsent_pong = true;
                }
                Ok(true)
            }
            opcode::PONG => Ok(on_event(Event::Pong)),
            _ => Err(Violation::Protocol("reserved opcode")),
        }
    }
}

/// Hands a complete message to the visitor, checking UTF-8 for text (1007).
fn deliver(
    op: u8,
    payload: &[u8],
    on_event: &mut dyn FnMut(Event<'_>) -> bool,
) -> Result<bool, Violation> {
    if op == opcode::TEXT {
        let text = std::str::from_utf8(payload).map_err(|_| Violation::InvalidUtf8)?;
        Ok(on_event(Event::Text(text)))
    } else {
        Ok(on_event(Event::Binary(payload)))
    }
}
