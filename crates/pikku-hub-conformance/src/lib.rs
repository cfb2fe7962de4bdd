//! The rules every event-hub backend keeps, as one check a driver runs across two nodes.
//!
//! A driver crate calls [`run`] from a test with a [`Backend`] that makes one driver per node, each with its
//! own broker connection; the check builds two apps, opens connections on both the way a runner does, and
//! publishes on one node while reading what the other received. It panics with the rule's name on the first
//! rule that does not hold.
//!
//! The rules, in the order they are checked:
//! 1. subscribing twice is the same as once: one copy per publication, on every node;
//! 2. without an exclude id a publication reaches every subscriber, the publisher's own channel included,
//!    exactly once (the node ignores its own publication coming back from the broker), and local subscribers
//!    have it before `publish` returns;
//! 3. an exclude id is skipped on every node, and one that is not subscribed changes nothing;
//! 4. after `unsubscribe` nothing more is delivered, and a second `unsubscribe` returns `false`;
//! 5. a closed connection receives nothing more and its subscriptions are gone;
//! 6. every subscriber of a node receives the same bytes; strings arrive as raw text, binary as binary, JSON
//!    as JSON text, and 100 KB payloads cross intact;
//! 7. a subscriber that cannot keep up is handled by its own policy; the others get everything;
//! 8. publishing to a topic nobody subscribed to reaches nobody and returns 0;
//! 9. events from one publisher arrive in publish order (1,000 of them);
//! 10. subscribing a channel that is not open fails and records nothing;
//! 11. 1,000 topics subscribed and released leave no subscription on the broker.
//!
//! ```no_run
//! use pikku_core::hub::{LocalBus, LocalBusNode};
//! use pikku_hub_conformance::Backend;
//!
//! struct Local(LocalBus);
//!
//! impl Backend for Local {
//!     type Driver = LocalBusNode;
//!     fn node(&self) -> LocalBusNode {
//!         self.0.node()
//!     }
//!     async fn broker_subscriptions(&self, topics: &[String]) -> Option<usize> {
//!         Some(topics.iter().filter(|t| self.0.subscriptions(t) > 0).count())
//!     }
//! }
//!
//! # async fn check() {
//! pikku_hub_conformance::run(&Local(LocalBus::new())).await;
//! # }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pikku_core::channel::{ConnectionLimits, Outgoing};
use pikku_core::hub::{HubDriver, LinkState};
use pikku_core::{App, Connection, EventHub, HubError, OutFrame, Params, SlowConsumerPolicy};

/// How long a remote delivery may take before a rule counts it as lost.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(5);

/// What [`run`] needs from a backend.
pub trait Backend: Sync {
    /// The driver type.
    type Driver: HubDriver;

    /// A driver for one more node, with its own connection to the broker.
    fn node(&self) -> Self::Driver;

    /// How many of `topics` the broker still holds a subscription for (from any node), as the broker itself
    /// reports it (`PUBSUB NUMSUB`, a monitoring endpoint, `pg_listening_channels()`); `None` when it cannot
    /// tell, which skips nothing but the broker-side count of rule 11.
    fn broker_subscriptions(&self, topics: &[String])
        -> impl Future<Output = Option<usize>> + Send;
}

/// Checks every rule against `backend`; panics naming the first rule that fails.
pub async fn run<B: Backend>(backend: &B) {
    let (a, b) = (node(backend).await, node(backend).await);
    let run = Run {
        prefix: format!("conformance-{}-", uuid::Uuid::new_v4().simple()),
    };
    run.subscribing_twice_is_once(&a, &b).await;
    run.no_exclude_reaches_everyone_once(&a, &b).await;
    run.exclude_applies_on_every_node(&a, &b).await;
    run.unsubscribe_stops_delivery(&a, &b).await;
    run.closing_ends_subscriptions(&a, &b).await;
    run.same_bytes_and_kinds(&a, &b).await;
    run.slow_subscribers_do_not_affect_others(&a, &b).await;
    run.no_subscribers_is_a_no_op(&a, &b).await;
    run.publish_order_is_kept(&a, &b).await;
    run.closed_channels_cannot_subscribe(&b).await;
    run.released_topics_leave_the_broker(backend, &a, &b).await;
    for hub in [&a, &b] {
        let status = hub.status().expect("a driver is installed");
        assert!(
            matches!(status.link, LinkState::Connected { .. }),
            "the link is up at the end: {status:?}"
        );
    }
}

