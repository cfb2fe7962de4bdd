//! The configuration shared by every channel of an app.

use std::time::Duration;

use crate::channel::SlowConsumerPolicy;
use crate::hub::HubLimits;
use crate::origin::OriginPolicy;
use crate::rate_limit::RateLimit;

/// Behaviour and limits shared by every channel of an app.
///
/// Every field has a default ([`AppConfig::default`]). The struct is `#[non_exhaustive]`, so outside this crate
/// it cannot be built with a struct literal: change the fields you need through [`App::configure`](crate::App::configure), or start
/// from `AppConfig::default()` and pass the result to [`App::config`](crate::App::config). Transport settings (frame size, heartbeats,
/// shutdown) live in the server's own configuration (`pikku::ServerConfig`).
///
/// ```
/// use std::time::Duration;
/// use pikku::{App, AppConfig, OriginPolicy, RateLimit, SlowConsumerPolicy};
///
/// let mut config = AppConfig::default();
/// assert_eq!(config.outbound_queue_bytes, 1 << 20);
/// assert_eq!(config.origin, OriginPolicy::SameHost);
/// assert_eq!(config.rate_limit, None);
/// config.slow_consumer = SlowConsumerPolicy::Drop;
/// config.rpc_timeout = Some(Duration::from_secs(5));
/// config.origin = OriginPolicy::allow(["https://example.com"]);
/// config.rate_limit = Some(RateLimit::per_second(100).burst(200));
///
/// let app: App<()> = App::new(()).config(config);
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppConfig {
    /// Development mode (default false): internal error frames carry a `debug` member with the error text.
    /// Never turn it on in production, since that text may hold internals.
    pub dev_mode: bool,
    /// Bound of each connection's outbound queue, in payload bytes (default 1 MiB). A single frame larger than
    /// the bound is still admitted into an empty queue.
    pub outbound_queue_bytes: usize,
    /// What happens when that bound is reached (default [`SlowConsumerPolicy::Close`], 1008).
    pub slow_consumer: SlowConsumerPolicy,
    /// Reverse-RPC timeout (default 30 s; `None` disables it). A channel may override it with
    /// [`ChannelRoute::rpc_timeout`](crate::ChannelRoute::rpc_timeout).
    pub rpc_timeout: Option<Duration>,
    /// Pending reverse calls per connection (default 64); a call beyond it fails with
    /// [`RpcFailure::Busy`](crate::RpcFailure::Busy).
    pub max_pending_rpc: usize,
    /// Messages waiting per connection before the reader stops reading, so TCP pushes back (default 64; a value
    /// of 0 is treated as 1 by the embedded server).
    pub inbound_queue: usize,
    /// How long in-flight handlers may run on after a close before they are cancelled and onDisconnect runs
    /// (default 10 s).
    pub drain_timeout: Duration,
    /// Which `Origin` headers an upgrade may carry (default [`OriginPolicy::SameHost`]: a browser page of
    /// another host cannot open a channel); a refused upgrade gets 403 `Origin not allowed`.
    pub origin: OriginPolicy,
    /// The inbound rate limit of every connection (default `None`: no limit, since only the application knows
    /// how fast its clients legitimately send). A channel or a message route may set its own with
    /// [`ChannelRoute::rate_limit`](crate::ChannelRoute::rate_limit) and [`Route::rate_limit`](crate::Route::rate_limit).
    pub rate_limit: Option<RateLimit>,
    /// Event-hub bounds (default [`HubLimits::default`]).
    pub hub: HubLimits,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            dev_mode: false,
            outbound_queue_bytes: 1 << 20,
            slow_consumer: SlowConsumerPolicy::Close,
            rpc_timeout: Some(Duration::from_secs(30)),
            max_pending_rpc: 64,
            inbound_queue: 64,
            drain_timeout: Duration::from_secs(10),
            origin: OriginPolicy::SameHost,
            rate_limit: None,
            hub: HubLimits::default(),
        }
    }
}
