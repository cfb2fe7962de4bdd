//! Opening a connection: [`ClientBuilder`], the upgrade request and its refusals.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_websockets::WebSocketStream;

use crate::reconnect::{Reconnect, ReconnectIf};
use crate::rpc::{self, Exposed, RpcError, RpcRequest};
use crate::{Backoff, Client, ClientError, Close, TransportError};

/// The socket of a connection.
pub(crate) type Socket = WebSocketStream<Tap>;

/// Options for a connection: request headers, timeouts, queue sizes and functions exposed from the start.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pikku_client::ClientError> {
/// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
/// # let url = server.url("/secure");
/// use std::time::Duration;
/// use pikku_client::{Client, Frame};
///
/// // url: "ws://127.0.0.1:4002/secure", a channel whose upgrade middleware checks the token.
/// let client = Client::builder(&url)
///     .header("Authorization", "Bearer good")
///     .connect_timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// assert_eq!(client.next_frame().await?, Frame::Json(serde_json::json!({"user": "u2"})));
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `.connect()` is awaited"]
pub struct ClientBuilder {
    url: String,
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
    frame_capacity: usize,
    exposed: Vec<(String, Exposed)>,
    reconnect: Option<Backoff>,
    reconnect_if: Option<ReconnectIf>,
    idle_timeout: Option<Duration>,
}

