//! The fixture describes every handler (it requires schemas), and the description matches what the fixture's
//! routes answer on the wire.

use pikku::describe::ReplyShape;
use pikku_conformance::{fixture_app, FixtureSettings, Recorder};

#[test]
fn the_fixture_is_fully_described() {
    let description = fixture_app(&FixtureSettings::test(), Recorder::default()).describe();
    assert!(description.undescribed().is_empty());
    let names: Vec<&str> = description
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["events", "greet", "rooms", "secure", "realtime-events"]
    );

    let events = &description.channels[0];
    let shape = |value: &str| {
        events
            .routes
            .iter()
            .find(|r| r.value == value)
            .unwrap_or_else(|| panic!("route {value}"))
            .message
            .reply
            .shape
    };
    // `prim` answers {"action":"prim","result":"ok"}-style, `create` merges its object, `logout` is the key alone,
    // and `Value` replies are shaped per reply.
    assert_eq!(shape("prim"), ReplyShape::Result);
    assert_eq!(shape("arr"), ReplyShape::Result);
    assert_eq!(shape("create"), ReplyShape::Merged);
    assert_eq!(shape("logout"), ReplyShape::None);
    assert_eq!(shape("obj"), ReplyShape::Dynamic);
    assert_eq!(events.capabilities[0].name, "clientThing");
    let ping = events.routes.iter().find(|r| r.value == "ping").unwrap();
    assert_eq!(ping.property, "type");
    assert!(!ping.message.auth);
    assert!(events.binary.is_some());
    assert!(description.channels[4].events.is_some());
}
