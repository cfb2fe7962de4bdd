//! The chat's protections, over real sockets through the same axum router as the binary: the page's
//! same-origin upgrade passes the default origin check while a foreign page's is refused, and a client flooding
//! `say` is refused and then closed while the others carry on.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use example_chat_rooms::{app, router, server_config};
use pikku::ChannelServer;
use pikku_client::{Client, ClientError, Frame};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> SocketAddr {
    let server = ChannelServer::new(app(), server_config());
    let router = router(&server);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("an answer within the timeout")
}

/// The status line and body of a raw upgrade of `/rooms/lobby` sent with `origin`, as a browser would.
async fn upgrade_from(addr: SocketAddr, origin: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /rooms/lobby HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = within(tcp.read(&mut chunk)).await.unwrap();
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response);
        if n == 0 || text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn the_page_origin_may_connect_and_a_foreign_one_may_not() {
    let addr = start().await;
    // The page connects to `location.host`, so its origin is the host it is served from.
    let (status, _) = upgrade_from(addr, &format!("http://{addr}")).await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let (status, body) = upgrade_from(addr, "https://evil.example").await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["name"], "ForbiddenError");
    assert_eq!(body["message"], "Origin not allowed");
}

#[tokio::test]
async fn a_flood_of_say_is_refused_then_closed_and_the_room_carries_on() {
    let addr = start().await;
    let connect = |path: &'static str| async move {
        let client = within(Client::connect(&format!("ws://{addr}{path}")))
            .await
            .unwrap();
        within(client.next_frame()).await.unwrap(); // the welcome
        client
    };
    let ada = connect("/rooms/lobby?name=ada").await;
    let spammer = connect("/rooms/lobby?name=spam").await;
    for i in 0..100 {
        spammer
            .route("action")
            .send("say", &json!({ "text": format!("spam {i}") }))
            .await
            .unwrap();
    }
    // Some lines get through (the burst), the first refusal gets an error frame, then the connection closes.
    let mut refused = 0;
    let close = loop {
        match within(spammer.next_frame()).await {
            Ok(Frame::Json(value)) if value.get("errorName").is_some() => {
                assert_eq!(
                    value,
                    json!({"action": "say", "error": "Rate limit exceeded", "errorName": "TooManyRequestsError"})
                );
                refused += 1;
            }
            Ok(_) => {}
            Err(ClientError::Closed(close)) => break close,
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_eq!(refused, 1);
    assert_eq!(
        (close.code, close.reason.as_str()),
        (1008, "rate limit exceeded")
    );

    // Ada saw at most the burst of spam and can still talk.
    let reply = within(
        ada.route("action")
            .call("say", &json!({"text": "still here"})),
    )
    .await;
    assert!(reply.is_ok(), "{reply:?}");
    let mut spam_seen = 0;
    loop {
        let Frame::Json(frame) = within(ada.next_frame()).await.unwrap() else {
            continue;
        };
        match frame["data"]["text"].as_str() {
            Some("still here") => break,
            Some(text) if text.starts_with("spam") => spam_seen += 1,
            _ => {}
        }
    }
    assert!(spam_seen <= 10, "{spam_seen}");
}
