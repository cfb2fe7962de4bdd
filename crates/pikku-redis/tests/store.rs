//! The Redis stores keep every store rule on the shared server, each test under a key prefix of its own.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pikku_core::store::{ChannelRecord, ChannelStore, EventHubStore, SessionStore, StoreError};
use pikku_redis::store::{RedisStoreError, RedisStores};
use serde_json::json;

/// A prefix no other test (or earlier run) uses; its keys are deleted when dropped.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(format!(
            "pikku-test:{}:{nanos}:{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn stores(&self) -> RedisStores {
        RedisStores::from_url(support::SHARED)
            .expect("the shared URL parses")
            .key_prefix(&self.0)
    }

    /// Every key under the prefix, sorted.
    async fn keys(&self) -> Vec<String> {
        let mut conn = raw().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(support::SHARED) {
            if let Ok(mut conn) = client.get_connection() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.0))
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        }
    }
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(support::SHARED)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379 must be reachable")
}

#[tokio::test]
async fn redis_channel_store_keeps_every_rule() {
    let prefix = Prefix::new();
    pikku_store_conformance::channel_store_suite(&prefix.stores().channel_store()).await;
}

#[tokio::test]
async fn redis_event_hub_store_keeps_every_rule_and_leaves_no_empty_sets() {
    let prefix = Prefix::new();
    let hub = prefix.stores().event_hub_store();
    pikku_store_conformance::event_hub_store_suite(&hub).await;
    // Take every remaining subscriber off: nothing may stay behind.
    for id in ["b", "c", "y", "no-record-anywhere"] {
        hub.remove_channel(id).await.unwrap();
    }
    for i in 0..12 {
        hub.remove_channel(&format!("lit-{i}")).await.unwrap();
    }
    assert_eq!(prefix.keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn redis_session_store_keeps_every_rule() {
    let prefix = Prefix::new();
    pikku_store_conformance::session_store_suite(&prefix.stores().session_store()).await;
}

#[tokio::test]
async fn publish_and_sweep_over_redis_stores() {
    let prefix = Prefix::new();
    let stores = prefix.stores();
    pikku_store_conformance::stateless_suite(&stores.channel_store(), &stores.event_hub_store())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_through_two_connections_have_one_winner() {
    let prefix = Prefix::new();
    let (a, b) = (
        prefix.stores().channel_store(),
        prefix.stores().channel_store(),
    );
    pikku_store_conformance::concurrent_add_suite(&a, &b).await;
}

#[tokio::test]
async fn the_key_layout_is_the_documented_one() {
    let prefix = Prefix::new();
    let p = &prefix.0;
    let stores = prefix.stores();
    let (channels, hub) = (stores.channel_store(), stores.event_hub_store());
    let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    channels
        .add_channel(
            ChannelRecord::new("c1", "chat", json!({"room": "a"}))
                .with_user_id("ann")
                .seen_at(at),
        )
        .await
        .unwrap();
    hub.subscribe("room:a", "c1").await.unwrap();
    stores
        .session_store()
        .set("ann", json!({"user": "ann"}))
        .await
        .unwrap();

    assert_eq!(
        prefix.keys().await,
        [
            format!("{p}channel-topics:c1"),
            format!("{p}channel:c1"),
            format!("{p}channels:last-seen"),
            format!("{p}session:ann"),
            format!("{p}topic:room:a"),
        ]
    );
    let mut conn = raw().await;
    let mut fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{p}channel:c1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    fields.sort();
    let micros = "1700000000123456".to_owned();
    assert_eq!(
        fields,
        [
            ("created".to_owned(), micros.clone()),
            ("name".to_owned(), "chat".to_owned()),
            ("opening".to_owned(), r#"{"room":"a"}"#.to_owned()),
            ("seen".to_owned(), micros.clone()),
            ("user".to_owned(), "ann".to_owned()),
        ]
    );
    let score: String = redis::cmd("ZSCORE")
        .arg(format!("{p}channels:last-seen"))
        .arg("c1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, micros);

    // Updates of a missing id write no key.
    assert!(channels.set_state("ghost", json!(1)).await.is_err());
    assert!(channels.set_user_id("ghost", Some("u")).await.is_err());
    assert!(channels.set_user_id("ghost", None).await.is_err());
    assert!(channels.touch("ghost", SystemTime::now()).await.is_err());
    assert!(!prefix.keys().await.iter().any(|key| key.contains("ghost")));

    // Removing the record and its subscriptions leaves only the session.
    hub.remove_channel("c1").await.unwrap();
    channels.remove_channels(&["c1"]).await.unwrap();
    assert_eq!(prefix.keys().await, [format!("{p}session:ann")]);
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_backend_error_and_the_store_recovers() {
    let mut server = support::Server::start();
    let stores = RedisStores::from_url(&server.url())
        .unwrap()
        .key_prefix("recover:");
    let channels = stores.channel_store();
    channels
        .add_channel(ChannelRecord::new("c1", "chat", json!({})))
        .await
        .unwrap();
    server.stop();
    let err = channels.get_channel("c1").await.unwrap_err();
    let StoreError::Backend(backend) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(backend.backend(), "redis");
    assert!(backend.downcast_ref::<RedisStoreError>().is_some());
    assert!(
        err.to_string().starts_with("store backend 'redis' failed"),
        "{err}"
    );

    server.resume();
    // The data did not survive the restart (no persistence), but the store connects again by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match channels.get_channel("c1").await {
            Err(StoreError::ChannelNotFound(_)) => break,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no recovery: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[test]
fn cluster_and_foreign_urls_are_refused() {
    for url in [
        "redis+cluster://127.0.0.1:7000",
        "http://127.0.0.1",
        "nonsense",
    ] {
        assert!(
            matches!(
                RedisStores::from_url(url),
                Err(RedisStoreError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
}
