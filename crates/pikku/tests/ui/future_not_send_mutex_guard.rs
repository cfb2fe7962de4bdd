// A `std::sync::MutexGuard` lives across an `.await`, so the handler's future is not `Send`.
use std::sync::Mutex;

use pikku::prelude::*;

static COUNTER: Mutex<u64> = Mutex::new(0);

async fn bump(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>) -> u64 {
    let mut counter = COUNTER.lock().unwrap();
    tokio::task::yield_now().await;
    *counter += 1;
    *counter
}

fn main() {
    let _ = ChannelRoute::new("events", "/events").on_connect(bump);
}
