//! Compile-time contracts: the types users hold or move across tasks are `Send + Sync + 'static`, and the futures
//! of the pipeline can be spawned. A regression here is a compile error in this file.

use pikku_core::runtime::{Admitted, LiveChannel};
use pikku_core::{
    App, AppRuntime, Channel, ChannelError, ChannelRoute, ClosedChannel, Connection, Ctx, EventHub,
    Params, RpcError, SendError,
};

fn send_sync<T: Send + Sync + 'static>() {}
fn send<T: Send + 'static>(_: &T) {}

#[derive(Clone)]
struct Services;

#[derive(Clone)]
struct User;

#[test]
fn public_handles_are_send_and_sync() {
    send_sync::<App<Services, User>>();
    send_sync::<AppRuntime<Services, User>>();
    send_sync::<ChannelRoute<Services, User>>();
    send_sync::<Ctx<Services, User>>();
    send_sync::<Channel<Params, String, u32>>();
    send_sync::<ClosedChannel<Params, u32>>();
    send_sync::<Connection>();
    send_sync::<EventHub>();
    send_sync::<LiveChannel<Services, User>>();
    send_sync::<Admitted<Services, User>>();
    send_sync::<ChannelError>();
    send_sync::<SendError>();
    send_sync::<RpcError>();
}

#[test]
fn hub_and_remote_futures_can_be_spawned() {
    let hub = EventHub::new(Default::default());
    send(&async move {
        let _ = hub.subscribe("topic", "id").await;
        let _ = hub.publish("topic", None, &1).await;
    });
    fn remote_future(channel: Channel<Params, ()>) {
        send(&async move { channel.remote_raw("f", None, None).await });
    }
    let _ = remote_future;
}
