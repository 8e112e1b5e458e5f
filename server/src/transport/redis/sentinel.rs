//! Finding the master through Redis Sentinel, as redis-py's
//! `Sentinel.discover_master` (which kombu uses) finds it
//! (docs/celery-protocol.md §8.5): ask each node in the URL's order for the
//! master's state (`SENTINEL MASTER <name>`), take the first answer that
//! reports the master up (neither subjectively nor objectively down), and
//! connect there. redis-py asks for every master (`SENTINEL MASTERS`);
//! asking for the one is the same answer.
//!
//! Every new connection asks again, so a failover (which moves the master
//! and makes Sentinel close the old master's client connections) is
//! followed by the next reconnect. The discovery is done here rather than
//! with redis-rs' `sentinel` feature so that it runs under celeriac's own
//! connect and response timeouts, which redis-rs' Sentinel client does not
//! take.

use std::collections::HashMap;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use redis::AsyncConnectionConfig;

use super::url::SentinelUrl;
use crate::auth::Secret;

/// One unreachable node must not hold up the others for long.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Sentinel nodes of one broker and what the master needs.
#[derive(Debug, Clone)]
pub struct Sentinel {
    url: SentinelUrl,
    master_name: String,
    /// The nodes' own password (kombu's `sentinel_kwargs`).
    password: Option<Secret>,
    db: i64,
}

impl Sentinel {
    pub fn new(url: SentinelUrl, master_name: String, password: Option<Secret>, db: i64) -> Self {
        Sentinel {
            url,
            master_name,
            password,
            db,
        }
    }

    /// A client for the current master. The error names every node's
    /// failure, so a log line says why no master was found.
    pub async fn master(&self) -> Result<redis::Client, String> {
        let mut failures = Vec::new();
        for (host, port) in &self.url.nodes {
            match self.ask(host, *port).await {
                Ok((master_host, master_port)) => {
                    let url = master_url(
                        &master_host,
                        master_port,
                        self.url.master_auth.as_deref(),
                        self.db,
                    );
                    return redis::Client::open(url.as_str())
                        .map_err(|e| format!("master {master_host}:{master_port}: {e}"));
                }
                Err(e) => failures.push(format!("{host}:{port}: {e}")),
            }
        }
        Err(format!(
            "no master `{}` found through Sentinel ({})",
            self.master_name,
            failures.join("; ")
        ))
    }

    /// The master's address according to one node.
    async fn ask(&self, host: &str, port: u16) -> Result<(String, u16), String> {
        let url = node_url(host, port, self.password.as_ref());
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(NODE_TIMEOUT))
            .set_response_timeout(Some(NODE_TIMEOUT));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let state: HashMap<String, String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        master_address(&state)
    }
}

/// The address in a node's `SENTINEL MASTER` reply, if the master is usable:
/// flagged `master` and neither subjectively nor objectively down (what
/// redis-py checks, with kombu's default of no minimum of other nodes).
fn master_address(state: &HashMap<String, String>) -> Result<(String, u16), String> {
    let flags = state.get("flags").map(String::as_str).unwrap_or("");
    let flag = |name: &str| flags.split(',').any(|f| f == name);
    if !flag("master") || flag("s_down") || flag("o_down") {
        return Err(format!("the master is not usable (flags `{flags}`)"));
    }
    let ip = state
        .get("ip")
        .filter(|ip| !ip.is_empty())
        .ok_or("no `ip` in the answer")?;
    let port = state
        .get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or("no `port` in the answer")?;
    Ok((ip.clone(), port))
}

/// A node in redis-rs' URL syntax; its password, which comes from a flag
/// rather than a URL, percent-encoded.
fn node_url(host: &str, port: u16, password: Option<&Secret>) -> String {
    let auth = match password {
        Some(p) => format!(":{}@", utf8_percent_encode(p.expose(), NON_ALPHANUMERIC)),
        None => String::new(),
    };
    format!("redis://{auth}{}/", bracket(host, port))
}

/// The master in redis-rs' URL syntax, with the credentials of the broker
/// URL (kept percent-encoded as written) and its database.
fn master_url(host: &str, port: u16, auth: Option<&str>, db: i64) -> String {
    let auth = auth.map(|a| format!("{a}@")).unwrap_or_default();
    format!("redis://{auth}{}/{db}", bracket(host, port))
}

fn bracket(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_a_master_no_node_considers_down_is_taken() {
        let ok = state(&[("ip", "10.0.0.5"), ("port", "6380"), ("flags", "master")]);
        assert_eq!(master_address(&ok), Ok(("10.0.0.5".into(), 6380)));
        for flags in ["master,s_down", "master,s_down,o_down", "slave", ""] {
            let s = state(&[("ip", "10.0.0.5"), ("port", "6380"), ("flags", flags)]);
            let err = master_address(&s).unwrap_err();
            assert!(err.contains(flags), "{flags}: {err}");
        }
        let no_port = state(&[("ip", "h"), ("flags", "master")]);
        assert!(master_address(&no_port).is_err());
    }

    #[test]
    fn a_nodes_password_is_encoded_for_the_url() {
        assert_eq!(node_url("s1", 26379, None), "redis://s1:26379/");
        let secret = Secret::new("p@ss:w/rd");
        assert_eq!(
            node_url("::1", 26380, Some(&secret)),
            "redis://:p%40ss%3Aw%2Frd@[::1]:26380/"
        );
    }

    #[test]
    fn the_master_gets_the_urls_credentials_and_database() {
        assert_eq!(
            master_url("10.0.0.5", 6380, Some(":p%40ss"), 3),
            "redis://:p%40ss@10.0.0.5:6380/3"
        );
        assert_eq!(master_url("::1", 6379, None, 0), "redis://[::1]:6379/0");
    }
}
