// The reply type does not implement `serde::Serialize`.
use pikku::prelude::*;

struct Created {
    id: u32,
}

async fn create(
    _ctx: Ctx<(), ()>,
    _ch: Channel<Params, ()>,
    _in: (),
) -> Result<Created, ChannelError> {
    Ok(Created { id: 1 })
}

fn main() {
    let _ = ChannelRoute::new("items", "/items").on_message(create);
}
