// The disconnection handler takes a `Channel` instead of a `ClosedChannel`.
use pikku::prelude::*;

async fn bye(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) {}

fn main() {
    let _ = ChannelRoute::new("events", "/events").on_disconnect(bye);
}
