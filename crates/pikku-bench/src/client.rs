//! The load generator's WebSocket client: tokio-websockets over a `TcpSocket` bound to a rotating
//! loopback source address.
//!
//! One source address has about 28,000 ephemeral ports and closed connections linger in
//! TIME_WAIT, so connection-heavy scenarios (`idle` at 19,000, `connect`) spread their sockets over
//! `127.0.0.1..=127.0.0.N` (`--source-ips N`) when the server is on loopback.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use futures_util::SinkExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_websockets::{ClientBuilder, Message, Payload, WebSocketStream};

use crate::Result;

/// How long a TCP connect plus WebSocket upgrade may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the setup of one connection in [`Connector::open_many`] may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A client WebSocket connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Opens connections to one `ws://` URL.
pub struct Connector {
    url: String,
    addr: SocketAddr,
    builder: ClientBuilder<'static>,
    sources: Vec<IpAddr>,
    next_source: Cell<usize>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.url)
            .field("addr", &self.addr)
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Resolves `url` (`ws://host[:port]/path`); with a loopback IPv4 server and `source_ips > 0`,
    /// connections rotate over the source addresses `127.0.0.1..=127.0.0.<source_ips>`.
    pub async fn new(url: &str, source_ips: u8) -> Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("--url must start with ws:// (got `{url}`)"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&authority)
            .await?
            .next()
            .ok_or_else(|| format!("cannot resolve `{authority}`"))?;
        let builder = ClientBuilder::new()
            .uri(url)
            .map_err(|e| format!("bad --url `{url}`: {e}"))?;
        let sources = match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (1..=source_ips)
                .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            url: url.to_owned(),
            addr,
            builder,
            sources,
            next_source: Cell::new(0),
        })
    }

    /// The URL connections go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The request target of the URL: its path and query (`/bench`), for hand-made upgrades.
    pub fn target(&self) -> &str {
        let rest = self.url.strip_prefix("ws://").unwrap_or(&self.url);
        rest.find('/').map_or("/", |i| &rest[i..])
    }

    /// Opens a TCP connection (`TCP_NODELAY`) and completes the WebSocket upgrade, within
    /// [`CONNECT_TIMEOUT`].
    ///
    /// When a source address has run out of ports, the next ones are tried.
    pub async fn connect(&self) -> Result<Ws> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_unbounded())
            .await
            .map_err(|_| format!("no WebSocket upgrade within {CONNECT_TIMEOUT:?}"))?
    }

    async fn connect_unbounded(&self) -> Result<Ws> {
        let tcp = self.open_tcp().await?;
        let (ws, _response) = self.builder.connect_on(tcp).await?;
        Ok(ws)
    }

    /// Opens a plain TCP connection to the server (`TCP_NODELAY`) from the next source address,
    /// trying the others when one has run out of ports; for clients that speak the protocol by
    /// hand (the `attack` scenario).
    pub async fn open_tcp(&self) -> Result<TcpStream> {
        let attempts = self.sources.len().max(1);
        let mut last_err = None;
        for _ in 0..attempts {
            match self.tcp().await {
                Ok(tcp) => {
                    tcp.set_nodelay(true)?;
                    return Ok(tcp);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                    ) =>
                {
                    last_err = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_err.map_or_else(|| "connect failed".into(), Into::into))
    }

    async fn tcp(&self) -> io::Result<TcpStream> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !self.sources.is_empty() {
            let i = self.next_source.get();
            self.next_source.set((i + 1) % self.sources.len());
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::new(self.sources[i], 0))?;
        }
        socket.connect(self.addr).await
    }

    /// Opens `n` connections, at most `concurrency` at a time, each finished by `setup` (for
    /// example a subscription) within [`SETUP_TIMEOUT`]; results come back in index order.
    pub async fn open_many<F, Fut, T>(
        &self,
        n: usize,
        concurrency: usize,
        setup: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(usize, Ws) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let setup = &setup;
        stream::iter(0..n)
            .map(|i| async move {
                let ws = self.connect().await?;
                tokio::time::timeout(SETUP_TIMEOUT, setup(i, ws))
                    .await
                    .map_err(|_| format!("connection {i}: setup took over {SETUP_TIMEOUT:?}"))?
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }
}

/// Reads the next data message's payload; ping/pong are answered by the codec and skipped.
///
/// Fails when the server closes the connection or the read fails.
pub async fn next_data(ws: &mut Ws) -> Result<Payload> {
    loop {
        match ws.next().await {
            Some(Ok(m)) if m.is_text() || m.is_binary() => return Ok(m.into_payload()),
            Some(Ok(m)) if m.is_close() => return Err("server closed the connection".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("server closed the connection".into()),
        }
    }
}

/// Sends one text message and flushes.
pub async fn send_text(ws: &mut Ws, text: String) -> Result<()> {
    ws.send(Message::text(text)).await?;
    Ok(())
}

/// Sends `{"action":"sub","topic":<topic>}` and waits for the `{"action":"sub"}` reply.
pub async fn subscribe(ws: &mut Ws, topic: &str) -> Result<()> {
    send_text(ws, format!(r#"{{"action":"sub","topic":"{topic}"}}"#)).await?;
    loop {
        let reply = next_data(ws).await?;
        if crate::json::is_error(&reply) {
            return Err(format!("sub refused: {}", String::from_utf8_lossy(&reply)).into());
        }
        if crate::json::str_field(&reply, "action") == Some("sub") {
            return Ok(());
        }
    }
}

/// Closes with the WebSocket close handshake, waiting at most `limit` for the server's close.
pub async fn close(mut ws: Ws, limit: Duration) {
    let _ = tokio::time::timeout(limit, ws.close()).await;
}
