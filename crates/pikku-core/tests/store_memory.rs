//! The in-memory stores keep every store rule.

use std::sync::Arc;

use pikku_core::store::{
    ChannelStore, EventHubStore, MemoryChannelStore, MemoryEventHubStore, MemorySessionStore,
    SessionStore,
};

#[tokio::test]
async fn memory_channel_store_keeps_every_rule() {
    pikku_store_conformance::channel_store_suite(&MemoryChannelStore::new()).await;
}

#[tokio::test]
async fn memory_event_hub_store_keeps_every_rule() {
    pikku_store_conformance::event_hub_store_suite(&MemoryEventHubStore::new()).await;
}

#[tokio::test]
async fn memory_session_store_keeps_every_rule() {
    pikku_store_conformance::session_store_suite(&MemorySessionStore::new()).await;
}

#[tokio::test]
async fn publish_and_sweep_over_memory_stores() {
    pikku_store_conformance::stateless_suite(
        &MemoryChannelStore::new(),
        &MemoryEventHubStore::new(),
    )
    .await;
}

#[tokio::test]
async fn concurrent_adds_of_one_id_have_one_winner() {
    let store = MemoryChannelStore::new();
    pikku_store_conformance::concurrent_add_suite(&store, &store).await;
}

#[test]
fn the_stores_are_object_safe_and_shareable() {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    let channels: Arc<dyn ChannelStore> = Arc::new(MemoryChannelStore::new());
    let hub: Arc<dyn EventHubStore> = Arc::new(MemoryEventHubStore::new());
    let sessions: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
    shareable(&channels);
    shareable(&hub);
    shareable(&sessions);
}

#[test]
fn adds_racing_on_eight_threads_have_one_winner_per_id() {
    use futures_util::FutureExt;
    use pikku_core::store::{ChannelRecord, StoreError};

    let store = Arc::new(MemoryChannelStore::new());
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut wins = 0;
                for i in 0..200 {
                    let record = ChannelRecord::new(
                        format!("id-{i}"),
                        format!("t{thread}"),
                        serde_json::json!({}),
                    );
                    match store
                        .add_channel(record)
                        .now_or_never()
                        .expect("ready at once")
                    {
                        Ok(()) => wins += 1,
                        Err(StoreError::ChannelExists(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                wins
            })
        })
        .collect();
    let wins: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(wins, 200);
    assert_eq!(store.len(), 200);
}
