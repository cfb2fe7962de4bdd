//! The rules every event-hub backend follows (`docs/semantics.md`, *Event hub*), against the in-process
//! [`EventHub`], one test per rule.
//!
//! Connections are real [`Connection`]s created the way a runner creates them (`Connection::new`, then
//! `mark_open` and `hub.registry().insert`); what the hub delivered is read back with [`Connection::poll_outgoing`], the
//! same call the server's writer makes. The rules about closing and about a handler's own deliveries are also
//! checked through the message pipeline (`pikku_core::runtime`), because they are about the order of the
//! disconnect sequence and of a handler's reply.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;
use pikku_core::channel::{ConnectionLimits, Outgoing};
use pikku_core::runtime::{LiveChannel, UpgradeInput};
use pikku_core::{
    App, Channel, ChannelError, ChannelRoute, ChannelState, ClosedChannel, Connection, Ctx,
    DisconnectReason, EventHub, HubError, HubLimits, OutFrame, Params, SlowConsumerPolicy,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn limits(outbound_queue_bytes: usize, slow_consumer: SlowConsumerPolicy) -> ConnectionLimits {
    ConnectionLimits {
        outbound_queue_bytes,
        slow_consumer,
        max_pending_rpc: 64,
    }
}

/// A connection that is not registered with any hub yet, in state `Initial`.
fn connection(id: &str, limits: ConnectionLimits) -> Arc<Connection> {
    Arc::new(Connection::new(
        Arc::from(id),
        Arc::from("hub-test"),
        Arc::new(Params::new()),
        limits,
        Instant::now(),
    ))
}

/// An open connection registered with `hub`, as a runner does once the 101 is written.
fn open_with(hub: &EventHub, id: &str, limits: ConnectionLimits) -> Arc<Connection> {
    let conn = connection(id, limits);
    conn.mark_open();
    hub.registry().insert(conn.clone());
    conn
}

/// An open connection with the default limits (1 MiB, `Close`).
fn open(hub: &EventHub, id: &str) -> Arc<Connection> {
    open_with(hub, id, limits(1 << 20, SlowConsumerPolicy::Close))
}

fn hub() -> EventHub {
    EventHub::new(HubLimits::default())
}

/// Everything queued for `conn` so far, taken as the server's writer takes it. Panics on a close request.
fn drain(conn: &Connection) -> Vec<OutFrame> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = VecDeque::new();
    match conn.poll_outgoing(&mut cx, &mut out, true) {
        Poll::Ready(Outgoing::Frames) => out.into_iter().collect(),
        Poll::Pending => Vec::new(),
        Poll::Ready(Outgoing::Close(request)) => {
            panic!("{}: unexpected close request {request:?}", conn.id())
        }
    }
}

/// A text frame holding the JSON text of `value`.
fn json_frame(value: &Value) -> OutFrame {
    OutFrame::Text(Bytes::from(value.to_string()))
}

/// Parses a text frame's JSON (the comparison is by value, member order aside).
fn frame_json(frame: &OutFrame) -> Value {
    match frame {
        OutFrame::Text(bytes) => serde_json::from_slice(bytes)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(bytes))),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

