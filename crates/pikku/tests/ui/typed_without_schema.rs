use pikku::{typed, Channel, ChannelRoute, Ctx, Params};

// `typed(..)` needs a JSON Schema for the message type, which `Rename` does not derive.
#[derive(serde::Deserialize)]
struct Rename {
    name: String,
}

async fn rename(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Rename) -> String {
    input.name
}

fn main() {
    let _ = ChannelRoute::new("profile", "/profile").route("action", "rename", typed(rename));
}