impl ClientBuilder {
    /// Options for a connection to `url` (`ws://host[:port]/path[?query]`), with the defaults: no extra
    /// headers, a 10 s connect timeout, a queue of 1024 frames.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            call_timeout: None,
            frame_capacity: 1024,
            exposed: Vec::new(),
            reconnect: None,
            reconnect_if: None,
            idle_timeout: None,
        }
    }

    /// Adds a header to the upgrade request, e.g. `Authorization` or `Cookie`. The name and value are checked
    /// by [`connect`](Self::connect), which fails with [`ClientError::InvalidHeader`] for an invalid one or one
    /// the upgrade sets itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ClientBuilder {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long name resolution, the TCP connect and the upgrade may take together (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long a routed call waits for its reply before failing with [`ClientError::CallTimeout`] (default:
    /// no limit). A call to a route the channel does not have, on a channel with a default handler, is
    /// answered without the routing member and so never matches: this bounds such mistakes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// use std::time::Duration;
    /// let client = pikku_client::Client::builder(server.url("/events"))
    ///     .call_timeout(Duration::from_secs(5))
    ///     .connect()
    ///     .await?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    pub fn call_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.call_timeout = Some(timeout);
        self
    }

    /// How many unrouted frames may wait for [`Client::next_frame`] (default 1024). When the queue is full,
    /// further frames are dropped and counted, and `next_frame` reports [`ClientError::Lagged`]; calls and
    /// reverse RPC keep working, since they never wait on this queue.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn frame_capacity(mut self, capacity: usize) -> ClientBuilder {
        assert!(capacity > 0, "the frame queue needs room for one frame");
        self.frame_capacity = capacity;
        self
    }

    /// Exposes a function before the connection opens, so that requests sent by the server's onConnect
    /// already find it. Same as [`Client::expose`].
    pub fn expose<F, Fut, T>(mut self, name: impl Into<String>, function: F) -> ClientBuilder
    where
        F: Fn(RpcRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, RpcError>> + Send + 'static,
        T: serde::Serialize,
    {
        self.exposed.push((name.into(), rpc::exposed(function)));
        self
    }

    /// Reconnects by itself when the connection drops, waiting `backoff` between attempts (default: off,
    /// a dropped connection closes the client).
    ///
    /// A drop is a close the server sent for which [`reconnect_if`](Self::reconnect_if) says yes (by default
    /// [`Close::is_retryable`]: 1001 `going away` when the server restarts, 1006 when the link was lost, …),
    /// never a [`Client::close`]. Calls waiting for a reply fail with [`ClientError::Disconnected`], sends and
    /// calls made while reconnecting wait for the new connection, and the messages remembered with
    /// [`Route::call_remembered`](crate::Route::call_remembered) or
    /// [`Client::subscribe_topic`](crate::Client::subscribe_topic) are sent again first. The
    /// [crate docs](crate#reconnecting) have the details.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/realtime/events");
    /// use std::time::Duration;
    /// use pikku_client::{Backoff, Client, ConnectionState};
    ///
    /// let client = Client::builder(&url) // "ws://127.0.0.1:4002/realtime/events"
    ///     .reconnect(Backoff { initial: Duration::from_millis(100), ..Backoff::default() })
    ///     .connect()
    ///     .await?;
    /// client.subscribe_topic("news").await?; // subscribed again after every reconnect
    /// assert_eq!(client.state(), ConnectionState::Open);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    /// If `backoff.factor` is below 1 or not finite, `backoff.jitter` is outside 0..=1, or `backoff.initial`
    /// is longer than `backoff.max`.
    #[track_caller]
    pub fn reconnect(mut self, backoff: Backoff) -> ClientBuilder {
        backoff.check();
        self.reconnect = Some(backoff);
        self
    }

    /// Decides which closes call for a reconnect, in place of [`Close::is_retryable`]; only used with
    /// [`reconnect`](Self::reconnect). A [`Client::close`] never reconnects, whatever this says.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use pikku_client::{Backoff, Client, Close};
    ///
    /// // Also come back after the application's own code 4001, which this app uses for "please reconnect".
    /// let client = Client::builder(&url)
    ///     .reconnect(Backoff::default())
    ///     .reconnect_if(|close: &Close| close.is_retryable() || close.code == 4001)
    ///     .connect()
    ///     .await?;
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    pub fn reconnect_if<F>(mut self, decide: F) -> ClientBuilder
    where
        F: Fn(&Close) -> bool + Send + Sync + 'static,
    {
        self.reconnect_if = Some(Arc::new(decide));
        self
    }

    /// Counts a connection on which nothing arrived for `timeout` (no frame, not even a ping) as lost
    /// (default: no limit). It then ends with code 1006, and a client with [`reconnect`](Self::reconnect) set
    /// comes back. A pikku server pings a quiet connection every `ping_interval` (30 s by default), so a
    /// timeout of twice that notices a link that died without a word, which TCP alone may take many minutes
    /// to report.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pikku_client::ClientError> {
    /// # let server = pikku_conformance::TestServer::start(pikku_conformance::FixtureSettings::test()).await;
    /// # let url = server.url("/events");
    /// use std::time::Duration;
    /// use pikku_client::{Backoff, Client};
    ///
    /// let client = Client::builder(&url)
    ///     .reconnect(Backoff::default())
    ///     .idle_timeout(Duration::from_secs(60)) // the server pings every 30 s
    ///     .connect()
    ///     .await?;
    /// # let _ = client;
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    /// If `timeout` is zero.
    #[track_caller]
    pub fn idle_timeout(mut self, timeout: Duration) -> ClientBuilder {
        assert!(
            !timeout.is_zero(),
            "an idle timeout of zero would close every connection at once"
        );
        self.idle_timeout = Some(timeout);
        self
    }

    /// Opens the connection and starts its background task.
    ///
    /// The first connection is not retried, even with [`reconnect`](Self::reconnect) set: a server that cannot
    /// be reached or refuses the upgrade is reported here.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`], [`ClientError::InvalidHeader`], [`ClientError::Connect`],
    /// [`ClientError::ConnectTimeout`], [`ClientError::Refused`] (the server answered the upgrade with an HTTP
    /// error, e.g. 404 for an unknown path) or [`ClientError::Handshake`].
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops the half-open connection.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let opener = Opener::new(&self.url, &self.headers, self.connect_timeout)?;
        let socket = opener.open().await?;
        let reconnect = self.reconnect.map(|backoff| Reconnect {
            opener,
            backoff,
            when: self
                .reconnect_if
                .unwrap_or_else(|| Arc::new(Close::is_retryable)),
        });
        Ok(Client::start(
            socket,
            Settings {
                frame_capacity: self.frame_capacity,
                call_timeout: self.call_timeout,
                exposed: self.exposed,
                reconnect,
                idle_timeout: self.idle_timeout,
            },
        ))
    }
}

/// What [`Client::start`] needs besides the socket.
pub(crate) struct Settings {
    pub(crate) frame_capacity: usize,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) exposed: Vec<(String, Exposed)>,
    pub(crate) reconnect: Option<Reconnect>,
    pub(crate) idle_timeout: Option<Duration>,
}

