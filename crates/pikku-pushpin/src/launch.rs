//! A private Pushpin process, for tests, demos and the conformance runner.
//!
//! [`PushpinProcess::start`] writes a `pushpin.conf` and a `routes` file into a fresh temporary directory and
//! runs `pushpin --config` on them. Everything the instance binds is its own: the
//! client port and the publish API port are free ports the OS handed out, and every ZeroMQ socket is an
//! `ipc://` file under the instance's run directory, so several instances run side by side.
//!
//! The runner starts in a session of its own (through `setsid`). Its services each get a process group of
//! their own but stay in that session, so the session id names every process of the instance. Dropping the
//! process (or [`stop`](PushpinProcess::stop)) sends `SIGTERM` to the runner, which stops its services, and
//! `SIGKILL` to every process left in the session if some remain after the stop timeout, so no condure,
//! zurl, proxy or handler outlives it.
//!
//! `deploy/pushpin/` in the repository ships the same configuration with every setting explained, for
//! running Pushpin in front of a worker by hand.
//!
//! ```no_run
//! use pikku_pushpin::launch::{PushpinConfig, PushpinProcess};
//!
//! # fn main() -> Result<(), pikku_pushpin::launch::LaunchError> {
//! let worker: std::net::SocketAddr = "127.0.0.1:4010".parse().unwrap();
//! let pushpin = PushpinProcess::start(PushpinConfig::new().target(worker).sig_key("secret"))?;
//! println!("clients connect to ws://127.0.0.1:{}/", pushpin.http_port());
//! println!("the worker publishes to {}", pushpin.publish_url());
//! # Ok(())
//! # }
//! ```
//!
//! # Routing to several workers
//! The route lists every target, each in WebSocket-over-HTTP mode (`over_http`). Pushpin picks a target when a
//! WebSocket opens and keeps the connection on it, retrying that target while it is down: the list is not load
//! balancing. Workers that are to share connections share one target address instead; [`cluster`](crate::cluster)
//! starts them that way.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The host of the route the launcher sends its readiness probe to, which leads to Pushpin's own publish
/// API: the probe never reaches a worker, yet crosses every link a client's WebSocket does.
///
/// Pushpin's services talk over ZeroMQ, and the links that carry a request's later parts (the body after
/// the head, a client's frames after the handshake) come up some time after every process answers. A
/// message sent on such a link before then is dropped ("Host unreachable" in condure's log), and the
/// request or the frame is lost. So the probe is a `POST /publish/` whose body is written only after its
/// head: condure then sends the body on its stream link to the proxy, and the proxy on its stream link to
/// zurl. When Pushpin answers it with 200, every link is up.
const PROBE_HOST: &str = "probe.pikku-launcher.invalid";

/// How the launcher configures one Pushpin. Every setting has a default suited to tests.
///
/// ```
/// use pikku_pushpin::launch::PushpinConfig;
///
/// let config = PushpinConfig::new()
///     .target("127.0.0.1:4010".parse().unwrap())
///     .target("127.0.0.1:4011".parse().unwrap())
///     .sig_key("secret")
///     .message_rate(50_000);
/// assert_eq!(config.routes_line(), "* 127.0.0.1:4010,over_http 127.0.0.1:4011,over_http");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a configuration does nothing until passed to PushpinProcess::start"]
pub struct PushpinConfig {
    binary: PathBuf,
    http_port: Option<u16>,
    targets: Vec<SocketAddr>,
    sig_key: String,
    sig_iss: String,
    message_rate: u32,
    message_hwm: u32,
    connection_subscription_max: u32,
    log_level: u8,
    debug: bool,
    startup_timeout: Duration,
    stop_timeout: Duration,
}

impl Default for PushpinConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PushpinConfig {
    /// The defaults: `pushpin` from the `PATH`, a free client port, no targets yet, a random `sig_key`, `sig_iss` `pushpin`, a
    /// `message_rate` of 100 000 messages per second (Pushpin's own default, 2500, paces a busy test), 20
    /// subscriptions per connection (Pushpin's default), log level 2, a 10 s startup and a 5 s stop timeout.
    pub fn new() -> Self {
        Self {
            binary: PathBuf::from("pushpin"),
            http_port: None,
            targets: Vec::new(),
            sig_key: random_key(),
            sig_iss: "pushpin".to_owned(),
            message_rate: 100_000,
            message_hwm: 100_000,
            connection_subscription_max: 20,
            log_level: 2,
            debug: false,
            startup_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(5),
        }
    }

