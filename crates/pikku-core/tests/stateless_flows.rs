//! The stateless flows (connect, message, disconnect, publish, expiry) with in-memory stores shared by two
//! runtimes, as two worker processes share a store, and a platform sender that records what it is asked to send.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pikku::core::runtime::UpgradeInput;
use pikku::core::OutFrame;
use pikku::stateless::{Close, Inbound, StatelessRuntime, StatelessStores, UserSession};
use pikku::store::{BoxFuture, PlatformSendError, PlatformSender};
use pikku::{
    App, Capability, Channel, ChannelError, ChannelRoute, ClosedChannel, Ctx, DisconnectReason,
    Params, RegistrationError, Route,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: String,
}

impl UserSession for User {
    fn user_id(&self) -> Option<&str> {
        Some(&self.id)
    }
}

/// What the platform was asked to send, and ids it answers `Gone` for.
#[derive(Default)]
struct Platform {
    sent: Mutex<Vec<(String, OutFrame)>>,
    gone: Mutex<Vec<String>>,
}

impl PlatformSender for Platform {
    fn send<'a>(
        &'a self,
        channel_id: &'a str,
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Result<(), PlatformSendError>> {
        let result = if self.gone.lock().iter().any(|id| id == channel_id) {
            Err(PlatformSendError::Gone)
        } else {
            self.sent
                .lock()
                .push((channel_id.to_owned(), frame.clone()));
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}

type Cx = Ctx<Arc<Mutex<Vec<String>>>, User>;
type Ch<Out = ()> = Channel<Params, Out, u32>;

async fn hello(_ctx: Cx, ch: Ch<String>) {
    let _ = ch.send(format!("hello {}", ch.channel_id()));
}
async fn login(ctx: Cx, _ch: Ch, input: Value) -> bool {
    let Some(id) = input.get("user").and_then(Value::as_str) else {
        return false;
    };
    ctx.set_session(User { id: id.to_owned() });
    true
}
async fn whoami(ctx: Cx, _ch: Ch, _: ()) -> Option<String> {
    ctx.session().map(|u| u.id)
}
async fn logout(ctx: Cx, _ch: Ch, _: ()) {
    ctx.clear_session();
}
async fn count(_ctx: Cx, ch: Ch, _: ()) -> u32 {
    ch.update_socket_state(|n| {
        let next = n.unwrap_or(0) + 1;
        *n = Some(next);
        next
    })
}
async fn sub(ctx: Cx, ch: Ch, input: Value) -> Result<(), ChannelError> {
    let topic = input["topic"].as_str().unwrap_or_default();
    ctx.hub().subscribe(topic, ch.channel_id()).await?;
    Ok(())
}
async fn emit(ctx: Cx, ch: Ch, input: Value) -> Result<usize, ChannelError> {
    let topic = input["topic"].as_str().unwrap_or_default();
    let exclude = input["excludeSelf"]
        .as_bool()
        .unwrap_or(false)
        .then(|| ch.channel_id());
    Ok(ctx.hub().publish(topic, exclude, &input["data"]).await?)
}
struct Ask;
impl Capability for Ask {
    const NAME: &'static str = "ask";
    type Input = Value;
    type Output = Value;
}
async fn rev(_ctx: Cx, ch: Ch, _: ()) -> Result<Value, ChannelError> {
    let err = ch.remote::<Ask>(json!({})).await.unwrap_err();
    Ok(json!({ "failure": err.failure().as_str() }))
}
async fn bye(_ctx: Cx, ch: Ch<String>, _: ()) {
    let _ = ch.send("bye");
    ch.close();
}
async fn gone(ctx: Cx, ch: ClosedChannel<Params, u32>) {
    ctx.state().lock().push(format!(
        "{} {} count={:?}",
        ch.channel_id(),
        ch.reason(),
        ch.socket_state()
    ));
}

fn app(disconnects: Arc<Mutex<Vec<String>>>) -> App<Arc<Mutex<Vec<String>>>, User> {
    App::new(disconnects).channel(
        ChannelRoute::new("events", "/events")
            .on_connect(hello)
            .on_disconnect(gone)
            .route("action", "login", Route::new(login).auth(false))
            .route("action", "whoami", Route::new(whoami).auth(false))
            .route("action", "logout", logout)
            .route("action", "count", Route::new(count).auth(false))
            .route("action", "sub", Route::new(sub).auth(false))
            .route("action", "emit", Route::new(emit).auth(false))
            .route("action", "rev", Route::new(rev).auth(false))
            .route("action", "bye", Route::new(bye).auth(false))
            .persist_socket_state(),
    )
}

/// Two workers on the same stores and platform, with one disconnect log.
struct Workers {
    a: StatelessRuntime<Arc<Mutex<Vec<String>>>, User>,
    b: StatelessRuntime<Arc<Mutex<Vec<String>>>, User>,
    stores: StatelessStores,
    platform: Arc<Platform>,
    disconnects: Arc<Mutex<Vec<String>>>,
}

fn workers() -> Workers {
    let stores = StatelessStores::memory();
    let platform = Arc::new(Platform::default());
    let disconnects = Arc::new(Mutex::new(Vec::new()));
    let worker = || {
        StatelessRuntime::new(app(disconnects.clone()), stores.clone(), platform.clone())
            .expect("stateless app")
    };
    Workers {
        a: worker(),
        b: worker(),
        stores: stores.clone(),
        platform,
        disconnects: disconnects.clone(),
    }
}

fn upgrade(path: &str) -> UpgradeInput<'_> {
    UpgradeInput {
        path,
        query: None,
        headers: Default::default(),
        peer: None,
    }
}

fn text(value: Value) -> Inbound {
    Inbound::text(value.to_string())
}

fn json_frames(frames: impl IntoIterator<Item = OutFrame>) -> Vec<Value> {
    frames
        .into_iter()
        .map(|frame| match frame {
            OutFrame::Text(bytes) => serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
            other => panic!("expected a text frame, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn messages_of_one_connection_may_land_on_either_worker() {
    let w = workers();
    let opened = w.a.connect("c1", upgrade("/events")).await.unwrap();
    assert_eq!(json_frames(opened.frames), [json!("hello c1")]);

    // Socket state written by one worker is read by the other.
    let out =
        w.a.message("c1", [text(json!({"action": "count"}))])
            .await
            .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "count", "result": 1})]
    );
    let out =
        w.b.message("c1", [text(json!({"action": "count"}))])
            .await
            .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "count", "result": 2})]
    );

    // A session set on one worker is found through the record's user id on the other, until it is cleared.
    let out =
        w.b.message("c1", [text(json!({"action": "whoami"}))])
            .await
            .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "whoami", "result": null})]
    );
    w.a.message("c1", [text(json!({"action": "login", "user": "ann"}))])
        .await
        .unwrap();
    assert_eq!(
        w.stores
            .channels
            .get_channel("c1")
            .await
            .unwrap()
            .user_id
            .as_deref(),
        Some("ann")
    );
    let out =
        w.b.message("c1", [text(json!({"action": "whoami"}))])
            .await
            .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "whoami", "result": "ann"})]
    );
    w.b.message("c1", [text(json!({"action": "logout"}))])
        .await
        .unwrap();
    let out =
        w.a.message("c1", [text(json!({"action": "whoami"}))])
            .await
            .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "whoami", "result": null})]
    );
    assert_eq!(
        w.stores.channels.get_channel("c1").await.unwrap().user_id,
        None
    );

    // A batch runs in order in one invocation.
    let out =
        w.b.message(
            "c1",
            [
                text(json!({"action": "count"})),
                text(json!({"action": "count"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [
            json!({"action": "count", "result": 3}),
            json!({"action": "count", "result": 4})
        ]
    );
}

#[tokio::test]
async fn publish_reaches_subscribers_behind_other_workers_through_the_platform() {
    let w = workers();
    for id in ["p1", "p2", "p3"] {
        w.a.connect(id, upgrade("/events")).await.unwrap();
        w.a.message(id, [text(json!({"action": "sub", "topic": "news"}))])
            .await
            .unwrap();
    }
    // p1 publishes on worker b: p2 and p3 get it through the platform, p1 itself in its own answer.
    let out =
        w.b.message(
            "p1",
            [text(
                json!({"action": "emit", "topic": "news", "data": {"n": 1}}),
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"n": 1}), json!({"action": "emit", "result": 3})]
    );
    let mut sent: Vec<String> = w
        .platform
        .sent
        .lock()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    sent.sort();
    assert_eq!(sent, ["p2", "p3"]);
    assert!(w
        .platform
        .sent
        .lock()
        .iter()
        .all(|(_, f)| *f == OutFrame::text(r#"{"n":1}"#)));

    // With the publisher excluded, and p3 gone: p3's record and subscriptions are removed, p2 still gets it.
    w.platform.sent.lock().clear();
    w.platform.gone.lock().push("p3".into());
    let out =
        w.b.message(
            "p1",
            [text(
                json!({"action": "emit", "topic": "news", "excludeSelf": true, "data": 2}),
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "emit", "result": 1})]
    );
    assert_eq!(
        *w.platform.sent.lock(),
        [("p2".to_owned(), OutFrame::text("2"))]
    );
    assert!(w.stores.channels.get_channel("p3").await.is_err());
    let mut subscribers = w.stores.subscriptions.channel_ids("news").await.unwrap();
    subscribers.sort();
    assert_eq!(subscribers, ["p1", "p2"]);
}

#[tokio::test]
async fn disconnect_runs_once_and_removes_everything() {
    let w = workers();
    w.a.connect("d1", upgrade("/events")).await.unwrap();
    w.a.message(
        "d1",
        [
            text(json!({"action": "count"})),
            text(json!({"action": "sub", "topic": "t"})),
        ],
    )
    .await
    .unwrap();
    let reason = DisconnectReason::ClientClosed(Some(1000));
    w.b.disconnect("d1", reason.clone()).await.unwrap();
    w.a.disconnect("d1", reason).await.unwrap();
    assert_eq!(*w.disconnects.lock(), ["d1 client_closed count=Some(1)"]);
    assert!(w.stores.channels.get_channel("d1").await.is_err());
    assert!(w
        .stores
        .subscriptions
        .channel_ids("t")
        .await
        .unwrap()
        .is_empty());

    // A late message of the removed connection closes it with 1011 and runs nothing.
    let out =
        w.b.message("d1", [text(json!({"action": "count"}))])
            .await
            .unwrap();
    assert!(out.frames.is_empty());
    assert_eq!(
        out.close,
        Some(Close {
            code: 1011,
            reason: "channel not found".into()
        })
    );
}

#[tokio::test]
async fn reverse_calls_fail_at_once_and_close_ends_the_batch() {
    let w = workers();
    w.a.connect("r1", upgrade("/events")).await.unwrap();
    let started = std::time::Instant::now();
    let out =
        w.a.message("r1", [text(json!({"action": "rev"}))])
            .await
            .unwrap();
    assert_eq!(
        json_frames(out.frames),
        [json!({"action": "rev", "failure": "unsupported"})]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no request was waited for"
    );

    let out =
        w.b.message(
            "r1",
            [
                text(json!({"action": "bye"})),
                text(json!({"action": "count"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(json_frames(out.frames), [json!("bye")]);
    assert_eq!(out.close.map(|c| c.code), Some(1000));
}

#[tokio::test]
async fn refusals_and_unpersisted_state_are_reported() {
    let w = workers();
    let refused = w.a.connect("x", upgrade("/nowhere")).await.unwrap_err();
    assert_eq!(refused.status(), 404);
    assert!(w.stores.channels.get_channel("x").await.is_err());

    // The same id twice: the second connect fails and the first record stays.
    w.a.connect("dup", upgrade("/events")).await.unwrap();
    w.a.message("dup", [text(json!({"action": "count"}))])
        .await
        .unwrap();
    assert_eq!(
        w.b.connect("dup", upgrade("/events"))
            .await
            .unwrap_err()
            .status(),
        500
    );
    assert_eq!(
        w.stores.channels.get_channel("dup").await.unwrap().state,
        Some(json!(1))
    );

    async fn counter(_ctx: Ctx<(), ()>, ch: Channel<Params, (), u32>, _: ()) {
        ch.set_socket_state(1);
    }
    let app = App::new(()).channel(ChannelRoute::new("c", "/c").on_message(counter));
    let err = StatelessRuntime::new(
        app,
        StatelessStores::memory(),
        Arc::new(Platform::default()),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RegistrationError::SocketStateNotPersisted {
            channel: "c".into(),
            state_type: "u32".into()
        }
    );
}

#[tokio::test]
async fn the_sweep_forgets_quiet_connections_without_disconnecting_them() {
    let stores = StatelessStores::memory();
    let disconnects = Arc::new(Mutex::new(Vec::new()));
    let worker = StatelessRuntime::new(
        app(disconnects.clone()),
        stores.clone(),
        Arc::new(Platform::default()),
    )
    .unwrap()
    .with_ttl(Duration::from_millis(50));
    worker.connect("s1", upgrade("/events")).await.unwrap();
    worker
        .message("s1", [text(json!({"action": "sub", "topic": "t"}))])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    worker.connect("s2", upgrade("/events")).await.unwrap();
    assert_eq!(worker.sweep().await.unwrap(), ["s1"]);
    assert!(stores.channels.get_channel("s1").await.is_err());
    assert!(stores.channels.get_channel("s2").await.is_ok());
    assert!(stores
        .subscriptions
        .channel_ids("t")
        .await
        .unwrap()
        .is_empty());
    assert!(disconnects.lock().is_empty());
}