fn payload_ptr(frame: &OutFrame) -> *const u8 {
    match frame {
        OutFrame::Text(b) | OutFrame::Binary(b) => b.as_ptr(),
        OutFrame::Ping => panic!("a ping has no payload"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------------------------

/// Subscribing twice is the same as once: one copy per publish.
#[tokio::test]
async fn double_subscribe_delivers_once() {
    let hub = hub();
    let a = open(&hub, "a");
    hub.subscribe("news", "a").await.unwrap();
    hub.subscribe("news", "a").await.unwrap();
    assert_eq!(hub.subscriber_count("news"), 1);

    let event = json!({"topic": "news", "n": 1});
    assert_eq!(hub.publish("news", None, &event).await.unwrap(), 1);
    assert_eq!(drain(&a), vec![json_frame(&event)]);

    // One unsubscribe undoes both subscribes.
    assert!(hub.unsubscribe("news", "a").await.unwrap());
    assert_eq!(hub.publish("news", None, &event).await.unwrap(), 0);
    assert_eq!(drain(&a), Vec::<OutFrame>::new());
}

/// `exclude = None` reaches every subscriber, the publishing channel included if it is subscribed.
#[tokio::test]
async fn no_exclude_reaches_every_subscriber_including_the_publisher() {
    let hub = hub();
    let publisher = open(&hub, "publisher");
    let b = open(&hub, "b");
    let c = open(&hub, "c");
    let bystander = open(&hub, "bystander");
    for id in ["publisher", "b", "c"] {
        hub.subscribe("news", id).await.unwrap();
    }
    hub.subscribe("other", "bystander").await.unwrap();

    let event = json!({"from": "publisher"});
    assert_eq!(hub.publish("news", None, &event).await.unwrap(), 3);
    for conn in [&publisher, &b, &c] {
        assert_eq!(drain(conn), vec![json_frame(&event)], "{}", conn.id());
    }
    assert_eq!(drain(&bystander), Vec::<OutFrame>::new());
}

/// `exclude = Some(id)` reaches every subscriber except `id`; an `id` that is not subscribed changes
/// nothing.
#[tokio::test]
async fn exclude_skips_exactly_that_subscriber() {
    let hub = hub();
    let a = open(&hub, "a");
    let b = open(&hub, "b");
    let c = open(&hub, "c");
    let _unsubscribed = open(&hub, "open-but-not-subscribed");
    for id in ["a", "b", "c"] {
        hub.subscribe("news", id).await.unwrap();
    }

    let first = json!({"n": 1});
    assert_eq!(hub.publish("news", Some("a"), &first).await.unwrap(), 2);
    assert_eq!(drain(&a), Vec::<OutFrame>::new());
    assert_eq!(drain(&b), vec![json_frame(&first)]);
    assert_eq!(drain(&c), vec![json_frame(&first)]);

    // An excluded id that is open but not subscribed, or not a channel at all, excludes nobody.
    for (n, exclude) in [
        (2, "open-but-not-subscribed"),
        (3, "no-such-channel"),
        (4, ""),
    ] {
        let event = json!({ "n": n });
        assert_eq!(
            hub.publish("news", Some(exclude), &event).await.unwrap(),
            3,
            "exclude {exclude:?}"
        );
        for conn in [&a, &b, &c] {
            assert_eq!(drain(conn), vec![json_frame(&event)], "{}", conn.id());
        }
    }

    // Binary publications apply the same rule.
    let bytes = Bytes::from_static(&[1, 2, 3]);
    assert_eq!(
        hub.publish_binary("news", Some("c"), bytes.clone())
            .await
            .unwrap(),
        2
    );
    assert_eq!(drain(&a), vec![OutFrame::Binary(bytes.clone())]);
    assert_eq!(drain(&b), vec![OutFrame::Binary(bytes)]);
    assert_eq!(drain(&c), Vec::<OutFrame>::new());
}

/// After `unsubscribe` nothing more is delivered; a second `unsubscribe` returns false.
#[tokio::test]
async fn unsubscribe_stops_delivery_and_is_reported_once() {
    let hub = hub();
    let a = open(&hub, "a");
    let b = open(&hub, "b");
    hub.subscribe("news", "a").await.unwrap();
    hub.subscribe("news", "b").await.unwrap();
    hub.subscribe("sport", "a").await.unwrap();

    assert!(hub.unsubscribe("news", "a").await.unwrap());
    assert!(!hub.unsubscribe("news", "a").await.unwrap());
    // Never subscribed to that topic, or not a channel at all: false as well.
    assert!(!hub.unsubscribe("weather", "a").await.unwrap());
    assert!(!hub.unsubscribe("news", "ghost").await.unwrap());

    let event = json!({"n": 1});
    assert_eq!(hub.publish("news", None, &event).await.unwrap(), 1);
    assert_eq!(drain(&a), Vec::<OutFrame>::new());
    assert_eq!(drain(&b), vec![json_frame(&event)]);
    // The other subscription of `a` is untouched.
    assert_eq!(hub.publish("sport", None, &event).await.unwrap(), 1);
    assert_eq!(drain(&a), vec![json_frame(&event)]);
    assert_eq!(hub.subscriber_count("news"), 1);
}

/// What the onDisconnect handler of the closing channel saw.
#[derive(Debug, Default)]
struct DisconnectView {
    subscriber_count: Option<usize>,
    unsubscribe: Option<Result<bool, HubError>>,
    subscribe_again: Option<Result<(), HubError>>,
}

#[derive(Default)]
struct ClosingState {
    seen: Mutex<DisconnectView>,
}

#[derive(serde::Deserialize)]
struct TopicInput {
    topic: String,
}

async fn closing_sub(ctx: Ctx<ClosingState, ()>, ch: Channel<Params, ()>, input: TopicInput) {
    ctx.hub()
        .subscribe(&input.topic, ch.channel_id())
        .await
        .expect("subscribe while open");
}

async fn closing_disconnect(ctx: Ctx<ClosingState, ()>, ch: ClosedChannel<Params>) {
    let hub = ctx.hub();
    let count = hub.subscriber_count("news");
    let unsubscribe = hub.unsubscribe("news", ch.channel_id()).await;
    let subscribe_again = hub.subscribe("news", ch.channel_id()).await;
    let mut seen = ctx.state().seen.lock();
    seen.subscriber_count = Some(count);
    seen.unsubscribe = Some(unsubscribe);
    seen.subscribe_again = Some(subscribe_again);
}

async fn admit<S, U>(app: App<S, U>, path: &str) -> LiveChannel<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let rt = app.into_runtime();
    admit_on(&rt, path).await
}

async fn admit_on<S, U>(rt: &Arc<pikku_core::AppRuntime<S, U>>, path: &str) -> LiveChannel<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let admitted = rt
        .admit(UpgradeInput {
            path,
            query: None,
            headers: Arc::new(HeaderMap::new()),
            peer: None,
        })
        .await
        .expect("upgrade admitted");
    let live = admitted.into_channel(None, Instant::now());
    live.open();
    live.run_connect().await;
    live
}

/// When a channel closes, its subscriptions are gone before onDisconnect runs; an `unsubscribe` there
/// returns false.
#[tokio::test]
async fn close_removes_subscriptions_before_on_disconnect() {
    // The hub primitive runners call when a connection ends (`EventHub::release`).
    let hub = hub();
    let a = open(&hub, "a");
    let b = open(&hub, "b");
    for topic in ["news", "sport", "weather"] {
        hub.subscribe(topic, "a").await.unwrap();
    }
    hub.subscribe("news", "b").await.unwrap();
    a.mark_closed(DisconnectReason::ClientClosed(Some(1000)));
    hub.release(&a);
    hub.registry().remove(&a);
    assert_eq!(hub.subscriber_count("news"), 1);
    assert_eq!(hub.subscriber_count("sport"), 0);
    assert_eq!(hub.subscriber_count("weather"), 0);
    assert!(!hub.unsubscribe("news", "a").await.unwrap());
    assert_eq!(hub.publish("sport", None, &json!(1)).await.unwrap(), 0);
    assert_eq!(hub.publish("news", None, &json!(2)).await.unwrap(), 1);
    assert_eq!(drain(&b), vec![json_frame(&json!(2))]);

    // The same through the pipeline's disconnect sequence, observed from inside onDisconnect.
    let app = App::new(ClosingState::default()).channel(
        ChannelRoute::new("hub", "/hub")
            .auth(false)
            .route("action", "sub", closing_sub)
            .on_disconnect(closing_disconnect),
    );
    let live = admit(app, "/hub").await;
    let hub = live.runtime().hub().clone();
    live.run_message(json!({"action": "sub", "topic": "news"}))
        .await;
    assert_eq!(
        drain(live.connection()),
        vec![json_frame(&json!({"action": "sub"}))]
    );
    assert_eq!(hub.subscriber_count("news"), 1);

    let reason = live.begin_disconnect(DisconnectReason::ClientClosed(Some(1000)));
    assert_eq!(
        hub.subscriber_count("news"),
        0,
        "subscriptions were released before onDisconnect"
    );
    live.run_disconnect(reason).await;

    let seen = std::mem::take(&mut *live.runtime().state().seen.lock());
    assert_eq!(seen.subscriber_count, Some(0));
    assert_eq!(seen.unsubscribe, Some(Ok(false)));
    // A closed channel cannot subscribe again from onDisconnect either.
    assert!(
        matches!(seen.subscribe_again, Some(Err(HubError::ChannelNotOpen(_)))),
        "{seen:?}"
    );
    assert_eq!(hub.subscriber_count("news"), 0);
}

/// A published value is encoded once; every local subscriber receives the same bytes. Binary
/// payloads arrive as binary frames, strings as raw text.
#[tokio::test]
async fn one_encoding_shared_by_every_subscriber() {
    let hub = hub();
    let subscribers: Vec<_> = (0..5).map(|i| open(&hub, &format!("s{i}"))).collect();
    for conn in &subscribers {
        hub.subscribe("news", conn.id()).await.unwrap();
    }

    let check_shared = |expected: OutFrame, original: Option<*const u8>| {
        let frames: Vec<OutFrame> = subscribers
            .iter()
            .map(|conn| {
                let mut got = drain(conn);
                assert_eq!(got.len(), 1, "{}: {got:?}", conn.id());
                got.remove(0)
            })
            .collect();
        let first = payload_ptr(&frames[0]);
        for frame in &frames {
            assert_eq!(frame, &expected);
            assert_eq!(
                payload_ptr(frame),
                first,
                "every subscriber shares one buffer"
            );
        }
        if let Some(original) = original {
            assert_eq!(first, original, "the published Bytes are not copied");
        }
    };

    // JSON values: JSON text.
    let event = json!({"topic": "news", "data": {"hi": [1, 2, 3]}});
    assert_eq!(hub.publish("news", None, &event).await.unwrap(), 5);
    check_shared(OutFrame::text(event.to_string()), None);

    // A string: raw text, not quoted, escapes resolved.
    assert_eq!(hub.publish("news", None, "héllo \"x\"").await.unwrap(), 5);
    check_shared(OutFrame::text("héllo \"x\""), None);

    // The empty string: the two characters `""`, never an empty frame.
    assert_eq!(hub.publish("news", None, "").await.unwrap(), 5);
    check_shared(OutFrame::text("\"\""), None);

    // A number and null: JSON text.
    assert_eq!(hub.publish("news", None, &42).await.unwrap(), 5);
    check_shared(OutFrame::text("42"), None);
    assert_eq!(hub.publish("news", None, &Value::Null).await.unwrap(), 5);
    check_shared(OutFrame::text("null"), None);

    // Bytes: a binary frame carrying the very buffer that was published.
    let bytes = Bytes::from(vec![9u8, 8, 7, 0, 255]);
    let original = bytes.as_ptr();
    assert_eq!(hub.publish_binary("news", None, bytes).await.unwrap(), 5);
    check_shared(
        OutFrame::Binary(Bytes::from_static(&[9, 8, 7, 0, 255])),
        Some(original),
    );
}

#[derive(serde::Deserialize)]
struct EmitInput {
    topic: String,
    data: Value,
}

async fn emitting_sub(ctx: Ctx<(), ()>, ch: Channel<Params, String>, input: TopicInput) {
    ctx.hub()
        .subscribe(&input.topic, ch.channel_id())
        .await
        .unwrap();
}

async fn emitting_emit_all(
    ctx: Ctx<(), ()>,
    ch: Channel<Params, String>,
    input: EmitInput,
) -> Result<Value, ChannelError> {
    ch.send("before")?;
    let delivered = ctx.hub().publish(&input.topic, None, &input.data).await?;
    ch.send("after")?;
    Ok(json!({ "delivered": delivered }))
}

/// Local deliveries are queued before `publish` returns, so a handler's own subscribed channel receives the
/// event before that handler's reply.
#[tokio::test]
async fn deliveries_are_queued_before_publish_returns() {
    // Directly: the frame is in the subscriber's queue when the future completes on its first poll.
    let hub = hub();
    let a = open(&hub, "a");
    hub.subscribe("news", "a").await.unwrap();
    let event = json!({"n": 1});
    let mut publish = std::pin::pin!(hub.publish("news", None, &event));
    let mut cx = Context::from_waker(Waker::noop());
    match publish.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(1)) => {}
        other => panic!("the in-process publish must complete at once with 1 delivery: {other:?}"),
    }
    assert_eq!(drain(&a), vec![json_frame(&json!({"n": 1}))]);

    // Through the pipeline: pushes, the event and the reply leave in the order they were produced.
    let app = App::new(()).channel(
        ChannelRoute::new("emitting", "/emitting")
            .auth(false)
            .route("action", "sub", emitting_sub)
            .route("action", "emitAll", emitting_emit_all),
    );
    let rt = app.into_runtime();
    let publisher = admit_on(&rt, "/emitting").await;
    let other = admit_on(&rt, "/emitting").await;
    for live in [&publisher, &other] {
        live.run_message(json!({"action": "sub", "topic": "news"}))
            .await;
        assert_eq!(
            drain(live.connection()),
            vec![json_frame(&json!({"action": "sub"}))]
        );
    }
    publisher
        .run_message(json!({"action": "emitAll", "topic": "news", "data": {"hi": 2}}))
        .await;
    let frames = drain(publisher.connection());
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert_eq!(frames[0], OutFrame::text("before"));
    assert_eq!(frame_json(&frames[1]), json!({"hi": 2}));
    assert_eq!(frames[2], OutFrame::text("after"));
    assert_eq!(
        frame_json(&frames[3]),
        json!({"delivered": 2, "action": "emitAll"})
    );
    assert_eq!(
        drain(other.connection()),
        vec![json_frame(&json!({"hi": 2}))]
    );
}

