//! Keeping secrets out of logs and answers.

/// Replaces the password of a `scheme://user:password@host/...` URL.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:********{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// A JSON value from outside (a worker's `conf`, the management API's
/// queue objects) without secrets: passwords in URLs, and the values of keys
/// whose name says they are secret. Everything else as it came.
pub fn mask_secrets(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(&k) && !v.is_null() {
                        Value::String("********".into())
                    } else {
                        mask_secrets(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(mask_secrets).collect()),
        Value::String(s) if s.contains("://") => Value::String(mask_password(&s)),
        other => other,
    }
}

/// Whether a setting or field named `key` holds a secret.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_password_is_masked() {
        assert_eq!(
            mask_password("amqp://guest:secret@host:5672/vh"),
            "amqp://guest:********@host:5672/vh"
        );
        assert_eq!(mask_password("amqp://host//"), "amqp://host//");
    }
}
