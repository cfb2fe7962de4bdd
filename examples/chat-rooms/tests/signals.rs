//! The built binary stops gracefully on SIGTERM and SIGINT: every member gets 1001 `going away` and the
//! process exits with status 0.

mod support;

use pikku_testkit::ws::op;
use pikku_testkit::RawWs;
use support::Running;

async fn stops_gracefully_on(signal: &str) {
    let mut chat = Running::start(&[]);
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
