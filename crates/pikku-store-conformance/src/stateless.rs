//! Publishing and sweeping over the stores.

use pikku_core::store::{
    publish, sweep_expired, ChannelRecord, ChannelStore, EventHubStore, StoreError,
};
use pikku_core::OutFrame;
use serde_json::json;

use crate::sender::{Behaviour, TestSender};
use crate::{long_ago, sorted};

async fn ids(store: &dyn EventHubStore, topic: &str) -> Vec<String> {
    sorted(
        store
            .channel_ids(topic)
            .await
            .unwrap_or_else(|e| panic!("channel_ids({topic}): {e}")),
    )
}

async fn is_stored(store: &dyn ChannelStore, id: &str) -> bool {
    match store.get_channel(id).await {
        Ok(_) => true,
        Err(StoreError::ChannelNotFound(_)) => false,
        Err(e) => panic!("get_channel({id}): {e}"),
    }
}

/// Runs the publish and sweep cases over `channels` and `hub`, which must both be empty:
///
/// 1. a publication without an exclude id reaches every subscriber, once, with the same bytes;
/// 2. an exclude id is skipped, and one that is not subscribed changes nothing;
/// 3. a topic without subscribers sends nothing;
/// 4. a connection the platform reports gone loses its record and every subscription, while a connection
///    whose send fails otherwise keeps both;
/// 5. a sweep removes the records last seen before its time and their subscriptions, keeps the others, and
///    returns the removed ids.
///
/// ```no_run
/// use pikku_core::store::{MemoryChannelStore, MemoryEventHubStore};
///
/// # async fn check() {
/// pikku_store_conformance::stateless_suite(&MemoryChannelStore::new(), &MemoryEventHubStore::new()).await;
/// # }
/// ```
pub async fn stateless_suite(channels: &dyn ChannelStore, hub: &dyn EventHubStore) {
    let sender = TestSender::new();
    for id in ["p-1", "p-2", "p-3"] {
        channels
            .add_channel(ChannelRecord::new(id, "news", json!({})))
            .await
            .unwrap_or_else(|e| panic!("add_channel({id}): {e}"));
        hub.subscribe("news", id)
            .await
            .unwrap_or_else(|e| panic!("subscribe(news, {id}): {e}"));
    }
    hub.subscribe("other", "p-2")
        .await
        .expect("subscribe(other, p-2)");
    hub.subscribe("other", "p-3")
        .await
        .expect("subscribe(other, p-3)");
    let frame = OutFrame::text(r#"{"headline":"hi"}"#);

    // 1. Everyone.
    let outcome = publish(hub, channels, &sender, "news", None, &frame)
        .await
        .expect("case 1: publish");
    assert_eq!(outcome.delivered, 3, "case 1: delivered");
    let sent = sender.sent();
    assert!(
        sent.iter().all(|(_, f)| *f == frame),
        "case 1: the same frame to each: {sent:?}"
    );
    assert_eq!(
        sender.take_ids(),
        ["p-1", "p-2", "p-3"],
        "case 1: every subscriber once"
    );

    // 2. Exclude.
    publish(hub, channels, &sender, "news", Some("p-1"), &frame)
        .await
        .expect("case 2: publish excluding p-1");
    assert_eq!(sender.take_ids(), ["p-2", "p-3"], "case 2: p-1 skipped");
    publish(
        hub,
        channels,
        &sender,
        "news",
        Some("not-subscribed"),
        &frame,
    )
    .await
    .expect("case 2: publish excluding an id that is not subscribed");
    assert_eq!(
        sender.take_ids(),
        ["p-1", "p-2", "p-3"],
        "case 2: nobody skipped"
    );

    // 3. Nobody.
    let outcome = publish(hub, channels, &sender, "nobody-here", None, &frame)
        .await
        .expect("case 3: publish to an empty topic");
    assert_eq!(outcome.delivered, 0, "case 3: delivered");
    assert!(sender.take_ids().is_empty(), "case 3: nothing sent");

    // 4. Gone removes, other failures keep.
    sender.answer("p-2", Behaviour::Gone);
    sender.answer("p-3", Behaviour::Fail);
    let outcome = publish(hub, channels, &sender, "news", None, &frame)
        .await
        .expect("case 4: publish");
    assert_eq!(
        sender.take_ids(),
        ["p-1", "p-2", "p-3"],
        "case 4: all were tried"
    );
    assert_eq!(outcome.delivered, 1, "case 4: delivered");
    assert_eq!(outcome.gone, ["p-2"], "case 4: gone");
    assert_eq!(outcome.failed, 1, "case 4: failed");
    assert!(
        !is_stored(channels, "p-2").await,
        "case 4: the gone connection's record is removed"
    );
    assert_eq!(
        ids(hub, "news").await,
        ["p-1", "p-3"],
        "case 4: news lost p-2 only"
    );
    assert_eq!(
        ids(hub, "other").await,
        ["p-3"],
        "case 4: every subscription of p-2 is removed"
    );
    assert!(
        is_stored(channels, "p-3").await,
        "case 4: the failed connection's record is kept"
    );
    publish(hub, channels, &sender, "news", None, &frame)
        .await
        .expect("case 4: publish again");
    assert_eq!(
        sender.take_ids(),
        ["p-1", "p-3"],
        "case 4: p-2 is no longer tried"
    );

    // 5. Sweep.
    for id in ["old-1", "old-2"] {
        channels
            .add_channel(ChannelRecord::new(id, "news", json!({})).seen_at(long_ago(0)))
            .await
            .unwrap_or_else(|e| panic!("case 5: add_channel({id}): {e}"));
        hub.subscribe("news", id)
            .await
            .unwrap_or_else(|e| panic!("case 5: subscribe(news, {id}): {e}"));
    }
    hub.subscribe("swept", "old-1")
        .await
        .expect("case 5: subscribe(swept, old-1)");
    channels
        .touch("old-2", long_ago(100))
        .await
        .expect("case 5: touch(old-2)");
    let expired = sweep_expired(channels, hub, long_ago(50))
        .await
        .expect("case 5: sweep");
    assert_eq!(expired, ["old-1"], "case 5: swept ids");
    assert!(
        !is_stored(channels, "old-1").await,
        "case 5: old-1's record is removed"
    );
    assert!(
        ids(hub, "swept").await.is_empty(),
        "case 5: old-1's subscriptions are removed"
    );
    assert_eq!(
        ids(hub, "news").await,
        ["old-2", "p-1", "p-3"],
        "case 5: news"
    );
    assert!(
        is_stored(channels, "old-2").await,
        "case 5: the touched record survives"
    );
    assert_eq!(
        sweep_expired(channels, hub, long_ago(50)).await,
        Ok(Vec::new()),
        "case 5: a second sweep finds nothing"
    );
}
