//! The rate-limit arrival checks of the pipeline, driven the way a runner drives them (no socket needed: the
//! checks are pure connection logic; the server-level behaviour is tested over sockets in pikku-server).

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use pikku_core::channel::Outgoing;
use pikku_core::runtime::{LiveChannel, UpgradeInput};
use pikku_core::{
    App, Channel, ChannelRoute, Connection, Ctx, DisconnectReason, OutFrame, Params, RateLimit,
};

async fn ack(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: serde_json::Value) {}

async fn live(app: App<(), ()>) -> LiveChannel<(), ()> {
    let input = UpgradeInput {
        path: "/c",
        query: None,
        headers: Default::default(),
        peer: None,
    };
    let live = app
        .into_runtime()
        .admit(input)
        .await
        .unwrap()
        .into_channel(None, Instant::now());
    live.open();
    live
}

fn drain(conn: &Connection) -> (Vec<OutFrame>, Option<(u16, String)>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = Vec::new();
    loop {
        let mut out = VecDeque::new();
        match conn.poll_outgoing(&mut cx, &mut out, true) {
            Poll::Ready(Outgoing::Frames) => frames.extend(out),
            Poll::Ready(Outgoing::Close(req)) => {
                frames.extend(out);
                return (frames, Some((req.code, req.reason.into_owned())));
            }
            Poll::Pending => return (frames, None),
        }
    }
}

#[tokio::test]
async fn without_a_limit_every_frame_passes() {
    let live =
        live(App::new(()).channel(ChannelRoute::new("c", "/c").auth(false).on_message(ack))).await;
    for _ in 0..10_000 {
        assert!(live.admit_text("hello"));
        assert!(live.admit_binary(1 << 20));
    }
    assert_eq!(drain(live.connection()), (Vec::new(), None));
}

#[tokio::test]
async fn empty_frames_and_rpc_replies_are_exempt_and_a_flood_is_closed() {
    let app = App::new(()).channel(
        ChannelRoute::new("c", "/c")
            .auth(false)
            .on_message(ack)
            .rate_limit(RateLimit::per_second(1).burst(1).close_after(2)),
    );
    let live = live(app).await;
    assert!(live.admit_text("first"));
    for _ in 0..100 {
        assert!(live.admit_text(""));
        assert!(live.admit_text(r#"{"action":"pikku-rpc-response","id":"7","ok":true,"result":1}"#));
    }
    // An invalid envelope is an ordinary message and counts.
    assert!(!live.admit_text(r#"{"action":"pikku-rpc-response"}"#));
    assert!(!live.admit_text("third"));
    assert!(!live.admit_text("fourth"));
    let (frames, close) = drain(live.connection());
    assert_eq!(
        frames,
        [OutFrame::text(
            r#"{"error":"Rate limit exceeded","errorName":"TooManyRequestsError"}"#
        )]
    );
    assert_eq!(close, Some((1008, "rate limit exceeded".to_owned())));
    assert_eq!(
        live.begin_disconnect(DisconnectReason::TransportError),
        DisconnectReason::RateLimited
    );
}
