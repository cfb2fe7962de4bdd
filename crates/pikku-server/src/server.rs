//! The server handle: upgrade service, heartbeat sweep, connection accounting and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response};
use hyper_util::rt::TokioIo;
use pikku_core::channel::CloseRequest;
use pikku_core::runtime::UpgradeInput;
use pikku_core::{App, AppRuntime, ChannelError, DisconnectReason, EventHub, OutFrame};
use tokio::sync::Notify;

use crate::config::ServerConfig;
use crate::ws::WsStream;
use crate::{driver, upgrade};

struct Shared<S, U> {
    rt: Arc<AppRuntime<S, U>>,
    config: ServerConfig,
    accepting: AtomicBool,
    /// Connections whose task is running (upgrade accepted, disconnect sequence not finished).
    active: AtomicUsize,
    drained: Notify,
    sweeping: AtomicBool,
    /// Set once a shutdown completed; `serve` then stops listening.
    finished_flag: AtomicBool,
    finished: Notify,
    epoch: Instant,
}

/// A channels server: serves an [`App`] standalone or as a tower service inside an axum app.
///
/// ```no_run
/// use pikku_core::{App, Channel, ChannelRoute, Ctx, Params};
/// use pikku_server::{ChannelServer, ServerConfig};
///
/// async fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str { "hello!" }
///
/// # async fn run() -> std::io::Result<()> {
/// let app = App::new(()).channel(ChannelRoute::new("events", "/events").on_connect(hello));
/// let server = ChannelServer::new(app, ServerConfig::default());
/// // Mount into an existing axum router…
/// let router: axum::Router = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .fallback_service(server.service());
/// # let _ = router;
/// // …or serve it on its own.
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:4002").await?;
/// server.serve(listener).await
/// # }
/// ```
pub struct ChannelServer<S, U> {
    shared: Arc<Shared<S, U>>,
}

impl<S, U> Clone for ChannelServer<S, U> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S, U> std::fmt::Debug for ChannelServer<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelServer")
            .field("config", &self.shared.config)
            .field("active", &self.shared.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<S, U> ChannelServer<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    /// A server for `app` with `config`.
    pub fn new(app: App<S, U>, config: ServerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                rt: app.into_runtime(),
                config,
                accepting: AtomicBool::new(true),
                active: AtomicUsize::new(0),
                drained: Notify::new(),
                sweeping: AtomicBool::new(false),
                finished_flag: AtomicBool::new(false),
                finished: Notify::new(),
                epoch: Instant::now(),
            }),
        }
    }

    /// The event hub, for publishing from outside any connection.
    #[must_use]
    pub fn hub(&self) -> &EventHub {
        self.shared.rt.hub()
    }

    /// The built application.
    #[must_use]
    pub fn runtime(&self) -> &Arc<AppRuntime<S, U>> {
        &self.shared.rt
    }

    /// Connections currently open or finishing their disconnect sequence.
    #[must_use]
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// The upgrade service, for `axum::Router::fallback_service` or any tower-based HTTP server. Requests whose
    /// path matches no channel get the JSON 404 of protocol §2.3.
    ///
    /// Must be called inside a Tokio runtime: it starts the heartbeat sweep.
    #[must_use]
    pub fn service(&self) -> ChannelService<S, U> {
        self.start_sweep();
        ChannelService {
            shared: self.shared.clone(),
        }
    }

    /// An axum router that serves only the channels.
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.service())
    }

    /// Serves on `listener` until [`shutdown`](Self::shutdown) (called through any clone) completes.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let finished = async move {
            loop {
                let notified = shared.finished.notified();
                if shared.finished_flag.load(Ordering::Acquire) {
                    break;
                }
                notified.await;
            }
        };
        serve_router(self.router(), listener, finished).await
    }

    /// Serves on `listener` until `signal` resolves, then shuts down gracefully (semantics §5.7).
    ///
    /// # Errors
    /// The listener failed.
    pub async fn serve_with_shutdown(
        self,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let this = self.clone();
        let stop = async move {
            signal.await;
            this.shutdown().await;
        };
        self.serve_until(listener, stop).await
    }

    /// Serves on `listener` until `stop` resolves, without shutting the channels down itself: call
    /// [`shutdown`](Self::shutdown) first for a graceful stop. Upgrades arriving after a shutdown get 503 for as
    /// long as this runs.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn serve_until(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve_router(self.router(), listener, stop).await
    }

    /// Graceful shutdown (semantics §5.7): new upgrades get 503, every open connection is closed with 1001
    /// `going away` and runs its disconnect sequence; returns when all have finished or the shutdown timeout
    /// passed. The listener keeps answering until the serve future ends.
    pub async fn shutdown(&self) {
        self.shared.accepting.store(false, Ordering::Release);
        for conn in self.hub().channels() {
            conn.request_close(CloseRequest {
                code: 1001,
                reason: "going away".into(),
                flush: true,
                cause: DisconnectReason::Shutdown,
            });
        }
        let wait_drained = async {
            loop {
                let notified = self.shared.drained.notified();
                if self.shared.active.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(self.shared.config.shutdown_timeout, wait_drained)
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.shared.active.load(Ordering::Acquire),
                "shutdown timeout passed with connections still open"
            );
        }
        self.shared.finished_flag.store(true, Ordering::Release);
        self.shared.finished.notify_waiters();
    }

    fn start_sweep(&self) {
        if self.shared.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let period = self.shared.config.sweep_period();
        tokio::spawn(sweep(weak, period));
    }
}

