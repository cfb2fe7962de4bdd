//! Channel records on Redis: a hash per record and a sorted set by last activity.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pikku_core::store::{BoxFuture, ChannelRecord, ChannelStore, StoreError};
use redis::Script;
use serde_json::Value;

use super::{run, RedisStoreError, RedisStores};

/// Adds a record unless its key exists, and indexes it by last activity.
/// KEYS: record, last-seen index. ARGV: id, name, opening, created, seen, has user, user, has state, state.
const ADD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'opening', ARGV[3], 'created', ARGV[4], 'seen', ARGV[5])
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'user', ARGV[7]) end
if ARGV[8] == '1' then redis.call('HSET', KEYS[1], 'state', ARGV[9]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return 1
";

/// Sets one field of an existing record. KEYS: record. ARGV: field, value.
const SET_FIELD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// Deletes one field of an existing record. KEYS: record. ARGV: field.
const DELETE_FIELD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
";

/// Moves an existing record's last activity forward. KEYS: record, last-seen index. ARGV: time, id.
const TOUCH: &str = r"
local seen = redis.call('HGET', KEYS[1], 'seen')
if not seen then return 0 end
if tonumber(ARGV[1]) > tonumber(seen) then
  redis.call('HSET', KEYS[1], 'seen', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
end
return 1
";

/// Removes up to a batch of records last seen before a time; returns their ids.
/// KEYS: last-seen index. ARGV: time (exclusive), record key prefix, batch size.
const EXPIRE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[1], id)
end
return ids
";

/// Records one expiry script run removes at most, so that a large sweep never holds the server for long.
const EXPIRE_BATCH: usize = 500;

/// The [`ChannelStore`] on Redis: each record is a hash, indexed by last activity in a sorted set (see the
/// [module](super) for the key layout).
///
/// ```no_run
/// use pikku::redis::store::RedisChannelStore;
/// use pikku::store::{ChannelRecord, ChannelStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channels = RedisChannelStore::from_url("redis://127.0.0.1:6379")?;
/// channels.add_channel(ChannelRecord::new("conn-1", "chat", serde_json::json!({}))).await?;
/// channels.set_state("conn-1", serde_json::json!({"typing": true})).await?;
/// # Ok(())
/// # }
/// ```
pub struct RedisChannelStore {
    stores: RedisStores,
    scripts: Scripts,
}

struct Scripts {
    add: Script,
    set_field: Script,
    delete_field: Script,
    touch: Script,
    expire: Script,
}

impl fmt::Debug for RedisChannelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisChannelStore")
            .field("prefix", &self.stores.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisChannelStore {
    pub(super) fn new(stores: RedisStores) -> Self {
        Self {
            stores,
            scripts: Scripts {
                add: Script::new(ADD),
                set_field: Script::new(SET_FIELD),
                delete_field: Script::new(DELETE_FIELD),
                touch: Script::new(TOUCH),
                expire: Script::new(EXPIRE),
            },
        }
    }

    /// A store on the server `url` names, with its own connection and the default key prefix; see
    /// [`RedisStores`] to share a connection or choose the prefix.
    ///
    /// ```
    /// use pikku::redis::store::RedisChannelStore;
    ///
    /// let channels = RedisChannelStore::from_url("redis://127.0.0.1").unwrap();
    /// # let _ = channels;
    /// ```
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`] when the URL names no single Redis server.
    pub fn from_url(url: &str) -> Result<Self, RedisStoreError> {
        Ok(RedisStores::from_url(url)?.channel_store())
    }

    /// Runs a script that answers 0 when the record is missing.
    async fn on_existing(
        &self,
        script: &Script,
        channel_id: &str,
        args: &[&str],
    ) -> Result<(), StoreError> {
        let key = self.stores.keys.channel(channel_id);
        let found: i64 = run(&self.stores, |mut conn| async move {
            let mut invocation = script.key(&key);
            for arg in args {
                invocation.arg(*arg);
            }
            invocation.invoke_async(&mut conn).await
        })
        .await?;
        if found == 1 {
            Ok(())
        } else {
            Err(StoreError::ChannelNotFound(channel_id.to_owned()))
        }
    }
}

fn micros(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

fn corrupt(key: &str, reason: impl fmt::Display) -> StoreError {
    RedisStoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
    .into()
}

fn json(key: &str, field: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(key, format_args!("field {field}: {e}")))
}

fn time(key: &str, field: &str, text: Option<&String>) -> Result<SystemTime, StoreError> {
    let micros: u64 = text
        .ok_or_else(|| corrupt(key, format_args!("no field {field}")))?
        .parse()
        .map_err(|e| corrupt(key, format_args!("field {field}: {e}")))?;
    Ok(UNIX_EPOCH + Duration::from_micros(micros))
}

/// A record from the fields of its hash.
fn record(
    key: &str,
    id: &str,
    mut fields: HashMap<String, String>,
) -> Result<ChannelRecord, StoreError> {
    let name = fields
        .remove("name")
        .ok_or_else(|| corrupt(key, "no field name"))?;
    let opening = json(
        key,
        "opening",
        &fields
            .remove("opening")
            .ok_or_else(|| corrupt(key, "no field opening"))?,
    )?;
    let mut record = ChannelRecord::new(id, name, opening);
    record.user_id = fields.remove("user");
    record.state = fields
        .remove("state")
        .map(|text| json(key, "state", &text))
        .transpose()?;
    record.created_at = time(key, "created", fields.get("created"))?;
    record.last_seen = time(key, "seen", fields.get("seen"))?;
    Ok(record)
}

impl ChannelStore for RedisChannelStore {
    fn add_channel(&self, record: ChannelRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.channel(&record.channel_id);
            let index = self.stores.keys.last_seen();
            let opening = record.opening_data.to_string();
            let state = record.state.as_ref().map(Value::to_string);
            let created = micros(record.created_at).to_string();
            let seen = micros(record.last_seen).to_string();
            let script = &self.scripts.add;
            let record = &record;
            let added: i64 = run(&self.stores, |mut conn| async move {
                script
                    .key(&key)
                    .key(&index)
                    .arg(&record.channel_id)
                    .arg(&record.channel_name)
                    .arg(&opening)
                    .arg(&created)
                    .arg(&seen)
                    .arg(if record.user_id.is_some() { "1" } else { "0" })
                    .arg(record.user_id.as_deref().unwrap_or(""))
                    .arg(if state.is_some() { "1" } else { "0" })
                    .arg(state.as_deref().unwrap_or(""))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
            if added == 1 {
                Ok(())
            } else {
                Err(StoreError::ChannelExists(record.channel_id.clone()))
            }
        })
    }

    fn get_channel<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<ChannelRecord, StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.channel(channel_id);
            let fields: HashMap<String, String> = run(&self.stores, |mut conn| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(key).query_async(&mut conn).await }
            })
            .await?;
            if fields.is_empty() {
                return Err(StoreError::ChannelNotFound(channel_id.to_owned()));
            }
            record(&key, channel_id, fields)
        })
    }

    fn set_user_id<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match user_id {
                Some(user) => {
                    self.on_existing(&self.scripts.set_field, channel_id, &["user", user])
                        .await
                }
                None => {
                    self.on_existing(&self.scripts.delete_field, channel_id, &["user"])
                        .await
                }
            }
        })
    }

    fn get_state<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.channel(channel_id);
            let (seen, state): (Option<String>, Option<String>) = run(&self.stores, |mut conn| {
                let key = key.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg("seen")
                        .arg("state")
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
            if seen.is_none() {
                return Err(StoreError::ChannelNotFound(channel_id.to_owned()));
            }
            state.map(|text| json(&key, "state", &text)).transpose()
        })
    }

    fn set_state<'a>(
        &'a self,
        channel_id: &'a str,
        state: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let text = state.to_string();
            self.on_existing(&self.scripts.set_field, channel_id, &["state", &text])
                .await
        })
    }

    fn clear_state<'a>(&'a self, channel_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.on_existing(&self.scripts.delete_field, channel_id, &["state"])
                .await
        })
    }

    fn touch<'a>(
        &'a self,
        channel_id: &'a str,
        at: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.stores.keys.channel(channel_id);
            let index = self.stores.keys.last_seen();
            let at = micros(at).to_string();
            let script = &self.scripts.touch;
            let found: i64 = run(&self.stores, |mut conn| async move {
                script
                    .key(&key)
                    .key(&index)
                    .arg(&at)
                    .arg(channel_id)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
            if found == 1 {
                Ok(())
            } else {
                Err(StoreError::ChannelNotFound(channel_id.to_owned()))
            }
        })
    }

    fn remove_channels<'a>(
        &'a self,
        channel_ids: &'a [&'a str],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if channel_ids.is_empty() {
                return Ok(());
            }
            let keys: Vec<String> = channel_ids
                .iter()
                .map(|id| self.stores.keys.channel(id))
                .collect();
            let index = self.stores.keys.last_seen();
            run(&self.stores, |mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("DEL")
                    .arg(&keys)
                    .ignore()
                    .cmd("ZREM")
                    .arg(&index)
                    .arg(channel_ids)
                    .ignore()
                    .exec_async(&mut conn)
                    .await
            })
            .await
        })
    }

    fn expire(&self, before: SystemTime) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let index = self.stores.keys.last_seen();
            let base = self.stores.keys.channel_base();
            let before = micros(before).to_string();
            let batch = EXPIRE_BATCH.to_string();
            let mut expired = Vec::new();
            loop {
                let script = &self.scripts.expire;
                let ids: Vec<String> = run(&self.stores, |mut conn| {
                    let (index, base, before, batch) = (&index, &base, &before, &batch);
                    async move {
                        script
                            .key(index)
                            .arg(before)
                            .arg(base)
                            .arg(batch)
                            .invoke_async(&mut conn)
                            .await
                    }
                })
                .await?;
                let done = ids.len() < EXPIRE_BATCH;
                expired.extend(ids);
                if done {
                    return Ok(expired);
                }
            }
        })
    }
}
