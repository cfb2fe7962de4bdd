// The disconnection handler gets a `ClosedChannel`: the client is gone, so it cannot send, close or call it.
use pikku::prelude::*;

async fn bye(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
    let _ = ch.send("bye");
}

async fn close(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
    ch.close();
}

async fn ask(_ctx: Ctx<(), ()>, ch: ClosedChannel<Params>) {
    let _ = ch.remote_raw("confirm", None, None).await;
}

fn main() {
    let _ = ChannelRoute::new("events", "/events").on_disconnect(bye);
    let _ = ChannelRoute::new("events", "/events").on_disconnect(close);
    let _ = ChannelRoute::new("events", "/events").on_disconnect(ask);
}
