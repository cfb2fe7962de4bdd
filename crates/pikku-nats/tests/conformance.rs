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
