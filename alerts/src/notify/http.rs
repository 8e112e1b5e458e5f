//! The one HTTP request the webhook, Slack and Alertmanager notifiers make.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::NotifyError;

/// POSTs `body` as JSON and treats any non-2xx answer as a failure (with the
/// start of the response body, which usually says what was wrong).
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let mut req = client.post(url).json(body).timeout(timeout);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|source| request_error(url, source, timeout))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let mut body: String = text.chars().take(200).collect();
    if body.len() < text.len() {
        body.push('…');
    }
    Err(NotifyError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body,
    })
}

fn request_error(url: &str, source: reqwest::Error, timeout: Duration) -> NotifyError {
    if source.is_timeout() {
        NotifyError::Timeout {
            to: url.to_string(),
            after: timeout,
        }
    } else {
        NotifyError::Request {
            url: url.to_string(),
            source,
        }
    }
}
