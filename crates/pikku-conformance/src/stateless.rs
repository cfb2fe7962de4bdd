//! The fixture served statelessly: a real Pushpin in front of pikku-pushpin workers that share one store.
//!
//! Every worker is a separate [`PushpinWorker`] with its own app, hub and registry, so the only thing two
//! workers share is the store, as two processes would. They listen on one port (`SO_REUSEPORT`), so the kernel
//! spreads Pushpin's connections to the workers between them, and when one stops the other takes every new
//! connection: any event of a WebSocket may be served by either worker. (Pushpin itself keeps each WebSocket
//! on the target it opened with, so several targets in its route would pin connections to workers.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pikku::postgres::store::PostgresStores;
use pikku::pushpin::launch::{PushpinConfig, PushpinProcess};
use pikku::pushpin::{shared_listener, GripVerifier, PushpinWorker, WorkerConfig};
use pikku::redis::store::RedisStores;
use pikku::server::SubprotocolPolicy;
use pikku::stateless::StatelessStores;
use tokio::sync::Notify;

use crate::{fixture_app, FixtureSettings, Recorder};

/// How long after accepting a connection Pushpin may still drop publications to it: its handler applies the
/// connection's subscription to its own channel (`conn:<id>`, sent in the answer to `OPEN`) about 100 ms later.
/// Clients of the stateless fixture wait this long after connecting before the scenario goes on, as a client
/// that needs every publication from its first moment must.
pub const SUBSCRIPTION_SETTLE: Duration = Duration::from_millis(250);

/// Where the stateless fixture keeps its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The Redis server at this URL.
    Redis(String),
    /// The PostgreSQL server at this URL.
    Postgres(String),
}

impl StoreKind {
    /// Redis on 127.0.0.1:6379.
    #[must_use]
    pub fn local_redis() -> Self {
        Self::Redis("redis://127.0.0.1:6379".into())
    }

    /// PostgreSQL on 127.0.0.1:5432 as user `postgres`.
    #[must_use]
    pub fn local_postgres() -> Self {
        Self::Postgres("postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// The stores for a URL given on a command line: `redis://…` or `postgres://…`.
    ///
    /// # Errors
    /// Any other scheme.
    pub fn from_url(url: &str) -> Result<Self, String> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("redis" | "rediss") => Ok(Self::Redis(url.to_owned())),
            Some("postgres" | "postgresql") => Ok(Self::Postgres(url.to_owned())),
            _ => Err(format!(
                "unsupported store URL '{url}' (expected redis:// or postgres://)"
            )),
        }
    }

    /// The stores under `prefix` (Redis keys, PostgreSQL tables), created if missing.
    ///
    /// # Errors
    /// The URL or prefix is refused, or PostgreSQL's tables cannot be created.
    pub async fn open(&self, prefix: &str) -> Result<StatelessStores, String> {
        match self {
            Self::Redis(url) => {
                let stores = RedisStores::from_url(url).map_err(|e| e.to_string())?;
                Ok(stores.key_prefix(prefix).stateless_stores())
            }
            Self::Postgres(url) => {
                let stores = PostgresStores::from_url(url)
                    .and_then(|s| s.table_prefix(&prefix.replace(':', "_")))
                    .map_err(|e| e.to_string())?;
                stores.migrate().await.map_err(|e| e.to_string())?;
                Ok(stores.stateless_stores())
            }
        }
    }
}

/// A worker serving the fixture for Pushpin.
#[derive(Debug)]
struct Worker {
    addr: SocketAddr,
    stop: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The fixture behind a real Pushpin, with workers on shared stores.
#[derive(Debug)]
pub struct StatelessFixture {
    pushpin: Option<PushpinProcess>,
    workers: Vec<Worker>,
    settings: FixtureSettings,
    recorder: Recorder,
    stores: StatelessStores,
    sig_key: String,
    configure: fn(WorkerConfig) -> WorkerConfig,
}

/// The subprotocol policy of the fixture, as the embedded conformance server's.
fn subprotocols() -> SubprotocolPolicy {
    SubprotocolPolicy::list(["pikku.v1"])
}

impl StatelessFixture {
    /// Starts `workers` workers sharing one port on 127.0.0.1 and a Pushpin in front of them, with stores of `store` under a
    /// fresh prefix, so fixtures running at once do not see each other's connections.
    ///
    /// # Panics
    /// When the stores cannot be opened or Pushpin does not start.
    pub async fn start(settings: FixtureSettings, store: &StoreKind, workers: usize) -> Self {
        Self::start_with(settings, store, workers, |config| config).await
    }

