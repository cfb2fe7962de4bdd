//! The driver's connection to Redis: connecting, noticing loss, reconnecting with backoff.
//!
//! One RESP3 connection per node carries commands and pub/sub messages alike. The link owns its reconnect loop
//! instead of leaning on the client's automatic resubscription: when a connection is lost the loop reports it
//! to the hub, connects again, and reports the recovery, after which the hub subscribes every topic it still
//! needs. Publishing while no connection is up fails at once with [`RedisHubError::LinkDown`] rather than
//! waiting for a reconnect, so local code is never held up by the broker.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use pikku_core::hub::RemoteSink;
use redis::aio::{AsyncPushSender, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, RedisResult};
use tokio::sync::Notify;

use crate::inbound::Inbound;
use crate::target::Target;
use crate::RedisHubError;

/// First pause between connection attempts; doubles up to [`BACKOFF_MAX`]. The cap is low because a node that
/// cannot reach Redis cannot share anything: after a broker restart, every node is back within about a second.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command may wait for its answer before the connection counts as lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to a server or to a cluster; clones share it.
#[derive(Clone)]
enum Conn {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// The connection in use, with the signal that it was lost.
struct Live {
    conn: Conn,
    lost: Arc<Notify>,
}

/// The shared state of one node's link.
pub(crate) struct Link {
    target: Target,
    live: Mutex<Option<Live>>,
}

impl Link {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            live: Mutex::new(None),
        }
    }

    /// Keeps a connection up until the hub is gone. `first` is told when the first attempt has finished, one
    /// way or the other.
    pub(crate) async fn run(
        self: Arc<Self>,
        sink: RemoteSink,
        inbound: Inbound,
        first: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut first = Some(first);
        let mut backoff = BACKOFF_MIN;
        while !sink.is_closed() {
            let lost = Arc::new(Notify::new());
            match self.connect(inbound.sender(lost.clone())).await {
                Ok(conn) => {
                    *self.live.lock() = Some(Live {
                        conn,
                        lost: lost.clone(),
                    });
                    backoff = BACKOFF_MIN;
                    sink.connected();
                    if let Some(first) = first.take() {
                        let _ = first.send(());
                    }
                    wait_lost_or_closed(&lost, &sink).await;
                    self.live.lock().take();
                    if sink.is_closed() {
                        return;
                    }
                    sink.disconnected(&RedisHubError::LinkDown);
                }
                Err(err) => {
                    sink.disconnected(&err);
                    if let Some(first) = first.take() {
                        let _ = first.send(());
                    }
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn connect(&self, push: impl AsyncPushSender) -> Result<Conn, RedisHubError> {
        match &self.target {
            Target::Standalone(info) => {
                let client = redis::Client::open(info.clone())?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_push_sender(push);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::Standalone(conn))
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(1)
                    .push_sender(push)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs `op` on the live connection; a failure that means the connection is gone starts a reconnect.
    async fn with_conn<T, F>(&self, op: impl FnOnce(Conn) -> F) -> Result<T, RedisHubError>
    where
        F: std::future::Future<Output = RedisResult<T>>,
    {
        let (conn, lost) = {
            let live = self.live.lock();
            let live = live.as_ref().ok_or(RedisHubError::LinkDown)?;
            (live.conn.clone(), live.lost.clone())
        };
        op(conn).await.map_err(|err| {
            if err.is_unrecoverable_error() || err.is_timeout() {
                lost.notify_one();
            }
            RedisHubError::Redis(err)
        })
    }

    pub(crate) async fn subscribe(&self, channel: Vec<u8>) -> Result<(), RedisHubError> {
        self.with_conn(|conn| async move {
            match conn {
                Conn::Standalone(mut c) => c.subscribe(channel).await,
                Conn::Cluster(mut c) => c.ssubscribe(channel).await,
            }
        })
        .await
    }

    pub(crate) async fn unsubscribe(&self, channel: Vec<u8>) -> Result<(), RedisHubError> {
        self.with_conn(|conn| async move {
            match conn {
                Conn::Standalone(mut c) => c.unsubscribe(channel).await,
                Conn::Cluster(mut c) => c.sunsubscribe(channel).await,
            }
        })
        .await
    }

    pub(crate) async fn publish(
        &self,
        channel: Vec<u8>,
        payload: Bytes,
    ) -> Result<(), RedisHubError> {
        self.with_conn(|conn| async move {
            match conn {
                Conn::Standalone(mut c) => {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(&payload[..])
                        .exec_async(&mut c)
                        .await
                }
                // Sharded pub/sub: the message goes to the shard that owns the channel's slot, and only there.
                Conn::Cluster(mut c) => {
                    redis::cmd("SPUBLISH")
                        .arg(channel)
                        .arg(&payload[..])
                        .exec_async(&mut c)
                        .await
                }
            }
        })
        .await
    }
}

async fn wait_lost_or_closed(lost: &Notify, sink: &RemoteSink) {
    // The hub going away ends the link too; look every second, as nothing else would wake the loop.
    loop {
        tokio::select! {
            () = lost.notified() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if sink.is_closed() {
                    return;
                }
            }
        }
    }
}

/// `pause` plus up to half of it again, so nodes that lost Redis together do not all knock at once.
fn jittered(pause: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    pause + pause.mul_f64((random % 1000) as f64 / 2000.0)
}