/// A subscriber that is slow or gone is handled by its own slow-consumer policy; the others are unaffected.
#[tokio::test]
async fn slow_or_gone_subscribers_do_not_affect_the_others() {
    let hub = hub();
    let healthy = open(&hub, "healthy");
    // Room for two 10-byte events each.
    let slow_close = open_with(&hub, "slow-close", limits(20, SlowConsumerPolicy::Close));
    let slow_drop = open_with(&hub, "slow-drop", limits(20, SlowConsumerPolicy::Drop));
    let gone = open(&hub, "gone");
    for id in ["healthy", "slow-close", "slow-drop", "gone"] {
        hub.subscribe("news", id).await.unwrap();
    }
    // `gone` closed (its runner has not unregistered it yet).
    gone.mark_closed(DisconnectReason::TransportError);

    let events: Vec<Value> = (0..6).map(|i| json!({ "seq": i })).collect();
    let encoded_len = events[0].to_string().len();
    assert_eq!(encoded_len, 9);
    let mut delivered = Vec::new();
    for event in &events {
        delivered.push(
            hub.publish("news", None, event)
                .await
                .expect("a slow subscriber never makes the publisher fail"),
        );
    }
    // healthy + slow-close + slow-drop for the first two; then slow-close is closed (1008) on the third and
    // slow-drop drops from the third on.
    assert_eq!(delivered, vec![3, 3, 1, 1, 1, 1]);

    let all: Vec<OutFrame> = events.iter().map(json_frame).collect();
    assert_eq!(drain(&healthy), all);
    assert_eq!(healthy.state(), ChannelState::Open);

    // Drop policy: the frames that fit, and the connection stays open.
    assert_eq!(drain(&slow_drop), all[..2].to_vec());
    assert_eq!(slow_drop.state(), ChannelState::Open);

    // Close policy: the queue is discarded and the close is 1008 `slow consumer`.
    assert_eq!(slow_close.state(), ChannelState::Closed);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = VecDeque::new();
    match slow_close.poll_outgoing(&mut cx, &mut out, true) {
        Poll::Ready(Outgoing::Close(request)) => {
            assert_eq!((request.code, &*request.reason), (1008, "slow consumer"));
            assert_eq!(request.cause, DisconnectReason::SlowConsumer);
            assert!(!request.flush);
        }
        other => panic!("expected the slow-consumer close, got {other:?}"),
    }
    assert!(out.is_empty(), "a slow consumer's queue is discarded");

    // The closed subscribers receive nothing more; the hub keeps working for the others, and the `Drop`
    // subscriber receives again once its queue was taken by the writer.
    assert_eq!(gone.state(), ChannelState::Closed);
    assert_eq!(hub.publish("news", None, &json!("x")).await.unwrap(), 2);
    assert_eq!(drain(&healthy), vec![OutFrame::text("x")]);
    assert_eq!(drain(&slow_drop), vec![OutFrame::text("x")]);
}

