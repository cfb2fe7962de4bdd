//! Topics of any spelling and length cross to exactly their own subscribers, and what arrives on a channel is
//! delivered by the topic it carries, so even a shared channel cannot mix topics up.

mod common;

use base64::Engine as _;
use bytes::Bytes;
use common::{raw_client, Pg, SHARED_URL};
use pikku_core::hub::{envelope, NodeId, PayloadKind, RemoteEvent};
use pikku_core::EventHub;
use pikku_hub_conformance::{close, drain, node, open, read_until, text};

/// Topics whose channels LISTEN and `pg_notify` must name alike: case, quotes, spaces, non-ASCII, lengths
/// on both sides of the 63-byte limit.
fn unusual_topics(run: &str) -> Vec<String> {
    vec![
        format!("{run}MiXeD:Case"),
        format!("{run}mixed:case"),
        format!("{run}say \"hi\" to the room"),
        format!("{run}\"\""),
        format!("{run}tämä huone"),
        format!("{run}{}", "LongTopic With \"Quotes\" ".repeat(8)),
        format!("{run}{}", "y".repeat(200)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_of_any_case_quoting_and_length_reach_exactly_their_subscribers() {
    let backend = Pg::new(SHARED_URL);
    let names = backend.template();
    let (a, b) = (node(&backend).await, node(&backend).await);
    let run = run_tag();
    let topics = unusual_topics(&run);
    assert!(topics.iter().any(|t| t.len() >= 200));
    let conns: Vec<_> = (0..topics.len())
        .map(|i| open(&b, &format!("b{i}")))
        .collect();
    for (topic, conn) in topics.iter().zip(&conns) {
        b.subscribe(topic, conn.id()).await.unwrap();
    }
    let listening = backend.listening_channels().await;
    for topic in &topics {
        let channel = names.channel_name(topic);
        assert!(channel.len() <= 63, "{channel}");
        assert!(
            listening.contains(&channel),
            "PostgreSQL lists {channel:?} as listened to, spelled as pg_notify spells it"
        );
    }

    for topic in &topics {
        a.publish(topic, None, topic.as_str()).await.unwrap();
    }
    fence(&a, &b, &run).await;
    for (topic, conn) in topics.iter().zip(&conns) {
        assert_eq!(
            drain(conn),
            [text(topic)],
            "{topic:?} received only its own"
        );
    }
    for conn in &conns {
        close(&b, conn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_topics_sharing_their_first_63_bytes_do_not_cross_deliver() {
    let backend = Pg::new(SHARED_URL);
    let names = backend.template();
    let (a, b) = (node(&backend).await, node(&backend).await);
    let stem = format!("{}{}", run_tag(), "s".repeat(63));
    let (one, two) = (format!("{stem}/one"), format!("{stem}/two"));
    assert_eq!(one.as_bytes()[..63], two.as_bytes()[..63]);
    assert_ne!(names.channel_name(&one), names.channel_name(&two));
    let (b1, b2) = (open(&b, "b1"), open(&b, "b2"));
    b.subscribe(&one, "b1").await.unwrap();
    b.subscribe(&two, "b2").await.unwrap();
    for i in 0..10 {
        a.publish(&one, None, &format!("one {i}")).await.unwrap();
        a.publish(&two, None, &format!("two {i}")).await.unwrap();
    }
    let want = |name: &str| {
        (0..10)
            .map(|i| text(&format!("{name} {i}")))
            .collect::<Vec<_>>()
    };
    assert_eq!(read_until(&b1, &text("one 9"), "one").await, want("one"));
    assert_eq!(read_until(&b2, &text("two 9"), "two").await, want("two"));
    close(&b, &b1);
    close(&b, &b2);
}

/// What two topics whose hashed channels met would see: an event for one topic on the other's channel. It
/// reaches the subscribers of the topic it carries and no one else; and text on a hub channel that is not a
/// hub message is dropped without harm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_by_their_own_topic_whatever_channel_brought_them() {
    let backend = Pg::new(SHARED_URL);
    let names = backend.template();
    let b = node(&backend).await;
    let db = raw_client(SHARED_URL).await;
    let run = run_tag();
    let (x, y) = (format!("{run}x"), format!("{run}y"));
    let (bx, by) = (open(&b, "bx"), open(&b, "by"));
    b.subscribe(&x, "bx").await.unwrap();
    b.subscribe(&y, "by").await.unwrap();
    let x_channel = names.channel_name(&x);

    let foreign = |topic: &str, body: &'static str| {
        let event = RemoteEvent::new(
            NodeId::random(),
            topic,
            None,
            PayloadKind::Text,
            Bytes::from_static(body.as_bytes()),
        );
        format!(
            "i{}",
            base64::engine::general_purpose::STANDARD.encode(envelope::encode(&event))
        )
    };
    let notify = |payload: String| {
        let db = &db;
        let channel = x_channel.clone();
        async move {
            db.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .expect("pg_notify");
        }
    };
    notify(foreign(&y, "for y, on x's channel")).await;
    notify(foreign(&format!("{run}nobody"), "for nobody")).await;
    notify("not a hub message".to_owned()).await;
    notify("i%%% not base64".to_owned()).await;
    notify(format!("r{}42", "0".repeat(32))).await; // a reference to a row that is not there
    notify(foreign(&x, "for x")).await;

    assert_eq!(
        read_until(&bx, &text("for x"), "x").await,
        [text("for x")],
        "x's subscriber gets only x's event; the rest was dropped"
    );
    assert_eq!(drain(&by), [text("for y, on x's channel")]);
    assert!(
        b.status().unwrap().last_error.is_none(),
        "the link stayed up"
    );
    close(&b, &bx);
    close(&b, &by);
}

/// A prefix of this test run's own, so runs and tests never share topics.
fn run_tag() -> String {
    format!("names-{}-", uuid::Uuid::new_v4().simple())
}

/// Waits until everything `a` published so far has reached `b`.
async fn fence(a: &EventHub, b: &EventHub, run: &str) {
    let topic = format!("{run}fence");
    let conn = open(b, "fence");
    b.subscribe(&topic, "fence").await.unwrap();
    // PostgreSQL keeps one queue for every channel, so a listening session reads one publisher's
    // notifications in commit order whatever their channels, and the driver delivers them in that order.
    a.publish(&topic, None, "fence").await.unwrap();
    read_until(&conn, &text("fence"), "fence").await;
    close(b, &conn);
}
