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
