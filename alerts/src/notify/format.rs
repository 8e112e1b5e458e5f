//! Text and time formats shared by the notifiers.

use chrono::{DateTime, SecondsFormat, Utc};

use super::Notification;

/// Unix seconds as RFC 3339 in UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
pub(crate) fn rfc3339(unix_secs: f64) -> String {
    let millis = (unix_secs * 1000.0).round() as i64;
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds since the Unix epoch, now.
#[allow(clippy::disallowed_methods)] // the alert crate's own clock: it does not depend on the server
pub(crate) fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `{queue="default", worker="w1"}` for the labels, or empty when none.
pub(crate) fn label_set(n: &Notification) -> String {
    if n.labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// One line naming the alert: `[FIRING] QueueBacklog {queue="default"}`.
pub(crate) fn headline(n: &Notification) -> String {
    let status = n.status.as_str().to_uppercase();
    let labels = label_set(n);
    if labels.is_empty() {
        format!("[{status}] {}", n.rule)
    } else {
        format!("[{status}] {} {labels}", n.rule)
    }
}

/// `value 1234 (threshold 1000)`, or whichever of the two is known.
pub(crate) fn value_line(n: &Notification) -> Option<String> {
    match (n.value, n.threshold) {
        (Some(v), Some(t)) => Some(format!("value {} (threshold {})", num(v), num(t))),
        (Some(v), None) => Some(format!("value {}", num(v))),
        (None, Some(t)) => Some(format!("threshold {}", num(t))),
        (None, None) => None,
    }
}

/// Whole numbers without a fraction, others with up to 4 decimals.
pub(crate) fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_millis() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000.25), "2023-11-14T22:13:20.250Z");
    }

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(num(1000.0), "1000");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(1.0 / 3.0), "0.3333");
    }
}
