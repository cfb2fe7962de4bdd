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

pub mod events;
pub mod grip;
pub mod launch;
pub mod publish;
pub mod worker;

pub use events::{encode_events, parse_events, EventsError, ParseLimits, WsEvent};
pub use grip::{sign_hs256, GripClaims, GripError, GripKeyError, GripVerifier};
pub use publish::{PublishError, PushpinPublisher};
pub use worker::{PushpinWorker, WorkerConfig, WorkerError};
