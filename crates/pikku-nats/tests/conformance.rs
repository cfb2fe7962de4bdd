//! The NATS driver keeps every hub rule: on a private server whose own subscription list is checked, and on
//! the shared server at the default address.

mod support;

use support::{Nats, NatsServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hub_rule_holds_on_a_private_server_counting_its_subscriptions() {
    let server = NatsServer::start(&[]).await;
    pikku_hub_conformance::run(&Nats::private(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hub_rule_holds_on_the_shared_server_at_the_default_address() {
    pikku_hub_conformance::run(&Nats::shared("nats://127.0.0.1:4222")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_the_server_max_payload_fails_that_publish_after_the_local_deliveries() {
    use pikku_core::HubError;
    use pikku_hub_conformance::{drain, node, open};
    use pikku_nats::NatsError;

    let server = NatsServer::start(&[]).await;
    let nats = Nats::private(&server);
    let a = node(&nats).await;
    let a1 = open(&a, "a1");
    a.subscribe("big", "a1").await.unwrap();
    // The server's default max_payload is 1 MB.
    let big = bytes::Bytes::from(vec![7u8; 2 << 20]);
    let err = a
        .publish_binary("big", None, big.clone())
        .await
        .unwrap_err();
    let HubError::Backend(err) = err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            err.downcast_ref::<NatsError>(),
            Some(NatsError::Publish { .. })
        ),
        "{err}"
    );
    assert_eq!(drain(&a1), [pikku_core::OutFrame::Binary(big)]);
    // The link is unharmed.
    a.publish("big", None, "small").await.unwrap();
}