/// Publishing to a topic without subscribers is a no-op returning 0.
#[tokio::test]
async fn publish_without_subscribers_returns_zero() {
    let hub = hub();
    let a = open(&hub, "a");
    assert_eq!(
        hub.publish("nobody", None, &json!({"x": 1})).await.unwrap(),
        0
    );
    assert_eq!(hub.publish("nobody", Some("a"), "text").await.unwrap(), 0);
    assert_eq!(
        hub.publish_binary("nobody", None, Bytes::from_static(b"\x01"))
            .await
            .unwrap(),
        0
    );
    // A topic whose last subscriber left is the same as one that never had any.
    hub.subscribe("was", "a").await.unwrap();
    assert!(hub.unsubscribe("was", "a").await.unwrap());
    assert_eq!(hub.publish("was", None, &json!(1)).await.unwrap(), 0);
    assert_eq!(hub.subscriber_count("was"), 0);
    // Topics are exact, case-sensitive strings without patterns.
    hub.subscribe("News", "a").await.unwrap();
    for topic in ["news", "News2", "New", "*", "News "] {
        assert_eq!(
            hub.publish(topic, None, &json!(1)).await.unwrap(),
            0,
            "{topic:?}"
        );
    }
    assert_eq!(drain(&a), Vec::<OutFrame>::new());
}

