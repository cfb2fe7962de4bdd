//! The link survives what real servers do: a restart on the same port, being down when the hub starts, and
//! refusing credentials. Every server here is a private `nats-server` on free ports.

mod support;

use std::time::{Duration, Instant};

use pikku_core::hub::LinkState;
use pikku_core::{App, EventHub, HubError, OutFrame};
use pikku_hub_conformance::{close, drain, node, open, read_until, text};
use pikku_nats::NatsHub;
use support::{eventually, Nats, NatsServer};

/// How soon after the server is back a publication must cross again.
const RECOVERY: Duration = Duration::from_secs(5);

fn is_connected(hub: &EventHub) -> bool {
    matches!(hub.status().unwrap().link, LinkState::Connected { .. })
}

fn is_reconnecting(hub: &EventHub) -> bool {
    matches!(hub.status().unwrap().link, LinkState::Reconnecting { .. })
}

fn assert_nats_backend_error(result: Result<usize, HubError>) {
    match result {
        Err(HubError::Backend(err)) => assert_eq!(err.backend(), "nats", "{err}"),
        other => panic!("expected a NATS backend error, got {other:?}"),
    }
}

/// Publishes numbered events from `from` until `to` receives one; returns what it received and how long it
/// took. Publications refused while `from` is still reconnecting are expected.
async fn publish_until_delivered(
    from: &EventHub,
    to: &pikku_core::Connection,
    since: Instant,
) -> (Vec<OutFrame>, Duration) {
    for i in 0.. {
        let _ = from.publish("news", None, &format!("after {i}")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got = drain(to);
        if !got.is_empty() {
            return (got, since.elapsed());
        }
        assert!(
            since.elapsed() < RECOVERY,
            "nothing crossed within {RECOVERY:?} of the server coming back"
        );
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_on_the_same_port_is_recovered_without_a_process_restart() {
    let mut server = NatsServer::start(&[]).await;
    let nats = Nats::private(&server);
    let subject = nats.subject("news");
    let (a, b) = (node(&nats).await, node(&nats).await);
    drop(nats);
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    a.publish("news", None, "before").await.unwrap();
    assert_eq!(
        read_until(&b1, &text("before"), "before the restart").await,
        [text("before")]
    );

    server.stop();
    eventually(Duration::from_secs(5), "both links seen down", || {
        is_reconnecting(&a) && is_reconnecting(&b)
    })
    .await;
    assert_nats_backend_error(a.publish("news", None, "during").await);
    assert!(a.status().unwrap().last_error.is_some());
    // Local subscribers are still served while the server is away, and a topic that appears meanwhile is
    // subscribed once the link is back.
    let a1 = open(&a, "a1");
    a.subscribe("news", "a1").await.unwrap();
    assert_nats_backend_error(a.publish("news", None, "local only").await);
    assert_eq!(drain(&a1), [text("local only")]);
    assert!(drain(&b1).is_empty());

    server.run().await;
    let back = Instant::now();
    let (first, took) = publish_until_delivered(&a, &b1, back).await;
    eprintln!("first delivery {took:?} after the server came back");
    let _ = drain(&a1);
    // Exactly one subscription per node survives: a second one would deliver every event twice.
    a.publish("news", None, "final").await.unwrap();
    let mut got = first;
    got.extend(read_until(&b1, &text("final"), "after the restart").await);
    for (i, frame) in got.iter().enumerate() {
        assert!(
            !got[..i].contains(frame),
            "{frame:?} arrived twice: {got:?}"
        );
    }
    assert_eq!(got.last(), Some(&text("final")));
    assert_eq!(drain(&a1), [text("final")]);
    // The topic that appeared during the outage reaches the server once A's hub has caught up.
    let caught_up = Instant::now();
    eventually(
        RECOVERY,
        "A subscribes the topic it gained during the outage",
        || {
            let status = a.status().unwrap();
            status.broker_topics == 1 && status.pending_topics == 0
        },
    )
    .await;
    eprintln!(
        "A's new topic subscribed {:?} after \"final\"",
        caught_up.elapsed()
    );
    b.publish("news", None, "from b").await.unwrap();
    read_until(
        &a1,
        &text("from b"),
        "the topic subscribed during the outage",
    )
    .await;
    let counts = server
        .subscription_counts(std::slice::from_ref(&subject))
        .await;
    assert_eq!(
        counts[&subject], 2,
        "one subscription per node on the server"
    );
    assert!(is_connected(&a) && is_connected(&b));
    close(&a, &a1);
    close(&b, &b1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_is_not_an_error_and_the_link_comes_up_with_it() {
    let mut server = NatsServer::reserve(&[]);
    let nats = Nats::private(&server);
    let started = Instant::now();
    let (a, b) = (node(&nats).await, node(&nats).await);
    let start_took = started.elapsed();
    eprintln!("two starts against a server that is down took {start_took:?}");
    assert!(start_took < Duration::from_secs(5), "{start_took:?}");
    for hub in [&a, &b] {
        let status = hub.status().unwrap();
        assert!(
            matches!(status.link, LinkState::Reconnecting { .. }),
            "{status:?}"
        );
        let (_, err) = status.last_error.expect("the failed attempt is reported");
        assert!(err.to_string().contains(&server.url()), "{err}");
    }
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    assert_nats_backend_error(a.publish("news", None, "too early").await);

    server.run().await;
    let up = Instant::now();
    eventually(RECOVERY, "both links up", || {
        is_connected(&a) && is_connected(&b)
    })
    .await;
    eprintln!("links up {:?} after the server started", up.elapsed());
    let (_, took) = publish_until_delivered(&a, &b1, up).await;
    eprintln!("first delivery {took:?} after the server started");
    a.publish("news", None, "settled").await.unwrap();
    read_until(&b1, &text("settled"), "once up").await;
    close(&b, &b1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_are_used_and_refused_ones_are_reported() {
    let server = NatsServer::start(&["--user", "hub", "--pass", "s3cr/t"]).await;
    let url = format!("nats://hub:s3cr%2Ft@127.0.0.1:{}", server.port);
    let nats = Nats::shared(&url);
    let (a, b) = (node(&nats).await, node(&nats).await);
    assert!(is_connected(&a) && is_connected(&b));
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    a.publish("news", None, "signed in").await.unwrap();
    read_until(&b1, &text("signed in"), "with credentials").await;

    let wrong = App::<()>::new(())
        .hub_driver(
            NatsHub::from_url(&format!("nats://hub:wrong@127.0.0.1:{}", server.port)).unwrap(),
        )
        .hub();
    wrong.start().await.unwrap();
    let status = wrong.status().unwrap();
    assert!(
        matches!(status.link, LinkState::Reconnecting { .. }),
        "{status:?}"
    );
    let (_, err) = status.last_error.unwrap();
    assert!(err.to_string().contains("authorization"), "{err}");
    assert!(!err.to_string().contains("wrong"), "no password in {err}");
    close(&b, &b1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_hub_closes_its_connection_and_leaves_no_subscription() {
    let server = NatsServer::start(&[]).await;
    let nats = Nats::private(&server);
    let (a, b) = (node(&nats).await, node(&nats).await);
    let b1 = open(&b, "b1");
    for topic in ["one", "two", "three"] {
        b.subscribe(topic, "b1").await.unwrap();
    }
    a.publish("one", None, "hi").await.unwrap();
    read_until(&b1, &text("hi"), "before the drop").await;
    assert_eq!(server.connections().await, 2);

    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.connections().await != 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped hub's connection is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let subjects: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|t| nats.subject(t))
        .collect();
    let counts = server.subscription_counts(&subjects).await;
    assert!(counts.values().all(|&n| n == 0), "{counts:?}");
    // The other node is unaffected.
    assert!(is_connected(&a));
    a.publish("one", None, "still fine").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_does_not_hold_up_start() {
    // Takes connections and stays silent, as a hung server or a half-open path does.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            conns.push(conn);
        }
    });
    let hub = App::<()>::new(())
        .hub_driver(NatsHub::from_url(&format!("nats://127.0.0.1:{port}")).unwrap())
        .hub();
    let started = Instant::now();
    hub.start().await.unwrap();
    let took = started.elapsed();
    eprintln!("start against a silent server took {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let status = hub.status().unwrap();
    assert!(
        matches!(status.link, LinkState::Reconnecting { .. }),
        "{status:?}"
    );
    assert!(status.last_error.is_some());
    assert_nats_backend_error(hub.publish("news", None, "nobody hears").await);
    held.abort();
}
