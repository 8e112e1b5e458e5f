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
