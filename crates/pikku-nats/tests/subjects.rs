//! Topics that look like NATS syntax stay literal: each one is a single subject token on the server, and no
//! topic receives another one's events.

mod support;

use pikku_hub_conformance::{close, node, open, read_until, text};
use support::{Nats, NatsServer};

const TOPICS: [&str; 9] = [
    "room", "room.1", "room.*", "room.>", "*", ">", "a b", "50%", "日本",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_with_dots_wildcards_and_spaces_stay_apart() {
    let server = NatsServer::start(&[]).await;
    let nats = Nats::private(&server);
    let (a, b) = (node(&nats).await, node(&nats).await);
    let conns: Vec<_> = TOPICS
        .iter()
        .enumerate()
        .map(|(i, _)| open(&b, &format!("b{i}")))
        .collect();
    for (topic, conn) in TOPICS.iter().zip(&conns) {
        b.subscribe(topic, conn.id()).await.unwrap();
    }
    let mut held = server.all_subjects().await;
    held.retain(|s| s.starts_with("pikku."));
    held.sort();
    let mut want: Vec<String> = TOPICS.iter().map(|t| nats.subject(t)).collect();
    want.sort();
    assert_eq!(held, want, "one literal subject per topic on the server");
    for subject in &held {
        assert_eq!(subject.matches('.').count(), 1, "{subject} is two tokens");
    }

    for topic in TOPICS {
        a.publish(topic, None, &format!("for {topic}"))
            .await
            .unwrap();
    }
    a.publish("fence", None, "nobody").await.unwrap();
    for (topic, conn) in TOPICS.iter().zip(&conns) {
        let got = read_until(conn, &text(&format!("for {topic}")), topic).await;
        assert_eq!(
            got,
            [text(&format!("for {topic}"))],
            "{topic} got only its own"
        );
    }
    // Whatever else was in flight has arrived by now; nothing leaked into another topic.
    a.publish(TOPICS[0], None, "last").await.unwrap();
    read_until(&conns[0], &text("last"), "the last event").await;
    for conn in &conns[1..] {
        assert!(pikku_hub_conformance::drain(conn).is_empty());
    }
    for conn in &conns {
        close(&b, conn);
    }
}
