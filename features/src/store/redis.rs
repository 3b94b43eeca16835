//! Redis [`FeatureStore`]: pipelined `GET`s for reads, a small Lua compare-and-set script (`EVALSHA`, one key per
//! call: Cluster safe) for writes, `SET` for derived values and `SADD`/`SMEMBERS` for the product index.
//!
//! Durability: a write counts once Redis has acknowledged it (the consumer commits its offsets only then). Run
//! Redis with AOF (`appendfsync everysec` or `always`) and replicas in production; with `--save ""` and no AOF, as
//! on the test machine, a Redis restart loses state: flush the `lusso:` keys and
//! replay the topics (a fresh consumer group) to rebuild it.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::{CasWrite, FeatureStore};
use crate::{Error, Result};

/// Compare-and-set on the 8-byte revision prefix. KEYS[1] key; ARGV[1] expected revision bytes ("" = absent);
/// ARGV[2] new value; ARGV[3] expiry in ms (0 = none). With a second key (same hash tag), on success also
/// KEYS[2] := ARGV[4] with expiry ARGV[5] ms, or deleted when ARGV[4] is "" (the side write of [`CasWrite`]).
/// Returns 1 when written, 0 on conflict.
const CAS_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
local rev = ''
if cur then rev = string.sub(cur, 1, 8) end
if rev ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
if #KEYS > 1 then
  if ARGV[4] == '' then
    redis.call('DEL', KEYS[2])
  else
    redis.call('SET', KEYS[2], ARGV[4], 'PX', tonumber(ARGV[5]))
  end
end
return 1
"#;

/// Commands per pipeline: bounds the request and response buffers (≈ 5k × blob size).
const PIPELINE_CHUNK: usize = 5_000;

/// The Redis store.
pub struct RedisStore {
    conn: ConnectionManager,
    cas: Script,
    url: String,
}

fn unavailable(url: &str, e: RedisError) -> Error {
    Error::Unavailable(format!("redis {url}: {e}"))
}

impl RedisStore {
    /// Connects lazily (so a consumer can start while Redis is down and retry); requests fail fast: 1 s to
    /// connect, 10 s per response.
    pub async fn connect(url: &str) -> Result<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::bad("LUSSO_REDIS_URL", format!("`{url}`: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| unavailable(url, e))?;
        Ok(RedisStore {
            conn,
            cas: Script::new(CAS_LUA),
            url: redact(url),
        })
    }

    async fn load_script(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(CAS_LUA)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&self.url, e))?;
        Ok(())
    }

    async fn cas_chunk(&self, writes: &[CasWrite]) -> std::result::Result<Vec<bool>, RedisError> {
        let mut pipe = redis::pipe();
        for w in writes {
            let expected: Vec<u8> = if w.expected_rev == 0 {
                Vec::new()
            } else {
                w.expected_rev.to_be_bytes().to_vec()
            };
            let ttl_ms = w.ttl.map_or(0, |t| t.as_millis() as u64);
            let cmd = pipe.cmd("EVALSHA").arg(self.cas.get_hash());
            match &w.side {
                None => {
                    cmd.arg(1)
                        .arg(&w.key)
                        .arg(expected)
                        .arg(&w.blob)
                        .arg(ttl_ms);
                }
                Some(side) => {
                    // A side value is never empty (it carries a header), so "" can mean "delete".
                    let value: &[u8] = side.value.as_deref().unwrap_or(&[]);
                    let side_ttl = (side.ttl.as_millis() as u64).max(1);
                    cmd.arg(2)
                        .arg(&w.key)
                        .arg(&side.key)
                        .arg(expected)
                        .arg(&w.blob)
                        .arg(ttl_ms)
                        .arg(value)
                        .arg(side_ttl);
                }
            }
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(out.into_iter().map(|v| v == 1).collect())
    }
}

/// The URL without a password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[async_trait]
impl FeatureStore for RedisStore {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PIPELINE_CHUNK) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("GET").arg(k);
            }
            let mut conn = self.conn.clone();
            let vals: Vec<Option<Vec<u8>>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(&self.url, e))?;
            out.extend(vals.into_iter().map(|v| v.map(Bytes::from)));
        }
        Ok(out)
    }

    async fn put_cas(&self, writes: Vec<CasWrite>) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(PIPELINE_CHUNK) {
            let res = match self.cas_chunk(chunk).await {
                Err(e) if e.code() == Some("NOSCRIPT") => {
                    // Script cache flushed (Redis restarted): load it and retry. Writes that landed before the
                    // error now report a conflict, which the caller resolves by re-reading (fences make it a no-op).
                    self.load_script().await?;
                    self.cas_chunk(chunk).await
                }
                other => other,
            };
            out.extend(res.map_err(|e| unavailable(&self.url, e))?);
        }
        Ok(out)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| unavailable(&self.url, e))
    }

    async fn add_to_set(&self, key: &str, members: &[String]) -> Result<()> {
        for chunk in members.chunks(PIPELINE_CHUNK) {
            if chunk.is_empty() {
                continue;
            }
            let mut conn = self.conn.clone();
            redis::cmd("SADD")
                .arg(key)
                .arg(chunk)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| unavailable(&self.url, e))?;
        }
        Ok(())
    }

    async fn members(&self, key: &str) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&self.url, e))?;
        v.sort();
        Ok(v)
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&self.url, e))
    }

    async fn memory_bytes(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&self.url, e))?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Internal("redis INFO memory has no used_memory".into()))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
