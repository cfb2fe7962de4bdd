//! Redis going away and coming back: publications fail while it is gone, local subscribers are still served,
//! and every node delivers again within 5 s of its return, without a restart.

mod support;

use std::time::{Duration, Instant};

use pikku_core::hub::LinkState;
use pikku_core::{EventHub, HubError};
use pikku_hub_conformance::{close, drain, open, read_until, text};
use pikku_redis::RedisHub;

async fn started(url: &str) -> EventHub {
    let hub = pikku_core::App::<()>::new(())
        .hub_driver(RedisHub::from_url(url).unwrap())
        .hub();
    hub.start().await.expect("the driver starts");
    hub
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes from `a` until `b1` receives one, for at most 5 s after `since`: how long that took.
async fn delivered_again(a: &EventHub, b1: &pikku_core::Connection, since: Instant) -> Duration {
    loop {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "no delivery within 5 s of Redis coming back"
        );
        if a.publish("news", None, "after").await.is_ok() {
            let got = tokio::time::timeout(
                Duration::from_millis(200),
                read_until(b1, &text("after"), "after"),
            )
            .await;
            if got.is_ok() {
                return since.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn outage_and_recovery(url: &str, stop: impl FnOnce(), resume: impl FnOnce()) -> Duration {
    let (a, b) = (started(url).await, started(url).await);
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    a.publish("news", None, "before").await.unwrap();
    read_until(&b1, &text("before"), "before the outage").await;

    stop();
    let a1 = open(&a, "a1");
    a.subscribe("news", "a1").await.unwrap();
    // The first publish may still find the old connection and fail on it; either way it fails.
    let err = a.publish("news", None, "during").await.unwrap_err();
    assert!(
        matches!(err, HubError::Backend(ref e) if e.backend() == "redis"),
        "{err}"
    );
    assert_eq!(
        drain(&a1),
        [text("during")],
        "local subscribers are served during the outage"
    );
    wait_until(
        "the link reports the outage",
        Duration::from_secs(5),
        || matches!(a.status().unwrap().link, LinkState::Reconnecting { .. }),
    )
    .await;
    assert!(a.status().unwrap().last_error.is_some());
    assert!(a.publish("news", None, "still down").await.is_err());
    let _ = drain(&a1);

    resume();
    let back = Instant::now();
    let took = delivered_again(&a, &b1, back).await;
    wait_until("both links are up", Duration::from_secs(5), || {
        [&a, &b]
            .iter()
            .all(|h| matches!(h.status().unwrap().link, LinkState::Connected { .. }))
    })
    .await;
    close(&a, &a1);
    close(&b, &b1);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_every_node_delivers_again() {
    let server = std::cell::RefCell::new(support::Server::start());
    let url = server.borrow().url();
    let took = outage_and_recovery(
        &url,
        || server.borrow_mut().stop(),
        || server.borrow_mut().resume(),
    )
    .await;
    eprintln!("delivering again {took:?} after Redis came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_cluster_restart_every_node_delivers_again() {
    let cluster = std::cell::RefCell::new(support::Cluster::start());
    let url = cluster.borrow().url();
    let took = outage_and_recovery(
        &url,
        || {
            cluster
                .borrow_mut()
                .nodes
                .iter_mut()
                .for_each(support::Server::stop)
        },
        || {
            cluster
                .borrow_mut()
                .nodes
                .iter_mut()
                .for_each(support::Server::resume)
        },
    )
    .await;
    eprintln!("delivering again {took:?} after the cluster came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_redis_is_down_connects_when_it_comes_up() {
    let port = support::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = started(&url).await;
    assert!(
        matches!(a.status().unwrap().link, LinkState::Reconnecting { .. }),
        "{:?}",
        a.status()
    );
    assert!(a.publish("news", None, "nobody").await.is_err());
    let a1 = open(&a, "a1");
    a.subscribe("news", "a1").await.unwrap();

    let _server = support::Server::start_with(port, &[]);
    let b = started(&url).await;
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    wait_until("a's link comes up", Duration::from_secs(5), || {
        matches!(a.status().unwrap().link, LinkState::Connected { .. })
    })
    .await;
    wait_until("a's topic reaches Redis", Duration::from_secs(5), || {
        a.status().unwrap().broker_topics == 1
    })
    .await;
    b.publish("news", None, "hello").await.unwrap();
    read_until(&a1, &text("hello"), "a node that started before Redis").await;
    close(&a, &a1);
    close(&b, &b1);
}