    /// [`start`](Self::start), with each worker's configuration passed through `configure` (a short TTL and
    /// sweep interval, say).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub async fn start_with(
        settings: FixtureSettings,
        store: &StoreKind,
        workers: usize,
        configure: fn(WorkerConfig) -> WorkerConfig,
    ) -> Self {
        // The workers' warnings go with the output of the test that failed (`RUST_LOG` for more).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let prefix = format!(
            "golden_{}_",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let stores = store.open(&prefix).await.expect("stateless stores");
        let recorder = Recorder::default();
        let first = shared_listener(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind a worker");
        let addr = first.local_addr().expect("worker address");
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(shared_listener(addr).expect("bind a worker"));
        }
        let mut config = PushpinConfig::new().target(addr);
        if let Some(level) = std::env::var("PIKKU_PUSHPIN_LOG_LEVEL")
            .ok()
            .and_then(|l| l.parse().ok())
        {
            config = config.log_level(level);
        }
        let pushpin = tokio::task::spawn_blocking(move || PushpinProcess::start(config))
            .await
            .expect("pushpin start task")
            .expect("pushpin starts");
        let sig_key = pushpin.sig_key().to_owned();
        let mut fixture = Self {
            pushpin: Some(pushpin),
            workers: Vec::new(),
            settings,
            recorder,
            stores,
            sig_key,
            configure,
        };
        for listener in listeners {
            let worker = fixture.serve_worker(listener);
            fixture.workers.push(worker);
        }
        let pushpin = fixture.pushpin.take().expect("pushpin runs");
        let pushpin = tokio::task::spawn_blocking(move || {
            pushpin
                .wait_until_proxying(Duration::from_secs(10))
                .map(|()| pushpin)
        })
        .await
        .expect("pushpin probe task")
        .expect("pushpin proxies to the workers");
        fixture.pushpin = Some(pushpin);
        fixture
    }

    fn serve_worker(&self, listener: tokio::net::TcpListener) -> Worker {
        let addr = listener.local_addr().expect("worker address");
        let publish_url = self.pushpin.as_ref().expect("pushpin runs").publish_url();
        let config = (self.configure)(
            WorkerConfig::new(publish_url)
                .grip_verifier(GripVerifier::hs256(self.sig_key.clone()))
                .subprotocols(subprotocols()),
        );
        let worker = PushpinWorker::new(
            fixture_app(&self.settings, self.recorder.clone()),
            self.stores.clone(),
            config,
        )
        .expect("the fixture runs statelessly");
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let _ = worker
                .serve(listener, async move { stopped.notified().await })
                .await;
        });
        Worker {
            addr,
            stop,
            task: Some(task),
        }
    }

    /// Pushpin's client address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((
            [127, 0, 0, 1],
            self.pushpin.as_ref().expect("pushpin runs").http_port(),
        ))
    }

    /// What the workers' handlers recorded.
    #[must_use]
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The stores the workers share.
    #[must_use]
    pub fn stores(&self) -> &StatelessStores {
        &self.stores
    }

    /// The key Pushpin signs its requests with, for tests that call a worker directly.
    #[must_use]
    pub fn sig_key(&self) -> &str {
        &self.sig_key
    }

    /// The address the workers share (every worker has the same).
    #[must_use]
    pub fn workers_addr(&self) -> SocketAddr {
        self.workers[0].addr
    }

    /// Stops worker `index` at once (its requests in flight are cut off), as a killed process would be.
    pub async fn kill_worker(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        worker.stop.notify_one();
        if let Some(task) = worker.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Starts worker `index` again on the workers' address, after [`kill_worker`](Self::kill_worker).
    ///
    /// # Panics
    /// When the address cannot be bound again within a few seconds.
    pub async fn restart_worker(&mut self, index: usize) {
        let addr = self.workers[index].addr;
        let mut tries = 0;
        let listener = loop {
            match shared_listener(addr) {
                Ok(listener) => break listener,
                Err(err) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(%err, "worker address still taken");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("rebind worker {index} at {addr}: {err}"),
            }
        };
        self.workers[index] = self.serve_worker(listener);
    }
}

impl Drop for StatelessFixture {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.stop.notify_one();
            if let Some(task) = worker.task.take() {
                task.abort();
            }
        }
        if let Some(pushpin) = self.pushpin.take() {
            if std::thread::panicking() {
                eprintln!("pushpin's log:\n{}", pushpin.log_tail());
                if let Ok(keep) = std::env::var("PIKKU_PUSHPIN_KEEP_LOGS") {
                    let to = std::path::Path::new(&keep)
                        .join(pushpin.dir().file_name().unwrap_or_default());
                    let _ = std::process::Command::new("cp")
                        .arg("-r")
                        .arg(pushpin.dir().join("log"))
                        .arg(&to)
                        .status();
                    eprintln!("pushpin's logs kept in {}", to.display());
                }
            }
            pushpin.stop();
        }
    }
}