/// A started hub of a new app on `backend`.
///
/// # Panics
/// When the driver cannot start.
pub async fn node<B: Backend>(backend: &B) -> EventHub {
    let hub = App::<()>::new(()).hub_driver(backend.node()).hub();
    hub.start().await.expect("the driver starts");
    hub
}

/// An open connection registered with `hub`, as a runner registers one once its 101 is written, with a 1 MiB
/// outbound bound.
#[must_use]
pub fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    open_with(hub, id, 1 << 20, SlowConsumerPolicy::Close)
}

/// [`open`] with an outbound bound and slow-consumer policy of your choice.
#[must_use]
pub fn open_with(
    hub: &EventHub,
    id: &str,
    outbound_queue_bytes: usize,
    slow_consumer: SlowConsumerPolicy,
) -> Arc<Connection> {
    let limits = ConnectionLimits {
        outbound_queue_bytes,
        slow_consumer,
        max_pending_rpc: 64,
    };
    let conn = Arc::new(Connection::new(
        Arc::from(id),
        Arc::from("conformance"),
        Arc::new(Params::new()),
        limits,
        Instant::now(),
    ));
    conn.mark_open();
    hub.registry().insert(conn.clone());
    conn
}

/// Closes `conn` the way a runner does: its subscriptions go, then it leaves the registry.
pub fn close(hub: &EventHub, conn: &Connection) {
    hub.release(conn);
    hub.registry().remove(conn);
}

/// Everything queued for `conn` so far, taken as the server's writer takes it; empty once it was closed.
#[must_use]
pub fn drain(conn: &Connection) -> Vec<OutFrame> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = VecDeque::new();
    match conn.poll_outgoing(&mut cx, &mut out, true) {
        Poll::Ready(Outgoing::Frames) => out.into_iter().collect(),
        Poll::Pending | Poll::Ready(Outgoing::Close(_)) => Vec::new(),
    }
}

