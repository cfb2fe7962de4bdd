//! Registration checks: every wiring mistake is refused when the app is built, as a value from
//! [`App::try_channel`] (with the location of the offending definition) or as a panic from [`App::channel`]
//! whose message names the file and line of the definition.

use std::panic::{catch_unwind, AssertUnwindSafe, Location};

use pikku_core::{App, Channel, ChannelRoute, Ctx, Params, RegistrationError, Route};
use serde_json::Value;

type Cr = ChannelRoute<(), ()>;

async fn handler(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, input: Value) -> Value {
    input
}

async fn unit(_ctx: Ctx<(), ()>, _ch: Channel<Params, ()>, _: ()) {}

/// The error of registering `second` after `first`.
fn second_fails(first: Cr, second: Cr) -> (RegistrationError, &'static Location<'static>) {
    let app = App::new(())
        .try_channel(first)
        .expect("the first channel is fine");
    app.try_channel(second)
        .expect_err("the second channel must be refused")
}

/// The error of registering `channel` alone.
fn fails(channel: Cr) -> (RegistrationError, &'static Location<'static>) {
    App::new(())
        .try_channel(channel)
        .expect_err("the channel must be refused")
}

#[track_caller]
fn assert_here(location: &Location<'_>, line: u32) {
    assert_eq!(location.file(), file!(), "{location}");
    assert_eq!(location.line(), line, "{location}");
}

#[test]
fn duplicate_channel_names_are_refused() {
    let first = ChannelRoute::new("events", "/events").on_message(handler);
    let (second, line) = (Cr::new("events", "/other").on_message(handler), line!());
    let (err, location) = second_fails(first, second);
    assert_eq!(
        err,
        RegistrationError::DuplicateChannelName("events".into())
    );
    assert_here(location, line);
    assert!(err.to_string().contains("'events'"), "{err}");
}

#[test]
fn routes_of_the_same_shape_are_refused() {
    // Params in the same positions match the same paths, whatever their names.
    let first = Cr::new("a", "/rooms/:a");
    let (second, line) = (Cr::new("b", "/rooms/:b"), line!());
    let (err, location) = second_fails(first, second);
    assert_eq!(
        err,
        RegistrationError::DuplicateRoute {
            first: "a".into(),
            second: "b".into()
        }
    );
    assert_here(location, line);

    // The same literal path, written with and without a trailing slash (one trailing `/` is ignored).
    let (err, _) = second_fails(Cr::new("x", "/events"), Cr::new("y", "/events/"));
    assert!(
        matches!(err, RegistrationError::DuplicateRoute { .. }),
        "{err:?}"
    );

    // Several params, same positions.
    let (err, _) = second_fails(
        Cr::new("p", "/org/:org/room/:room"),
        Cr::new("q", "/org/:o/room/:r"),
    );
    assert!(
        matches!(err, RegistrationError::DuplicateRoute { .. }),
        "{err:?}"
    );
}

#[test]
fn routes_of_different_shapes_are_accepted() {
    let app = App::new(())
        .try_channel(Cr::new("param", "/rooms/:id"))
        .and_then(|app| app.try_channel(Cr::new("literal", "/rooms/lobby")))
        .and_then(|app| app.try_channel(Cr::new("deeper", "/rooms/:id/chat")))
        .and_then(|app| app.try_channel(Cr::new("case", "/Rooms/:id")))
        .and_then(|app| app.try_channel(Cr::new("root", "/")))
        .expect("different shapes");
    let rt = app.into_runtime();
    let mut routes: Vec<_> = rt.channel_routes().collect();
    routes.sort_unstable();
    assert_eq!(
        routes,
        vec![
            ("case", "/Rooms/:id"),
            ("deeper", "/rooms/:id/chat"),
            ("literal", "/rooms/lobby"),
            ("param", "/rooms/:id"),
            ("root", "/"),
        ]
    );
}

#[test]
fn invalid_route_patterns_and_param_names_are_refused() {
    for pattern in [
        "rooms",           // no leading slash
        "",                // empty
        "/a//b",           // empty segment
        "/rooms/:",        // empty param name
        "/rooms/:room-id", // `-` is not a param character
        "/rooms/:room id",
        "/rooms/:räum",
        "/rooms/:a.b",
        "/:x/:x", // the same param twice
    ] {
        let (channel, line) = (Cr::new("bad", pattern), line!());
        let (err, location) = fails(channel);
        match &err {
            RegistrationError::InvalidRoute { route, reason } => {
                assert_eq!(route, pattern);
                assert!(!reason.is_empty());
            }
            other => panic!("{pattern:?}: expected InvalidRoute, got {other:?}"),
        }
        assert_here(location, line);
        assert!(err.to_string().contains(pattern), "{err}");
    }
    // Valid param names: ASCII letters, digits and `_`.
    for pattern in ["/rooms/:roomId", "/rooms/:room_id", "/r/:_/:a1", "/:x/y/:z"] {
        let _ = App::new(())
            .try_channel(Cr::new("good", pattern))
            .unwrap_or_else(|(err, _)| panic!("{pattern:?} refused: {err}"));
    }
}

