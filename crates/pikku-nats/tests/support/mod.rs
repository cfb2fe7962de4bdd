//! Private `nats-server` processes for the tests: free ports on 127.0.0.1, a monitoring port to read the
//! server's own subscription list from, and a kill on drop.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pikku_hub_conformance::Backend;
use pikku_nats::NatsHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a started server may take to accept connections.
const READY_WAIT: Duration = Duration::from_secs(10);

/// A `nats-server` of this test alone. Not running until [`start`](Self::start) or [`run`](Self::run).
pub struct NatsServer {
    pub port: u16,
    pub monitor_port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Two free ports, no process yet.
    pub fn reserve(extra_args: &[&str]) -> Self {
        let (port, monitor_port) = (free_port(), free_port());
        assert_ne!(port, monitor_port);
        Self {
            port,
            monitor_port,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        }
    }

    /// A running server on free ports.
    pub async fn start(extra_args: &[&str]) -> Self {
        let mut server = Self::reserve(extra_args);
        server.run().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process on this server's ports (again, after [`stop`](Self::stop)) and waits until it
    /// accepts connections.
    pub async fn run(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if self.connz().await.is_some()
                && TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server on port {} exited at start: {status}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} did not come up",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (as a crash would) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many subscriptions the server holds for each of `subjects`, over all its connections, from its
    /// monitoring endpoint.
    pub async fn subscription_counts(&self, subjects: &[String]) -> HashMap<String, usize> {
        let connz = self.connz().await.expect("the monitoring endpoint answers");
        let mut counts: HashMap<String, usize> = subjects.iter().map(|s| (s.clone(), 0)).collect();
        for conn in connz["connections"].as_array().into_iter().flatten() {
            for sub in conn["subscriptions_list"].as_array().into_iter().flatten() {
                if let Some(count) = sub.as_str().and_then(|s| counts.get_mut(s)) {
                    *count += 1;
                }
            }
        }
        counts
    }

    /// How many client connections the server has.
    pub async fn connections(&self) -> usize {
        let connz = self.connz().await.expect("the monitoring endpoint answers");
        connz["num_connections"]
            .as_u64()
            .expect("a connection count") as usize
    }

    /// Every subject the server holds a subscription for.
    pub async fn all_subjects(&self) -> Vec<String> {
        let connz = self.connz().await.expect("the monitoring endpoint answers");
        let mut all = Vec::new();
        for conn in connz["connections"].as_array().into_iter().flatten() {
            for sub in conn["subscriptions_list"].as_array().into_iter().flatten() {
                all.extend(sub.as_str().map(str::to_owned));
            }
        }
        all
    }

    /// `/connz?subs=1` as JSON; `None` while nothing answers on the monitoring port.
    async fn connz(&self) -> Option<serde_json::Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.monitor_port))
            .await
            .ok()?;
        let request = "GET /connz?subs=1&limit=100000 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
            return None;
        }
        serde_json::from_str(body).ok()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// The conformance check's view of a NATS deployment: drivers for `url`, and the server's own subscription
/// count when a private server with monitoring is behind it.
pub struct Nats<'a> {
    pub url: String,
    pub server: Option<&'a NatsServer>,
    /// Maps topics to subjects exactly as the nodes do.
    subjects: NatsHub,
}

impl<'a> Nats<'a> {
    pub fn private(server: &'a NatsServer) -> Self {
        Self::new(server.url(), Some(server))
    }

    pub fn shared(url: &str) -> Self {
        Self::new(url.to_owned(), None)
    }

    fn new(url: String, server: Option<&'a NatsServer>) -> Self {
        let subjects = NatsHub::from_url(&url).expect("a valid URL");
        Self {
            url,
            server,
            subjects,
        }
    }

    pub fn subject(&self, topic: &str) -> String {
        self.subjects.subject_for(topic)
    }
}

impl Backend for Nats<'_> {
    type Driver = NatsHub;

    fn node(&self) -> NatsHub {
        NatsHub::from_url(&self.url).expect("a valid URL")
    }

    async fn broker_subscriptions(&self, topics: &[String]) -> Option<usize> {
        let server = self.server?;
        let subjects: Vec<String> = topics.iter().map(|t| self.subject(t)).collect();
        let counts = server.subscription_counts(&subjects).await;
        Some(counts.values().filter(|&&n| n > 0).count())
    }
}

/// Polls `check` every 10 ms until it holds, or panics naming `what` after `within`.
pub async fn eventually<F: FnMut() -> bool>(within: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
