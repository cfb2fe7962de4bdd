//! The session rules.

use pikku_core::store::SessionStore;
use serde_json::json;

/// Runs the session cases in order on `store`, which must be empty: a missing session reads as `None`, a set
/// session reads back, a second set replaces it (no merge), sessions of two users are apart, awkward JSON
/// round-trips, and a removed session reads as `None` (removing a missing one is not an error).
///
/// ```no_run
/// # async fn check() {
/// pikku_store_conformance::session_store_suite(&pikku_core::store::MemorySessionStore::new()).await;
/// # }
/// ```
pub async fn session_store_suite(store: &dyn SessionStore) {
    assert_eq!(store.get("user-1").await, Ok(None), "no session at first");

    let first = json!({"userId": "user-1", "roles": ["admin"], "meta": {"n": 1}});
    store
        .set("user-1", first.clone())
        .await
        .expect("set(user-1)");
    assert_eq!(store.get("user-1").await, Ok(Some(first)), "read back");

    let second = json!({"userId": "user-1"});
    store
        .set("user-1", second.clone())
        .await
        .expect("set(user-1) again");
    assert_eq!(
        store.get("user-1").await,
        Ok(Some(second.clone())),
        "replaced, not merged"
    );

    let other = json!({"userId": "user-2", "name": "Zoë ✓ 日本", "big": 9_007_199_254_740_992_u64, "empty": {}});
    store
        .set("user-2", other.clone())
        .await
        .expect("set(user-2)");
    assert_eq!(
        store.get("user-2").await,
        Ok(Some(other)),
        "awkward JSON round-trips"
    );
    assert_eq!(
        store.get("user-1").await,
        Ok(Some(second)),
        "users are apart"
    );

    let odd = "user:with/odd *chars";
    store
        .set(odd, json!("plain string"))
        .await
        .expect("set(odd id)");
    assert_eq!(
        store.get(odd).await,
        Ok(Some(json!("plain string"))),
        "odd user id"
    );
    assert_eq!(store.get("user").await, Ok(None), "no prefix matching");

    store.remove("user-1").await.expect("remove(user-1)");
    assert_eq!(store.get("user-1").await, Ok(None), "removed");
    assert!(
        store.get("user-2").await.is_ok_and(|s| s.is_some()),
        "user-2 kept"
    );
    store.remove("user-1").await.expect("remove(user-1) again");
    store
        .remove("never-there")
        .await
        .expect("remove(never-there)");
}
