//! The accept loop of every `serve` method: HTTP/1.1 with upgrades, a request-head timeout, a bound on open
//! connections that holds even when the process runs out of file descriptors, and a prompt stop.
//!
//! We run hyper directly rather than `axum::serve` because `axum::serve` sets no timer: a connection that never
//! sends a complete request head (or sits idle between keep-alive requests) would be kept forever, and stopping
//! would wait for it. hyper's `header_read_timeout` starts when a connection is accepted and again when it turns
//! idle after a response, so one setting bounds both. Upgraded connections are detached from hyper and are ended
//! by the channel shutdown, not here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use pikku_core::ChannelError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower_service::Service;

use crate::limits::LogThrottle;
use crate::metrics::server::ServerMetrics;
use crate::upgrade;

/// How often at most a kind of refusal or timeout is logged; the line carries the count since the last one.
const LOG_PERIOD: Duration = Duration::from_secs(5);
/// How long a refused connection is kept to read the client's request, so that closing it sends a clean FIN
/// rather than a reset that could destroy the refusal before the client reads it.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once at most; beyond it they are answered and closed at once.
const MAX_LINGERING_REFUSALS: usize = 64;

/// What the accept loop needs from the server.
pub(crate) struct Limits {
    /// hyper's `header_read_timeout`: for the first request head and for the idle wait before the next one.
    pub(crate) handshake_timeout: Duration,
    /// Open connections at most, counting both those in their HTTP phase and upgraded ones.
    pub(crate) max_connections: Option<usize>,
    /// The server's count of upgraded connections (until their disconnect sequence finished).
    pub(crate) upgraded: Arc<AtomicUsize>,
    /// Where refusals at accept are counted, when metrics are on.
    pub(crate) metrics: Option<Arc<ServerMetrics>>,
}

/// State shared by the accept loop and its connection tasks.
struct Accepting {
    limits: Limits,
    /// Accepted connections still served by hyper (not upgraded, not closed).
    in_http: AtomicUsize,
    lingering: Arc<Semaphore>,
    refusals_log: LogThrottle,
    exhaustion_log: LogThrottle,
    timeouts_log: LogThrottle,
}

impl Accepting {
    fn open_connections(&self) -> usize {
        self.in_http.load(Ordering::Acquire) + self.limits.upgraded.load(Ordering::Acquire)
    }
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and returns. Connections still in
/// their HTTP phase finish on their own, bounded by the handshake timeout.
pub(crate) async fn serve(
    router: axum::Router,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    let state = Arc::new(Accepting {
        limits,
        in_http: AtomicUsize::new(0),
        lingering: Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS)),
        refusals_log: LogThrottle::new(LOG_PERIOD),
        exhaustion_log: LogThrottle::new(LOG_PERIOD),
        timeouts_log: LogThrottle::new(LOG_PERIOD),
    });
    let mut reserve = ReserveDescriptor::open();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_descriptor_exhaustion(&err) => {
                    refuse_while_exhausted(&listener, &mut reserve, &state).await;
                    continue;
                }
                Err(err) => {
                    // A connection reset before accept, or a resource shortage: wait a little instead of
                    // spinning, and keep serving the connections we have.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if state
            .limits
            .max_connections
            .is_some_and(|max| state.open_connections() >= max)
        {
            if let Some(count) = state.refusals_log.hit() {
                tracing::warn!(
                    refused = count,
                    max = state.limits.max_connections,
                    "connection limit reached: refusing connections with 503"
                );
            }
            refuse(tcp, &state);
            continue;
        }
        // Small frames should leave at once.
        let _ = tcp.set_nodelay(true);
        state.in_http.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(serve_connection(router.clone(), tcp, peer, state.clone()));
    }
}

async fn serve_connection(
    router: axum::Router,
    tcp: TcpStream,
    peer: SocketAddr,
    state: Arc<Accepting>,
) {
    let http = Arc::new(HttpConnection {
        accepting: state.clone(),
        streaming: AtomicBool::new(false),
        abort: Notify::new(),
        done: AtomicBool::new(false),
        finished: Notify::new(),
    });
    let _counted = InHttp(http.clone());
    let for_requests = http.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(for_requests.clone());
        // An axum router is always ready, so calling it without `poll_ready` is fine.
        router.clone().call(req)
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.handshake_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    let result = tokio::select! {
        result = connection => result,
        () = http.abort.notified() => {
            tracing::debug!(%peer, "dropped a stream whose client did not take its end in time");
            return;
        }
    };
    match result {
        Ok(()) => {}
        Err(err) if err.is_timeout() => {
            tracing::debug!(%peer, "closed a connection that sent no complete request head in time");
            if let Some(count) = state.timeouts_log.hit() {
                tracing::info!(
                    closed = count,
                    timeout_ms = state.limits.handshake_timeout.as_millis() as u64,
                    "closed connections that sent no complete request head within the handshake timeout"
                );
            }
        }
        Err(err) => tracing::debug!(%peer, error = %err, "HTTP connection ended with an error"),
    }
}

