//! Email over SMTP with lettre (tokio + rustls): one plain-text message per
//! notification, to every address in `to`.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{EmailConfig, TlsMode};
use super::error::NotifyError;
use super::format::{headline, rfc3339, value_line};
use super::Notification;

/// Checks the addresses and the `host:port` at load time.
pub(crate) fn validate(c: &EmailConfig) -> Result<(), String> {
    split_host_port(&c.smtp)?;
    c.from
        .parse::<Mailbox>()
        .map_err(|e| format!("email `from` `{}` is not an address: {e}", c.from))?;
    if c.to.is_empty() {
        return Err("email `to` needs at least one address".into());
    }
    for to in &c.to {
        to.parse::<Mailbox>()
            .map_err(|e| format!("email `to` `{to}` is not an address: {e}"))?;
    }
    if c.username.is_some() != c.password.is_some() {
        return Err("email `username` and `password` go together".into());
    }
    if c.ca_file.is_some() {
        if c.tls == TlsMode::None {
            return Err("email `ca_file` needs `tls: starttls` or `tls: tls`".into());
        }
        extra_roots(c)?;
    }
    Ok(())
}

/// The certificates of `ca_file`, read and parsed (at load time too, so a
/// bad path is reported by `check-alerts`, not at the first alert).
fn extra_roots(c: &EmailConfig) -> Result<Option<Certificate>, String> {
    let Some(path) = &c.ca_file else {
        return Ok(None);
    };
    let pem =
        std::fs::read(path).map_err(|e| format!("email `ca_file` `{}`: {e}", path.display()))?;
    Certificate::from_pem(&pem).map(Some).map_err(|e| {
        format!(
            "email `ca_file` `{}` is not PEM certificates: {e}",
            path.display()
        )
    })
}

/// `host:port` (or `[v6]:port`) into its parts.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let err = || format!("email `smtp` `{s}` must be host:port, e.g. smtp.example.com:587");
    let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(err());
    }
    let port = port.parse::<u16>().map_err(|_| err())?;
    Ok((host.to_string(), port))
}

/// A ready SMTP transport plus the envelope; no connection is made until a
/// message is sent (each send opens its own connection).
pub(crate) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub(crate) fn new(c: &EmailConfig, timeout: Duration) -> Result<Email, String> {
        validate(c)?;
        let (host, port) = split_host_port(&c.smtp)?;
        let tls_err = |e: lettre::transport::smtp::Error| format!("TLS setup for {host}: {e}");
        let builder = match (c.tls, extra_roots(c)?) {
            (TlsMode::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            (TlsMode::Starttls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(tls_err)?
            }
            (TlsMode::Tls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(tls_err)?
            }
            // What `relay`/`starttls_relay` set up, with the extra roots.
            (mode, Some(roots)) => {
                let params = TlsParameters::builder(host.clone())
                    .add_root_certificate(roots)
                    .build()
                    .map_err(tls_err)?;
                let tls = match mode {
                    TlsMode::Tls => Tls::Wrapper(params),
                    _ => Tls::Required(params),
                };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).tls(tls)
            }
        };
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Email {
            transport: builder.build(),
            server: c.smtp.clone(),
            from: c.from.parse().map_err(|e| format!("{e}"))?,
            to: c
                .to
                .iter()
                .map(|t| t.parse().map_err(|e| format!("{e}")))
                .collect::<Result<_, _>>()?,
        })
    }

    /// `host:port` of the SMTP server.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let message = self.message(n)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|source| NotifyError::Smtp {
                server: self.server.clone(),
                source,
            })
    }

    fn message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(headline(n))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(text(n))
            .map_err(|e| NotifyError::Message(e.to_string()))
    }
}

/// The plain-text body: what fired, the numbers, labels and annotations.
pub(crate) fn text(n: &Notification) -> String {
    let mut out = format!("{}\n\n", headline(n));
    for key in ["summary", "description"] {
        if let Some(v) = n.annotations.get(key) {
            out.push_str(v);
            out.push_str("\n\n");
        }
    }
    if let Some(sev) = &n.severity {
        out.push_str(&format!("Severity: {sev}\n"));
    }
    if let Some(line) = value_line(n) {
        out.push_str(&format!("Value: {line}\n"));
    }
    out.push_str(&format!("Started: {}\n", rfc3339(n.starts_at)));
    if let Some(end) = n.ends_at {
        out.push_str(&format!("Resolved: {}\n", rfc3339(end)));
    }
    if !n.labels.is_empty() {
        out.push_str("\nLabels:\n");
        for (k, v) in &n.labels {
            out.push_str(&format!("  {k} = {v}\n"));
        }
    }
    let others: Vec<_> = n
        .annotations
        .iter()
        .filter(|(k, _)| *k != "summary" && *k != "description")
        .collect();
    if !others.is_empty() {
        out.push_str("\nAnnotations:\n");
        for (k, v) in others {
            out.push_str(&format!("  {k} = {v}\n"));
        }
    }
    if let Some(url) = &n.generator_url {
        out.push_str(&format!("\n{url}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_and_rejects() {
        assert_eq!(
            split_host_port("mail.example.com:587").unwrap(),
            ("mail.example.com".into(), 587)
        );
        assert_eq!(split_host_port("[::1]:25").unwrap(), ("::1".into(), 25));
        for bad in ["mail.example.com", ":25", "host:port", "host:70000"] {
            let e = split_host_port(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
