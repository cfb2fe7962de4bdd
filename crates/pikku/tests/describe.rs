//! `App::describe`: what a typed app's description says about each handler, the reply shapes, the shared
//! `$defs`, validation constraints in schemas, and `require_schemas` refusing an undescribed route at its line.

use pikku::describe::{AppDescription, ReplyShape};
use pikku::events::EventsChannel;
use pikku::{
    typed, App, Bytes, Capability, Channel, ChannelError, ChannelRoute, ClosedChannel, Ctx, Json,
    Params, RegistrationError, Route, RpcError, Valid,
};
use serde_json::{json, Value};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Room {
    #[serde(rename = "roomId")]
    room_id: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema, garde::Validate)]
struct Say {
    #[garde(length(min = 1, max = 280))]
    text: String,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Said {
    text: String,
    from: String,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
enum RoomEvent {
    Joined { name: String },
    Left { name: String },
}

struct Confirm;
impl Capability for Confirm {
    const NAME: &'static str = "confirm";
    type Input = Said;
    type Output = bool;
}

async fn joined(_ctx: Ctx<(), ()>, ch: Channel<Room, RoomEvent>) -> Json<Said> {
    let _ = ch.send(RoomEvent::Joined { name: "ann".into() });
    Json(Said {
        text: "welcome".into(),
        from: "server".into(),
    })
}
async fn say(
    _ctx: Ctx<(), ()>,
    ch: Channel<Room, RoomEvent>,
    input: Valid<Say>,
) -> Result<Said, ChannelError> {
    Ok(Said {
        text: input.0.text,
        from: ch.opening_data().room_id.clone(),
    })
}
async fn count(_ctx: Ctx<(), ()>, _ch: Channel<Room, RoomEvent>, _in: ()) -> u32 {
    3
}
async fn leave(_ctx: Ctx<(), ()>, ch: Channel<Room, RoomEvent>, _in: ()) {
    let _ = ch.send(RoomEvent::Left { name: "ann".into() });
}
async fn anything(_ctx: Ctx<(), ()>, _ch: Channel<Room, RoomEvent>, input: Value) -> Value {
    input
}
async fn upload(_ctx: Ctx<(), ()>, _ch: Channel<Room, RoomEvent>, bytes: Bytes) -> Vec<u8> {
    bytes.to_vec()
}
async fn ask(_ctx: Ctx<(), ()>, ch: Channel<Room, RoomEvent>, _in: ()) -> Result<bool, RpcError> {
    let said = Said {
        text: "sure?".into(),
        from: "server".into(),
    };
    ch.remote::<Confirm>(said).await
}
async fn maybe(_ctx: Ctx<(), ()>, _ch: Channel<Room, RoomEvent>, _in: ()) -> Option<u32> {
    None
}
async fn maybe_said(_ctx: Ctx<(), ()>, _ch: Channel<Room, RoomEvent>, _in: ()) -> Option<Said> {
    None
}
async fn event(_ctx: Ctx<(), ()>, _ch: Channel<Room, RoomEvent>, _in: ()) -> Json<RoomEvent> {
    Json(RoomEvent::Left { name: "ann".into() })
}
async fn bye(_ctx: Ctx<(), ()>, _ch: ClosedChannel<Room>) {}

fn rooms() -> ChannelRoute<(), (), Room, ()> {
    ChannelRoute::new("rooms", "/rooms/{roomId}")
        .on_connect(typed(joined))
        .on_message(typed(anything))
        .route("action", "say", typed(say))
        .route("action", "count", Route::new(typed(count)).auth(false))
        .route("action", "leave", typed(leave))
        .route("action", "ask", typed(ask))
        .route("action", "maybe", typed(maybe))
        .route("action", "maybeSaid", typed(maybe_said))
        .route("action", "event", typed(event))
        .on_binary(typed(upload))
        .on_disconnect(typed(bye))
        .calls::<Confirm>()
}

fn description() -> AppDescription {
    App::new(())
        .require_schemas()
        .channel(rooms())
        .channel(EventsChannel::new("/events").build())
        .describe()
}

#[test]
fn a_typed_channel_is_described_handler_by_handler() {
    let description = description();
    assert!(description.undescribed().is_empty());
    let rooms = &description.channels[0];
    assert_eq!(rooms.name, "rooms");
    assert_eq!(rooms.route, "/rooms/{roomId}");
    assert_eq!(rooms.params, ["roomId"]);
    assert!(rooms.auth);
    assert!(rooms.disconnect);
    assert_eq!(rooms.opening.schema, Some(json!({"$ref": "#/$defs/Room"})));

    let connect = rooms.connect.as_ref().unwrap();
    assert_eq!(
        connect.push.as_ref().unwrap().schema,
        Some(json!({"$ref": "#/$defs/RoomEvent"}))
    );
    assert_eq!(connect.reply.schema, Some(json!({"$ref": "#/$defs/Said"})));

    let route = |value: &str| {
        let route = rooms.routes.iter().find(|r| r.value == value).unwrap();
        assert_eq!(route.property, "action");
        &route.message
    };
    // Objects are merged with the key, scalars go under `result`, no value is the key alone.
    assert_eq!(route("say").reply.shape, ReplyShape::Merged);
    assert_eq!(
        route("say").input.schema,
        Some(json!({"$ref": "#/$defs/Say"}))
    );
    assert_eq!(route("count").reply.shape, ReplyShape::Result);
    assert_eq!(
        route("count").reply.schema.as_ref().unwrap()["type"],
        "integer"
    );
    assert_eq!(route("leave").reply.shape, ReplyShape::None);
    assert_eq!(route("leave").reply.schema, None);
    assert_eq!(route("ask").reply.shape, ReplyShape::Result);
    // `Option<u32>`: `null` or a number, both under `result`; `Option<Said>`: `null` or a merged object.
    assert_eq!(route("maybe").reply.shape, ReplyShape::Result);
    assert_eq!(route("maybeSaid").reply.shape, ReplyShape::Dynamic);
    // A tagged enum is an object in every variant.
    assert_eq!(route("event").reply.shape, ReplyShape::Merged);
    // Route settings are resolved: `count` is open, the others take the channel's `auth`.
    assert!(!route("count").auth);
    assert!(route("say").auth);
    // `Value` in and out: any JSON, shaped per reply.
    let message = rooms.message.as_ref().unwrap();
    assert_eq!(message.reply.shape, ReplyShape::Dynamic);
    assert_eq!(message.input.schema, Some(json!(true)));

    let binary = rooms.binary.as_ref().unwrap();
    assert!(binary.auth);
    assert!(binary.push.is_some());
    let capability = &rooms.capabilities[0];
    assert_eq!(capability.name, "confirm");
    assert_eq!(
        capability.input.schema,
        Some(json!({"$ref": "#/$defs/Said"}))
    );
    assert_eq!(
        capability.output.schema.as_ref().unwrap()["type"],
        "boolean"
    );
}

#[test]
fn shared_types_are_defined_once_with_their_validation_constraints() {
    let description = description();
    let names: Vec<&str> = description.defs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "EventTopic",
            "Room",
            "RoomEvent",
            "Said",
            "Say",
            "TopicEvent"
        ]
    );
    let text = &description.defs["Say"]["properties"]["text"];
    assert_eq!(text["minLength"], 1);
    assert_eq!(text["maxLength"], 280);
    assert_eq!(description.defs["Room"]["required"], json!(["roomId"]));
    // The tagged enum keeps its tag in every variant.
    let variants = description.defs["RoomEvent"]["oneOf"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert!(variants
        .iter()
        .all(|v| v["properties"]["type"].get("const").is_some()));
}

#[test]
fn the_events_channel_describes_its_subscriptions() {
    let description = description();
    let events = &description.channels[1];
    assert_eq!(events.events.as_ref().map(|e| e.streams), Some(true));
    assert!(!events.auth);
    let values: Vec<&str> = events.routes.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, ["subscribe", "unsubscribe"]);
    for route in &events.routes {
        assert_eq!(
            route.message.input.schema,
            Some(json!({"$ref": "#/$defs/EventTopic"}))
        );
        assert_eq!(route.message.reply.shape, ReplyShape::None);
    }
    assert_eq!(description.defs["EventTopic"]["required"], json!(["topic"]));
}

