// A plain `fn` is not a handler: handlers are `async fn`s.
use pikku::prelude::*;

fn hello(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> &'static str {
    "hello"
}

fn ping(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str {
    "pong"
}

fn main() {
    let _ = ChannelRoute::new("events", "/events").on_connect(hello);
    let _ = ChannelRoute::new("events", "/events").route("action", "ping", ping);
}
