//! What a Redis URL names: one server, or the seed nodes of a cluster.

use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion};

use crate::RedisHubError;

/// The deployment a [`RedisHub`](crate::RedisHub) talks to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One server (or a proxy in front of several): `PUBLISH` / `SUBSCRIBE`.
    Standalone(ConnectionInfo),
    /// A Redis Cluster, reached through any of these nodes: `SPUBLISH` / `SSUBSCRIBE`.
    Cluster(Vec<ConnectionInfo>),
}

impl Target {
    /// Parses `redis://`, `rediss://`, `redis+cluster://` and `rediss+cluster://` URLs. Every connection speaks
    /// RESP3, which carries pub/sub messages on the same connection as commands.
    pub(crate) fn parse(url: &str) -> Result<Self, RedisHubError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        match scheme {
            "redis" | "rediss" => Ok(Self::Standalone(resp3(url)?)),
            "redis+cluster" | "rediss+cluster" => {
                let scheme = scheme.trim_end_matches("+cluster");
                let (authority, tail) = rest
                    .find(['/', '?'])
                    .map_or((rest, ""), |at| rest.split_at(at));
                let (userinfo, hosts) = match authority.rsplit_once('@') {
                    Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                    None => (String::new(), authority),
                };
                let nodes = hosts
                    .split(',')
                    .filter(|host| !host.is_empty())
                    .map(|host| resp3(&format!("{scheme}://{userinfo}{host}{tail}")))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.is_empty() {
                    return Err(invalid("a cluster URL names at least one node"));
                }
                Ok(Self::Cluster(nodes))
            }
            other => Err(invalid(&format!(
                "scheme '{other}' is not redis, rediss, redis+cluster or rediss+cluster"
            ))),
        }
    }
}

fn resp3(url: &str) -> Result<ConnectionInfo, RedisHubError> {
    let info = url
        .into_connection_info()
        .map_err(|err| invalid(&err.to_string()))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

fn invalid(reason: &str) -> RedisHubError {
    RedisHubError::InvalidUrl {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_urls_name_one_server() {
        let Target::Standalone(info) = Target::parse("redis://127.0.0.1:6380/2").unwrap() else {
            panic!("not standalone");
        };
        assert_eq!(info.addr().to_string(), "127.0.0.1:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.redis_settings().protocol(), ProtocolVersion::RESP3);
    }

    #[test]
    fn cluster_urls_list_seed_nodes_sharing_credentials() {
        let Target::Cluster(nodes) =
            Target::parse("redis+cluster://u:secret@127.0.0.1:7000,127.0.0.1:7001/?x=1").unwrap()
        else {
            panic!("not a cluster");
        };
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1:7000", "127.0.0.1:7001"]);
        for node in &nodes {
            assert_eq!(node.redis_settings().username(), Some("u"));
            assert_eq!(node.redis_settings().password(), Some("secret"));
            assert_eq!(node.redis_settings().protocol(), ProtocolVersion::RESP3);
        }
    }

    #[test]
    fn other_schemes_and_empty_clusters_are_refused() {
        for url in [
            "http://127.0.0.1",
            "127.0.0.1:6379",
            "redis+cluster://",
            "redis://:::",
        ] {
            assert!(
                matches!(Target::parse(url), Err(RedisHubError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }
}
