//! Adds of one id that race.

use futures_util::future::join_all;
use pikku_core::store::{ChannelRecord, ChannelStore, StoreError};
use serde_json::json;

/// How many ids are raced.
const RACED: usize = 32;

/// Adds each of 32 ids through `a` and through `b` at the same moment (all 64 adds in flight together) and
/// checks that exactly one add of each id succeeded, the other failed with `ChannelExists`, and the stored
/// record is the winner's. `a` and `b` must reach the same data (two stores with their own connections, or
/// the same store twice), with none of the raced ids (`race-0` …) stored.
///
/// ```no_run
/// # async fn check() {
/// let shared = pikku_core::store::MemoryChannelStore::new();
/// pikku_store_conformance::concurrent_add_suite(&shared, &shared).await;
/// # }
/// ```
pub async fn concurrent_add_suite(a: &dyn ChannelStore, b: &dyn ChannelStore) {
    let adds = (0..RACED).flat_map(|i| {
        let id = format!("race-{i}");
        [(a, "from-a"), (b, "from-b")].map(|(store, name)| {
            let record = ChannelRecord::new(id.as_str(), name, json!({"by": name}));
            let id = id.clone();
            async move { (id, name, store.add_channel(record).await) }
        })
    });
    let results = join_all(adds).await;
    for i in 0..RACED {
        let id = format!("race-{i}");
        let mine: Vec<_> = results.iter().filter(|(rid, _, _)| *rid == id).collect();
        let winners: Vec<&str> = mine
            .iter()
            .filter(|(_, _, r)| r.is_ok())
            .map(|(_, name, _)| *name)
            .collect();
        assert_eq!(winners.len(), 1, "{id}: exactly one add wins: {mine:?}");
        for (_, _, result) in &mine {
            if let Err(e) = result {
                assert_eq!(
                    *e,
                    StoreError::ChannelExists(id.clone()),
                    "{id}: the loser's error"
                );
            }
        }
        let record = a
            .get_channel(&id)
            .await
            .unwrap_or_else(|e| panic!("get_channel({id}): {e}"));
        assert_eq!(
            record.channel_name, winners[0],
            "{id}: the winner's record is stored"
        );
        assert_eq!(
            record.opening_data,
            json!({"by": winners[0]}),
            "{id}: opening data"
        );
    }
}
