//! The built binary stops gracefully on SIGTERM, as `docker stop`, Kubernetes and systemd send it: every client
//! gets 1001 `going away`, every onDisconnect runs (it logs `disconnected`), and the process exits with status 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pikku_testkit::ws::op;
use pikku_testkit::RawWs;

/// How long the test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// The binary, killed if the test ends before it exited.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-auth-session"))
            .args(["--port", "0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`; returns it.
    fn line_with(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no log line with {text:?} in:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line logged until the process closed its output.
    fn rest(&mut self) -> &[String] {
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        &self.seen
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_closes_every_client_with_going_away_and_runs_on_disconnect() {
    let mut server = Running::start();
    let listening = server.line_with("serving channels");
    let addr: SocketAddr = listening
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening:?}"));

    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = RawWs::connect(addr, "/account").await;
        let (_, opcode, _) = ws.next_frame().await.expect("the welcome frame");
        assert_eq!(opcode, op::TEXT);
        clients.push(ws);
    }

    let stopped_at = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());

    for ws in &mut clients {
        let (_, opcode, payload) = ws.next_frame().await.expect("a close frame");
        assert_eq!(opcode, op::CLOSE, "{payload:?}");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
        assert_eq!(&payload[2..], b"going away");
        ws.send(0x80 | op::CLOSE, &payload[..2]).await;
        ws.expect_end().await;
    }

    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        // Well within the default shutdown timeout (30 s), as every client answered its close at once.
        assert!(stopped_at.elapsed() < WAIT, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let disconnects = server
        .rest()
        .iter()
        .filter(|l| l.contains("disconnected") && l.contains("reason=shutdown"))
        .count();
    assert_eq!(disconnects, 3, "{}", server.seen.join("\n"));
}
