//! The subscription rules.

use pikku_core::store::EventHubStore;

use crate::sorted;

async fn ids(store: &dyn EventHubStore, topic: &str, case: &str) -> Vec<String> {
    sorted(
        store
            .channel_ids(topic)
            .await
            .unwrap_or_else(|e| panic!("{case}: channel_ids({topic}): {e}")),
    )
}

/// Runs every subscription case in order on `store`, which must be empty. Panics on the first case that does
/// not hold, naming it.
///
/// The cases:
/// 1. subscribing returns `true` and the topic lists the id;
/// 2. subscribing again returns `true` and the topic still lists it once;
/// 3. unsubscribing returns `true` and empties the topic;
/// 4. unsubscribing again returns `false`;
/// 5. a topic nobody subscribed to lists nobody;
/// 6. two ids on one topic and one of them on another are listed as such;
/// 7. removing a channel returns how many topics it was on and takes it off every one;
/// 8. a subscription needs no channel record;
/// 9. topics are exact strings: no prefix matching, and `:`, `/`, `*`, spaces and Unicode are literal;
///
/// and then: removing a channel subscribed to many topics leaves every one of them without it, and removing
/// it again (or an id never subscribed) counts nothing.
///
/// ```no_run
/// # async fn check() {
/// pikku_store_conformance::event_hub_store_suite(&pikku_core::store::MemoryEventHubStore::new()).await;
/// # }
/// ```
pub async fn event_hub_store_suite(store: &dyn EventHubStore) {
    // 1.
    assert_eq!(
        store.subscribe("topic-1", "ch-1").await,
        Ok(true),
        "case 1: subscribe"
    );
    assert_eq!(
        ids(store, "topic-1", "case 1").await,
        ["ch-1"],
        "case 1: listed"
    );

    // 2.
    assert_eq!(
        store.subscribe("topic-1", "ch-1").await,
        Ok(true),
        "case 2: subscribe again"
    );
    assert_eq!(
        ids(store, "topic-1", "case 2").await,
        ["ch-1"],
        "case 2: listed once"
    );

    // 3.
    assert_eq!(
        store.unsubscribe("topic-1", "ch-1").await,
        Ok(true),
        "case 3: unsubscribe"
    );
    assert!(
        ids(store, "topic-1", "case 3").await.is_empty(),
        "case 3: empty"
    );

    // 4.
    assert_eq!(
        store.unsubscribe("topic-1", "ch-1").await,
        Ok(false),
        "case 4: unsubscribe again"
    );

    // 5.
    assert!(
        ids(store, "unknown", "case 5").await.is_empty(),
        "case 5: unknown topic"
    );
    assert_eq!(
        store.unsubscribe("unknown", "ch-1").await,
        Ok(false),
        "case 5: unsubscribe from an unknown topic"
    );

    // 6.
    for (topic, id) in [("t", "a"), ("t", "b"), ("u", "a")] {
        assert_eq!(
            store.subscribe(topic, id).await,
            Ok(true),
            "case 6: subscribe({topic}, {id})"
        );
    }
    assert_eq!(ids(store, "t", "case 6").await, ["a", "b"], "case 6: t");
    assert_eq!(ids(store, "u", "case 6").await, ["a"], "case 6: u");

    // 7.
    assert_eq!(
        store.remove_channel("a").await,
        Ok(2),
        "case 7: remove_channel(a)"
    );
    assert_eq!(ids(store, "t", "case 7").await, ["b"], "case 7: t");
    assert!(ids(store, "u", "case 7").await.is_empty(), "case 7: u");
    assert_eq!(
        store.unsubscribe("t", "a").await,
        Ok(false),
        "case 7: a is no longer on t"
    );

    // 8.
    assert_eq!(
        store.subscribe("case-8", "no-record-anywhere").await,
        Ok(true),
        "case 8: subscribe an id without a record"
    );
    assert_eq!(
        ids(store, "case-8", "case 8").await,
        ["no-record-anywhere"],
        "case 8: listed"
    );

    // 9.
    assert_eq!(
        store.subscribe("t2", "c").await,
        Ok(true),
        "case 9: subscribe(t2, c)"
    );
    assert_eq!(
        ids(store, "t", "case 9").await,
        ["b"],
        "case 9: t is not t2"
    );
    assert_eq!(
        ids(store, "t2", "case 9").await,
        ["c"],
        "case 9: t2 is not t"
    );
    let literal = [
        "room:1",
        "room:1:sub",
        "a/b",
        "a/*",
        "*",
        "room:*",
        "with space",
        " leading",
        "日本語の話題",
        "émoji 🎉",
        "[x]?",
        "%s",
    ];
    for (i, topic) in literal.iter().enumerate() {
        let id = format!("lit-{i}");
        assert_eq!(
            store.subscribe(topic, &id).await,
            Ok(true),
            "case 9: subscribe({topic:?})"
        );
    }
    for (i, topic) in literal.iter().enumerate() {
        assert_eq!(
            ids(store, topic, "case 9").await,
            [format!("lit-{i}")],
            "case 9: {topic:?} holds only its own subscriber"
        );
    }
    for topic in ["room", "room:", "a", "a/", "", "日本語", "with"] {
        assert!(
            ids(store, topic, "case 9").await.is_empty(),
            "case 9: {topic:?} matches nothing"
        );
    }
    let odd_id = "id:with/odd *chars ✓";
    assert_eq!(
        store.subscribe("odd", odd_id).await,
        Ok(true),
        "case 9: an odd id"
    );
    assert_eq!(
        ids(store, "odd", "case 9").await,
        [odd_id],
        "case 9: the odd id is literal"
    );
    assert_eq!(
        store.remove_channel(odd_id).await,
        Ok(1),
        "case 9: remove the odd id"
    );

    // Removing a channel takes it off every topic.
    let topics: Vec<String> = (0..8).map(|i| format!("many:{i}")).collect();
    for topic in &topics {
        for id in ["x", "y"] {
            assert_eq!(
                store.subscribe(topic, id).await,
                Ok(true),
                "subscribe({topic}, {id})"
            );
        }
    }
    assert_eq!(
        store.remove_channel("x").await,
        Ok(topics.len()),
        "remove_channel(x)"
    );
    for topic in &topics {
        assert_eq!(
            ids(store, topic, "remove_channel").await,
            ["y"],
            "{topic} keeps only y"
        );
    }
    assert_eq!(
        store.remove_channel("x").await,
        Ok(0),
        "removing x again counts nothing"
    );
    assert_eq!(
        store.remove_channel("never-subscribed").await,
        Ok(0),
        "an id never subscribed counts nothing"
    );
    assert_eq!(
        store.subscribe("many:0", "x").await,
        Ok(true),
        "x may subscribe again"
    );
    assert_eq!(
        store.remove_channel("x").await,
        Ok(1),
        "and is counted on that one topic"
    );
}
