//! Where and under which path HTTP is served.

use std::net::{IpAddr, SocketAddr};

pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 5555;

#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address to listen on.
    #[arg(long, env = "CELERIAC_ADDRESS", default_value = DEFAULT_ADDRESS)]
    pub address: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "CELERIAC_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Serve everything under this path prefix (e.g. `/flower`).
    #[arg(long, env = "CELERIAC_URL_PREFIX", default_value = "", value_parser = parse_url_prefix)]
    pub url_prefix: String,

    /// Believe `X-Forwarded-Proto` from a reverse proxy that terminates
    /// TLS: `https` there makes session cookies `Secure`. Only set this
    /// behind a proxy that overwrites the header.
    #[arg(long, env = "CELERIAC_TRUST_PROXY_HEADERS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_name = "BOOL")]
    pub trust_proxy_headers: bool,
}

impl HttpArgs {
    /// The socket address to listen on.
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

fn parse_url_prefix(s: &str) -> Result<String, String> {
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(format!("{s:?} is not a URL path"));
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefix_is_normalised() {
        assert_eq!(parse_url_prefix("flower/").unwrap(), "/flower");
        assert_eq!(parse_url_prefix("/").unwrap(), "");
        assert!(parse_url_prefix("a b").is_err());
    }
}
