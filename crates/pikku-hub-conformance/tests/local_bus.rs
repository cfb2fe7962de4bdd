//! The in-process bus keeps every hub rule, and the hub recovers from an outage of it.

use std::time::Duration;

use pikku_core::hub::{LinkState, LocalBus, LocalBusNode};
use pikku_core::HubError;
use pikku_hub_conformance::{close, node, open, read_until, text, Backend};

struct Local(LocalBus);

impl Backend for Local {
    type Driver = LocalBusNode;

    fn node(&self) -> LocalBusNode {
        self.0.node()
    }

    async fn broker_subscriptions(&self, topics: &[String]) -> Option<usize> {
        Some(
            topics
                .iter()
                .filter(|t| self.0.subscriptions(t) > 0)
                .count(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_bus_keeps_every_hub_rule() {
    pikku_hub_conformance::run(&Local(LocalBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_every_node_delivers_again_without_a_restart() {
    let bus = Local(LocalBus::new());
    let (a, b) = (node(&bus).await, node(&bus).await);
    let b1 = open(&b, "b1");
    b.subscribe("news", "b1").await.unwrap();
    a.publish("news", None, "before").await.unwrap();
    read_until(&b1, &text("before"), "before the outage").await;

    bus.0.set_available(false);
    assert_eq!(
        bus.0.subscriptions("news"),
        0,
        "the outage dropped the broker's subscriptions"
    );
    let err = a.publish("news", None, "during").await.unwrap_err();
    assert!(
        matches!(err, HubError::Backend(ref e) if e.backend() == "local"),
        "{err}"
    );
    assert!(matches!(
        a.status().unwrap().link,
        LinkState::Reconnecting { .. }
    ));
    assert!(a.status().unwrap().last_error.is_some());
    // Local subscribers are still served while the broker is away.
    let a1 = open(&a, "a1");
    a.subscribe("news", "a1").await.unwrap();
    assert!(a.publish("news", None, "local only").await.is_err());
    assert_eq!(pikku_hub_conformance::drain(&a1), [text("local only")]);

    bus.0.set_available(true);
    // The hub subscribes its topics again by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while bus.0.subscriptions("news") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "topics were not replayed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.publish("news", None, "after").await.unwrap();
    assert_eq!(
        read_until(&b1, &text("after"), "after the outage").await,
        [text("after")]
    );
    assert!(matches!(
        b.status().unwrap().link,
        LinkState::Connected { .. }
    ));
    close(&a, &a1);
    close(&b, &b1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_first_subscribed_during_an_outage_reaches_the_broker_as_soon_as_it_is_back() {
    let bus = Local(LocalBus::new());
    let a = node(&bus).await;
    bus.0.set_available(false);
    let a1 = open(&a, "a1");
    a.subscribe("late", "a1").await.unwrap();
    // Long enough for the retries of the refused topic to back off by seconds.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(bus.0.subscriptions("late"), 0);

    bus.0.set_available(true);
    let back = std::time::Instant::now();
    while bus.0.subscriptions("late") == 0 {
        assert!(
            back.elapsed() < Duration::from_millis(1500),
            "the refused topic waited out its backoff instead of following the link"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    close(&a, &a1);
}
