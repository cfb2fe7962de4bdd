//! The generated client against the real conformance server: `tests/node/e2e.ts`, compiled with tsc together
//! with the generated file, runs in Node with the `ws` package. It checks replies, error frames, pushes, hub and
//! realtime events, binary frames, reverse RPC, sends queued before the socket opens, reconnection after the
//! server closes a socket and across a server restart on the same port (subscriptions re-sent), and validates
//! every text frame it received against `channels.schema.json`.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pikku::ChannelServer;
use pikku_conformance::{fixture_app, server_config, FixtureSettings, Recorder, Services, User};
use serde_json::{json, Value};
use support::{scratch, text, tsc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The conformance fixture served on `addr` (port 0 picks one), stoppable so that a new one can take the port.
struct Fixture {
    addr: SocketAddr,
    server: ChannelServer<Services, User>,
    stop: Arc<Notify>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Fixture {
    async fn start(addr: SocketAddr) -> Fixture {
        let settings = FixtureSettings::test();
        let server = ChannelServer::new(
            fixture_app(&settings, Recorder::default()),
            server_config(&settings),
        );
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(err) if tries < 50 => {
                    tries += 1;
                    eprintln!("bind {addr}: {err}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("bind {addr}: {err}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(
            server
                .clone()
                .serve_until(listener, async move { stopped.notified().await }),
        );
        Fixture {
            addr,
            server,
            stop,
            task,
        }
    }

    /// Closes every connection (1001 going away) and frees the port.
    async fn stop(self) {
        self.server.shutdown().await;
        self.stop.notify_one();
        if tokio::time::timeout(Duration::from_secs(10), &mut { self.task })
            .await
            .is_err()
        {
            panic!("the fixture server did not stop");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_works_against_the_conformance_server() {
    let dir = scratch("e2e");
    std::fs::copy(dir.parent().unwrap().join("e2e.ts"), dir.join("e2e.ts")).unwrap();
    let compiled = tsc(
        &dir,
        &["channels.gen.ts", "e2e.ts"],
        json!({
            "strict": true,
            "outDir": "build",
            "pretty": false,
            "target": "es2022",
            "lib": ["es2022"],
            "module": "commonjs",
            "moduleResolution": "node",
            "esModuleInterop": true,
            "types": ["node"],
            "exactOptionalPropertyTypes": true,
        }),
    );
    assert!(
        compiled.status.success(),
        "tsc failed:\n{}",
        text(&compiled)
    );

    let mut fixture = Fixture::start("127.0.0.1:0".parse().unwrap()).await;
    let addr = fixture.addr;
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("build/e2e.js"))
        .arg(format!("ws://{addr}"))
        .arg(dir.join("channels.schema.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed to run the client test");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });

    let mut restarts = 0;
    let result = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                eprintln!("node: {line}");
                continue;
            };
            if message["step"] == "restart" {
                fixture.stop().await;
                fixture = Fixture::start(addr).await;
                restarts += 1;
                stdin.write_all(b"restarted\n").await.unwrap();
                stdin.flush().await.unwrap();
            } else if message["done"] == true {
                return (Some(message), fixture);
            }
        }
        (None, fixture)
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let stderr = stderr_text.await.unwrap();
    let (result, fixture) =
        result.unwrap_or_else(|_| panic!("the Node client did not finish in time:\n{stderr}"));
    let result = result.unwrap_or_else(|| panic!("the Node client failed ({status:?}):\n{stderr}"));
    assert_eq!(restarts, 1);
    assert_eq!(
        result["checks"],
        json!([
            "queued-before-open",
            "replies",
            "error-frames",
            "pushes",
            "pikku-api",
            "binary",
            "reverse-rpc",
            "opening",
            "hub-events",
            "reconnect-after-close",
            "reconnect-resubscribe",
            "close",
            "schema"
        ]),
        "{stderr}"
    );
    assert!(
        result["validated"].as_u64().unwrap() > 50,
        "frames validated: {result}"
    );
    // Specific frame schemas were used, not only the catch-all.
    for def in [
        "events.route.action.create.replyFrame",
        "events.route.action.forbid.errorFrame",
        "events.capability.clientThing.request",
        "rooms.route.action.info.replyFrame",
    ] {
        assert!(
            result["counts"][def].as_u64().unwrap_or(0) > 0,
            "{def} unused: {result}"
        );
    }
    fixture.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
