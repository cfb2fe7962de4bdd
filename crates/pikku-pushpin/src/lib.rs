//! Pushpin for pikku: the protocol pieces a stateless worker behind [Pushpin](https://pushpin.org) needs.
//!
//! Pushpin holds the clients' WebSockets and talks to the worker over plain HTTP:
//!
//! - each thing that happens on a socket reaches the worker as a `POST` whose body is a list of
//!   WebSocket-over-HTTP events, and the response lists the events to play back on the socket
//!   ([`events`]);
//! - every such request carries a `Grip-Sig` JWT that proves it came through Pushpin ([`grip`]);
//! - messages that are not answers to a request go out through Pushpin's publish API, to the channel each
//!   connection subscribed to when it opened ([`publish`]).
//!
//! [`launch`] starts a private Pushpin for tests, demos and the conformance runner.
//!
//! # What a worker sees
//! - Each request names its connection in the `Connection-Id` header and carries the client's upgrade
//!   request (path, query, cookies) besides `Grip-Sig`. Pushpin has at most one request in flight per
//!   connection; events that arrive meanwhile go in the next request, several to a body, in order.
//! - The worker accepts with status 200, content type [`events::CONTENT_TYPE`] and a body that starts with
//!   `OPEN`. Any other status is passed to the client as the answer to its upgrade, headers and body included.
//! - With `Sec-WebSocket-Extensions: grip` in that answer, a `TEXT` starting `c:` is a GRIP control message,
//!   such as `c:{"type":"subscribe","channel":"conn:<Connection-Id>"}`, and every other message must start
//!   with the message prefix (`m:` by default, which Pushpin strips; `grip; message-prefix=""` sets none).
//!   A message without the prefix is dropped.
//! - Pushpin leaves a client's `PING` to the worker: no `PONG` answer, no pong.
//! - `Set-Meta-<Name>: value` in an answer comes back as `Meta-<Name>` on the connection's later requests; a
//!   client cannot send `Meta-*` headers of its own.
//! - A close handshake arrives as `CLOSE`, a dropped connection as `DISCONNECT`.
//!
//! ```
//! use pikku_pushpin::{encode_events, parse_events, ParseLimits, WsEvent};
//!
//! // The answer to an OPEN: accept and subscribe the connection to its own channel.
//! let request = parse_events(b"OPEN\r\n", &ParseLimits::default()).unwrap();
//! assert_eq!(request, [WsEvent::Open]);
//! let answer = encode_events(&[
//!     WsEvent::Open,
//!     WsEvent::text(r#"c:{"type":"subscribe","channel":"conn:3f2a"}"#),
//! ]);
//! assert!(answer.starts_with(b"OPEN\r\nTEXT 2c\r\n"));
//! ```

pub mod cluster;
pub mod events;
pub mod grip;
pub mod launch;
pub mod publish;
pub mod worker;

pub use events::{encode_events, parse_events, EventsError, ParseLimits, WsEvent};
pub use grip::{sign_hs256, GripClaims, GripError, GripKeyError, GripVerifier};
pub use publish::{PublishError, PushpinPublisher};
pub use worker::{shared_listener, PushpinWorker, WorkerConfig, WorkerError};
