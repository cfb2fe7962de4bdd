//! Pushpin in front of several worker processes that share one port: one command for a demo or a test bed.
//!
//! [`PushpinCluster::start`] starts a private Pushpin ([`launch`](crate::launch)) on the client port asked for,
//! then the worker processes, each given by a closure that builds its command from the [`WorkerSetup`] (the
//! port to listen on, Pushpin's publish URL and its signing key). The workers listen on that one port with
//! [`shared_listener`](crate::worker::shared_listener), so the kernel spreads Pushpin's requests between them
//! and any event of any connection may reach any of them; when one stops, the others take everything.
//!
//! ```no_run
//! use pikku::pushpin::cluster::PushpinCluster;
//!
//! # async fn run() -> std::io::Result<()> {
//! let exe = std::env::current_exe()?;
//! let cluster = PushpinCluster::start(4000, 2, |setup| {
//!     let mut command = tokio::process::Command::new(&exe);
//!     command.args(["--worker", "--port", &setup.port.to_string(), "--publish", &setup.publish_url]);
//!     command.args(["--grip-key", &setup.sig_key]);
//!     command
//! })
//! .await?;
//! pikku::shutdown_signal().await;
//! cluster.stop().await;
//! # Ok(())
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::launch::{PushpinConfig, PushpinProcess};

/// What a worker process needs to know: where to listen and how to reach Pushpin.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerSetup {
    /// The port every worker listens on (with [`shared_listener`](crate::worker::shared_listener)).
    pub port: u16,
    /// Pushpin's publish API, for [`WorkerConfig::new`](crate::WorkerConfig::new).
    pub publish_url: String,
    /// The key Pushpin signs its requests with, for [`GripVerifier::hs256`](crate::GripVerifier::hs256).
    pub sig_key: String,
}

/// A running Pushpin and its worker processes; see the [module docs](self).
#[derive(Debug)]
pub struct PushpinCluster {
    pushpin: Option<PushpinProcess>,
    workers: Vec<tokio::process::Child>,
    setup: WorkerSetup,
}

impl PushpinCluster {
    /// Starts Pushpin on 127.0.0.1:`http_port` and `workers` worker processes made by `command`, and returns once
    /// Pushpin proxies WebSockets to them.
    ///
    /// # Errors
    /// Pushpin does not start, a worker cannot be spawned, or the workers do not answer within 10 s.
    pub async fn start(
        http_port: u16,
        workers: usize,
        command: impl Fn(&WorkerSetup) -> tokio::process::Command,
    ) -> std::io::Result<Self> {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let config = PushpinConfig::new()
            .http_port(http_port)
            .target(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        let pushpin = tokio::task::spawn_blocking(move || PushpinProcess::start(config))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        let setup = WorkerSetup {
            port,
            publish_url: pushpin.publish_url(),
            sig_key: pushpin.sig_key().to_owned(),
        };
        let mut cluster = Self {
            pushpin: Some(pushpin),
            workers: Vec::new(),
            setup,
        };
        for _ in 0..workers {
            let child = command(&cluster.setup).kill_on_drop(true).spawn()?;
            cluster.workers.push(child);
        }
        let pushpin = cluster.pushpin.take().expect("pushpin runs");
        let pushpin = tokio::task::spawn_blocking(move || {
            pushpin
                .wait_until_proxying(Duration::from_secs(10))
                .map(|()| pushpin)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
        cluster.pushpin = Some(pushpin);
        Ok(cluster)
    }

    /// What the workers were given.
    #[must_use]
    pub fn setup(&self) -> &WorkerSetup {
        &self.setup
    }

    /// Stops the workers, then Pushpin.
    pub async fn stop(mut self) {
        for worker in &mut self.workers {
            let _ = worker.start_kill();
            let _ = worker.wait().await;
        }
        if let Some(pushpin) = self.pushpin.take() {
            let _ = tokio::task::spawn_blocking(move || pushpin.stop()).await;
        }
    }
}
