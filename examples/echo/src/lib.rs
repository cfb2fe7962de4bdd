//! The smallest useful pikku channel: an echo server.
//!
//! # The channel
//! One channel, `echo`, at `/echo`, open to anonymous clients (`auth(false)`). Messages are routed by their
//! `action` member; anything that names no route goes to the default handler.
//!
//! | client sends | server sends back |
//! |---|---|
//! | *(connect)* | `ready` (a bare string goes out unquoted) |
//! | `{"action":"upper","text":"hi"}` | `{"action":"upper","text":"HI"}` (the reply object gets `action` merged in) |
//! | `{"action":"upper"}` | `{"action":"upper","error":"Invalid message data","errorName":"UnprocessableContentError","details":[…]}` |
//! | any other JSON: `{"a":1}`, `[1,2]`, `{"action":"nope"}` | the same JSON, as is (no routing member) |
//! | text that is not JSON: `hello` | `hello` (it arrives as the JSON string `"hello"`) |
//! | a binary frame | the same bytes, as a binary frame |
//!
//! # Serving
//! [`app`] builds the application; the binary (`cargo run -p example-echo`) serves it on 127.0.0.1:4003, and the
//! tests serve it on a free port with [`ChannelServer`].

use bytes::Bytes;
use pikku::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The echo app has no services.
pub type Services = ();
/// …and no login, so no session type either.
pub type Session = ();
/// The handler context of the echo app.
pub type EchoCtx = Ctx<Services, Session>;
/// The channel handle echo handlers receive: the opening data is the plain query map, and the handlers reply
/// rather than push (`Out = ()`).
pub type EchoChannel = Channel<Params, ()>;

/// Input and reply of the `upper` route: `{"text": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Text {
    /// The text to shout (input) or the shouted text (reply).
    pub text: String,
}

/// onConnect: its result is sent to the new client as is. `"ready"` is a string, so the frame is the five
/// characters `ready`, unquoted.
async fn on_connect(_ctx: EchoCtx, _channel: EchoChannel) -> &'static str {
    "ready"
}

/// The default handler: any message that names no route, sent back unchanged. `Value` accepts every JSON
/// value, so this handler never fails validation.
async fn echo(_ctx: EchoCtx, _channel: EchoChannel, input: Value) -> Value {
    input
}

/// The `upper` route. Its input is the message minus `action`, deserialized into [`Text`]; a missing or
/// non-string `text` becomes an `UnprocessableContentError` frame before this runs. The reply is an object, so
/// the client reads it with `action` merged in: `{"action":"upper","text":"HI"}`.
async fn upper(_ctx: EchoCtx, _channel: EchoChannel, input: Text) -> Result<Text, ChannelError> {
    Ok(Text {
        text: input.text.to_uppercase(),
    })
}

/// The binary handler: returned bytes go back as a binary frame.
async fn echo_bytes(_ctx: EchoCtx, _channel: EchoChannel, bytes: Bytes) -> Bytes {
    bytes
}

/// The `echo` channel at `/echo`.
pub fn echo_channel() -> ChannelRoute<Services, Session> {
    ChannelRoute::new("echo", "/echo")
        // Channels need a session by default; this one has no login.
        .auth(false)
        .on_connect(on_connect)
        .on_message(echo)
        .route("action", "upper", upper)
        .on_binary(echo_bytes)
}

/// The echo application.
pub fn app() -> App<Services, Session> {
    App::new(()).channel(echo_channel())
}
