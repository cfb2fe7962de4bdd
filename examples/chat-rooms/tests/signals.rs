//! The built binary stops gracefully on SIGTERM and SIGINT: every member gets 1001 `going away` and the
//! process exits with status 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pikku_testkit::ws::op;
use pikku_testkit::RawWs;

/// How long the test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// The chat binary on a free port, killed if the test ends before it exited.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-chat-rooms"))
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
                let _ = send.send(line);
            }
        });
        let addr = loop {
            let line = lines.recv_timeout(WAIT).expect("the listening line");
            // `chat on http://127.0.0.1:PORT/ (…)`
            if let Some((_, rest)) = line.split_once("chat on http://") {
                let addr = rest.split('/').next().unwrap_or_default();
                break addr
                    .parse()
                    .unwrap_or_else(|_| panic!("no address in {line:?}"));
            }
        };
        Self { child, addr }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn wait_for_exit(&mut self) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running after the signal");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn stops_gracefully_on(signal: &str) {
    let mut chat = Running::start();
    let mut members = Vec::new();
    for name in ["ada", "zoe"] {
        let mut ws = RawWs::connect(chat.addr, &format!("/rooms/lobby?name={name}")).await;
        ws.next_frame().await.expect("the welcome frame");
        members.push(ws);
    }
    chat.signal(signal);
    for ws in &mut members {
        // Skip room events (zoe joining) until the close frame.
        let payload = loop {
            let (_, opcode, payload) = ws.next_frame().await.expect("a close frame");
            if opcode == op::CLOSE {
                break payload;
            }
        };
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
        assert_eq!(&payload[2..], b"going away");
        ws.send(0x80 | op::CLOSE, &payload[..2]).await;
    }
    chat.wait_for_exit();
}

#[tokio::test]
async fn sigterm_closes_every_member_with_going_away_and_exits() {
    stops_gracefully_on("-TERM").await;
}

#[tokio::test]
async fn sigint_closes_every_member_with_going_away_and_exits() {
    stops_gracefully_on("-INT").await;
}
