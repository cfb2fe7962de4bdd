//! The hub rules, checked across two apps with separate Redis connections: on the shared standalone server and
//! on a private three-node Redis Cluster (sharded pub/sub).

mod support;

use pikku_hub_conformance::Backend;
use pikku_redis::RedisHub;

struct Redis {
    url: String,
    /// Where to count subscriptions, and with which `PUBSUB` subcommand.
    ports: Vec<u16>,
    numsub: &'static str,
}

impl Backend for Redis {
    type Driver = RedisHub;

    fn node(&self) -> RedisHub {
        RedisHub::from_url(&self.url).expect("a valid URL")
    }

    async fn broker_subscriptions(&self, topics: &[String]) -> Option<usize> {
        let channels: Vec<String> = topics.iter().map(|t| format!("pikku:{t}")).collect();
        Some(
            self.ports
                .iter()
                .map(|port| support::subscribed(*port, self.numsub, &channels))
                .sum(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_every_hub_rule() {
    pikku_hub_conformance::run(&Redis {
        url: support::SHARED.to_owned(),
        ports: vec![6379],
        numsub: "NUMSUB",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_keeps_every_hub_rule_with_sharded_pub_sub() {
    let cluster = support::Cluster::start();
    pikku_hub_conformance::run(&Redis {
        url: cluster.url(),
        ports: cluster.nodes.iter().map(|n| n.port).collect(),
        numsub: "SHARDNUMSUB",
    })
    .await;
}