    /// The `pushpin` runner to start (default: `pushpin` on the `PATH`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = path.into();
        self
    }

    /// The client port to listen on, on 127.0.0.1 (default: a free port the OS hands out), for a demo or a
    /// runner that must be found at a known address. Start fails if the port is taken.
    ///
    /// ```
    /// use pikku_pushpin::launch::PushpinConfig;
    ///
    /// let config = PushpinConfig::new().http_port(7999);
    /// # let _ = config;
    /// ```
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = Some(port);
        self
    }

    /// Adds a worker that Pushpin forwards WebSocket-over-HTTP requests to. Pushpin picks a target when a
    /// WebSocket opens and keeps the connection on it (retrying it while it is down), so workers that must share
    /// connections share one target address instead (a load balancer, or `SO_REUSEPORT`).
    pub fn target(mut self, worker: SocketAddr) -> Self {
        self.targets.push(worker);
        self
    }

    /// The HS256 key Pushpin signs `Grip-Sig` with (its `sig_key`; default: random).
    pub fn sig_key(mut self, key: impl Into<String>) -> Self {
        self.sig_key = key.into();
        self
    }

    /// The `iss` claim of `Grip-Sig` (its `sig_iss`; default `pushpin`).
    pub fn sig_iss(mut self, iss: impl Into<String>) -> Self {
        self.sig_iss = iss.into();
        self
    }

    /// The most published messages Pushpin delivers per second (its `message_rate`); the queue behind it
    /// holds the same number (`message_hwm`).
    pub fn message_rate(mut self, per_second: u32) -> Self {
        self.message_rate = per_second;
        self.message_hwm = per_second;
        self
    }

    /// The most channels one connection may subscribe to (its `connection_subscription_max`).
    pub fn connection_subscription_max(mut self, max: u32) -> Self {
        self.connection_subscription_max = max;
        self
    }

    /// Pushpin's log level: 2 is info, 3 and more are verbose (default 2).
    pub fn log_level(mut self, level: u8) -> Self {
        self.log_level = level;
        self
    }

    /// Whether Pushpin's proxy explains its errors in its responses (its `debug`; default off).
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = on;
        self
    }

    /// How long [`PushpinProcess::start`] waits for the ports to answer.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long stopping waits after `SIGTERM` before it sends `SIGKILL`.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// The catch-all line of the routes file: every target in WebSocket-over-HTTP mode.
    #[must_use]
    pub fn routes_line(&self) -> String {
        let mut line = String::from("*");
        for target in &self.targets {
            line.push_str(&format!(" {target},over_http"));
        }
        line
    }

    /// The `pushpin.conf` text for an instance whose files live under `dir`, listening on `http_port` for
    /// clients and on `publish_port` for the publish API.
    #[must_use]
    pub fn render_conf(&self, dir: &Path, http_port: u16, publish_port: u16) -> String {
        let dir = dir.display();
        format!(
            "\
[global]
include={{libdir}}/internal.conf
rundir={dir}/run
ipc_prefix=pikku-
port_offset=0

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:{http_port}
logdir={dir}/log
log_level={log_level}

[proxy]
routesfile=routes
debug={debug}
sig_iss={sig_iss}
sig_key={sig_key}
updates_check=off
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out

[handler]
push_in_spec=ipc://{{rundir}}/{{ipc_prefix}}push-in
push_in_sub_specs=ipc://{{rundir}}/{{ipc_prefix}}push-in-sub
push_in_http_addr=127.0.0.1
push_in_http_port={publish_port}
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=ipc://{{rundir}}/{{ipc_prefix}}command
message_rate={message_rate}
message_hwm={message_hwm}
connection_subscription_max={subs}
",
            log_level = self.log_level,
            debug = self.debug,
            sig_iss = self.sig_iss,
            sig_key = self.sig_key,
            message_rate = self.message_rate,
            message_hwm = self.message_hwm,
            subs = self.connection_subscription_max,
        )
    }

    /// The routes file: the probe route the launcher waits on, then the catch-all to the workers.
    fn render_routes(&self, publish_port: u16) -> String {
        format!(
            "{PROBE_HOST} 127.0.0.1:{publish_port}\n{}\n",
            self.routes_line()
        )
    }
}

/// A running Pushpin, stopped when dropped.
///
/// ```no_run
/// use pikku_pushpin::launch::{PushpinConfig, PushpinProcess};
///
/// # fn main() -> Result<(), pikku_pushpin::launch::LaunchError> {
/// let pushpin = PushpinProcess::start(PushpinConfig::new().target("127.0.0.1:4010".parse().unwrap()))?;
/// let url = format!("ws://127.0.0.1:{}/events", pushpin.http_port());
/// # let _ = url;
/// pushpin.stop();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PushpinProcess {
    child: Child,
    dir: PathBuf,
    http_port: u16,
    publish_port: u16,
    sig_key: String,
    stop_timeout: Duration,
}

