//! `pushpin-bench-server --port <P> --backend worker|echo [--store memory|redis://…|postgres://…]`: a private
//! Pushpin listening on `127.0.0.1:<P>` in front of a backend served by this process, for `bench/pushpin.sh`.
//!
//! - `worker`: the bench contract (see `bench-server`) served statelessly by a pikku-pushpin worker, with its
//!   connections in the given stores (default `memory`).
//! - `echo`: the gateway's own ceiling, a trivial WebSocket-over-HTTP backend with no framework: it accepts
//!   every `OPEN` and sends every message back as it came (the bench's echo reply needs only its `t`).
//!
//! Pushpin's processes are children of this one, so `/proc/<this pid>/stat` counts the backend's CPU alone.
//! Prints `listening on 127.0.0.1:<P>` once Pushpin proxies to the backend, and stops both on SIGTERM or
//! SIGINT.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use pikku::pushpin::launch::{PushpinConfig, PushpinProcess};
use pikku::pushpin::{
    encode_events, parse_events, GripVerifier, ParseLimits, PushpinWorker, WorkerConfig, WsEvent,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: pushpin-bench-server --port <P> --backend worker|echo [--store memory|<url>]"
    );
    ExitCode::from(64)
}

/// The trivial backend: each event answered in kind, messages sent back unchanged.
async fn echo_events(headers: HeaderMap, body: Bytes) -> axum::response::Response {
    if headers.get("connection-id").is_none() {
        return (StatusCode::BAD_REQUEST, "missing Connection-Id").into_response();
    }
    let Ok(events) = parse_events(&body, &ParseLimits::default()) else {
        return (StatusCode::BAD_REQUEST, "malformed events").into_response();
    };
    let answer: Vec<WsEvent> = events
        .into_iter()
        .filter_map(|event| match event {
            WsEvent::Open | WsEvent::Text(_) | WsEvent::Binary(_) => Some(event),
            WsEvent::Ping(payload) => Some(WsEvent::Pong(payload)),
            WsEvent::Close { code, .. } => Some(WsEvent::Close {
                code,
                reason: String::new(),
            }),
            WsEvent::Pong(_) | WsEvent::Disconnect => None,
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "application/websocket-events")],
        encode_events(&answer),
    )
        .into_response()
}

fn main() -> ExitCode {
    let (mut port, mut backend, mut store) = (None, None, "memory".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(v)) => match v.parse::<u16>() {
                Ok(p) => port = Some(p),
                Err(_) => return usage(),
            },
            ("--backend", Some(v)) if v == "worker" || v == "echo" => backend = Some(v),
            ("--store", Some(url)) => store = url,
            _ => return usage(),
        }
    }
    let (Some(port), Some(backend)) = (port, backend) else {
        return usage();
    };
    // One thread, as `bench-server`: the backend's CPU per message compares with the embedded server's.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pushpin-bench-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let stop = pikku::shutdown_signal();
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let backend_addr = listener.local_addr()?;
        let config = PushpinConfig::new()
            .http_port(port)
            .target(SocketAddr::from((Ipv4Addr::LOCALHOST, backend_addr.port())));
        let pushpin = tokio::task::spawn_blocking(move || PushpinProcess::start(config))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        let (publish_url, sig_key) = (pushpin.publish_url(), pushpin.sig_key().to_owned());
        let (stop_backend, backend_stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = async {
            match backend.as_str() {
                "worker" => {
                    let stores = pikku::stores_from_url(&store)
                        .await
                        .map_err(std::io::Error::other)?;
                    let config =
                        WorkerConfig::new(publish_url).grip_verifier(GripVerifier::hs256(sig_key));
                    let worker = PushpinWorker::new(pikku_bench::app::app(), stores, config)
                        .map_err(std::io::Error::other)?;
                    worker
                        .serve(listener, async {
                            let _ = backend_stopped.await;
                        })
                        .await
                }
                _ => {
                    let router = axum::Router::new().fallback(echo_events);
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async {
                            let _ = backend_stopped.await;
                        })
                        .await
                }
            }
        };
        let announce = async {
            let probe = tokio::task::spawn_blocking(move || {
                pushpin
                    .wait_until_proxying(Duration::from_secs(10))
                    .map(|()| pushpin)
            });
            let pushpin = probe
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?;
            println!("listening on 127.0.0.1:{port}");
            stop.await;
            let _ = stop_backend.send(());
            tokio::task::spawn_blocking(move || pushpin.stop())
                .await
                .map_err(std::io::Error::other)
        };
        let (served, announced) = tokio::join!(serve, announce);
        served.and(announced)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pushpin-bench-server: {err}");
            ExitCode::FAILURE
        }
    }
}