/// Reads `conn` until a frame equal to `last` arrives (returning everything read, `last` included), or panics
/// after [`DELIVERY_WAIT`] naming `what`.
pub async fn read_until(conn: &Connection, last: &OutFrame, what: &str) -> Vec<OutFrame> {
    let deadline = Instant::now() + DELIVERY_WAIT;
    let mut seen = Vec::new();
    loop {
        seen.extend(drain(conn));
        if seen.contains(last) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} did not receive {last:?} within {DELIVERY_WAIT:?} (got {seen:?})",
            conn.id()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A text frame with this exact text.
#[must_use]
pub fn text(s: &str) -> OutFrame {
    OutFrame::Text(Bytes::copy_from_slice(s.as_bytes()))
}

struct Run {
    prefix: String,
}

impl Run {
    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn subscribe(&self, hub: &EventHub, topic: &str, conn: &Connection) {
        hub.subscribe(topic, conn.id())
            .await
            .unwrap_or_else(|e| panic!("subscribe {} to {topic}: {e}", conn.id()));
    }

    async fn publish(&self, hub: &EventHub, topic: &str, exclude: Option<&str>, s: &str) -> usize {
        hub.publish(topic, exclude, s)
            .await
            .unwrap_or_else(|e| panic!("publish {s:?} to {topic}: {e}"))
    }

    async fn subscribing_twice_is_once(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("twice");
        let b1 = open(b, "twice-b1");
        self.subscribe(b, &t, &b1).await;
        self.subscribe(b, &t, &b1).await;
        assert_eq!(b.subscriber_count(&t), 1, "rule 1: one local subscription");
        self.publish(a, &t, None, "one").await;
        self.publish(a, &t, None, "fence").await;
        let got = read_until(&b1, &text("fence"), "rule 1").await;
        assert_eq!(
            got,
            [text("one"), text("fence")],
            "rule 1: one copy per publication"
        );
        close(b, &b1);
    }

    async fn no_exclude_reaches_everyone_once(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("everyone");
        let (a1, b1) = (open(a, "everyone-a1"), open(b, "everyone-b1"));
        self.subscribe(a, &t, &a1).await;
        self.subscribe(b, &t, &b1).await;
        let local = self.publish(a, &t, None, "hello").await;
        assert_eq!(local, 1, "rule 2: publish counts the local delivery");
        assert_eq!(
            drain(&a1),
            [text("hello")],
            "rule 2: the publisher's own node has it before publish returns"
        );
        read_until(&b1, &text("hello"), "rule 2: the other node").await;
        // A fence from the other direction: once `a1` has it, an echo of "hello" would have arrived before it.
        self.publish(b, &t, None, "fence").await;
        assert_eq!(drain(&b1), [text("fence")]);
        let got = read_until(&a1, &text("fence"), "rule 2").await;
        assert_eq!(
            got,
            [text("fence")],
            "rule 2: a node ignores its own publication coming back from the broker"
        );
        close(a, &a1);
        close(b, &b1);
    }

    async fn exclude_applies_on_every_node(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("exclude");
        let a1 = open(a, "exclude-a1");
        let (b1, b2) = (open(b, "exclude-b1"), open(b, "exclude-b2"));
        self.subscribe(a, &t, &a1).await;
        self.subscribe(b, &t, &b1).await;
        self.subscribe(b, &t, &b2).await;
        self.publish(a, &t, Some("exclude-b1"), "not for b1").await;
        self.publish(a, &t, Some("exclude-a1"), "not for a1").await;
        self.publish(a, &t, Some("nobody-subscribed"), "for all")
            .await;
        let fence = text("for all");
        let b2_got = read_until(&b2, &fence, "rule 3").await;
        assert_eq!(
            b2_got,
            [text("not for b1"), text("not for a1"), text("for all")],
            "rule 3"
        );
        assert_eq!(
            read_until(&b1, &fence, "rule 3").await,
            [text("not for a1"), text("for all")],
            "rule 3: the excluded channel on the other node is skipped"
        );
        assert_eq!(
            drain(&a1),
            [text("not for b1"), text("for all")],
            "rule 3: the excluded channel on the publishing node is skipped"
        );
        for (hub, conn) in [(a, &a1), (b, &b1), (b, &b2)] {
            close(hub, conn);
        }
    }

    async fn unsubscribe_stops_delivery(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("unsubscribe");
        let (b1, witness) = (open(b, "unsub-b1"), open(b, "unsub-witness"));
        self.subscribe(b, &t, &b1).await;
        self.subscribe(b, &t, &witness).await;
        self.publish(a, &t, None, "before").await;
        read_until(&b1, &text("before"), "rule 4").await;
        assert!(
            b.unsubscribe(&t, "unsub-b1").await.unwrap(),
            "rule 4: removed"
        );
        assert!(
            !b.unsubscribe(&t, "unsub-b1").await.unwrap(),
            "rule 4: a second unsubscribe returns false"
        );
        self.publish(a, &t, None, "after").await;
        read_until(&witness, &text("after"), "rule 4").await;
        assert_eq!(drain(&b1), [], "rule 4: nothing after unsubscribe");
        close(b, &b1);
        close(b, &witness);
    }

    async fn closing_ends_subscriptions(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("close");
        let (b1, witness) = (open(b, "close-b1"), open(b, "close-witness"));
        self.subscribe(b, &t, &b1).await;
        self.subscribe(b, &t, &witness).await;
        close(b, &b1);
        assert!(
            !b.unsubscribe(&t, "close-b1").await.unwrap(),
            "rule 5: the subscriptions of a closed connection are gone"
        );
        self.publish(a, &t, None, "after close").await;
        read_until(&witness, &text("after close"), "rule 5").await;
        assert_eq!(drain(&b1), [], "rule 5: nothing after close");
        close(b, &witness);
    }

    async fn same_bytes_and_kinds(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("bytes");
        let (b1, b2) = (open(b, "bytes-b1"), open(b, "bytes-b2"));
        self.subscribe(b, &t, &b1).await;
        self.subscribe(b, &t, &b2).await;
        a.publish(&t, None, &serde_json::json!({"k": [1, "two"]}))
            .await
            .unwrap();
        a.publish(&t, None, "raw text").await.unwrap();
        a.publish_binary(&t, None, Bytes::from_static(&[0, 159, 146, 150]))
            .await
            .unwrap();
        let big: String = "0123456789".repeat(10_000);
        a.publish(&t, None, &big).await.unwrap();
        let want = [
            text(r#"{"k":[1,"two"]}"#),
            text("raw text"),
            OutFrame::Binary(Bytes::from_static(&[0, 159, 146, 150])),
            text(&big),
        ];
        let one = read_until(&b1, &want[3], "rule 6").await;
        let two = read_until(&b2, &want[3], "rule 6").await;
        assert_eq!(one, want, "rule 6: kinds and bytes cross intact");
        assert_eq!(two, want, "rule 6");
        for (x, y) in one.iter().zip(&two) {
            assert_eq!(
                payload_ptr(x),
                payload_ptr(y),
                "rule 6: local subscribers share one buffer"
            );
        }
        close(b, &b1);
        close(b, &b2);
    }

    async fn slow_subscribers_do_not_affect_others(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("slow");
        let slow = open_with(b, "slow-slow", 64, SlowConsumerPolicy::Close);
        let ok = open(b, "slow-ok");
        self.subscribe(b, &t, &slow).await;
        self.subscribe(b, &t, &ok).await;
        for i in 0..50 {
            self.publish(a, &t, None, &format!("event {i:02} with some padding"))
                .await;
        }
        let got = read_until(&ok, &text("event 49 with some padding"), "rule 7").await;
        assert_eq!(got.len(), 50, "rule 7: the other subscriber got everything");
        assert_eq!(
            slow.state(),
            pikku_core::ChannelState::Closed,
            "rule 7: the slow one was closed by its policy"
        );
        close(b, &slow);
        close(b, &ok);
    }

    async fn no_subscribers_is_a_no_op(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("nobody");
        assert_eq!(self.publish(a, &t, None, "void").await, 0, "rule 8");
        assert_eq!(self.publish(b, &t, None, "void").await, 0, "rule 8");
    }

    async fn publish_order_is_kept(&self, a: &EventHub, b: &EventHub) {
        let t = self.topic("order");
        let b1 = open(b, "order-b1");
        self.subscribe(b, &t, &b1).await;
        for i in 0..1000 {
            self.publish(a, &t, None, &i.to_string()).await;
        }
        let got = read_until(&b1, &text("999"), "rule 9").await;
        let want: Vec<OutFrame> = (0..1000).map(|i| text(&i.to_string())).collect();
        assert_eq!(got, want, "rule 9: publish order");
        close(b, &b1);
    }

    async fn closed_channels_cannot_subscribe(&self, b: &EventHub) {
        let t = self.topic("ghost");
        assert_eq!(
            b.subscribe(&t, "ghost").await,
            Err(HubError::ChannelNotOpen("ghost".into())),
            "rule 10: an unknown id"
        );
        let gone = open(b, "ghost-closed");
        close(b, &gone);
        assert!(
            b.subscribe(&t, "ghost-closed").await.is_err(),
            "rule 10: a closed one"
        );
        assert_eq!(b.subscriber_count(&t), 0, "rule 10: nothing recorded");
    }

    async fn released_topics_leave_the_broker<B: Backend>(
        &self,
        backend: &B,
        a: &EventHub,
        b: &EventHub,
    ) {
        let topics: Vec<String> = (0..1000)
            .map(|i| self.topic(&format!("many-{i}")))
            .collect();
        let conn = open(b, "many-b1");
        for t in &topics {
            self.subscribe(b, t, &conn).await;
        }
        let held_here = b.status().unwrap().broker_topics;
        assert!(
            held_here >= 1000,
            "rule 11: every subscribed topic is confirmed by the broker ({held_here})"
        );
        if let Some(held) = backend.broker_subscriptions(&topics).await {
            assert_eq!(held, 1000, "rule 11: the broker holds every topic");
        }
        // Still delivered after all that churn.
        self.publish(a, &topics[999], None, "last").await;
        read_until(&conn, &text("last"), "rule 11").await;
        close(b, &conn);
        let deadline = Instant::now() + DELIVERY_WAIT;
        loop {
            let status = b.status().unwrap();
            let broker = backend.broker_subscriptions(&topics).await;
            if status.broker_topics == 0 && broker.unwrap_or(0) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rule 11: topics released by the last subscriber leave the broker: {status:?}, broker holds {broker:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where a frame's bytes live, to tell a shared buffer from a copy.
fn payload_ptr(frame: &OutFrame) -> *const u8 {
    match frame {
        OutFrame::Text(b) | OutFrame::Binary(b) => b.as_ptr(),
        OutFrame::Ping => std::ptr::null(),
    }
}