#[test]
fn the_description_round_trips_through_json() {
    let description = description();
    let json = serde_json::to_value(&description).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["channels"][0]["routes"][0]["property"], "action");
    assert_eq!(json["channels"][0]["routes"][0]["reply"]["shape"], "merged");
    assert!(json["$defs"]["Say"].is_object());
    let back: AppDescription = serde_json::from_value(json).unwrap();
    assert_eq!(back, description);
}

async fn untyped(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str {
    "untyped"
}
async fn described(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _in: ()) -> &'static str {
    "described"
}

#[test]
fn require_schemas_refuses_an_undescribed_route_at_its_line() {
    let line = line!() + 3;
    let channel = ChannelRoute::new("mixed", "/mixed")
        .route("action", "ok", typed(described))
        .route("action", "bad", untyped);
    let (err, location) = App::new(())
        .require_schemas()
        .try_channel(channel)
        .unwrap_err();
    assert_eq!(
        err,
        RegistrationError::Undescribed {
            missing: "mixed: action:bad input".into()
        }
    );
    assert_eq!((location.file(), location.line()), (file!(), line));
    assert!(err.to_string().contains("typed(..)"));
}

#[test]
#[should_panic(expected = "the app requires schemas, and plain: opening data has none")]
fn require_schemas_checks_channels_added_before_it() {
    let _ = App::new(())
        .channel(ChannelRoute::new("plain", "/plain").route("action", "x", untyped))
        .require_schemas();
}

#[test]
fn untyped_handlers_are_named_but_not_described() {
    let description = App::new(())
        .channel(ChannelRoute::new("plain", "/plain").route("action", "x", untyped))
        .describe();
    let route = &description.channels[0].routes[0].message;
    assert_eq!(route.input.rust, "()");
    assert_eq!(route.input.schema, None);
    assert_eq!(route.reply.rust, "&str");
    assert_eq!(route.reply.shape, ReplyShape::Dynamic);
    assert_eq!(
        description.undescribed(),
        [
            "plain: opening data",
            "plain: action:x input",
            "plain: action:x reply"
        ]
    );
}