impl PushpinProcess {
    /// Writes the configuration, starts Pushpin and waits until the client port and the publish API both
    /// answer HTTP.
    ///
    /// Blocks the calling thread for up to the startup timeout; from async code, call it where blocking is
    /// fine (a multi-threaded runtime's test, or `spawn_blocking`).
    ///
    /// # Errors
    /// [`LaunchError`] when there is no target, a file cannot be written, `pushpin` cannot be started, or it
    /// exits or does not answer in time (the error carries the end of its log).
    pub fn start(config: PushpinConfig) -> Result<Self, LaunchError> {
        if config.targets.is_empty() {
            return Err(LaunchError::NoTargets);
        }
        // A port the OS called free can be taken by someone else before Pushpin binds it; then Pushpin exits
        // at once, and a new pair of ports is tried.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::start_once(&config) {
                Err(LaunchError::Exited { log, .. })
                    if attempts < 3 && log.contains("Address already in use") =>
                {
                    tracing::debug!(attempts, "a pushpin port was taken; trying others");
                }
                result => return result,
            }
        }
    }

    fn start_once(config: &PushpinConfig) -> Result<Self, LaunchError> {
        let dir = fresh_dir().map_err(|e| LaunchError::io("create the instance directory", e))?;
        let http_port = match config.http_port {
            Some(port) => port,
            None => free_port()?,
        };
        let publish_port = free_port()?;
        let write = |name: &str, text: String| {
            fs::write(dir.join(name), text)
                .map_err(|e| LaunchError::io("write the configuration", e))
        };
        write(
            "pushpin.conf",
            config.render_conf(&dir, http_port, publish_port),
        )?;
        write("routes", config.render_routes(publish_port))?;
        for sub in ["run", "log"] {
            fs::create_dir(dir.join(sub))
                .map_err(|e| LaunchError::io("create the run directories", e))?;
        }
        let output = fs::File::create(dir.join("log/runner.log"))
            .map_err(|e| LaunchError::io("create the runner log", e))?;
        let errors = output
            .try_clone()
            .map_err(|e| LaunchError::io("create the runner log", e))?;
        // `setsid` makes the runner lead a new session, in place (the spawned child is not a group leader,
        // so `setsid` needs no fork and its pid is the runner's): one id then covers every service.
        let child = Command::new("setsid")
            .arg(&config.binary)
            .arg("--config")
            .arg(dir.join("pushpin.conf"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|e| LaunchError::io("start pushpin", e))?;
        let mut process = Self {
            child,
            dir,
            http_port,
            publish_port,
            sig_key: config.sig_key.clone(),
            stop_timeout: config.stop_timeout,
        };
        process.wait_ready(config.startup_timeout)?;
        tracing::debug!(http_port, publish_port, dir = %process.dir.display(), "pushpin started");
        Ok(process)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), LaunchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LaunchError::Exited {
                    status,
                    log: self.log_tail(),
                });
            }
            let head = |host: &str| {
                format!(
                    "POST /publish/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                     Content-Length: 12\r\nConnection: close\r\n\r\n"
                )
            };
            let body = "{\"items\":[]}";
            if status(self.publish_port, &head("localhost"), body) == Some(200)
                && status(self.http_port, &head(PROBE_HOST), body) == Some(200)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::NotReady {
                    after: timeout,
                    log: self.log_tail(),
                });
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Waits until Pushpin proxies WebSockets to its targets: a WebSocket request for `/pikku-launcher-probe`
    /// through it is answered by a target (any status but 502, 503 or 504; a pikku worker answers 404). Call it
    /// once the workers serve. Right after start, Pushpin's proxy can lose its first streamed exchange with zurl,
    /// its HTTP client, and answer the first WebSocket 502 after a second; one round trip settles it.
    ///
    /// # Errors
    /// [`LaunchError::NotReady`] when no target answers through Pushpin within `timeout`.
    pub fn wait_until_proxying(&self, timeout: Duration) -> Result<(), LaunchError> {
        let deadline = Instant::now() + timeout;
        let probe =
            "GET /pikku-launcher-probe HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\n\r\n";
        loop {
            if let Some(status) = status_of(self.http_port, probe) {
                if !matches!(status, 502..=504) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::NotReady {
                    after: timeout,
                    log: self.log_tail(),
                });
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// The client port: WebSocket clients connect to `ws://127.0.0.1:<port>/…`.
    #[must_use]
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The base URL of the publish API, for [`PushpinPublisher::new`](crate::PushpinPublisher::new).
    #[must_use]
    pub fn publish_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.publish_port)
    }

    /// The HS256 key Pushpin signs `Grip-Sig` with.
    #[must_use]
    pub fn sig_key(&self) -> &str {
        &self.sig_key
    }

    /// The session id: the runner's pid, which leads the session every Pushpin service runs in
    /// (`pgrep -s <id>` lists them).
    #[must_use]
    pub fn session_id(&self) -> u32 {
        self.child.id()
    }

    /// The instance's directory: `pushpin.conf`, `routes`, `run/` and `log/`. Removed when stopped.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of the runner's and the services' logs, for a failing test's message.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in [
            "runner.log",
            "pushpin-proxy.log",
            "pushpin-handler.log",
            "condure.log",
            "zurl.log",
        ] {
            if let Ok(text) = fs::read_to_string(self.dir.join("log").join(name)) {
                let lines: Vec<&str> = text.lines().collect();
                out.push_str(&format!("--- {name}\n"));
                for line in &lines[lines.len().saturating_sub(15)..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Stops Pushpin: `SIGTERM` to the runner, which stops its services, then `SIGKILL` to whatever is
    /// left of its session after the stop timeout; then removes its directory. Dropping does the same.
    pub fn stop(self) {
        drop(self);
    }

    fn terminate(&mut self) {
        let session = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &session.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + self.stop_timeout;
        // The runner exits once its services have; reaping it here leaves no zombie of ours behind.
        while Instant::now() < deadline {
            let runner_done = matches!(self.child.try_wait(), Ok(Some(_)));
            if runner_done && !session_alive(session) {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        tracing::warn!(
            session,
            "pushpin did not stop on SIGTERM; killing its session"
        );
        let _ = Command::new("pkill")
            .args(["-KILL", "-s", &session.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for PushpinProcess {
    fn drop(&mut self) {
        self.terminate();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether any process of `session` still exists.
fn session_alive(session: u32) -> bool {
    Command::new("pgrep")
        .args(["-s", &session.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The status `127.0.0.1:port` answers with, if it answers HTTP within half a second, to a request whose
/// `body` is written a moment after its `head`.
fn status(port: u16, head: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(head.as_bytes()).ok()?;
    // Long enough for the head to travel on its own, so the body takes the links that follow it.
    sleep(Duration::from_millis(20));
    stream.write_all(body.as_bytes()).ok()?;
    let mut line = [0u8; 12];
    stream.read_exact(&mut line).ok()?;
    let code = line.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The status code of the answer to `request` on `port`, if one came within three seconds.
fn status_of(port: u16, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// A port the OS considers free now. Another process could take it before Pushpin binds it; start then
/// fails with the bind error in the log, rather than two instances sharing a port.
fn free_port() -> Result<u16, LaunchError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LaunchError::io("find a free port", e))
}

/// A new directory under the system's temp dir. The name stays short: ZeroMQ's ipc files live in it, and a
/// Unix socket path is limited to about 100 bytes.
fn fresh_dir() -> std::io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pikku-pp-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over from an earlier process with the same pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// 128 random bits in hex, from the standard library's randomly seeded hasher.
fn random_key() -> String {
    let mut key = String::new();
    for _ in 0..2 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0);
        key.push_str(&format!("{:016x}", hasher.finish()));
    }
    key
}

/// Why Pushpin could not be started.
///
/// ```
/// use pikku_pushpin::launch::{LaunchError, PushpinConfig, PushpinProcess};
///
/// let err = PushpinProcess::start(PushpinConfig::new()).unwrap_err();
/// assert!(matches!(err, LaunchError::NoTargets));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// The configuration names no worker to route to.
    NoTargets,
    /// A file or process operation failed.
    Io {
        /// What the launcher was doing.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Pushpin exited while starting.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its logs.
        log: String,
    },
    /// Pushpin's ports did not answer within the startup timeout.
    NotReady {
        /// The timeout.
        after: Duration,
        /// The end of its logs.
        log: String,
    },
}

impl LaunchError {
    fn io(action: &'static str, source: std::io::Error) -> Self {
        Self::Io { action, source }
    }
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTargets => f.write_str("pushpin needs at least one worker target"),
            Self::Io { action, source } => write!(f, "could not {action}: {source}"),
            Self::Exited { status, log } => {
                write!(f, "pushpin exited while starting ({status}):\n{log}")
            }
            Self::NotReady { after, log } => {
                write!(f, "pushpin did not answer within {after:?}:\n{log}")
            }
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
