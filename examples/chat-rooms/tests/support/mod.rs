//! The built chat binary as a child process of a test.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// The chat binary on a free port, killed if the test ends before it exited.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
}

impl Running {
    /// The binary with `--port 0` and `args`.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-chat-rooms"))
            .args(["--port", "0"])
            .args(args)
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

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    pub fn wait_for_exit(&mut self) {
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
