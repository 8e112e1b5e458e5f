//! Broker URLs for Redis as kombu reads them: `redis://`, `rediss://` (TLS),
//! `redis+socket://` (a Unix socket) and `sentinel://` (Sentinel nodes that
//! name the master, several joined by `;`), with the database number that
//! also names kombu's pub/sub channels (`/{db}.celeryev/...`).
//!
//! Two query parameters are celeriac's own, for what kombu takes from
//! `broker_transport_options` instead: `master_name` and
//! `global_keyprefix` (they override `--redis-master-name` and
//! `--redis-global-keyprefix` for this URL).

use percent_encoding::percent_decode_str;

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

/// kombu's default port of a Sentinel node.
const SENTINEL_PORT: u16 = 26379;

/// What celeriac needs from a Redis broker URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisUrl {
    pub endpoint: Endpoint,
    /// kombu's virtual host: the database number.
    pub db: i64,
    /// `?master_name=`, for `sentinel://`.
    pub master_name: Option<String>,
    /// `?global_keyprefix=`.
    pub global_keyprefix: Option<String>,
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// One server, in redis-rs' URL syntax.
    Direct(String),
    /// Sentinel nodes to ask for the current master.
    Sentinel(SentinelUrl),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SentinelUrl {
    /// `(host, port)` of each node, in the URL's order.
    pub nodes: Vec<(String, u16)>,
    /// The master's `user:password` (or `:password`) from the first URL,
    /// percent-encoded as written; kombu sends it to the master only.
    pub master_auth: Option<String>,
}

/// The URL with its passwords masked; a `;`-joined list is masked part by
/// part, so every node stays readable.
pub fn mask(url: &str) -> String {
    let parts: Vec<&str> = url.split(';').collect();
    if parts.len() > 1 && parts.iter().all(|p| p.contains("://")) {
        parts
            .iter()
            .map(|p| mask_password(p))
            .collect::<Vec<_>>()
            .join(";")
    } else {
        mask_password(url)
    }
}

pub fn parse(url: &str) -> Result<RedisUrl, TransportError> {
    let bad = |reason: String| TransportError::BadUrl {
        url: mask(url),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected redis://[:password@]host[:port][/db]".into()))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "sentinel" {
        return parse_sentinel(url).map_err(bad);
    }
    let (rest, query) = split_query(rest);
    let get = |name: &str| param(query, name);
    let db_of = |text: &str| parse_db(text).map_err(bad);
    let (master_name, global_keyprefix) = (get("master_name"), get("global_keyprefix"));
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
            let db = match get("virtual_host").or(get("db")) {
                Some(v) => db_of(&v)?,
                None => db_of(path)?,
            };
            let mut connect = format!("{scheme}://{authority}/{db}");
            // kombu's `ssl_cert_reqs=none` (or CERT_NONE) accepts any
            // certificate; redis-rs spells that `#insecure`.
            if scheme == "rediss"
                && get("ssl_cert_reqs")
                    .is_some_and(|v| v.eq_ignore_ascii_case("none") || v == "CERT_NONE")
            {
                connect.push_str("#insecure");
            }
            Ok(RedisUrl {
                endpoint: Endpoint::Direct(connect),
                db,
                master_name,
                global_keyprefix,
            })
        }
        "redis+socket" => {
            let (auth, path) = match rest.rsplit_once('@') {
                Some((a, p)) => (Some(a), p),
                None => (None, rest),
            };
            if !path.starts_with('/') {
                return Err(bad("expected redis+socket:///path/to/redis.sock".into()));
            }
            let db = match get("virtual_host").or(get("db")) {
                Some(v) => db_of(&v)?,
                None => 0,
            };
            let mut connect = format!("redis+unix://{path}?db={db}");
            if let Some((user, pass)) = auth.and_then(|a| a.split_once(':')) {
                if !user.is_empty() {
                    connect.push_str(&format!("&user={user}"));
                }
                connect.push_str(&format!("&pass={pass}"));
            }
            Ok(RedisUrl {
                endpoint: Endpoint::Direct(connect),
                db,
                master_name,
                global_keyprefix,
            })
        }
        other => Err(bad(format!("unsupported scheme `{other}`"))),
    }
}

