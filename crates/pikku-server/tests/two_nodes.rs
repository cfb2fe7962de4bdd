//! Two servers, one hub: clients of different servers share topics through a driver, over real sockets. The
//! in-process bus stands in for a broker here; the broker backends run the same checks against the real thing.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pikku_core::hub::LocalBus;
use pikku_core::{App, Channel, ChannelError, ChannelRoute, Ctx, Params};
use pikku_server::{ChannelServer, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(serde::Deserialize)]
struct Join {
    room: String,
}

#[derive(serde::Deserialize)]
struct Say {
    room: String,
    text: String,
}

async fn join(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, input: Join) -> Result<(), ChannelError> {
    Ok(ctx.hub().subscribe(&input.room, ch.channel_id()).await?)
}

async fn say(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, input: Say) -> Result<usize, ChannelError> {
    let event = json!({"room": input.room, "text": input.text});
    Ok(ctx
        .hub()
        .publish(&input.room, Some(ch.channel_id()), &event)
        .await?)
}

fn app(bus: &LocalBus) -> App<(), ()> {
    App::new(()).hub_driver(bus.node()).channel(
        ChannelRoute::new("chat", "/chat")
            .auth(false)
            .route("action", "join", join)
            .route("action", "say", say),
    )
}

struct Node {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(app: App<(), ()>) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ChannelServer::new(app, ServerConfig::default());
    tokio::spawn(server.serve_until(listener, async move {
        let _ = stopped.await;
    }));
    Node { addr, _stop: stop }
}

async fn connect(node: &Node) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/chat", node.addr))
        .await
        .expect("upgrade");
    ws
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_two_servers_share_a_room() {
    let bus = LocalBus::new();
    let (one, two) = (serve(app(&bus)).await, serve(app(&bus)).await);
    let (mut alice, mut bob, mut carol) = (
        connect(&one).await,
        connect(&two).await,
        connect(&two).await,
    );
    for ws in [&mut alice, &mut bob, &mut carol] {
        send(ws, json!({"action": "join", "room": "lobby"})).await;
        assert_eq!(next_json(ws).await, json!({"action": "join"}));
    }
    assert_eq!(
        bus.subscriptions("lobby"),
        2,
        "one broker subscription per server, not per client"
    );

    // Alice, on the first server, speaks: Bob and Carol, on the second, hear it; Alice is excluded everywhere.
    send(
        &mut alice,
        json!({"action": "say", "room": "lobby", "text": "hi from one"}),
    )
    .await;
    assert_eq!(
        next_json(&mut alice).await,
        json!({"action": "say", "result": 0})
    );
    let heard = json!({"room": "lobby", "text": "hi from one"});
    assert_eq!(next_json(&mut bob).await, heard);
    assert_eq!(next_json(&mut carol).await, heard);

    // Bob answers from the second server: Carol hears it locally, Alice through the bus.
    send(
        &mut bob,
        json!({"action": "say", "room": "lobby", "text": "hi from two"}),
    )
    .await;
    assert_eq!(
        next_json(&mut bob).await,
        json!({"action": "say", "result": 1})
    );
    let heard = json!({"room": "lobby", "text": "hi from two"});
    assert_eq!(next_json(&mut carol).await, heard);
    assert_eq!(next_json(&mut alice).await, heard);

    // When the last client of a server leaves, that server's broker subscription goes.
    alice.close(None).await.expect("close");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while bus.subscriptions("lobby") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first server kept its subscription"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
