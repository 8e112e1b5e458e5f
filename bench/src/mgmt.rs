//! RabbitMQ management API: one fresh vhost per scenario (so scenarios never
//! see each other's queues), and binding checks before a run starts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::{Client, Method, StatusCode, Url};
use serde::Deserialize;

/// Every vhost the bench creates is named `<VHOST_PREFIX><pid>-<scenario>`,
/// so a later run can tell a leftover of a killed run from a live one.
pub const VHOST_PREFIX: &str = "celeriac-bench-";

pub struct Mgmt {
    client: Client,
    base: Url,
    user: String,
    password: String,
    created: Mutex<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Binding {
    destination: String,
    destination_type: String,
}

#[derive(Debug, Deserialize)]
struct Vhost {
    name: String,
}

impl Mgmt {
    /// `url` is like `http://guest:guest@127.0.0.1:15672`; the credentials go
    /// into a basic-auth header rather than the URL.
    pub fn new(url: &str) -> Result<Mgmt> {
        let mut base = Url::parse(url).with_context(|| format!("management URL {url:?}"))?;
        let user = match base.username() {
            "" => "guest".to_owned(),
            u => u.to_owned(),
        };
        let password = base.password().unwrap_or("guest").to_owned();
        // Url refuses these only for cannot-be-a-base URLs, which parse() above
        // would not have produced for http.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Mgmt {
            client,
            base,
            user,
            password,
            created: Mutex::new(Vec::new()),
        })
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("management path {path}"))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response> {
        let mut request = self
            .client
            .request(method.clone(), self.url(path)?)
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
            .send()
            .await
            .with_context(|| format!("{method} {path} on the management API"))
    }

    async fn send_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response> {
        let response = self.send(method.clone(), path, body).await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{method} {path}: {status} {text}");
        }
        Ok(response)
    }

    /// Fails with a hint when the management plugin is not answering.
    pub async fn check(&self) -> Result<()> {
        self.send_ok(Method::GET, "/api/overview", None)
            .await
            .context(
                "is the management plugin on? (rabbitmq-plugins enable rabbitmq_management)",
            )?;
        Ok(())
    }

    pub async fn create_vhost(&self, name: &str) -> Result<()> {
        self.send_ok(Method::PUT, &format!("/api/vhosts/{name}"), None)
            .await?;
        if let Ok(mut created) = self.created.lock() {
            created.push(name.to_owned());
        }
        self.send_ok(
            Method::PUT,
            &format!("/api/permissions/{name}/{}", self.user),
            Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
        )
        .await?;
        Ok(())
    }

    pub async fn delete_vhost(&self, name: &str) -> Result<()> {
        let response = self
            .send(Method::DELETE, &format!("/api/vhosts/{name}"), None)
            .await?;
        let status = response.status();
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            bail!("DELETE /api/vhosts/{name}: {status}");
        }
        if let Ok(mut created) = self.created.lock() {
            created.retain(|v| v != name);
        }
        Ok(())
    }

    /// Deletes every vhost this process created and has not deleted yet.
    pub async fn delete_created(&self) {
        let names = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        for name in names {
            if let Err(e) = self.delete_vhost(&name).await {
                eprintln!("warning: could not delete vhost {name}: {e:#}");
            }
        }
    }

    /// Deletes bench vhosts left by runs whose process is gone (killed with
    /// SIGKILL, say), so they do not pile up on the broker.
    pub async fn delete_stale(&self) -> Result<()> {
        let response = self.send_ok(Method::GET, "/api/vhosts", None).await?;
        let vhosts: Vec<Vhost> = response.json().await.context("parsing /api/vhosts")?;
        for vhost in vhosts {
            let Some(rest) = vhost.name.strip_prefix(VHOST_PREFIX) else {
                continue;
            };
            // A name without a pid was not made by the bench: leave it.
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                self.delete_vhost(&vhost.name).await?;
            }
        }
        Ok(())
    }

    /// Queues bound to `celeryev` in `vhost` (empty while the exchange does
    /// not exist yet).
    pub async fn celeryev_queues(&self, vhost: &str) -> Result<Vec<String>> {
        let path = format!("/api/exchanges/{vhost}/celeryev/bindings/source");
        let response = self.send(Method::GET, &path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !response.status().is_success() {
            bail!("GET {path}: {}", response.status());
        }
        let bindings: Vec<Binding> = response
            .json()
            .await
            .with_context(|| format!("parsing {path}"))?;
        Ok(bindings
            .into_iter()
            .filter(|b| b.destination_type == "queue")
            .map(|b| b.destination)
            .collect())
    }

    /// Waits until some queue is bound to `celeryev` in `vhost`: a consumer is
    /// ready to receive, so nothing published from now on is unroutable.
    pub async fn wait_for_binding(&self, vhost: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(queue) = self.celeryev_queues(vhost).await?.into_iter().next() {
                return Ok(queue);
            }
            if Instant::now() >= deadline {
                bail!("no queue was bound to celeryev in vhost {vhost} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