/// `sentinel://[user:password@]host[:port][/db];sentinel://host2[:port]...`
/// as kombu reads it: every part names a node; the database and the
/// master's credentials come from the first part only (kombu connects with
/// the first URL's parameters). The query may be on any part.
fn parse_sentinel(url: &str) -> Result<RedisUrl, String> {
    let mut nodes = Vec::new();
    let mut first: Option<(Option<String>, i64)> = None;
    let (mut master_name, mut global_keyprefix) = (None, None);
    for part in url.split(';').filter(|p| !p.is_empty()) {
        let rest = part
            .split_once("://")
            .filter(|(s, _)| s.eq_ignore_ascii_case("sentinel"))
            .map(|(_, r)| r)
            .ok_or_else(|| {
                format!(
                    "`{}`: every `;`-separated part must be a sentinel:// URL",
                    mask(part)
                )
            })?;
        let (rest, query) = split_query(rest);
        for (key, _) in query_pairs(query) {
            if key.starts_with("ssl") {
                return Err(format!(
                    "`{key}`: TLS to a Sentinel-managed master is not supported yet"
                ));
            }
        }
        master_name = master_name.or(param(query, "master_name"));
        global_keyprefix = global_keyprefix.or(param(query, "global_keyprefix"));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (auth, hostport) = match authority.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, authority),
        };
        nodes.push(host_port(hostport)?);
        if first.is_none() {
            let db = match param(query, "virtual_host").or(param(query, "db")) {
                Some(v) => parse_db(&v)?,
                None => parse_db(path)?,
            };
            let auth = auth.filter(|a| !a.is_empty()).map(str::to_string);
            first = Some((auth, db));
        }
    }
    let Some((master_auth, db)) = first else {
        return Err("no Sentinel node".into());
    };
    Ok(RedisUrl {
        endpoint: Endpoint::Sentinel(SentinelUrl { nodes, master_auth }),
        db,
        master_name,
        global_keyprefix,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to
/// Sentinel's.
fn host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: no closing `]`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("a Sentinel node without a host".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number"))?,
        None => SENTINEL_PORT,
    };
    Ok((host.to_string(), port))
}

fn split_query(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    }
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
}

/// A query parameter's value, percent-decoded.
fn param(query: Option<&str>, name: &str) -> Option<String> {
    query_pairs(query)
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
}

fn parse_db(text: &str) -> Result<i64, String> {
    let text = text.trim_matches('/');
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("the database `{text}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(url: &str) -> (String, i64) {
        match parse(url).unwrap() {
            RedisUrl {
                endpoint: Endpoint::Direct(connect),
                db,
                ..
            } => (connect, db),
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn urls_are_read_as_kombu_reads_them() {
        assert_eq!(
            direct("redis://localhost:6379/3"),
            ("redis://localhost:6379/3".into(), 3)
        );
        assert_eq!(direct("redis://localhost").1, 0);
        assert_eq!(direct("redis://localhost/").1, 0);
        assert_eq!(direct("REDIS://:pw@h:1/2").0, "redis://:pw@h:1/2");
        assert_eq!(
            direct("redis://h?virtual_host=5"),
            ("redis://h/5".into(), 5)
        );
        assert_eq!(
            direct("rediss://h:6380/1?ssl_cert_reqs=none").0,
            "rediss://h:6380/1#insecure"
        );
        assert_eq!(
            direct("rediss://h:6380/1?ssl_cert_reqs=required").0,
            "rediss://h:6380/1"
        );
        assert_eq!(
            direct("redis+socket:///run/redis.sock?virtual_host=4"),
            ("redis+unix:///run/redis.sock?db=4".into(), 4)
        );
        for url in [
            "redis:///0",
            "redis://h/x",
            "redis+socket://relative",
            "sentinel://h:26379;redis://h2",
            "sentinel://:26379",
            "sentinel://h:port",
            "sentinel://h?ssl_cert_reqs=none",
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

    #[test]
    fn transport_options_can_be_given_in_the_query() {
        let u = parse("redis://h/2?global_keyprefix=app%3A1").unwrap();
        assert_eq!(u.global_keyprefix.as_deref(), Some("app:1"));
        assert_eq!(u.master_name, None);
        assert_eq!(u.endpoint, Endpoint::Direct("redis://h/2".into()));
    }

    #[test]
    fn a_sentinel_list_names_every_node_and_the_first_part_the_rest() {
        let u = parse(
            "sentinel://:pw@s1:26380/4;sentinel://s2;SENTINEL://[::1]:26381/9?master_name=mymaster",
        )
        .unwrap();
        assert_eq!(u.db, 4, "the database of the first URL, as kombu");
        assert_eq!(u.master_name.as_deref(), Some("mymaster"));
        assert_eq!(
            u.endpoint,
            Endpoint::Sentinel(SentinelUrl {
                nodes: vec![
                    ("s1".into(), 26380),
                    ("s2".into(), 26379),
                    ("::1".into(), 26381),
                ],
                master_auth: Some(":pw".into()),
            })
        );
        let u = parse("sentinel://h").unwrap();
        assert_eq!((u.db, u.master_name), (0, None));
    }

    #[test]
    fn every_password_of_a_list_is_masked_and_every_node_kept() {
        assert_eq!(
            mask("sentinel://:a@s1:26379;sentinel://u:b@s2:26379/0"),
            "sentinel://:********@s1:26379;sentinel://u:********@s2:26379/0"
        );
        // A `;` inside one URL's password is not a list.
        assert_eq!(mask("redis://:pa;ss@h/0"), "redis://:********@h/0");
        let err = parse("sentinel://:secret@h;redis://:other@h2")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret") && !err.contains("other"), "{err}");
    }
}
