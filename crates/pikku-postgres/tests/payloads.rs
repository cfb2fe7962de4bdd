//! Payloads of every size cross intact and in order: inline up to the limit, by reference above it, and rows
//! stored for references are swept once older than the retention period.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{raw_client, row_count, unique_table, Pg, SHARED_URL};
use pikku_core::hub::{envelope, NodeId, PayloadKind, RemoteEvent};
use pikku_core::{OutFrame, SlowConsumerPolicy};
use pikku_hub_conformance::{close, node, open, open_with, read_until, text};
use pikku_postgres::MAX_INLINE_ENVELOPE;

/// Bytes that are not all alike, so a shifted or truncated copy would not pass for the original.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_just_under_and_just_over_the_inline_limit_both_cross() {
    let table = unique_table();
    let t = table.clone();
    let backend = Pg::with(SHARED_URL, move |d| d.table(&t));
    let (a, b) = (node(&backend).await, node(&backend).await);
    let db = raw_client(SHARED_URL).await;
    let b1 = open(&b, "b1");
    let topic = "limit";
    b.subscribe(topic, "b1").await.unwrap();

    // The payload length whose envelope is exactly the largest that still goes inline.
    let overhead = envelope::encode(&RemoteEvent::new(
        NodeId::random(),
        topic,
        None,
        PayloadKind::Binary,
        Bytes::new(),
    ))
    .len();
    let under = pattern(MAX_INLINE_ENVELOPE - overhead, 1);
    let over = pattern(MAX_INLINE_ENVELOPE - overhead + 1, 2);

    a.publish_binary(topic, None, under.clone()).await.unwrap();
    assert_eq!(
        row_count(&db, &table).await,
        0,
        "just under the limit goes inline"
    );
    a.publish_binary(topic, None, over.clone()).await.unwrap();
    assert_eq!(
        row_count(&db, &table).await,
        1,
        "just over the limit goes by reference"
    );
    let got = read_until(&b1, &OutFrame::Binary(over.clone()), "over the limit").await;
    assert_eq!(got, [OutFrame::Binary(under), OutFrame::Binary(over)]);

    close(&b, &b1);
    drop_table(&db, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_events_keep_their_publish_order() {
    let table = unique_table();
    let t = table.clone();
    let backend = Pg::with(SHARED_URL, move |d| d.table(&t));
    let (a, b) = (node(&backend).await, node(&backend).await);
    let db = raw_client(SHARED_URL).await;
    // Room for everything at once: 2 MB are queued before the test reads.
    let b1 = open_with(&b, "b1", 8 << 20, SlowConsumerPolicy::Close);
    b.subscribe("mixed", "b1").await.unwrap();

    // Every third event is 100 KB and goes by reference; the small ones after it must not overtake it.
    let mut want = Vec::new();
    for i in 0..60u8 {
        let frame = if i % 3 == 0 {
            OutFrame::Binary(pattern(100_000, i))
        } else {
            text(&format!("small {i}"))
        };
        match &frame {
            OutFrame::Binary(bytes) => a.publish_binary("mixed", None, bytes.clone()).await,
            _ => a.publish("mixed", None, &format!("small {i}")).await,
        }
        .unwrap();
        want.push(frame);
    }
    let got = read_until(&b1, want.last().unwrap(), "mixed sizes").await;
    assert_eq!(got.len(), want.len());
    assert!(got == want, "events arrived out of order or changed");
    assert_eq!(row_count(&db, &table).await, 20);

    close(&b, &b1);
    drop_table(&db, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kb_payload_crosses_by_reference_and_its_row_is_swept_after_the_retention_period() {
    let table = unique_table();
    let t = table.clone();
    let retention = Duration::from_millis(300);
    let backend = Pg::with(SHARED_URL, move |d| d.table(&t).retention(retention));
    let (a, b) = (node(&backend).await, node(&backend).await);
    let db = raw_client(SHARED_URL).await;
    let b1 = open(&b, "b1");
    b.subscribe("big", "b1").await.unwrap();

    let big: String = "0123456789".repeat(10_000);
    a.publish("big", None, &big).await.unwrap();
    assert_eq!(row_count(&db, &table).await, 1, "stored by reference");
    assert_eq!(
        read_until(&b1, &text(&big), "100 KB").await,
        [text(&big)],
        "crossed intact"
    );

    let stored = Instant::now();
    let deadline = stored + Duration::from_secs(5);
    while row_count(&db, &table).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the row outlived its retention period by far"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let swept_after = stored.elapsed();
    println!(
        "a row with retention {retention:?} was swept {} ms after it was stored",
        swept_after.as_millis()
    );
    assert!(
        swept_after >= retention - Duration::from_millis(50),
        "not before its retention period ({swept_after:?})"
    );

    close(&b, &b1);
    drop_table(&db, &table).await;
}

async fn drop_table(db: &tokio_postgres::Client, table: &str) {
    db.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await
        .expect("drop the test's table");
}
