//! Smoke test: every scenario runs for about a second against the no-framework baseline server
//! and reports a result with non-zero throughput. This keeps the harness from rotting; it asserts
//! nothing about speed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use std::time::Duration;

use pikku_bench::client::{next_data, send_text, Connector, Ws};
use serde_json::{json, Value};

/// A server on a free port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// The no-framework baseline.
    fn start() -> Self {
        Self::spawn(env!("CARGO_BIN_EXE_baseline-server"))
    }

    /// Starts `program --port 0` and reads the port from its first stdout line
    /// (`... listening on 127.0.0.1:<port>`).
    fn spawn(program: &str) -> Self {
        let mut child = Command::new(program)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in `{line}`"));
        Self { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `pikku-bench SCENARIO` against `server`; returns its exit code and its `RESULT` object.
fn run_against(server: &Server, scenario: &str, flags: &[&str]) -> (Option<i32>, Value) {
    let url = format!("ws://127.0.0.1:{}/bench", server.port);
    let pid = server.child.id().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_pikku-bench"))
        .args([scenario, "--url", &url, "--server-pid", &pid])
        .args(["--source-ips", "4"])
        .args(flags)
        .output()
        .expect("run pikku-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT line from pikku-bench {scenario} ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let result: Value = serde_json::from_str(line).expect("RESULT is JSON");
    assert_eq!(result["scenario"], scenario);
    (out.status.code(), result)
}

/// Runs one scenario against a fresh baseline server and returns its `RESULT` object.
fn run(scenario: &str, flags: &[&str]) -> Value {
    let server = Server::start();
    let (code, result) = run_against(&server, scenario, flags);
    assert_eq!(code, Some(0), "pikku-bench {scenario} failed: {result}");
    assert_eq!(result["failures"], 0, "{result}");
    assert!(result["server_rss_kib"].as_u64().is_some() || scenario == "idle");
    result
}

fn positive(result: &Value, key: &str) {
    let x = result[key].as_f64().unwrap_or(0.0);
    assert!(x > 0.0, "{key} should be > 0 in {result}");
}

#[test]
fn echo_reports_throughput() {
    let r = run(
        "echo",
        &[
            "--connections",
            "4",
            "--window",
            "2",
            "--payload",
            "16",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    positive(&r, "msgs_per_s");
    positive(&r, "latency_p99_us");
    positive(&r, "server_cpu_us_per_msg");
}

#[test]
fn fanout_reports_deliveries() {
    let r = run(
        "fanout",
        &[
            "--subscribers",
            "20",
            "--window",
            "2",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    positive(&r, "deliveries_per_s");
    positive(&r, "publishes_per_s");
    assert_eq!(r["self_deliveries"], 0);
}

#[test]
fn idle_reports_memory_and_liveness() {
    let r = run(
        "idle",
        &[
            "--connections",
            "300",
            "--topics",
            "100",
            "--sample",
            "10",
            "--duration",
            "0.5",
        ],
    );
    positive(&r, "setup_conns_per_s");
    assert!(r["rss_per_conn_bytes"].is_number(), "{r}");
    assert_eq!(r["alive"], 10);
    assert_eq!(r["dead"], 0);
}

#[test]
fn connect_reports_rate() {
    let r = run(
        "connect",
        &["--concurrency", "4", "--duration", "1", "--warmup", "0.2"],
    );
    positive(&r, "conns_per_s");
}

#[test]
fn baseline_answers_the_contract_shapes() {
    contract_against(Server::start());
}

#[test]
fn bench_server_answers_the_contract_shapes() {
    contract_against(Server::spawn(env!("CARGO_BIN_EXE_bench-server")));
}

/// The exact replies other programs rely on (the contract in `bench-server`'s docs).
fn contract_against(server: Server) {
    let url = format!("ws://127.0.0.1:{}/bench", server.port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(contract(&url));
}

async fn reply(ws: &mut Ws) -> Value {
    let payload = tokio::time::timeout(Duration::from_secs(5), next_data(ws))
        .await
        .expect("a reply within 5 s")
        .expect("a data frame");
    serde_json::from_slice(&payload).expect("JSON reply")
}

async fn contract(url: &str) {
    let connector = Connector::new(url, 1).await.unwrap();
    let mut a = connector.connect().await.unwrap();
    let mut b = connector.connect().await.unwrap();

    send_text(&mut a, r#"{"action":"echo","seq":1,"t":5,"p":"xx"}"#.into())
        .await
        .unwrap();
    assert_eq!(
        reply(&mut a).await,
        json!({"seq":1,"t":5,"p":"xx","action":"echo"})
    );

    for ws in [&mut a, &mut b] {
        send_text(ws, r#"{"action":"sub","topic":"t"}"#.into())
            .await
            .unwrap();
        assert_eq!(reply(ws).await, json!({"action":"sub"}));
    }
    send_text(&mut a, r#"{"action":"pub","topic":"t","t":7}"#.into())
        .await
        .unwrap();
    assert_eq!(reply(&mut b).await, json!({"topic":"t","data":{"t":7}}));
    // The sender is excluded: its next frame is the ack, then the echo after it.
    assert_eq!(reply(&mut a).await, json!({"action":"pub"}));
    send_text(&mut a, r#"{"action":"echo","seq":2}"#.into())
        .await
        .unwrap();
    assert_eq!(reply(&mut a).await, json!({"action":"echo","seq":2}));

    send_text(&mut a, r#"{"action":"nosuch"}"#.into())
        .await
        .unwrap();
    assert_eq!(reply(&mut a).await["errorName"], "NotFoundError");
}

/// `bench/run.sh` stops `bench-server` with SIGTERM: it closes open connections with 1001 `going away` and
/// exits with status 0, at once when none is open.
#[test]
fn bench_server_exits_cleanly_on_sigterm() {
    use futures_util::StreamExt;

    for with_client in [false, true] {
        let mut server = Server::spawn(env!("CARGO_BIN_EXE_bench-server"));
        let url = format!("ws://127.0.0.1:{}/bench", server.port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = None;
            if with_client {
                let connector = Connector::new(&url, 1).await.unwrap();
                let mut ws = connector.connect().await.unwrap();
                send_text(&mut ws, json!({"action": "echo", "seq": 1}).to_string())
                    .await
                    .unwrap();
                reply(&mut ws).await;
                client = Some(ws);
            }
            let status = Command::new("kill")
                .args(["-TERM", &server.child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success());
            if let Some(mut ws) = client {
                let close = loop {
                    let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
                        .await
                        .expect("a close within 5 s")
                        .expect("a close frame, not EOF")
                        .expect("a close frame, not an error");
                    if message.is_close() {
                        break message;
                    }
                };
                let (code, reason) = close.as_close().expect("a close frame");
                assert_eq!((u16::from(code), reason), (1001, "going away"));
            }
        });
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still running after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}");
    }
}

/// Runs a scenario against a fresh `bench-server` (the framework, whose limits the hostile-client
/// scenarios probe) and returns its `RESULT` object; the run must complete, whatever it measured.
fn run_framework(scenario: &str, flags: &[&str]) -> Value {
    let server = Server::spawn(env!("CARGO_BIN_EXE_bench-server"));
    let (code, result) = run_against(&server, scenario, flags);
    assert!(
        code == Some(0) || code == Some(3),
        "pikku-bench {scenario} could not complete ({code:?}): {result}"
    );
    result
}

fn number(result: &Value, key: &str) -> f64 {
    result[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} should be a number in {result}"))
}

#[test]
fn attack_header_reports_memory_per_connection() {
    let r = run_framework(
        "attack",
        &["--mode", "header", "--connections", "20", "--hold", "0.3"],
    );
    assert_eq!(r["mode"], "header");
    assert_eq!(r["opened"], 20, "{r}");
    assert_eq!(r["bytes_per_conn"], 14);
    assert_eq!(r["bytes_written"], 20 * 14);
    number(&r, "rss_per_conn_kib");
    number(&r, "attack_rss_per_conn_kib");
    // The server holds a descriptor per attacking connection.
    assert!(number(&r, "server_fds_upgraded") >= number(&r, "server_fds_before") + 20.0);
    assert!(r["close_codes"].is_object());
}

#[test]
fn attack_partial_sends_all_but_the_last_byte() {
    let r = run_framework(
        "attack",
        &[
            "--mode",
            "partial",
            "--connections",
            "5",
            "--frame-bytes",
            "65536",
            "--hold",
            "0.3",
        ],
    );
    assert_eq!(r["partial_bytes"], 65535);
    // 14 header bytes, then the payload but its last byte.
    assert_eq!(r["bytes_per_conn"], 14 + 65535);
    number(&r, "rss_growth_mib");
    number(&r, "stalled_writes");
}

#[test]
fn attack_drip_reports_closes() {
    let r = run_framework(
        "attack",
        &[
            "--mode",
            "drip",
            "--connections",
            "3",
            "--drip-ms",
            "50",
            "--hold",
            "0.5",
        ],
    );
    assert!(number(&r, "bytes_dripped") > 0.0, "{r}");
    let closed = number(&r, "closed_by_server");
    assert_eq!(closed + number(&r, "still_open"), 3.0, "{r}");
}

#[test]
fn attack_json_hold_reports_peak_and_retained_memory() {
    let r = run_framework(
        "attack",
        &[
            "--mode",
            "json-hold",
            "--messages",
            "2",
            "--payload",
            "50000",
            "--hold",
            "0.3",
        ],
    );
    assert_eq!(r["messages_sent_total"], 2);
    // The echo route answers both messages of this size.
    assert_eq!(r["replies_received"], 2, "{r}");
    assert!(number(&r, "server_rss_peak_kib") >= number(&r, "server_rss_before_kib"));
    number(&r, "rss_retained_mib");
}

#[test]
fn flood_reports_bystanders_and_the_flooder() {
    let r = run_framework(
        "flood",
        &[
            "--subscribers",
            "10",
            "--flood-rate",
            "200",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    assert!(number(&r, "publishes_sent") > 0.0, "{r}");
    assert!(number(&r, "publishes_accepted") > 0.0, "{r}");
    assert!(number(&r, "deliveries") > 0.0, "{r}");
    assert!(number(&r, "echo_samples") > 0.0, "{r}");
    assert!(number(&r, "quiet_echo_samples") > 0.0, "{r}");
    assert!(number(&r, "connect_samples") > 0.0, "{r}");
    assert!(r["flooder_closed"].is_boolean());
}

#[test]
fn soak_writes_one_csv_row_per_sample() {
    let dir = std::env::temp_dir().join(format!("pikku-soak-{}", std::process::id()));
    let csv = dir.join("soak.csv");
    let r = run_framework(
        "soak",
        &[
            "--connections",
            "60",
            "--echoers",
            "5",
            "--topics",
            "4",
            "--publish-rate",
            "20",
            "--churn-per-s",
            "10",
            "--duration-secs",
            "2",
            "--sample-secs",
            "0.5",
            "--out",
            csv.to_str().expect("UTF-8 temp path"),
        ],
    );
    let text = std::fs::read_to_string(&csv).expect("the CSV");
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    assert_eq!(header, pikku_bench::scenario::soak::COLUMNS);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // A row at the start and one per half second after it.
    assert!(rows.len() >= 4, "{text}");
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{text}");
        let rss: u64 = row[1].parse().expect("server RSS in every row");
        assert!(rss > 0);
    }
    assert_eq!(r["rows"], rows.len() as u64);
    assert!(number(&r, "server_fds_max") >= 60.0, "{r}");
    assert!(number(&r, "server_rss_kib_max") > 0.0);
    assert!(number(&r, "conns_open_min") > 0.0, "{r}");
    number(&r, "echo_p99_max_us");
    number(&r, "errors");
}