async fn serve_router(
    router: axum::Router,
    listener: tokio::net::TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Small frames should leave at once.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .await
}

/// The heartbeat sweep: one task per server instead of a timer per connection. Pings connections that have been
/// quiet for a ping interval and closes those quiet for the idle timeout (1001 `idle timeout`, D23).
async fn sweep<S, U>(shared: Weak<Shared<S, U>>, period: std::time::Duration)
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let ping_ms = shared.config.ping_interval.as_millis() as u64;
        let idle_ms = shared.config.idle_timeout.as_millis() as u64;
        for conn in shared.rt.hub().channels() {
            let quiet = conn.idle_ms();
            if quiet >= idle_ms {
                conn.request_close(CloseRequest {
                    code: 1001,
                    reason: "idle timeout".into(),
                    flush: false,
                    cause: DisconnectReason::IdleTimeout,
                });
            } else if quiet >= ping_ms {
                let _ = conn.push(OutFrame::Ping);
            }
        }
    }
}

/// The tower service that answers channel upgrades (see [`ChannelServer::service`]).
pub struct ChannelService<S, U> {
    shared: Arc<Shared<S, U>>,
}

impl<S, U> Clone for ChannelService<S, U> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S, U> std::fmt::Debug for ChannelService<S, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelService").finish_non_exhaustive()
    }
}

impl<S, U, B> tower_service::Service<Request<B>> for ChannelService<S, U>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(handle_upgrade(shared, req).await) })
    }
}

async fn handle_upgrade<S, U, B>(shared: Arc<Shared<S, U>>, mut req: Request<B>) -> Response<Body>
where
    S: Send + Sync + 'static,
    U: Send + Sync + 'static,
    B: Send + 'static,
{
    let path = req.uri().path().to_owned();
    // Step 1.
    let key = match upgrade::check_request(&req, shared.config.max_path_bytes) {
        Ok(key) => key,
        Err(err) => return upgrade::refusal(&err, &path),
    };
    // Step 2.
    if !shared.accepting.load(Ordering::Acquire) {
        return upgrade::refusal(
            &ChannelError::service_unavailable("Server is shutting down"),
            &path,
        );
    }
    if let Some(max) = shared.config.max_connections {
        if shared.active.load(Ordering::Acquire) >= max {
            return upgrade::refusal(
                &ChannelError::service_unavailable("Connection limit reached"),
                &path,
            );
        }
    }
    // Steps 3–7.
    let headers = Arc::new(std::mem::take(req.headers_mut()));
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let admitted = match shared
        .rt
        .admit(UpgradeInput {
            path: &path,
            query: req.uri().query(),
            headers: headers.clone(),
            peer,
        })
        .await
    {
        Ok(admitted) => admitted,
        Err(err) => return upgrade::refusal(&err, &path),
    };
    let subprotocol = upgrade::select_subprotocol(&headers, &shared.config.subprotocols);
    let response = upgrade::switching_protocols(&key, subprotocol, admitted.response_headers());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let live = admitted.into_channel(None, shared.epoch);
    shared.active.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        let _active = ActiveGuard(shared.clone());
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                // The handshake could not be completed: no onConnect, no onDisconnect (semantics §3.2).
                tracing::debug!(error = %err, "upgrade not completed");
                return;
            }
        };
        let ws = WsStream::new(TokioIo::new(upgraded), shared.config.max_frame_bytes);
        let drain = shared.rt.config().drain_timeout;
        driver::run(
            ws,
            live,
            shared.config.max_frame_bytes,
            shared.config.close_timeout,
            drain,
        )
        .await;
    });
    response
}

/// Counts a connection as active until its task ends, and wakes a waiting shutdown at zero.
struct ActiveGuard<S, U>(Arc<Shared<S, U>>);

impl<S, U> Drop for ActiveGuard<S, U> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}
