//! Nodes survive their server going away: publishing fails meanwhile, local subscribers are still served, and
//! once the server is back on the same port the cluster delivers again, without restarting anything.
//!
//! Each test runs a private server on a free port, never the shared one.

mod common;

use std::time::{Duration, Instant};

use common::private_server::PrivateServer;
use common::{wait_for_link, Pg};
use pikku_core::hub::LinkState;
use pikku_core::{EventHub, HubError, OutFrame};
use pikku_hub_conformance::{close, drain, node, open, read_until, text};

/// How soon after the server accepts connections again publications must cross again.
const RECOVERY: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_every_node_delivers_again_without_a_restart() {
    let server = PrivateServer::start_new();
    let backend = Pg::new(&server.url());
    let (a, b) = (node(&backend).await, node(&backend).await);
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    a.publish("news", None, "before").await.unwrap();
    read_until(&b1, &text("before"), "before the outage").await;

    for (round, mode) in ["fast", "immediate"].into_iter().enumerate() {
        // Everything published so far has arrived once this fence has: one publisher's events keep their order.
        let fence = text(&format!("fence {round}"));
        a.publish("news", None, &fence_text(&fence)).await.unwrap();
        read_until(&b1, &fence, "fence").await;

        tokio::task::block_in_place(|| server.stop(mode));

        let err = a.publish("news", None, "during").await.unwrap_err();
        assert!(
            matches!(err, HubError::Backend(ref e) if e.backend() == "postgres"),
            "{err}"
        );
        for hub in [&a, &b] {
            wait_for_link(
                hub,
                Duration::from_secs(5),
                "the outage is reported",
                |link| matches!(link, LinkState::Reconnecting { .. }),
            )
            .await;
            assert!(hub.status().unwrap().last_error.is_some());
        }
        // Local subscribers are still served while the server is away.
        let a1 = open(&a, &format!("a1-{round}"));
        a.subscribe("news", a1.id()).await.unwrap();
        assert!(a.publish("news", None, "local only").await.is_err());
        assert_eq!(drain(&a1), [text("local only")]);
        assert!(drain(&b1).is_empty(), "nothing crossed during the outage");

        tokio::task::block_in_place(|| server.start());
        let back = Instant::now();
        let crossed = publish_until_received(&a, &b1, &format!("after {mode}")).await;
        println!(
            "pg_ctl -m {mode}: A to B delivers again {} ms after the server accepts connections",
            crossed.as_millis()
        );
        assert!(
            back.elapsed() < RECOVERY + Duration::from_secs(1),
            "recovered in time"
        );
        for hub in [&a, &b] {
            assert!(matches!(
                hub.status().unwrap().link,
                LinkState::Connected { .. }
            ));
        }
        // The other direction too: A subscribed its topic again on its new session. (`a1` has A's own
        // publications, delivered locally.)
        let _ = drain(&a1);
        let waited = publish_until_received(&b, &a1, &format!("to a1 after {mode}")).await;
        println!(
            "pg_ctl -m {mode}: B to A delivers again {} ms after A to B did",
            waited.as_millis()
        );
        close(&a, &a1);
    }
    close(&b, &b1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_before_its_server_connects_once_the_server_is_up() {
    let server = PrivateServer::init();
    let backend = Pg::new(&server.url());
    // Nothing listens on the port yet: starting is not an error, the link is simply down.
    let (a, b) = (node(&backend).await, node(&backend).await);
    for hub in [&a, &b] {
        let status = hub.status().unwrap();
        assert!(
            matches!(status.link, LinkState::Reconnecting { .. }),
            "{status:?}"
        );
        assert!(status.last_error.is_some());
    }
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    assert!(a.publish("news", None, "too early").await.is_err());

    tokio::task::block_in_place(|| server.start());
    let crossed = publish_until_received(&a, &b1, "first").await;
    println!(
        "first delivery {} ms after the server accepts connections",
        crossed.as_millis()
    );
    close(&b, &b1);
}

fn fence_text(frame: &OutFrame) -> String {
    match frame {
        OutFrame::Text(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// Publishes from `from` every 50 ms until `to` receives one of them (within [`RECOVERY`]); how long it took.
async fn publish_until_received(
    from: &EventHub,
    to: &pikku_core::Connection,
    what: &str,
) -> Duration {
    let start = Instant::now();
    let mut sent = 0;
    loop {
        // Errors are expected until the publisher's link is back.
        let _ = from.publish("news", None, &format!("{what} #{sent}")).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got: Vec<OutFrame> = drain(to);
        if let Some(first) = got.first() {
            let OutFrame::Text(bytes) = first else {
                panic!("{what}: unexpected {first:?}")
            };
            assert!(
                bytes.starts_with(what.as_bytes()),
                "{what}: unexpected {first:?}"
            );
            return start.elapsed();
        }
        assert!(
            start.elapsed() < RECOVERY,
            "{what}: nothing crossed within {RECOVERY:?} of the server being back"
        );
    }
}