/// Events from one publisher to one subscriber on a topic arrive in publish order.
#[tokio::test]
async fn events_arrive_in_publish_order() {
    let hub = hub();
    let subscribers: Vec<_> = (0..3).map(|i| open(&hub, &format!("s{i}"))).collect();
    for conn in &subscribers {
        hub.subscribe("ticks", conn.id()).await.unwrap();
    }
    let mut expected = Vec::new();
    for i in 0..500u32 {
        // Interleave the three encodings so order is checked across frame kinds.
        let frame = match i % 3 {
            0 => {
                hub.publish("ticks", None, &json!({ "seq": i }))
                    .await
                    .unwrap();
                json_frame(&json!({ "seq": i }))
            }
            1 => {
                hub.publish("ticks", None, &format!("tick {i}"))
                    .await
                    .unwrap();
                OutFrame::text(format!("tick {i}"))
            }
            _ => {
                let bytes = Bytes::from(i.to_be_bytes().to_vec());
                hub.publish_binary("ticks", None, bytes.clone())
                    .await
                    .unwrap();
                OutFrame::Binary(bytes)
            }
        };
        expected.push(frame);
    }
    for conn in &subscribers {
        assert_eq!(drain(conn), expected, "{}", conn.id());
    }
}

/// In-process, subscribing a `channelId` that is not open returns an error and records nothing.
#[tokio::test]
async fn subscribing_a_channel_that_is_not_open_fails_and_records_nothing() {
    let hub = hub();

    // An id this process does not know.
    assert_eq!(
        hub.subscribe("news", "ghost").await,
        Err(HubError::ChannelNotOpen("ghost".into()))
    );
    assert_eq!(hub.subscriber_count("news"), 0);

    // A connection that closed but is still registered (its disconnect sequence has not released it yet).
    let closing = open(&hub, "closing");
    closing.mark_closed(DisconnectReason::ClientClosed(None));
    assert_eq!(
        hub.subscribe("news", "closing").await,
        Err(HubError::ChannelNotOpen("closing".into()))
    );
    assert_eq!(hub.subscriber_count("news"), 0);

    // A connection that closed and was unregistered.
    let done = open(&hub, "done");
    done.mark_closed(DisconnectReason::ClientClosed(None));
    hub.release(&done);
    hub.registry().remove(&done);
    assert_eq!(
        hub.subscribe("news", "done").await,
        Err(HubError::ChannelNotOpen("done".into()))
    );
    assert_eq!(hub.subscriber_count("news"), 0);

    // Nothing was recorded for `ghost`: once it opens, it is not subscribed.
    let ghost = open(&hub, "ghost");
    assert_eq!(hub.publish("news", None, &json!(1)).await.unwrap(), 0);
    assert!(!hub.unsubscribe("news", "ghost").await.unwrap());
    assert_eq!(drain(&ghost), Vec::<OutFrame>::new());
    // … and it can subscribe now.
    hub.subscribe("news", "ghost").await.unwrap();
    assert_eq!(hub.publish("news", None, &json!(2)).await.unwrap(), 1);
    assert_eq!(drain(&ghost), vec![json_frame(&json!(2))]);
}