/// Opens connections to one URL with one set of headers: once for [`ClientBuilder::connect`], again for each
/// reconnect attempt.
pub(crate) struct Opener {
    uri: Uri,
    host: String,
    port: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl Opener {
    /// Checks the URL and the headers.
    fn new(
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Opener, ClientError> {
        let uri =
            Uri::from_str(url).map_err(|err| ClientError::InvalidUrl(format!("`{url}`: {err}")))?;
        let (host, port) = match (uri.scheme_str(), uri.host()) {
            (Some("ws"), Some(host)) => (host.trim_matches(['[', ']']).to_owned(), uri.port_u16()),
            (Some("wss"), _) => {
                return Err(ClientError::InvalidUrl(format!(
                    "`{url}`: wss:// (TLS) is not supported; connect with ws:// behind a TLS proxy"
                )))
            }
            _ => {
                return Err(ClientError::InvalidUrl(format!(
                    "`{url}`: expected ws://host[:port]/path"
                )))
            }
        };
        let mut checked = Vec::with_capacity(headers.len());
        // The upgrade builder refuses the headers it sets itself; try each once here.
        let mut upgrade = tokio_websockets::ClientBuilder::from_uri(uri.clone());
        for (name, value) in headers {
            let invalid = || ClientError::InvalidHeader(format!("`{name}: {value}`"));
            let name = HeaderName::from_str(name).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            upgrade = upgrade
                .add_header(name.clone(), value.clone())
                .map_err(|_| invalid())?;
            checked.push((name, value));
        }
        Ok(Opener {
            uri,
            host,
            port: port.unwrap_or(80),
            headers: checked,
            timeout,
        })
    }

    /// Opens a connection: TCP, then the upgrade, within the connect timeout.
    pub(crate) async fn open(&self) -> Result<Socket, ClientError> {
        let mut upgrade = tokio_websockets::ClientBuilder::from_uri(self.uri.clone());
        for (name, value) in &self.headers {
            upgrade = upgrade
                .add_header(name.clone(), value.clone())
                .map_err(|_| ClientError::InvalidHeader(format!("`{name}`")))?;
        }
        let opening = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(ClientError::Connect)?;
            tcp.set_nodelay(true).map_err(ClientError::Connect)?;
            let (tap, head) = Tap::new(tcp);
            match upgrade.connect_on(tap).await {
                Ok((mut socket, _response)) => {
                    socket.get_mut().stop_recording();
                    Ok(socket)
                }
                Err(tokio_websockets::Error::Upgrade(
                    tokio_websockets::upgrade::Error::DidNotSwitchProtocols(status),
                )) => Err(ClientError::Refused {
                    status,
                    body: head.await.ok().and_then(|bytes| refusal_body(&bytes)),
                }),
                Err(err) => Err(ClientError::Handshake(TransportError(err))),
            }
        };
        tokio::time::timeout(self.timeout, opening)
            .await
            .map_err(|_| ClientError::ConnectTimeout(self.timeout))?
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exposed: Vec<&str> = self.exposed.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("frame_capacity", &self.frame_capacity)
            .field("exposed", &exposed)
            .field("reconnect", &self.reconnect)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// The JSON body of a refused upgrade, from the bytes read with its head.
fn refusal_body(response: &[u8]) -> Option<Value> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&response[head_end + 4..]).ok()
}

/// At most this much of the upgrade response is kept for [`ClientError::Refused`].
const RECORD_LIMIT: usize = 64 * 1024;

/// The TCP stream of a connection. During the upgrade it keeps a copy of what it read, because the WebSocket
/// library reports a refusal by status only: the copy, sent when the stream is dropped by the failed upgrade,
/// holds the response body. [`Tap::stop_recording`] ends that once the upgrade succeeded.
pub(crate) struct Tap {
    inner: TcpStream,
    record: Option<(Vec<u8>, oneshot::Sender<Vec<u8>>)>,
}

impl Tap {
    fn new(inner: TcpStream) -> (Tap, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        let record = Some((Vec::new(), tx));
        (Tap { inner, record }, rx)
    }

    fn stop_recording(&mut self) {
        self.record = None;
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some((bytes, tx)) = self.record.take() {
            let _ = tx.send(bytes);
        }
    }
}

impl AsyncRead for Tap {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some((bytes, _)) = &mut this.record {
            let new = &buf.filled()[before..];
            let room = RECORD_LIMIT.saturating_sub(bytes.len());
            bytes.extend_from_slice(&new[..new.len().min(room)]);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