#[test]
fn empty_or_reserved_route_values_are_refused() {
    for value in [
        "",
        "pikku-",
        "pikku-rpc-response",
        "pikku-rpc-pending",
        "pikku-anything",
    ] {
        let channel = Cr::new("events", "/events");
        let (channel, line) = (channel.route("action", value, handler), line!());
        let (err, location) = fails(channel);
        assert_eq!(
            err,
            RegistrationError::InvalidRouteValue {
                channel: "events".into(),
                property: "action".into(),
                value: value.into(),
            }
        );
        // The location is the `.route(..)` call, not the channel's.
        assert_here(location, line);
    }
    // Only the exact prefix is reserved.
    for value in [
        "pikku",
        "Pikku-x",
        "my-pikku-route",
        "pikku_rpc",
        " pikku-x",
    ] {
        let _ = App::new(())
            .try_channel(Cr::new("events", "/events").route("action", value, handler))
            .unwrap_or_else(|(err, _)| panic!("{value:?} refused: {err}"));
    }
}

#[test]
fn duplicate_message_routes_are_refused() {
    let channel = Cr::new("events", "/events")
        .route("action", "sub", handler)
        .route("type", "sub", handler); // another property: fine
    let (channel, line) = (channel.route("action", "sub", unit), line!());
    let (err, location) = fails(channel);
    assert_eq!(
        err,
        RegistrationError::DuplicateMessageRoute {
            channel: "events".into(),
            property: "action".into(),
            value: "sub".into(),
        }
    );
    assert_here(location, line);

    // A `Route` with options counts the same as a bare handler.
    let channel = Cr::new("events", "/events")
        .route("action", "auth", Route::new(handler).auth(false))
        .route("action", "auth", Route::new(unit).auth(true));
    let (err, _) = fails(channel);
    assert!(
        matches!(err, RegistrationError::DuplicateMessageRoute { .. }),
        "{err:?}"
    );
}

#[test]
fn the_first_registration_error_of_a_channel_is_reported() {
    let channel = Cr::new("events", "/events");
    let (channel, line) = (channel.route("action", "", handler), line!());
    let channel = channel
        .route("action", "pikku-x", handler)
        .route("action", "ok", handler)
        .route("action", "ok", handler);
    let (err, location) = fails(channel);
    assert!(
        matches!(&err, RegistrationError::InvalidRouteValue { value, .. } if value.is_empty()),
        "{err:?}"
    );
    assert_here(location, line);
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "<non-string panic>".to_owned())
}

#[test]
fn app_channel_panics_naming_the_callers_file() {
    type Build = Box<dyn FnOnce() -> App<(), ()>>;
    let mut cases: Vec<(Build, u32, &str)> = Vec::new();

    let (dup, line) = (Cr::new("dup", "/b"), line!());
    let build = move || App::new(()).channel(Cr::new("dup", "/a")).channel(dup);
    cases.push((Box::new(build), line, "already registered"));

    let (bad, line) = (Cr::new("bad", "/rooms/:room-id"), line!());
    cases.push((
        Box::new(move || App::new(()).channel(bad)),
        line,
        "invalid channel route",
    ));

    let reserved = Cr::new("e", "/e");
    let (reserved, line) = (reserved.route("action", "pikku-rpc-request", unit), line!());
    cases.push((
        Box::new(move || App::new(()).channel(reserved)),
        line,
        "pikku-",
    ));

    for (build, line, needle) in cases {
        let message = panic_message(
            catch_unwind(AssertUnwindSafe(build)).expect_err("App::channel must panic"),
        );
        assert!(message.contains(needle), "{message}");
        let at = format!("{}:{line}:", file!());
        assert!(
            message.contains(&at),
            "expected {at:?} in the panic message: {message}"
        );
    }
}

#[test]
fn well_formed_apps_register_every_channel() {
    let app = App::new(())
        .channel(
            Cr::new("events", "/events")
                .on_message(handler)
                .route("action", "a", handler)
                .route("action", "b", unit)
                .route("type", "a", handler),
        )
        .channel(Cr::new("rooms", "/rooms/:roomId").route("action", "info", unit));
    let rt = app.into_runtime();
    let mut names: Vec<_> = rt.channel_routes().map(|(name, _)| name).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["events", "rooms"]);
}
