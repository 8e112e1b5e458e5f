//! Broker URLs for Redis as kombu reads them: `redis://`, `rediss://` (TLS)
//! and `redis+socket://` (a Unix socket), with the database number that
//! also names kombu's pub/sub channels (`/{db}.celeryev/...`).

use crate::mask::mask_password;
use crate::transport::TransportError;

/// The URL schemes of kombu's Redis transport (lower case); `None` for
/// other transports.
pub fn redis_scheme(scheme: &str) -> Option<&'static str> {
    match scheme {
        "redis" => Some("redis"),
        "rediss" => Some("rediss"),
        "redis+socket" => Some("redis+socket"),
        "sentinel" => Some("sentinel"),
        _ => None,
    }
}

/// What celeriac needs from a Redis broker URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisUrl {
    /// The same server in redis-rs' URL syntax.
    pub connect: String,
    /// kombu's virtual host: the database number.
    pub db: i64,
}

pub fn parse(url: &str) -> Result<RedisUrl, TransportError> {
    let bad = |reason: String| TransportError::BadUrl {
        url: mask_password(url),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected redis://[:password@]host[:port][/db]".into()))?;
    let scheme = scheme.to_ascii_lowercase();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let param = |name: &str| {
        query.and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        })
    };
    let parse_db = |text: &str| {
        let text = text.trim_matches('/');
        if text.is_empty() {
            return Ok(0);
        }
        text.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(format!("the database `{text}` is not a number")))
    };
    match scheme.as_str() {
        "redis" | "rediss" => {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if authority
                .rsplit_once('@')
                .map_or(authority, |(_, h)| h)
                .is_empty()
            {
                return Err(bad("no host".into()));
            }
            let db = match param("virtual_host").or(param("db")) {
                Some(v) => parse_db(v)?,
                None => parse_db(path)?,
            };
            let mut connect = format!("{scheme}://{authority}/{db}");
            // kombu's `ssl_cert_reqs=none` (or CERT_NONE) accepts any
            // certificate; redis-rs spells that `#insecure`.
            if scheme == "rediss"
                && param("ssl_cert_reqs")
                    .is_some_and(|v| v.eq_ignore_ascii_case("none") || v == "CERT_NONE")
            {
                connect.push_str("#insecure");
            }
            Ok(RedisUrl { connect, db })
        }
        "redis+socket" => {
            let (auth, path) = match rest.rsplit_once('@') {
                Some((a, p)) => (Some(a), p),
                None => (None, rest),
            };
            if !path.starts_with('/') {
                return Err(bad("expected redis+socket:///path/to/redis.sock".into()));
            }
            let db = match param("virtual_host").or(param("db")) {
                Some(v) => parse_db(v)?,
                None => 0,
            };
            let mut connect = format!("redis+unix://{path}?db={db}");
            if let Some((user, pass)) = auth.and_then(|a| a.split_once(':')) {
                if !user.is_empty() {
                    connect.push_str(&format!("&user={user}"));
                }
                connect.push_str(&format!("&pass={pass}"));
            }
            Ok(RedisUrl { connect, db })
        }
        "sentinel" => Err(bad(
            "Redis Sentinel is not supported yet; point --broker at the current master \
             (redis://host:port/db)"
                .into(),
        )),
        other => Err(bad(format!("unsupported scheme `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_kombu_reads_them() {
        assert_eq!(
            parse("redis://localhost:6379/3").unwrap(),
            RedisUrl {
                connect: "redis://localhost:6379/3".into(),
                db: 3
            }
        );
        assert_eq!(parse("redis://localhost").unwrap().db, 0);
        assert_eq!(parse("redis://localhost/").unwrap().db, 0);
        assert_eq!(
            parse("REDIS://:pw@h:1/2").unwrap().connect,
            "redis://:pw@h:1/2"
        );
        assert_eq!(
            parse("redis://h?virtual_host=5").unwrap(),
            RedisUrl {
                connect: "redis://h/5".into(),
                db: 5
            }
        );
        assert_eq!(
            parse("rediss://h:6380/1?ssl_cert_reqs=none")
                .unwrap()
                .connect,
            "rediss://h:6380/1#insecure"
        );
        assert_eq!(
            parse("rediss://h:6380/1?ssl_cert_reqs=required")
                .unwrap()
                .connect,
            "rediss://h:6380/1"
        );
        assert_eq!(
            parse("redis+socket:///run/redis.sock?virtual_host=4").unwrap(),
            RedisUrl {
                connect: "redis+unix:///run/redis.sock?db=4".into(),
                db: 4
            }
        );
        for url in [
            "redis:///0",
            "redis://h/x",
            "redis+socket://relative",
            "sentinel://h:26379",
        ] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.contains("invalid broker URL"), "{url}: {err}");
        }
        let err = parse("redis://:secret@h/notanumber")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("secret") && err.contains("notanumber"),
            "{err}"
        );
    }
}
