//! Transport limits and timeouts of the embedded server.

use std::time::Duration;

use pikku_core::subprotocol::SubprotocolPolicy;

/// Settings of the embedded server; every field documents its default.
///
/// These are transport settings; the application's own (outbound queue bound, slow-consumer policy,
/// reverse-RPC timeout, allowed origins, drain timeout) are in `pikku::AppConfig`.
///
/// ```
/// use std::time::Duration;
/// let config = pikku::ServerConfig {
///     ping_interval: Duration::from_secs(10),
///     idle_timeout: Duration::from_secs(20),
///     max_connections: Some(10_000),
///     ..Default::default()
/// };
/// assert_eq!(config.max_frame_bytes, 1 << 20);
/// assert_eq!(config.max_connections_per_ip, None);
/// assert_eq!(config.ready_path.as_deref(), Some("/readyz"));
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest inbound frame or reassembled message in bytes (default 1 MiB); larger closes with 1009. It also
    /// bounds the bytes of the messages waiting per connection: reading pauses once they reach it.
    pub max_frame_bytes: usize,
    /// How long a connection may be quiet before it is pinged (default 30 s). A connection that keeps sending is
    /// never pinged.
    pub ping_interval: Duration,
    /// A connection with no inbound frame (pongs included) for this long is closed with 1001 `idle timeout`
    /// (default 60 s). Keep it above the ping interval, so a live client has time to answer a ping.
    pub idle_timeout: Duration,
    /// How long a frame, or a message sent in fragments, may take to arrive once its first byte is in (default
    /// 30 s); a slower one closes the connection with 1008 `frame timeout`. Together with the idle timeout (reset
    /// only by complete frames) this ends clients that trickle bytes to hold buffers and connections.
    pub frame_timeout: Duration,
    /// Bytes of inbound data all connections together may hold in their buffers: partial frames, fragmented
    /// messages being reassembled and messages waiting for their handler (default 256 MiB). Once it is spent, a
    /// connection that already holds inbound bytes stops reading until bytes are released, so TCP pushes back on
    /// its client; a connection holding nothing may still read one 8 KiB chunk, so complete small messages keep
    /// flowing. The bound is therefore this budget plus at most 8 KiB per connection.
    pub inbound_budget_bytes: usize,
    /// How long a server-initiated close may take: writing what is queued, the close frame, and waiting for the
    /// peer's close frame (default 5 s). A client that stopped reading is dropped after it.
    pub close_timeout: Duration,
    /// How long a connection may go without a complete HTTP request head (default 10 s): counted from the
    /// accept for the first request and, on a keep-alive connection, from the end of the previous response.
    /// A connection that sends nothing, drips its head byte by byte, or sits idle between requests is closed
    /// after it. Timeouts are logged at debug level one by one and at info level as a count, at most once
    /// every 5 s.
    ///
    /// Applies to every serving method of this crate ([`ChannelServer::serve`](crate::ChannelServer::serve),
    /// [`ChannelServer::serve_router`](crate::ChannelServer::serve_router), [`serve`](crate::serve),
    /// [`serve_router`](crate::serve_router) and their variants). When you mount
    /// [`ChannelServer::service`](crate::ChannelServer::service) into an HTTP server of your own, that server's
    /// timeouts apply instead: plain `axum::serve` has none.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for connections to finish their disconnect sequence (default 30 s).
    pub shutdown_timeout: Duration,
    /// Longest upgrade path plus query in bytes (default 8 KiB); longer is a 400.
    pub max_path_bytes: usize,
    /// Open connections at most (default: the soft limit on open files minus a reserve of a sixteenth of it,
    /// between 32 and 256, for listeners, files and broker sockets; unlimited where that limit cannot be read,
    /// as outside Linux). `None` is unlimited.
    ///
    /// Upgrades beyond it get 503 `Connection limit reached`; channel connections count until their disconnect
    /// sequence finished. When this crate accepts the connections (every `serve` method), connections still in
    /// their HTTP phase count as well, and a connection accepted beyond the limit gets the same 503 at once,
    /// so silent sockets cannot use up the descriptors. Should the process run out of descriptors all the same,
    /// the accept loop still answers 503 with a descriptor it keeps in reserve. Refusals are logged as a
    /// count, at most once every 5 s.
    pub max_connections: Option<usize>,
    /// Channel connections at most from one client IP address (default `None`: no limit); upgrades beyond it
    /// get 429 `Too many connections from this address`. The address is the TCP peer: behind a reverse proxy
    /// every client shares the proxy's, so leave it unset there. A mounted service sees an address only when
    /// served with `into_make_service_with_connect_info::<SocketAddr>()`; without one the limit does not apply.
    pub max_connections_per_ip: Option<usize>,
    /// Which subprotocol an accepted upgrade echoes (default [`SubprotocolPolicy::None`]: none is selected,
    /// whatever the client offers). [`SubprotocolPolicy::list`] selects from names the application accepts;
    /// see [`SubprotocolPolicy`] for echoing the first offer and for a callback that may refuse.
    pub subprotocols: SubprotocolPolicy,
    /// Path of the liveness endpoint (default `/healthz`; `None`: none): a plain `GET` is answered 200 `ok`
    /// for as long as the process serves. Served by the standalone `serve` methods ([`serve`](crate::serve),
    /// [`ChannelServer::serve`](crate::ChannelServer::serve) and their variants); with
    /// [`serve_router`](crate::ChannelServer::serve_router) your router's paths are yours, so merge
    /// [`ChannelServer::endpoints`](crate::ChannelServer::endpoints) into it to have them. A WebSocket upgrade to
    /// the same path still goes to the channels, so a channel route never loses a path to it.
    pub health_path: Option<String>,
    /// Path of the readiness endpoint (default `/readyz`; `None`: none): a plain `GET` is answered 200 `ready`
    /// while the server accepts connections and 503 `draining` from the moment a shutdown begins, so a load
    /// balancer stops sending clients before the connections close. Served like
    /// [`health_path`](Self::health_path).
    pub ready_path: Option<String>,
    /// Path of the Prometheus scrape page (default `/metrics`; `None`: none), with the cargo feature `prometheus`
    /// only: 200 with the page once `pikku::metrics::install_prometheus` was called, 503 before. Served like
    /// [`health_path`](Self::health_path). Without the feature the path belongs to the channels.
    pub metrics_path: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(30),
            inbound_budget_bytes: 256 << 20,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            max_path_bytes: 8 * 1024,
            max_connections: crate::limits::default_max_connections(),
            max_connections_per_ip: None,
            subprotocols: SubprotocolPolicy::None,
            health_path: Some("/healthz".to_owned()),
            ready_path: Some("/readyz".to_owned()),
            metrics_path: Some("/metrics".to_owned()),
        }
    }
}

impl ServerConfig {
    /// How often the heartbeat sweep runs: often enough to honour both the ping interval and the idle timeout.
    pub(crate) fn sweep_period(&self) -> Duration {
        (self.ping_interval / 2)
            .min(self.idle_timeout / 4)
            .min(self.frame_timeout / 4)
            .max(Duration::from_millis(10))
    }
}
