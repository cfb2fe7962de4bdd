//! The PostgreSQL stores keep every store rule on the shared server, each test under a table prefix of its own.

mod common;

use common::SHARED_URL;
use pikku_core::store::{ChannelRecord, ChannelStore, EventHubStore, StoreError};
use pikku_postgres::store::{PostgresStoreError, PostgresStores};
use serde_json::json;

/// A table prefix of this test's own; [`Prefix::drop_tables`] removes its tables.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Self(format!("pt_{}", uuid::Uuid::new_v4().simple()))
    }

    fn stores(&self) -> PostgresStores {
        PostgresStores::from_url(SHARED_URL)
            .expect("the shared URL parses")
            .table_prefix(&self.0)
            .expect("a valid prefix")
    }

    async fn drop_tables(self) {
        let client = common::raw_client(SHARED_URL).await;
        let p = &self.0;
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {p}_channels, {p}_subscriptions, {p}_sessions"
            ))
            .await
            .expect("drop the test's tables");
    }
}

#[tokio::test]
async fn postgres_channel_store_keeps_every_rule() {
    let prefix = Prefix::new();
    pikku_store_conformance::channel_store_suite(&prefix.stores().channel_store()).await;
    prefix.drop_tables().await;
}

#[tokio::test]
async fn postgres_event_hub_store_keeps_every_rule() {
    let prefix = Prefix::new();
    pikku_store_conformance::event_hub_store_suite(&prefix.stores().event_hub_store()).await;
    prefix.drop_tables().await;
}

#[tokio::test]
async fn postgres_session_store_keeps_every_rule() {
    let prefix = Prefix::new();
    pikku_store_conformance::session_store_suite(&prefix.stores().session_store()).await;
    prefix.drop_tables().await;
}

#[tokio::test]
async fn publish_and_sweep_over_postgres_stores() {
    let prefix = Prefix::new();
    let stores = prefix.stores();
    pikku_store_conformance::stateless_suite(&stores.channel_store(), &stores.event_hub_store())
        .await;
    prefix.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_through_two_connections_have_one_winner() {
    let prefix = Prefix::new();
    let (a, b) = (prefix.stores(), prefix.stores());
    // Both connections exist (and the tables) before the race, so the adds really meet on the server.
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
    pikku_store_conformance::concurrent_add_suite(&a.channel_store(), &b.channel_store()).await;
    prefix.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_is_idempotent_even_when_processes_race_and_has_no_foreign_key() {
    let prefix = Prefix::new();
    let (a, b, c) = (prefix.stores(), prefix.stores(), prefix.stores());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    c.migrate().await.unwrap();

    let client = common::raw_client(SHARED_URL).await;
    let p = &prefix.0;
    let foreign_keys: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.table_constraints
             WHERE constraint_type = 'FOREIGN KEY' AND table_name LIKE $1",
            &[&format!("{p}_%")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(foreign_keys, 0);
    let mut columns: Vec<(String, String, String)> = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_name LIKE $1 AND data_type IN ('jsonb', 'timestamp with time zone')",
            &[&format!("{p}_%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    columns.sort();
    let col = |t: &str, c: &str, d: &str| (format!("{p}_{t}"), c.to_owned(), d.to_owned());
    assert_eq!(
        columns,
        [
            col("channels", "created_at", "timestamp with time zone"),
            col("channels", "last_seen", "timestamp with time zone"),
            col("channels", "opening_data", "jsonb"),
            col("channels", "state", "jsonb"),
            col("sessions", "session", "jsonb"),
            col("sessions", "updated_at", "timestamp with time zone"),
        ]
    );

    // Subscriptions of ids without a record, written before any record exists, are kept.
    let hub = c.event_hub_store();
    hub.subscribe("t", "no-record").await.unwrap();
    assert_eq!(hub.channel_ids("t").await.unwrap(), ["no-record"]);
    prefix.drop_tables().await;
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_a_backend_error() {
    let stores = PostgresStores::from_url("postgres://postgres@127.0.0.1:1/postgres").unwrap();
    let err = stores
        .channel_store()
        .add_channel(ChannelRecord::new("c1", "chat", json!({})))
        .await
        .unwrap_err();
    let StoreError::Backend(backend) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(backend.backend(), "postgres");
    assert!(matches!(
        backend.downcast_ref::<PostgresStoreError>(),
        Some(PostgresStoreError::Connect(_))
    ));
    assert!(
        err.to_string()
            .starts_with("store backend 'postgres' failed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_replaced_on_next_use() {
    let prefix = Prefix::new();
    let name = format!("pikku-store-{}", uuid::Uuid::new_v4().simple());
    let stores = PostgresStores::from_url(&format!("{SHARED_URL}?application_name={name}"))
        .unwrap()
        .table_prefix(&prefix.0)
        .unwrap();
    let channels = stores.channel_store();
    channels
        .add_channel(ChannelRecord::new("c1", "chat", json!({})))
        .await
        .unwrap();
    let admin = common::raw_client(SHARED_URL).await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    // The first use may still find the dead connection; within a few the store is back.
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = channels.get_channel("c1").await.map(|r| r.channel_name);
        let done = answer.is_ok();
        answers.push(answer);
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        answers.last().cloned(),
        Some(Ok("chat".to_owned())),
        "{answers:?}"
    );
    prefix.drop_tables().await;
}
