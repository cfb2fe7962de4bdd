// The connection handler reads the opening data as `Room`, the message handlers as `Params`: all handlers of a
// channel must take the same `Channel<O, _, SS>`.
use pikku::prelude::*;

#[derive(serde::Deserialize)]
struct Room {
    #[serde(rename = "roomId")]
    room_id: String,
}

async fn joined(_ctx: Ctx<(), ()>, ch: Channel<Room, ()>) -> String {
    ch.opening_data().room_id.clone()
}

async fn say(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, text: String) -> String {
    text
}

fn main() {
    let _ = ChannelRoute::new("rooms", "/rooms/:roomId")
        .on_connect(joined)
        .route("action", "say", say);
    let _ = ChannelRoute::new("rooms", "/rooms/:roomId")
        .on_connect(joined)
        .route("action", "say", Route::new(say).auth(false));
}
