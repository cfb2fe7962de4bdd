//! Reconnecting: a server that goes away and comes back on the same port, remembered messages (a login, topic
//! subscriptions) re-sent on the new connection, calls in flight failing with `Disconnected`, and the closes that
//! end a client for good.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use pikku_client::{Backoff, Client, ClientError, ConnectionState, Frame};
use pikku_conformance::{FixtureSettings, TestServer};
use serde_json::json;
use support::{authed, next, server, WAIT};
use tokio::sync::watch;

/// Quick attempts, so that a test waits for a restart rather than for the backoff.
fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        ..Backoff::default()
    }
}

/// Waits (within [`WAIT`]) until the client's state satisfies `done`, and returns that state.
async fn wait_for_state(
    states: &mut watch::Receiver<ConnectionState>,
    done: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    let state = tokio::time::timeout(WAIT, states.wait_for(done))
        .await
        .expect("the state in time")
        .expect("the client is alive");
    *state
}

/// A new fixture server on `addr`, once the old one has let go of the port.
async fn restart_at(addr: SocketAddr) -> TestServer {
    tokio::time::timeout(WAIT, async {
        loop {
            match TestServer::start_at(FixtureSettings::test(), addr).await {
                Ok(server) => return server,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the port is free again")
}

/// Polls `check` until it holds, within [`WAIT`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_restarted_server_gets_the_client_back_with_its_subscriptions() {
    let first = server().await;
    let addr = first.addr();

    // A realtime client on the events channel, subscribed to two topics and then out of one.
    let subscriber = Client::builder(first.url("/realtime/events"))
        .reconnect(quick())
        .connect()
        .await
        .unwrap();
    subscriber.subscribe_topic("news").await.unwrap();
    subscriber.subscribe_topic("sport").await.unwrap();
    subscriber.unsubscribe_topic("sport").await.unwrap();
    // A topic the hub refuses is an error and is not remembered: no refusal comes back after the restart.
    let refused = subscriber.subscribe_topic("").await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Remote { name, .. } if name == "BadRequestError"),
        "{refused:?}"
    );
    assert_eq!(first.subscriber_count("news"), 1);

    // A client of the `events` channel, logged in by a remembered call, with a call in flight when the server
    // goes: `nosuch` is not a route, so the default handler answers without the routing member and the call
    // would wait until its connection ends.
    let caller = Client::builder(first.url("/events"))
        .reconnect(quick())
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&caller).await, Frame::Text("hello!".into()));
    let actions = caller.route("action");
    actions
        .call_remembered("login", "auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    assert_eq!(actions.call_as::<u32>("count", &()).await.unwrap(), 1);
    let in_flight = {
        let actions = actions.clone();
        tokio::spawn(async move { actions.call("nosuch", &()).await })
    };
    assert_eq!(
        next(&caller).await,
        Frame::Json(json!({"defaultGot": {"action": "nosuch"}}))
    );

    // The server shuts down (1001 `going away`, then 503 for new upgrades) and stops listening.
    let mut subscriber_states = subscriber.state_changes();
    let mut caller_states = caller.state_changes();
    first.begin_shutdown().await;
    let reconnecting = wait_for_state(&mut caller_states, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    assert!(matches!(
        reconnecting,
        ConnectionState::Reconnecting { attempt } if attempt >= 1
    ));
    wait_for_state(&mut subscriber_states, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    assert_eq!(caller.close_reason(), None, "not closed, only reconnecting");

    // The call in flight failed with the documented error, carrying the close that dropped the link.
    let failed = tokio::time::timeout(WAIT, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&failed, Err(ClientError::Disconnected(close)) if close.code == 1001),
        "{failed:?}"
    );

    // A call made while the client is away waits for the new connection. It needs the session, so it also
    // shows that the remembered login went out before it.
    let queued = {
        let actions = actions.clone();
        tokio::spawn(async move { actions.call_as::<u32>("count", &()).await })
    };
    drop(first);
    // Let at least one attempt find nothing listening.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = restart_at(addr).await;

    assert_eq!(
        wait_for_state(&mut caller_states, |s| *s == ConnectionState::Open).await,
        ConnectionState::Open
    );
    wait_for_state(&mut subscriber_states, |s| *s == ConnectionState::Open).await;
    // A fresh connection: its own counter, and the session from the re-sent login.
    let count = tokio::time::timeout(WAIT, queued).await.unwrap().unwrap();
    assert_eq!(count.unwrap(), 1);
    assert_eq!(
        actions
            .call_as::<Option<String>>("whoami", &())
            .await
            .unwrap(),
        Some("u1".into())
    );
    // The channel's onConnect greets the new connection too.
    assert_eq!(next(&caller).await, Frame::Text("hello!".into()));

    // The subscription came back by itself, the one given up did not.
    eventually("the subscription is re-sent", || {
        second.subscriber_count("news") == 1
    })
    .await;
    assert_eq!(second.subscriber_count("sport"), 0);
    let publisher = authed(&second).await;
    let publish = publisher.route("action");
    publish
        .call("emitAll", &json!({"topic": "sport", "data": "missed"}))
        .await
        .unwrap();
    publish
        .call(
            "emitAll",
            &json!({"topic": "news", "data": {"headline": "back"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&subscriber).await,
        Frame::Json(json!({"topic": "news", "data": {"headline": "back"}}))
    );
    assert_eq!(subscriber.state(), ConnectionState::Open);
}

#[tokio::test]
async fn close_by_the_user_never_reconnects() {
    let server = server().await;
    let client = Client::builder(server.url("/events"))
        .reconnect(quick())
        .connect()
        .await
        .unwrap();
    next(&client).await; // hello!
    let mut states = client.state_changes();
    let close = client.close().await;
    assert_eq!(close.code, 1000);
    assert_eq!(client.state(), ConnectionState::Closed);
    // Well past a few backoff delays, still closed, and the server saw one connection go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*states.borrow_and_update(), ConnectionState::Closed);
    let disconnects = server.recorder().wait_for_disconnects(1, WAIT).await;
    assert_eq!(disconnects.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.recorder().disconnects().len(), 1);
    assert!(matches!(
        client.send(&json!({"late": true})).await,
        Err(ClientError::Closed(_))
    ));
}

#[tokio::test]
async fn close_while_reconnecting_stops_at_once() {
    let first = server().await;
    let client = Client::builder(first.url("/events"))
        .reconnect(Backoff {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(30),
            ..Backoff::default()
        })
        .connect()
        .await
        .unwrap();
    let mut states = client.state_changes();
    first.begin_shutdown().await;
    wait_for_state(&mut states, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    // Queued for the next connection, which never comes.
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.route("action").call("whoami", &()).await })
    };
    let close = tokio::time::timeout(WAIT, client.close()).await.unwrap();
    assert_eq!(close.code, 1000);
    assert_eq!(close.reason, "closed while reconnecting");
    assert_eq!(client.state(), ConnectionState::Closed);
    let waited = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(matches!(waited, Err(ClientError::Closed(_))), "{waited:?}");
}

#[tokio::test]
async fn the_application_closing_the_channel_is_final() {
    let server = server().await;
    let client = authed_with_reconnect(&server).await;
    // `bye` sends `bye` and closes with 1000: the server wants this client gone.
    client.route("action").send("bye", &()).await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("bye".into()));
    let close = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(close.code, 1000);
    assert_eq!(client.state(), ConnectionState::Closed);
}

