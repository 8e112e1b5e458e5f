//! Why a delivery failed, and whether trying again could help.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("request to {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no answer from {to} within {after:?}")]
    Timeout { to: String, after: Duration },
    #[error("cannot build the email: {0}")]
    Message(String),
    #[error("SMTP delivery via {server} failed: {source}")]
    Smtp {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

impl NotifyError {
    /// False for answers that will not change on retry: a 4xx other than
    /// 408/429 (bad URL, rejected payload, wrong token), a malformed email,
    /// a permanent SMTP rejection.
    pub fn is_retryable(&self) -> bool {
        match self {
            NotifyError::Status { status, .. } => {
                !(400..500).contains(status) || *status == 408 || *status == 429
            }
            NotifyError::Request { .. } | NotifyError::Timeout { .. } => true,
            NotifyError::Message(_) => false,
            NotifyError::Smtp { source, .. } => !source.is_permanent(),
        }
    }
}
