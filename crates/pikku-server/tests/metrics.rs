//! The metrics over real sockets: a server built after the Prometheus recorder was installed, driven through
//! connections, routed messages, error frames, a rate limit, a publication, a refused upgrade and closes, then
//! scraped over HTTP on `/metrics`; and the hub's metrics across two nodes and a broker outage. The recorder is
//! global to the process, so this file is a test binary of its own, and its tests use labels of their own
//! (channel `chat` and the in-memory hub, channel `relay` and the `local` bus).
#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use pikku_core::hub::LocalBus;
use pikku_core::{App, Channel, ChannelError, ChannelRoute, Ctx, Params, RateLimit, Route};
use pikku_server::{ChannelServer, ServerConfig};
use pikku_testkit::ws::op;
use pikku_testkit::{plain_request, raw_upgrade, RawWs};
use serde_json::{json, Value};
use tokio::net::TcpListener;

async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str {
    "hello!"
}

async fn echo(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Value) -> Value {
    input
}

async fn fail(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> Result<(), ChannelError> {
    Err(ChannelError::forbidden("Not for you"))
}

async fn join(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<(), ChannelError> {
    Ok(ctx.hub().subscribe("news", ch.channel_id()).await?)
}

async fn announce(ctx: Ctx<(), ()>, ch: Channel<Params, ()>, _in: ()) -> Result<(), ChannelError> {
    ctx.hub()
        .publish("news", Some(ch.channel_id()), &json!("extra!"))
        .await?;
    Ok(())
}

async fn limited(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) {}

fn app() -> App<(), ()> {
    App::new(()).channel(
        ChannelRoute::new("chat", "/chat")
            .auth(false)
            .on_connect(hello)
            .route("action", "echo", echo)
            .route("action", "fail", fail)
            .route("action", "join", join)
            .route("action", "announce", announce)
            .route(
                "action",
                "limited",
                Route::new(limited).rate_limit(RateLimit::per_second(1)),
            ),
    )
}

/// The samples of a Prometheus text page: (name, labels) → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn parse(page: &str) -> Samples {
    let mut samples = Samples::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.insert((name, labels), value.parse().expect("a number"));
    }
    samples
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    *samples
        .get(&key)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

async fn scrape(addr: SocketAddr) -> Samples {
    let response = plain_request(addr, "GET", "/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        response.headers
    );
    parse(&String::from_utf8(response.body).expect("UTF-8"))
}

async fn send(ws: &mut RawWs<tokio::net::TcpStream>, message: Value) -> Value {
    ws.send(0x80 | op::TEXT, message.to_string().as_bytes())
        .await;
    let (_, opcode, payload) = ws.next_frame().await.expect("a reply");
    assert_eq!(opcode, op::TEXT);
    serde_json::from_slice(&payload).expect("JSON")
}

/// Waits until the server has finished the disconnect sequence of every connection.
async fn drained(server: &ChannelServer<(), ()>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.active_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("connections closed");
}

#[tokio::test]
async fn scraped_counters_match_the_traffic() {
    pikku_server::metrics::install_prometheus().expect("the recorder installs");
    let server = ChannelServer::new(
        app(),
        ServerConfig {
            // The sweep samples the buffer gauges; let it run during the test.
            ping_interval: Duration::from_millis(100),
            ..ServerConfig::default()
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Serving on after the shutdown at the end, to scrape what it refused.
    tokio::spawn(server.clone().serve_until(listener, std::future::pending()));

    // Nothing happened yet: the channel's series exist at zero.
    let samples = scrape(addr).await;
    let chat = [("channel", "chat")];
    assert_eq!(get(&samples, "pikku_connections_opened_total", &chat), 0.0);

    let mut listener_ws = RawWs::connect(addr, "/chat").await;
    let (_, _, greeting) = listener_ws.next_frame().await.expect("greeting");
    assert_eq!(greeting, b"hello!");
    assert_eq!(
        send(&mut listener_ws, json!({"action": "join"})).await,
        json!({"action": "join"})
    );

    let mut ws = RawWs::connect(addr, "/chat").await;
    ws.next_frame().await.expect("greeting");
    for n in 0..3 {
        let reply = send(&mut ws, json!({"action": "echo", "n": n})).await;
        assert_eq!(reply, json!({"action": "echo", "n": n}));
    }
    let refused = send(&mut ws, json!({"action": "fail"})).await;
    assert_eq!(refused["errorName"], "ForbiddenError");
    let unknown = send(&mut ws, json!({"action": "nope"})).await;
    assert_eq!(unknown["errorName"], "NotFoundError");
    assert_eq!(
        send(&mut ws, json!({"action": "announce"})).await,
        json!({"action": "announce"})
    );
    let (_, _, event) = listener_ws.next_frame().await.expect("the publication");
    assert_eq!(event, b"extra!"); // a string is published as its raw text
                                  // One `limited` a second: the second one within the second is refused (its error frame is the first
                                  // refusal's), the third is dropped.
    assert_eq!(
        send(&mut ws, json!({"action": "limited"})).await,
        json!({"action": "limited"})
    );
    let over = send(&mut ws, json!({"action": "limited"})).await;
    assert_eq!(over["errorName"], "TooManyRequestsError");
    ws.send(0x80 | op::TEXT, br#"{"action":"limited"}"#).await;

    // A refused upgrade: no channel at this path.
    assert_eq!(raw_upgrade(addr, "/nowhere", &[]).await.status, 404);

    // Both clients close.
    for ws in [&mut ws, &mut listener_ws] {
        ws.send(0x80 | op::CLOSE, &1000u16.to_be_bytes()).await;
        let (_, opcode, _) = ws.next_frame().await.expect("the close echo");
        assert_eq!(opcode, op::CLOSE);
        ws.expect_end().await;
    }
    // The server lingers until the client's side is closed too.
    drop((ws, listener_ws));
    drained(&server).await;

    let samples = scrape(addr).await;
    let route = |r: &'static str| [("channel", "chat"), ("route", r)];
    assert_eq!(get(&samples, "pikku_connections_opened_total", &chat), 2.0);
    assert_eq!(get(&samples, "pikku_connections_open", &chat), 0.0);
    assert_eq!(
        get(
            &samples,
            "pikku_connections_closed_total",
            &[("channel", "chat"), ("reason", "client_closed")]
        ),
        2.0
    );
    assert_eq!(
        get(
            &samples,
            "pikku_connections_closed_total",
            &[("channel", "chat"), ("reason", "idle_timeout")]
        ),
        0.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_in_total", &route("action:echo")),
        3.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_out_total", &route("action:echo")),
        3.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_in_total", &route("action:fail")),
        1.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_out_total", &route("action:fail")),
        1.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_in_total", &route("unrouted")),
        1.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_out_total", &route("unrouted")),
        1.0
    );
    assert_eq!(
        get(&samples, "pikku_messages_out_total", &route("connect")),
        2.0
    );
    // The two frames over the limit never reached the route.
    assert_eq!(
        get(
            &samples,
            "pikku_messages_in_total",
            &route("action:limited")
        ),
        1.0
    );
    assert_eq!(get(&samples, "pikku_rate_limited_total", &chat), 2.0);
    assert_eq!(
        get(
            &samples,
            "pikku_handler_duration_seconds_count",
            &route("action:echo")
        ),
        3.0
    );
    assert!(
        get(
            &samples,
            "pikku_handler_duration_seconds_sum",
            &route("action:echo")
        ) > 0.0
    );
    let class = |c: &'static str| [("channel", "chat"), ("class", c)];
    assert_eq!(
        get(
            &samples,
            "pikku_error_frames_total",
            &class("ForbiddenError")
        ),
        1.0
    );
    assert_eq!(
        get(
            &samples,
            "pikku_error_frames_total",
            &class("NotFoundError")
        ),
        1.0
    );
    assert_eq!(
        get(
            &samples,
            "pikku_error_frames_total",
            &class("TooManyRequestsError")
        ),
        1.0
    );
    assert_eq!(
        get(
            &samples,
            "pikku_error_frames_total",
            &class("InternalServerError")
        ),
        0.0
    );
    assert_eq!(
        get(
            &samples,
            "pikku_upgrades_refused_total",
            &[("status", "404")]
        ),
        1.0
    );
    let memory = [("backend", "memory")];
    assert_eq!(get(&samples, "pikku_hub_publishes_total", &memory), 1.0);
    assert_eq!(
        get(
            &samples,
            "pikku_hub_deliveries_total",
            &[("backend", "memory"), ("source", "local")]
        ),
        1.0
    );
    assert_eq!(
        get(&samples, "pikku_slow_consumer_closes_total", &chat),
        0.0
    );

    // Once the sweep has run, the buffer gauges read what the idle server holds: nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let samples = scrape(addr).await;
    assert_eq!(get(&samples, "pikku_outbound_queue_bytes", &[]), 0.0);
    assert_eq!(get(&samples, "pikku_inbound_buffered_bytes", &[]), 0.0);

    // Refused while draining: 503, counted.
    server.shutdown().await;
    assert_eq!(raw_upgrade(addr, "/chat", &[]).await.status, 503);
    let samples = scrape(addr).await;
    assert_eq!(
        get(
            &samples,
            "pikku_upgrades_refused_total",
            &[("status", "503")]
        ),
        1.0
    );
}

async fn relay_join(
    ctx: Ctx<(), ()>,
    ch: Channel<Params, ()>,
    _in: (),
) -> Result<(), ChannelError> {
    Ok(ctx.hub().subscribe("relay", ch.channel_id()).await?)
}

async fn relay_send(
    ctx: Ctx<(), ()>,
    _ch: Channel<Params, ()>,
    _in: (),
) -> Result<(), ChannelError> {
    ctx.hub().publish("relay", None, &json!({"hop": 1})).await?;
    Ok(())
}

/// A node of a two-node cluster linked by an in-process bus (backend `local`).
async fn relay_node(bus: &LocalBus) -> SocketAddr {
    let app = App::new(())
        .channel(
            ChannelRoute::new("relay", "/relay")
                .auth(false)
                .route("action", "join", relay_join)
                .route("action", "send", relay_send),
        )
        .hub_driver(bus.node());
    let server = ChannelServer::new(app, ServerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    addr
}

#[tokio::test]
async fn hub_metrics_follow_publications_across_nodes_and_the_broker_link() {
    pikku_server::metrics::install_prometheus().expect("the recorder installs");
    let bus = LocalBus::new();
    let (first, second) = (relay_node(&bus).await, relay_node(&bus).await);
    let mut receiver = RawWs::connect(second, "/relay").await;
    assert_eq!(
        send(&mut receiver, json!({"action": "join"})).await,
        json!({"action": "join"})
    );
    let mut sender = RawWs::connect(first, "/relay").await;
    assert_eq!(
        send(&mut sender, json!({"action": "send"})).await,
        json!({"action": "send"})
    );
    let (_, _, event) = receiver
        .next_frame()
        .await
        .expect("the relayed publication");
    assert_eq!(
        serde_json::from_slice::<Value>(&event).unwrap(),
        json!({"hop": 1})
    );

    let local = [("backend", "local")];
    let samples = scrape(first).await;
    assert_eq!(get(&samples, "pikku_hub_publishes_total", &local), 1.0);
    assert_eq!(get(&samples, "pikku_hub_remote_events_total", &local), 1.0);
    // The relayed publication's lag was measured once, on the node that received it, and within the test's run.
    let lag_count = get(&samples, "pikku_hub_remote_lag_seconds_count", &local);
    assert_eq!(lag_count, 1.0);
    let lag = get(&samples, "pikku_hub_remote_lag_seconds_sum", &local);
    assert!((0.0..5.0).contains(&lag), "lag {lag} s");
    let source = |s: &'static str| [("backend", "local"), ("source", s)];
    assert_eq!(
        get(&samples, "pikku_hub_deliveries_total", &source("local")),
        0.0
    );
    assert_eq!(
        get(&samples, "pikku_hub_deliveries_total", &source("remote")),
        1.0
    );
    assert_eq!(get(&samples, "pikku_hub_broker_connected", &local), 1.0);
    assert_eq!(get(&samples, "pikku_hub_publish_errors_total", &local), 0.0);

    // The broker goes away: the gauge drops and the publication the broker cannot take is counted.
    bus.set_available(false);
    let samples = scrape(first).await;
    assert_eq!(get(&samples, "pikku_hub_broker_connected", &local), 0.0);
    let failed = send(&mut sender, json!({"action": "send"})).await;
    assert_eq!(failed["errorName"], "InternalServerError");
    // Back: both nodes report the recovery.
    bus.set_available(true);
    let samples = scrape(first).await;
    assert_eq!(get(&samples, "pikku_hub_broker_connected", &local), 1.0);
    assert_eq!(
        get(&samples, "pikku_hub_broker_reconnects_total", &local),
        2.0
    );
    assert_eq!(get(&samples, "pikku_hub_publish_errors_total", &local), 1.0);
    assert_eq!(get(&samples, "pikku_hub_publishes_total", &local), 2.0);
}