#[tokio::test]
async fn reconnect_if_decides_which_closes_reconnect() {
    let server = server().await;
    let client = Client::builder(server.url("/events"))
        .reconnect(quick())
        .reconnect_if(|close| close.code == 1000 || close.is_retryable())
        .connect()
        .await
        .unwrap();
    next(&client).await; // hello!
    let actions = client.route("action");
    actions
        .call("auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    actions.send("bye", &()).await.unwrap();
    assert_eq!(next(&client).await, Frame::Text("bye".into()));
    // Back on a new connection: greeted again.
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    assert_eq!(client.close_reason(), None);
    client.close().await;
}

#[tokio::test]
async fn reconnecting_gives_up_after_max_attempts() {
    let first = server().await;
    let client = Client::builder(first.url("/events"))
        .reconnect(Backoff {
            max_attempts: Some(3),
            ..quick()
        })
        .connect()
        .await
        .unwrap();
    first.begin_shutdown().await;
    drop(first); // and nobody comes back
    let close = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(close.code, 1006);
    assert!(
        close
            .reason
            .starts_with("gave up reconnecting after 3 attempts"),
        "{close}"
    );
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(matches!(
        client.route("action").call("whoami", &()).await,
        Err(ClientError::Closed(_))
    ));
}

/// A client on `/events` with reconnect on, logged in.
async fn authed_with_reconnect(server: &TestServer) -> Client {
    let client = Client::builder(server.url("/events"))
        .reconnect(quick())
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    client
        .route("action")
        .call("auth", &json!({"token": "valid"}))
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn a_silent_connection_counts_as_lost() {
    // The fixture pings quiet connections every 30 s, so nothing arrives on an idle one for 150 ms.
    let server = server().await;
    let client = Client::builder(server.url("/events"))
        .reconnect(quick())
        .idle_timeout(Duration::from_millis(150))
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    // Lost after the silence, and back on a new connection, which greets again.
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    assert_eq!(client.close_reason(), None);

    // Pings keep a quiet connection alive.
    let mut settings = FixtureSettings::test();
    settings.ping_interval = Duration::from_millis(30);
    let pinging = TestServer::start(settings).await;
    let client = Client::builder(pinging.url("/events"))
        .idle_timeout(Duration::from_millis(150))
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&client).await, Frame::Text("hello!".into()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.state(), ConnectionState::Open);
    let nothing = tokio::time::timeout(Duration::from_millis(50), client.next_frame()).await;
    assert!(nothing.is_err(), "{nothing:?}");

    // Without reconnect, the silence closes the client.
    let client = Client::builder(server.url("/events"))
        .idle_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let close = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(close.code, 1006);
    assert_eq!(close.reason, "nothing received for 100ms");
}

/// The futures of the new calls can move between threads.
#[allow(dead_code)]
fn futures_are_send(client: &Client) {
    fn send<T: Send>(_: T) {}
    #[derive(serde::Serialize)]
    struct Count;
    impl pikku_client::RouteCall for Count {
        const PROPERTY: &'static str = "action";
        const VALUE: &'static str = "count";
        type Reply = u32;
    }
    send(client.request(&Count));
    send(client.request_remembered("id", &Count));
    send(client.subscribe_topic("news"));
    send(client.unsubscribe_topic("news"));
    send(client.forget("id"));
    send(client.route("action").call_remembered("id", "count", &()));
}

#[tokio::test]
async fn a_refused_reconnect_ends_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let first = server().await;
    let addr = first.addr();
    let client = Client::builder(first.url("/events"))
        .reconnect(quick())
        .connect()
        .await
        .unwrap();
    first.begin_shutdown().await;
    drop(first);
    // What comes back on the port refuses every upgrade with 403, as a server that no longer admits this
    // client would.
    let listener = tokio::time::timeout(WAIT, async {
        loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => return listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the port is free again");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = [0u8; 4096];
            let _ = tcp.read(&mut head).await;
            let body = r#"{"name":"ForbiddenError","message":"Account disabled","errorId":"x"}"#;
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(response.as_bytes()).await;
        }
    });
    let close = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(close.code, 1006);
    assert!(
        close
            .reason
            .starts_with("reconnecting was refused: upgrade refused with HTTP 403"),
        "{close}"
    );
    assert_eq!(client.state(), ConnectionState::Closed);
}