/// The HTTP connection a request arrived on, in the request's extensions, for a response that outlives the HTTP
/// phase: a topic stream moves the connection's count from the HTTP phase to the channel connections, and may
/// drop the connection when its client stops reading.
pub(crate) struct HttpConnection {
    accepting: Arc<Accepting>,
    /// Counted as a channel connection (by the server) instead of as in the HTTP phase.
    streaming: AtomicBool,
    abort: Notify,
    /// hyper is done with the connection.
    done: AtomicBool,
    finished: Notify,
}

impl HttpConnection {
    /// The connection now carries a stream the server counts among its channel connections: it stops counting
    /// here, so `max_connections` sees it once. Streams end the connection with them (`Connection: close`), so
    /// it never returns to the HTTP phase.
    pub(crate) fn begin_stream(&self) {
        if !self.streaming.swap(true, Ordering::AcqRel) {
            self.accepting.in_http.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Drops the connection at once, whatever hyper is writing.
    pub(crate) fn abort(&self) {
        self.abort.notify_one();
    }

    /// Resolves once hyper is done with the connection.
    pub(crate) async fn finished(&self) {
        loop {
            let notified = self.finished.notified();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Uncounts a connection from the HTTP phase when hyper is done with it (closed, or handed over as upgraded),
/// unless a stream moved it to the channel connections.
struct InHttp(Arc<HttpConnection>);

impl Drop for InHttp {
    fn drop(&mut self) {
        if !self.0.streaming.swap(true, Ordering::AcqRel) {
            self.0.accepting.in_http.fetch_sub(1, Ordering::AcqRel);
        }
        self.0.done.store(true, Ordering::Release);
        self.0.finished.notify_waiters();
    }
}

/// The 503 `Connection limit reached` answer, counted as a refused upgrade.
fn limit_reached(metrics: Option<&ServerMetrics>) -> Vec<u8> {
    let err = ChannelError::service_unavailable("Connection limit reached");
    if let Some(metrics) = metrics {
        metrics.refused(err.status());
    }
    upgrade::raw_refusal(&err)
}

/// Answers 503 `Connection limit reached` and closes. The connection lingers briefly to read the request, so the
/// close does not reset the answer away; when many linger already it is closed at once.
fn refuse(tcp: TcpStream, state: &Arc<Accepting>) {
    let metrics = state.limits.metrics.clone();
    let Ok(permit) = state.lingering.clone().try_acquire_owned() else {
        refuse_now(tcp, metrics.as_deref());
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut tcp = tcp;
        let answer = async {
            tcp.write_all(&limit_reached(metrics.as_deref())).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            std::io::Result::Ok(())
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
    });
}

/// Answers 503 and closes without waiting: reads what the client already sent (so the close is a clean FIN),
/// writes the refusal if the socket buffer takes it, and drops the socket.
fn refuse_now(tcp: TcpStream, metrics: Option<&ServerMetrics>) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match tcp.try_read(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = tcp.try_write(&limit_reached(metrics));
}

/// Out of file descriptors: give up the reserve descriptor, accept the waiting client with it, answer 503, close,
/// and take the reserve back. Without this the client would wait in the backlog with no answer, and the loop
/// would spin on the failing accept.
async fn refuse_while_exhausted(
    listener: &TcpListener,
    reserve: &mut ReserveDescriptor,
    state: &Accepting,
) {
    if let Some(count) = state.exhaustion_log.hit() {
        tracing::warn!(
            refused = count,
            open = state.open_connections(),
            "out of file descriptors: refusing connections with 503 (raise the open-files limit or lower \
             ServerConfig::max_connections)"
        );
    }
    reserve.release();
    // The client that made accept fail is waiting, so this is ready at once; the bound covers one that left.
    match tokio::time::timeout(Duration::from_millis(10), listener.accept()).await {
        Ok(Ok((tcp, _))) => refuse_now(tcp, state.limits.metrics.as_deref()),
        // Still no descriptor (the whole system is out, or no reserve could be kept): back off instead of
        // spinning on accept.
        Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
    }
    reserve.reopen();
}

/// EMFILE (this process is out of descriptors) or ENFILE (the system is). The numbers are the same on Linux,
/// the BSDs and macOS; std has no stable error kind for them.
fn is_descriptor_exhaustion(err: &std::io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    cfg!(unix) && matches!(err.raw_os_error(), Some(EMFILE | ENFILE))
}

/// One descriptor held back while the process runs normally, given up to answer a client when all the others
/// are in use.
struct ReserveDescriptor(Option<std::fs::File>);

impl ReserveDescriptor {
    const PATH: &'static str = if cfg!(windows) { "NUL" } else { "/dev/null" };

    fn open() -> Self {
        Self(std::fs::File::open(Self::PATH).ok())
    }

    fn release(&mut self) {
        self.0 = None;
    }

    fn reopen(&mut self) {
        if self.0.is_none() {
            self.0 = std::fs::File::open(Self::PATH).ok();
        }
    }
}
