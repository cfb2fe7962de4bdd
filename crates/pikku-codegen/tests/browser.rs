//! The generated client in headless Chromium against the conformance server: typed calls, a typed rejection,
//! binary frames, reverse RPC, realtime events and a reconnect, over the browser's own WebSocket.
//!
//! Needs `chromium` on the `PATH` (`.ci/run` installs it); without it the test fails rather than skips.

mod support;

use std::time::Duration;

use pikku_conformance::{FixtureSettings, TestServer};
use serde_json::{json, Value};
use support::{scratch, text, tsc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Reads one HTTP request: method, path and body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_works_in_a_browser() {
    let dir = scratch("browser");
    std::fs::copy(
        dir.parent().unwrap().join("browser.js"),
        dir.join("browser.js"),
    )
    .unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>pikku</title><script type=\"module\" src=\"browser.js\"></script>\n",
    )
    .unwrap();
    let compiled = tsc(
        &dir,
        &["channels.gen.ts"],
        json!({"strict": true, "outDir": "build", "target": "es2022", "lib": ["es2022", "dom"],
               "module": "es2022", "types": [], "pretty": false}),
    );
    assert!(
        compiled.status.success(),
        "tsc failed:\n{}",
        text(&compiled)
    );

    let server = TestServer::start(FixtureSettings::test()).await;
    let pages = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pages_addr = pages.local_addr().unwrap();
    let (results_tx, mut results) = mpsc::channel::<Value>(1);
    let root = dir.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = pages.accept().await else {
                return;
            };
            let root = root.clone();
            let results_tx = results_tx.clone();
            tokio::spawn(async move {
                let Some((method, path, body)) = read_request(&mut stream).await else {
                    return;
                };
                let path = path.split('?').next().unwrap_or("/").to_owned();
                let (status, kind, content) = if method == "POST" && path == "/result" {
                    let _ = results_tx
                        .send(serde_json::from_slice(&body).unwrap_or(Value::Null))
                        .await;
                    ("200 OK", "text/plain", Vec::new())
                } else {
                    let file = root.join(path.trim_start_matches('/'));
                    let kind = if path.ends_with(".html") {
                        "text/html"
                    } else {
                        "text/javascript"
                    };
                    match std::fs::read(&file) {
                        Ok(content) if !path.contains("..") => ("200 OK", kind, content),
                        _ => ("404 Not Found", "text/plain", Vec::new()),
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    content.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&content).await;
            });
        }
    });

    let profile = dir.join("profile");
    let url = format!("http://{pages_addr}/index.html?ws=ws://{}", server.addr());
    let mut chromium = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium must be installed for the browser test");
    let got = tokio::time::timeout(Duration::from_secs(60), results.recv())
        .await
        .expect("the page posted its results in time")
        .unwrap();
    let _ = chromium.kill().await;
    assert_eq!(
        got,
        json!({
            "stateBeforeOpen": "connecting",
            "auth": {"authResult": true},
            "create": {"id": 1, "title": "from a browser"},
            "forbid": [true, "ForbiddenError", "Permission denied"],
            "binary": [3, 2, 1],
            "rev": {"remoteSaid": {"browser": true, "input": {"q": 1}}},
            "news": {"hi": "browser"},
            "reconnected": true,
            "primAfterReconnect": "valid",
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
}
