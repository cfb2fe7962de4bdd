// A serializable struct returned as it is, instead of in `Ok(..)` or `Json(..)`.
use pikku::prelude::*;

#[derive(serde::Serialize)]
struct Created {
    id: u32,
}

async fn create(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> Created {
    Created { id: 1 }
}

fn main() {
    let _ = ChannelRoute::new("items", "/items").route("action", "create", create);
}
