//! What the integration tests share: the backend the conformance check drives, a plain client for looking at
//! the server directly, and a private server that tests may stop and start.

#![allow(dead_code)] // each test binary uses its own part of this module

pub(crate) mod private_server;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pikku_core::hub::LinkState;
use pikku_core::EventHub;
use pikku_hub_conformance::Backend;
use pikku_postgres::{PostgresHub, PostgresHubProbe};

/// The shared server every developer machine and CI runs: trust authentication for `postgres`.
pub(crate) const SHARED_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Makes nodes for one server, and counts what their listening sessions listen to.
pub(crate) struct Pg {
    url: String,
    configure: Box<dyn Fn(PostgresHub) -> PostgresHub + Send + Sync>,
    probes: Mutex<Vec<PostgresHubProbe>>,
}

impl Pg {
    /// Nodes on the server at `url` with default settings.
    pub(crate) fn new(url: &str) -> Self {
        Self::with(url, |driver| driver)
    }

    /// Nodes on the server at `url`, each adjusted by `configure`.
    pub(crate) fn with(
        url: &str,
        configure: impl Fn(PostgresHub) -> PostgresHub + Send + Sync + 'static,
    ) -> Self {
        Self {
            url: url.to_owned(),
            configure: Box::new(configure),
            probes: Mutex::new(Vec::new()),
        }
    }

    /// A driver configured like every node's, for its channel names.
    pub(crate) fn template(&self) -> PostgresHub {
        (self.configure)(PostgresHub::from_url(&self.url).expect("the test URL parses"))
    }

    /// The probes of every node made so far.
    pub(crate) fn probes(&self) -> Vec<PostgresHubProbe> {
        self.probes.lock().unwrap().clone()
    }

    /// Every channel any node's listening session listens to, as PostgreSQL reports it per session.
    pub(crate) async fn listening_channels(&self) -> HashSet<String> {
        let mut channels = HashSet::new();
        for probe in self.probes() {
            channels.extend(
                probe
                    .listening_channels()
                    .await
                    .expect("pg_listening_channels() on a node's listening session"),
            );
        }
        channels
    }
}

impl Backend for Pg {
    type Driver = PostgresHub;

    fn node(&self) -> PostgresHub {
        let driver = self.template();
        self.probes.lock().unwrap().push(driver.probe());
        driver
    }

    /// `pg_listening_channels()` only reports the session that calls it, and PostgreSQL has no server-wide
    /// view of listeners, so this asks each node's own listening session and counts the topics whose channel
    /// any of them holds.
    async fn broker_subscriptions(&self, topics: &[String]) -> Option<usize> {
        let listening = self.listening_channels().await;
        let names = self.template();
        Some(
            topics
                .iter()
                .filter(|topic| listening.contains(&names.channel_name(topic)))
                .count(),
        )
    }
}

/// A plain client on `url`, for looking at tables and sending raw notifications.
pub(crate) async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} must be reachable: {e:?}"));
    tokio::spawn(connection);
    client
}

/// A table name of this test run's own.
pub(crate) fn unique_table() -> String {
    format!("pikku_test_{}", uuid::Uuid::new_v4().simple())
}

/// Rows in `table`.
pub(crate) async fn row_count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
        .await
        .expect("count rows")
        .get(0)
}

/// Waits until `check` holds for the hub's link state, or panics after `within` naming `what`.
pub(crate) async fn wait_for_link(
    hub: &EventHub,
    within: Duration,
    what: &str,
    check: impl Fn(&LinkState) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let status = hub.status().expect("a driver is installed");
        if check(&status.link) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
