//! kombu's virtual-transport envelope: what a Redis list or pub/sub channel
//! carries around a message body (docs/celery-protocol.md §8.1). A JSON
//! object with the body (base64 when `properties.body_encoding` says so),
//! its content type and encoding, the headers and the delivery properties.

use base64::Engine;
use serde_json::{json, Map, Value};

/// Why a payload is not a kombu envelope.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvelopeError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no `body`")]
    NoBody,
    #[error("`body` is not valid base64")]
    BadBase64,
}

/// The parts of an envelope the body needs; the rest (headers, delivery
/// info) is skipped without being built, which matters at tens of thousands
/// of events a second.
#[derive(serde::Deserialize)]
struct Parts<'a> {
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, serde_json::value::RawValue>>,
    #[serde(default, borrow)]
    properties: Option<Properties<'a>>,
}

#[derive(serde::Deserialize)]
struct Properties<'a> {
    #[serde(default, borrow)]
    body_encoding: Option<std::borrow::Cow<'a, str>>,
}

/// The body of an envelope: decoded from base64 when it says so.
pub fn body(payload: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    // serde would also fill the struct from a JSON array.
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::NotAnObject);
    }
    let parts: Parts<'_> =
        serde_json::from_slice(payload).map_err(|_| EnvelopeError::NotAnObject)?;
    let Some(raw) = parts.body else {
        return Err(EnvelopeError::NoBody);
    };
    let base64 = parts
        .properties
        .and_then(|p| p.body_encoding)
        .is_some_and(|e| e == "base64");
    let raw = raw.get();
    if !raw.starts_with('"') {
        // A body a producer left as JSON rather than as serialised text.
        return Ok(raw.as_bytes().to_vec());
    }
    let text: std::borrow::Cow<'_, str> =
        serde_json::from_str(raw).map_err(|_| EnvelopeError::NotAnObject)?;
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| EnvelopeError::BadBase64)
    } else {
        Ok(text.into_owned().into_bytes())
    }
}

/// The `ticket` header of a pidbox reply.
pub fn ticket(payload: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(payload).ok()?;
    envelope
        .get("headers")?
        .get("ticket")?
        .as_str()
        .map(str::to_string)
}

/// Wraps a JSON body as kombu's Redis transport publishes it.
pub fn wrap(
    body: &[u8],
    headers: Map<String, Value>,
    exchange: &str,
    routing_key: &str,
) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    json!({
        "body": encoded,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": exchange, "routing_key": routing_key},
            "delivery_mode": 2,
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
            "priority": 0,
        },
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base64_body_is_decoded_and_a_plain_one_kept() {
        let env = wrap(
            br#"{"type":"worker-heartbeat"}"#,
            Map::new(),
            "celeryev",
            "worker.heartbeat",
        );
        assert_eq!(body(&env).unwrap(), br#"{"type":"worker-heartbeat"}"#);
        let v: Value = serde_json::from_slice(&env).unwrap();
        assert_eq!(
            v["properties"]["delivery_info"]["routing_key"],
            "worker.heartbeat"
        );

        let plain = br#"{"body": "[1]", "properties": {}}"#;
        assert_eq!(body(plain).unwrap(), b"[1]");
        assert_eq!(body(b"[1]"), Err(EnvelopeError::NotAnObject));
        assert_eq!(body(b"{}"), Err(EnvelopeError::NoBody));
        assert_eq!(
            body(br#"{"body": "%%%", "properties": {"body_encoding": "base64"}}"#),
            Err(EnvelopeError::BadBase64)
        );
    }

    #[test]
    fn the_ticket_is_read_from_the_headers() {
        let mut headers = Map::new();
        headers.insert("ticket".into(), json!("t-1"));
        assert_eq!(
            ticket(&wrap(b"{}", headers, "reply.celery.pidbox", "x")).as_deref(),
            Some("t-1")
        );
        assert_eq!(ticket(&wrap(b"{}", Map::new(), "e", "k")), None);
    }
}
