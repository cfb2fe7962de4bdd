// An `Rc` lives across an `.await`, so the handler's future is not `Send`.
use std::rc::Rc;

use pikku::prelude::*;

async fn count(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> u64 {
    let shared = Rc::new(1);
    tokio::task::yield_now().await;
    *shared
}

fn main() {
    let _ = ChannelRoute::new("events", "/events").route("action", "count", count);
}