// ---------------------------------------------------------------------------------------------------------
// Limits that go with the rules
// ---------------------------------------------------------------------------------------------------------

/// Topics are non-empty and at most `max_topic_bytes`; a connection holds at most
/// `max_subscriptions_per_channel` subscriptions. A failed subscribe records nothing.
#[tokio::test]
async fn topic_and_subscription_limits() {
    let hub = EventHub::new(HubLimits {
        max_subscriptions_per_channel: 2,
        max_topic_bytes: 8,
        ..HubLimits::default()
    });
    let a = open(&hub, "a");
    assert_eq!(hub.subscribe("", "a").await, Err(HubError::InvalidTopic));
    assert_eq!(
        hub.subscribe("123456789", "a").await,
        Err(HubError::InvalidTopic)
    );
    hub.subscribe("12345678", "a").await.unwrap();
    hub.subscribe("t2", "a").await.unwrap();
    assert_eq!(
        hub.subscribe("t3", "a").await,
        Err(HubError::TooManySubscriptions)
    );
    // Re-subscribing an existing topic at the limit is still idempotent success.
    hub.subscribe("t2", "a").await.unwrap();
    assert_eq!(hub.subscriber_count("t3"), 0);
    assert_eq!(hub.publish("t3", None, &json!(1)).await.unwrap(), 0);
    assert_eq!(drain(&a), Vec::<OutFrame>::new());
    // Freeing a slot makes room again.
    assert!(hub.unsubscribe("t2", "a").await.unwrap());
    hub.subscribe("t3", "a").await.unwrap();
    assert_eq!(hub.publish("t3", None, &json!(1)).await.unwrap(), 1);
}

