//! The channel-record rules.

use pikku_core::store::{ChannelRecord, ChannelStore, StoreError};
use serde_json::{json, Value};

use crate::{long_ago, sorted};

fn not_found(id: &str) -> StoreError {
    StoreError::ChannelNotFound(id.to_owned())
}

/// Values that must come back exactly as written: nesting, Unicode, empty containers, integers up to 2^53.
fn awkward_values() -> Vec<Value> {
    vec![
        json!({"a": {"b": {"c": [1, [2, [3, {"d": null}]]]}}}),
        json!({"text": "héllo wörld ✓ 日本語 🎉", "ключ": "значение", "quote\"back\\slash": "tab\tnewline\n"}),
        json!({}),
        json!([]),
        json!({"empty": {}, "list": [], "blank": ""}),
        json!({"max": 9_007_199_254_740_992_u64, "min": -9_007_199_254_740_992_i64, "zero": 0}),
        json!({"float": 1.5, "negative": -0.25, "yes": true, "no": false}),
        json!([1, "two", 3.5, null, {"five": [5]}]),
        json!("just a string"),
        json!(42),
    ]
}

/// Runs every channel-record case in order on `store`, which must be empty. Panics on the first case that
/// does not hold, naming it.
///
/// The cases:
/// 1. a record added comes back with its id, name and opening data, and no user id or state;
/// 2. a user id set is read back;
/// 3. a user id set to `None` is absent (neither null nor empty);
/// 4. reading a missing id fails with `ChannelNotFound`, whose text is `Channel not found: <id>`;
/// 5. adding an id that exists fails with `ChannelExists` and leaves the stored record unchanged;
/// 6. a removed record cannot be read;
/// 7. removing no ids, or ids never stored, succeeds and changes nothing;
/// 8. socket state: none at first, set and read back, overwritten without merging, cleared;
/// 9. every update of a missing id fails with `ChannelNotFound` and creates no record;
/// 10. opening data and state round-trip awkward JSON;
/// 11. `touch` moves `last_seen` forward (never back) and `expire` removes exactly the records last seen
///     before its time, returning their ids;
/// 12. a removed record takes its state and user id with it: adding the id again starts clean.
///
/// ```no_run
/// # async fn check() {
/// pikku_store_conformance::channel_store_suite(&pikku_core::store::MemoryChannelStore::new()).await;
/// # }
/// ```
pub async fn channel_store_suite(store: &dyn ChannelStore) {
    // 1. Add and read back.
    let at = long_ago(1_000_000);
    store
        .add_channel(ChannelRecord::new("ch-1", "test-channel", json!({"foo": "bar"})).seen_at(at))
        .await
        .expect("case 1: add_channel(ch-1)");
    let record = store
        .get_channel("ch-1")
        .await
        .expect("case 1: get_channel(ch-1)");
    assert_eq!(record.channel_id, "ch-1", "case 1: channel id");
    assert_eq!(record.channel_name, "test-channel", "case 1: channel name");
    assert_eq!(
        record.opening_data,
        json!({"foo": "bar"}),
        "case 1: opening data"
    );
    assert_eq!(record.user_id, None, "case 1: no user id");
    assert_eq!(record.state, None, "case 1: no state");
    assert_eq!(
        record.created_at, at,
        "case 1: created_at, to the microsecond"
    );
    assert_eq!(
        record.last_seen, at,
        "case 1: last_seen, to the microsecond"
    );
    assert_eq!(store.get_state("ch-1").await, Ok(None), "case 1: get_state");

    // 2. A user id.
    store
        .set_user_id("ch-1", Some("user-1"))
        .await
        .expect("case 2: set_user_id(ch-1, user-1)");
    let record = store
        .get_channel("ch-1")
        .await
        .expect("case 2: get_channel");
    assert_eq!(record.user_id.as_deref(), Some("user-1"), "case 2: user id");

    // 3. No user id.
    store
        .set_user_id("ch-1", None)
        .await
        .expect("case 3: set_user_id(ch-1, None)");
    let record = store
        .get_channel("ch-1")
        .await
        .expect("case 3: get_channel");
    assert_eq!(record.user_id, None, "case 3: user id absent");

    // 4. A missing id.
    let err = store
        .get_channel("missing")
        .await
        .expect_err("case 4: get_channel(missing)");
    assert_eq!(err, not_found("missing"), "case 4: the error");
    assert_eq!(
        err.to_string(),
        "Channel not found: missing",
        "case 4: its text"
    );

    // 5. No overwrite.
    let err = store
        .add_channel(
            ChannelRecord::new("ch-1", "other-channel", json!({"other": 1}))
                .with_user_id("intruder"),
        )
        .await
        .expect_err("case 5: add_channel of an existing id");
    assert_eq!(
        err,
        StoreError::ChannelExists("ch-1".into()),
        "case 5: the error"
    );
    let record = store
        .get_channel("ch-1")
        .await
        .expect("case 5: get_channel");
    assert_eq!(
        record.channel_name, "test-channel",
        "case 5: name unchanged"
    );
    assert_eq!(
        record.opening_data,
        json!({"foo": "bar"}),
        "case 5: opening data unchanged"
    );
    assert_eq!(record.user_id, None, "case 5: user id unchanged");
    assert_eq!(record.created_at, at, "case 5: created_at unchanged");

    // 6. Remove.
    store
        .add_channel(ChannelRecord::new("ch-2", "test-channel", json!({})))
        .await
        .expect("case 6: add_channel(ch-2)");
    store
        .remove_channels(&["ch-2"])
        .await
        .expect("case 6: remove_channels([ch-2])");
    assert_eq!(
        store.get_channel("ch-2").await.map(|_| ()),
        Err(not_found("ch-2")),
        "case 6: removed"
    );

    // 7. Removing nothing.
    store
        .remove_channels(&[])
        .await
        .expect("case 7: remove_channels([])");
    store
        .remove_channels(&["never-there"])
        .await
        .expect("case 7: remove_channels([never-there])");
    store
        .remove_channels(&["ch-2"])
        .await
        .expect("case 7: removing ch-2 a second time");
    assert!(store.get_channel("ch-1").await.is_ok(), "case 7: ch-1 kept");

    // 8. Socket state.
    store
        .add_channel(ChannelRecord::new("ch-s", "test-channel", json!({})))
        .await
        .expect("case 8: add_channel(ch-s)");
    assert_eq!(
        store.get_state("ch-s").await,
        Ok(None),
        "case 8: no state at first"
    );
    let first = json!({"userId": "u-7", "meta": {"foo": 1}});
    store
        .set_state("ch-s", first.clone())
        .await
        .expect("case 8: set_state");
    assert_eq!(
        store.get_state("ch-s").await,
        Ok(Some(first.clone())),
        "case 8: read back"
    );
    assert_eq!(
        store.get_channel("ch-s").await.map(|r| r.state),
        Ok(Some(first)),
        "case 8: the record carries it"
    );
    let second = json!({"userId": "u-8"});
    store
        .set_state("ch-s", second.clone())
        .await
        .expect("case 8: overwrite");
    assert_eq!(
        store.get_state("ch-s").await,
        Ok(Some(second)),
        "case 8: no merge"
    );
    store
        .clear_state("ch-s")
        .await
        .expect("case 8: clear_state");
    assert_eq!(store.get_state("ch-s").await, Ok(None), "case 8: cleared");
    assert_eq!(
        store.get_channel("ch-s").await.map(|r| r.state),
        Ok(None),
        "case 8: the record has no state"
    );

    // 9. Updates of a missing id create nothing.
    assert_eq!(
        store.set_state("ghost", json!({"x": 1})).await,
        Err(not_found("ghost")),
        "case 9: set_state"
    );
    assert_eq!(
        store.set_user_id("ghost", Some("u")).await,
        Err(not_found("ghost")),
        "case 9: set_user_id(Some)"
    );
    assert_eq!(
        store.set_user_id("ghost", None).await,
        Err(not_found("ghost")),
        "case 9: set_user_id(None)"
    );
    assert_eq!(
        store.clear_state("ghost").await,
        Err(not_found("ghost")),
        "case 9: clear_state"
    );
    assert_eq!(
        store.touch("ghost", long_ago(0)).await,
        Err(not_found("ghost")),
        "case 9: touch"
    );
    assert_eq!(
        store.get_state("ghost").await,
        Err(not_found("ghost")),
        "case 9: get_state"
    );
    assert_eq!(
        store.get_channel("ghost").await.map(|_| ()),
        Err(not_found("ghost")),
        "case 9: no record was created"
    );

    // 10. JSON round trips.
    for (i, value) in awkward_values().into_iter().enumerate() {
        let id = format!("ch-json-{i}");
        store
            .add_channel(
                ChannelRecord::new(id.as_str(), "json", value.clone()).with_state(value.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("case 10: add_channel({id}): {e}"));
        let record = store
            .get_channel(&id)
            .await
            .unwrap_or_else(|e| panic!("case 10: get_channel({id}): {e}"));
        assert_eq!(record.opening_data, value, "case 10: opening data {i}");
        assert_eq!(
            record.state.as_ref(),
            Some(&value),
            "case 10: state from the record {i}"
        );
        store
            .set_state(&id, value.clone())
            .await
            .unwrap_or_else(|e| panic!("case 10: set_state({id}): {e}"));
        assert_eq!(
            store.get_state(&id).await,
            Ok(Some(value)),
            "case 10: state {i}"
        );
    }

    // 11. Touch and expire.
    for id in ["ch-old", "ch-touched", "ch-edge"] {
        store
            .add_channel(ChannelRecord::new(id, "expiry", json!({})).seen_at(long_ago(0)))
            .await
            .unwrap_or_else(|e| panic!("case 11: add_channel({id}): {e}"));
    }
    store
        .touch("ch-touched", long_ago(20))
        .await
        .expect("case 11: touch(ch-touched)");
    let touched = store
        .get_channel("ch-touched")
        .await
        .expect("case 11: get_channel(ch-touched)");
    assert_eq!(
        touched.last_seen,
        long_ago(20),
        "case 11: last_seen moved forward"
    );
    assert_eq!(
        touched.created_at,
        long_ago(0),
        "case 11: created_at unchanged"
    );
    store
        .touch("ch-touched", long_ago(5))
        .await
        .expect("case 11: touch(ch-touched) with an earlier time");
    assert_eq!(
        store.get_channel("ch-touched").await.map(|r| r.last_seen),
        Ok(long_ago(20)),
        "case 11: last_seen never moves back"
    );
    store
        .touch("ch-edge", long_ago(10))
        .await
        .expect("case 11: touch(ch-edge)");
    let expired = store.expire(long_ago(10)).await.expect("case 11: expire");
    assert_eq!(
        sorted(expired),
        ["ch-old"],
        "case 11: exactly the records seen before the time"
    );
    assert_eq!(
        store.get_channel("ch-old").await.map(|_| ()),
        Err(not_found("ch-old")),
        "case 11: the expired record is gone"
    );
    for id in ["ch-touched", "ch-edge", "ch-1", "ch-s"] {
        assert!(
            store.get_channel(id).await.is_ok(),
            "case 11: {id} survives"
        );
    }
    assert_eq!(
        store.expire(long_ago(10)).await,
        Ok(Vec::new()),
        "case 11: a second expire finds nothing"
    );
    let expired = store
        .expire(long_ago(21))
        .await
        .expect("case 11: expire later");
    assert_eq!(
        sorted(expired),
        ["ch-edge", "ch-touched"],
        "case 11: later, the touched records expire too"
    );

    // 12. Removing takes state and user id along.
    store
        .add_channel(
            ChannelRecord::new("ch-r", "test-channel", json!({"first": true}))
                .with_user_id("user-r")
                .with_state(json!({"kept": false})),
        )
        .await
        .expect("case 12: add_channel(ch-r)");
    store
        .set_state("ch-r", json!({"more": 1}))
        .await
        .expect("case 12: set_state(ch-r)");
    store
        .remove_channels(&["ch-r", "never-there"])
        .await
        .expect("case 12: remove_channels");
    assert_eq!(
        store.get_state("ch-r").await,
        Err(not_found("ch-r")),
        "case 12: state gone"
    );
    store
        .add_channel(ChannelRecord::new(
            "ch-r",
            "test-channel",
            json!({"second": true}),
        ))
        .await
        .expect("case 12: add_channel(ch-r) again");
    let record = store
        .get_channel("ch-r")
        .await
        .expect("case 12: get_channel");
    assert_eq!(
        record.opening_data,
        json!({"second": true}),
        "case 12: new opening data"
    );
    assert_eq!(record.user_id, None, "case 12: no user id");
    assert_eq!(record.state, None, "case 12: no state");
    assert_eq!(
        store.get_state("ch-r").await,
        Ok(None),
        "case 12: get_state"
    );

    // Many ids removed at once.
    let ids: Vec<String> = (0..50).map(|i| format!("ch-many-{i}")).collect();
    for id in &ids {
        store
            .add_channel(ChannelRecord::new(id.as_str(), "many", json!({})))
            .await
            .unwrap_or_else(|e| panic!("add_channel({id}): {e}"));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    store
        .remove_channels(&refs)
        .await
        .expect("remove 50 channels");
    for id in &ids {
        assert_eq!(
            store.get_channel(id).await.map(|_| ()),
            Err(not_found(id)),
            "{id} removed with the others"
        );
    }
}
