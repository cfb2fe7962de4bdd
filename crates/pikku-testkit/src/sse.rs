//! A raw HTTP/1.1 client for Server-Sent Events streams: sends one `GET`, decodes a chunked body and splits it
//! into events and comments.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// A raw HTTP/1.1 client for event streams: it decodes the chunked body and splits it into events.
#[derive(Debug)]
pub struct SseClient {
    tcp: TcpStream,
    /// The response status.
    pub status: u16,
    /// The response head, status line included.
    pub head: String,
    raw: Vec<u8>,
    chunked: bool,
    /// Decoded body text not yet taken by [`next_block`](Self::next_block) (the whole body of a refusal).
    pub body: String,
    ended: bool,
    /// The body's last chunk arrived (not just the end of the connection).
    pub terminated: bool,
}

impl SseClient {
    /// Sends `GET path` with `Accept: text/event-stream` and the `extra` headers; reads the response head and
    /// whatever body came with it.
    ///
    /// # Panics
    /// When the server does not answer with a head within [`WAIT`].
    pub async fn open(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> SseClient {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                .await
                .expect("a response head in time")
                .unwrap();
            assert!(n > 0, "closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
        let raw = raw[head_end + 4..].to_vec();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut client = SseClient {
            tcp,
            status,
            head,
            raw,
            chunked,
            body: String::new(),
            ended: false,
            terminated: false,
        };
        client.decode();
        client
    }

    /// The value of a response header (case-insensitive name).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Moves complete chunks from `raw` into `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.push_str(&String::from_utf8_lossy(&self.raw));
            self.raw.clear();
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.raw[..line_end]).unwrap().trim(),
                16,
            )
            .unwrap();
            if size == 0 {
                self.ended = true;
                self.terminated = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body
                .push_str(std::str::from_utf8(&self.raw[start..start + size]).unwrap());
            self.raw.drain(..start + size + 2);
        }
    }

    /// Reads more; false once the stream ended or the connection closed.
    ///
    /// # Panics
    /// When nothing arrives within `wait`.
    pub async fn read_more(&mut self, wait: Duration) -> bool {
        if self.ended {
            return false;
        }
        let mut buf = [0u8; 8192];
        match tokio::time::timeout(wait, self.tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "nothing arrived within {wait:?}; body so far: {:?}",
                self.body
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.ended = true;
                false
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.decode();
                true
            }
        }
    }

    /// The next event or comment block, without its blank line.
    ///
    /// # Panics
    /// When the stream ends first or nothing arrives within [`WAIT`].
    pub async fn next_block(&mut self) -> String {
        loop {
            if let Some(end) = self.body.find("\n\n") {
                let block = self.body[..end].to_owned();
                self.body.drain(..end + 2);
                return block;
            }
            assert!(
                self.read_more(WAIT).await,
                "the stream ended; body left: {:?}",
                self.body
            );
        }
    }

    /// The next event's data, skipping comments (heartbeats).
    ///
    /// # Panics
    /// As [`next_block`](Self::next_block), or when the data is not JSON.
    pub async fn next_data(&mut self) -> Value {
        loop {
            let block = self.next_block().await;
            if block.starts_with(':') {
                continue;
            }
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            return serde_json::from_str(&data.join("\n")).unwrap();
        }
    }

    /// Reads until the stream ends; panics if it does not within `wait`.
    ///
    /// # Panics
    /// When the stream is still open after `wait`.
    pub async fn until_closed(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while self.read_more(deadline - tokio::time::Instant::now()).await {}
    }
}
