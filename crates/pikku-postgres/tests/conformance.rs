//! The PostgreSQL driver keeps every hub rule against the shared server, and refuses settings that can never
//! work.

mod common;

use std::time::{Duration, Instant};

use common::{Pg, SHARED_URL};
use pikku_core::hub::LinkState;
use pikku_core::{App, HubError};
use pikku_postgres::{PostgresError, PostgresHub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_hub_rule() {
    let backend = Pg::new(SHARED_URL);
    pikku_hub_conformance::run(&backend).await;
    // Rule 11 counted its 1,000 released topics; no topic of the whole check stays behind either.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = backend.listening_channels().await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "channels left listening: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_can_never_work_fail_the_start() {
    let driver = PostgresHub::from_url(SHARED_URL)
        .unwrap()
        .channel_prefix("not-allowed");
    let hub = App::<()>::new(()).hub_driver(driver).hub();
    let err = hub.start().await.unwrap_err();
    let HubError::Backend(backend) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(backend.backend(), "postgres");
    assert!(matches!(
        backend.downcast_ref::<PostgresError>(),
        Some(PostgresError::InvalidSetting {
            setting: "channel_prefix",
            ..
        })
    ));
    assert_eq!(hub.status().unwrap().link, LinkState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_two_sessions_and_closes_them_when_its_hub_is_gone() {
    let name = format!("pikku-test-{}", uuid::Uuid::new_v4().simple());
    let url = format!("{SHARED_URL}?application_name={name}");
    let db = common::raw_client(SHARED_URL).await;
    let sessions = || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .expect("count sessions");
        row.get::<_, i64>(0)
    };
    let hub = pikku_hub_conformance::node(&Pg::new(&url)).await;
    let conn = pikku_hub_conformance::open(&hub, "c1");
    hub.subscribe("news", "c1").await.unwrap();
    assert_eq!(sessions().await, 2, "one listening, one publishing");

    pikku_hub_conformance::close(&hub, &conn);
    drop(conn);
    drop(hub);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sessions().await > 0 {
        assert!(
            Instant::now() < deadline,
            "sessions outlived their hub by 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