/// Fan-out to a big topic yields cooperatively: a task publishing in a loop lets another task of the same
/// single-threaded runtime run before it is done, and every subscriber still gets every event, in order.
#[tokio::test]
async fn a_big_fan_out_lets_other_tasks_run() {
    let hub = hub();
    let subscribers: Vec<_> = (0..10_000).map(|i| open(&hub, &format!("s{i}"))).collect();
    for conn in &subscribers {
        hub.subscribe("big", conn.id()).await.unwrap();
    }
    let other_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let hub = hub.clone();
        let other_ran = other_ran.clone();
        tokio::spawn(async move {
            for n in 0..3 {
                let delivered = hub.publish("big", None, &json!({ "n": n })).await.unwrap();
                assert_eq!(delivered, 10_000);
            }
            other_ran.load(std::sync::atomic::Ordering::SeqCst)
        })
    };
    let other = {
        let other_ran = other_ran.clone();
        tokio::spawn(async move { other_ran.store(true, std::sync::atomic::Ordering::SeqCst) })
    };
    assert!(
        publisher.await.unwrap(),
        "the other task ran while the publisher was fanning out"
    );
    other.await.unwrap();
    for conn in subscribers.iter().step_by(997) {
        let got: Vec<Value> = drain(conn).iter().map(frame_json).collect();
        assert_eq!(got, [json!({"n": 0}), json!({"n": 1}), json!({"n": 2})]);
    }
}

/// The hub-wide cap counts subscriptions over all connections; unsubscribing and closing give them back.
#[tokio::test]
async fn the_total_subscription_cap_spans_connections() {
    let hub = EventHub::new(HubLimits {
        max_subscriptions_total: 2,
        ..HubLimits::default()
    });
    let a = open(&hub, "a");
    let _b = open(&hub, "b");
    hub.subscribe("t1", "a").await.unwrap();
    hub.subscribe("t1", "b").await.unwrap();
    assert_eq!(
        hub.subscribe("t2", "b").await,
        Err(HubError::TooManySubscriptions)
    );
    hub.subscribe("t1", "b").await.unwrap(); // already held: idempotent at the cap
    assert!(hub.unsubscribe("t1", "b").await.unwrap());
    hub.subscribe("t2", "b").await.unwrap();
    assert_eq!(
        hub.subscribe("t3", "b").await,
        Err(HubError::TooManySubscriptions)
    );
    hub.release(&a);
    hub.registry().remove(&a);
    hub.subscribe("t3", "b").await.unwrap();
}
