//! Flower's `apply_async` options from a JSON body (`countdown`, `eta`,
//! `expires`, `queue`, `routing_key`, `exchange`, `priority`, `retries`,
//! `time_limit`, `soft_time_limit`), checked and applied to a message as
//! Celery's `send_task` would.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::message::{Route, TaskMessage};

/// Flower's date format for `eta` and `expires` (`%Y-%m-%d %H:%M:%S.%f`).
pub const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Keys a body may carry besides the options: the arguments, and how long
/// `apply` and `result` wait.
const NOT_OPTIONS: &[&str] = &["args", "kwargs", "timeout"];

#[derive(Debug, Clone, PartialEq)]
pub enum Expires {
    /// Seconds from now.
    In(f64),
    /// A time, naive as Flower reads it (the workers' zone, UTC by default).
    At(NaiveDateTime),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub countdown: Option<f64>,
    pub eta: Option<NaiveDateTime>,
    pub expires: Option<Expires>,
    pub queue: Option<String>,
    pub routing_key: Option<String>,
    pub exchange: Option<String>,
    pub priority: Option<u8>,
    pub retries: Option<i64>,
    pub time_limit: Option<f64>,
    pub soft_time_limit: Option<f64>,
}

/// An option that cannot be used, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid option '{option}': {reason}")]
pub struct OptionError {
    pub option: String,
    pub reason: String,
}

fn invalid(option: &str, reason: impl Into<String>) -> OptionError {
    OptionError {
        option: option.to_string(),
        reason: reason.into(),
    }
}

impl Options {
    /// Reads the options of a Flower request body. Numbers may be given as
    /// JSON numbers or numeric strings (Flower calls `float()` on them);
    /// an unknown option is refused rather than silently dropped.
    pub fn from_body(body: &Map<String, Value>) -> Result<Options, OptionError> {
        let mut o = Options::default();
        for (key, value) in body {
            if NOT_OPTIONS.contains(&key.as_str()) || value.is_null() {
                continue;
            }
            match key.as_str() {
                "countdown" => o.countdown = Some(seconds(key, value)?),
                "eta" => o.eta = Some(date(key, value)?),
                "expires" => {
                    o.expires = Some(match value {
                        Value::String(s) if s.trim().parse::<f64>().is_err() => {
                            Expires::At(date(key, value)?)
                        }
                        _ => Expires::In(seconds(key, value)?),
                    })
                }
                "queue" => o.queue = Some(name(key, value)?),
                "routing_key" => o.routing_key = Some(name(key, value)?),
                "exchange" => o.exchange = Some(name(key, value)?),
                "priority" => {
                    let p = number(key, value)?;
                    if !(0.0..=255.0).contains(&p) || p.fract() != 0.0 {
                        return Err(invalid(key, "an integer from 0 to 255"));
                    }
                    o.priority = Some(p as u8);
                }
                "retries" => {
                    let r = number(key, value)?;
                    if r < 0.0 || r.fract() != 0.0 || r > i32::MAX as f64 {
                        return Err(invalid(key, "a non-negative integer"));
                    }
                    o.retries = Some(r as i64);
                }
                "time_limit" => o.time_limit = Some(seconds(key, value)?),
                "soft_time_limit" => o.soft_time_limit = Some(seconds(key, value)?),
                other => {
                    return Err(invalid(
                        other,
                        "unknown; known options are countdown, eta, expires, queue, routing_key, \
                         exchange, priority, retries, time_limit, soft_time_limit",
                    ))
                }
            }
        }
        if o.exchange.is_some() && o.routing_key.is_none() {
            return Err(invalid("exchange", "needs a routing_key"));
        }
        Ok(o)
    }

    /// Where the message goes: an explicit exchange with its routing key;
    /// else the queue, through the default exchange (Celery's direct-queue
    /// route); else `default_queue`. A `routing_key` alone does not move a
    /// task off the default queue, as in Celery.
    pub fn route(&self, default_queue: &str) -> Route {
        match (&self.exchange, &self.routing_key, &self.queue) {
            (Some(exchange), Some(key), _) => Route {
                exchange: exchange.clone(),
                routing_key: key.clone(),
            },
            (_, _, Some(queue)) => Route::queue(queue),
            _ => Route::queue(default_queue),
        }
    }

    /// Sets what the options decide on `m`, `now` being the client's clock.
    pub fn apply(&self, m: &mut TaskMessage, now: DateTime<Utc>, default_queue: &str) {
        m.route = self.route(default_queue);
        // The default route carries priority 0; an explicit route none.
        m.priority = self
            .priority
            .or_else(|| (self.queue.is_none() && self.exchange.is_none()).then_some(0));
        if let Some(eta) = self.eta {
            m.eta = Some(iso_naive(eta));
        }
        // A countdown wins over an eta, as in Celery (0 means none).
        if let Some(c) = self.countdown.filter(|c| *c != 0.0) {
            m.eta = Some(iso_utc(now + delta(c)));
        }
        match &self.expires {
            Some(Expires::In(s)) => {
                m.expires = Some(iso_utc(now + delta(*s)));
                m.expiration_ms = Some(ttl_ms(*s));
            }
            Some(Expires::At(at)) => {
                m.expires = Some(iso_naive(*at));
                let left = at.and_utc().signed_duration_since(now);
                m.expiration_ms = Some(ttl_ms(left.num_milliseconds() as f64 / 1000.0));
            }
            None => {}
        }
        if let Some(r) = self.retries {
            m.retries = r;
        }
        m.time_limit = self.time_limit;
        m.soft_time_limit = self.soft_time_limit;
    }
}

/// kombu's `expiration` property: `str(int(seconds * 1000))`, and Celery
/// turns a time in the past into 0.
fn ttl_ms(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0) as u64
}

fn delta(seconds: f64) -> TimeDelta {
    TimeDelta::microseconds((seconds * 1e6) as i64)
}

/// Python's `isoformat()` of an aware UTC time.
fn iso_utc(t: DateTime<Utc>) -> String {
    format!("{}+00:00", iso_naive(t.naive_utc()))
}

/// Python's `isoformat()` of a naive time: microseconds only when not 0.
fn iso_naive(t: NaiveDateTime) -> String {
    if t.and_utc().timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

fn number(key: &str, value: &Value) -> Result<f64, OptionError> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite())
        .ok_or_else(|| invalid(key, format!("not a number: {value}")))
}

fn seconds(key: &str, value: &Value) -> Result<f64, OptionError> {
    let s = number(key, value)?;
    // Celery's `_verify_seconds`: beyond this a datetime overflows.
    if s.abs() > 1e10 {
        return Err(invalid(key, "too many seconds"));
    }
    Ok(s)
}

fn date(key: &str, value: &Value) -> Result<NaiveDateTime, OptionError> {
    let Value::String(s) = value else {
        return Err(invalid(key, "a date as `YYYY-MM-DD HH:MM:SS.ffffff`"));
    };
    NaiveDateTime::parse_from_str(s.trim(), DATE_FORMAT).map_err(|e| {
        invalid(
            key,
            format!("`{s}` is not `YYYY-MM-DD HH:MM:SS.ffffff` ({e})"),
        )
    })
}

fn name(key: &str, value: &Value) -> Result<String, OptionError> {
    match value {
        Value::String(s) if !s.is_empty() && s.len() <= 255 => Ok(s.clone()),
        _ => Err(invalid(key, "a name of 1 to 255 characters")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> Result<Options, OptionError> {
        Options::from_body(v.as_object().unwrap())
    }

    fn msg() -> TaskMessage {
        TaskMessage::new(
            "i".into(),
            "t".into(),
            vec![],
            Map::new(),
            Route::queue("x"),
            "o".into(),
            "r".into(),
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn flower_options_set_what_celery_sets() {
        let o = opts(json!({
            "args": [1], "kwargs": {}, "timeout": 5,
            "countdown": "30", "expires": 60, "priority": 5,
            "time_limit": 20, "soft_time_limit": 10, "retries": 2
        }))
        .unwrap();
        let mut m = msg();
        o.apply(&mut m, now(), "celery");
        assert_eq!(m.route, Route::queue("celery"));
        assert_eq!(m.eta.as_deref(), Some("2026-12-07T20:00:30+00:00"));
        assert_eq!(m.expires.as_deref(), Some("2026-12-07T20:01:00+00:00"));
        assert_eq!(m.expiration_ms, Some(60_000));
        assert_eq!(m.priority, Some(5));
        assert_eq!((m.time_limit, m.soft_time_limit), (Some(20.0), Some(10.0)));
        assert_eq!(m.retries, 2);

        let o = opts(json!({"queue": "q", "eta": "2026-12-07 21:00:00.5", "expires": "2026-12-07 20:00:10.0"})).unwrap();
        let mut m = msg();
        o.apply(&mut m, now(), "celery");
        assert_eq!(m.route, Route::queue("q"));
        assert_eq!(m.priority, None, "an explicit queue has no priority");
        assert_eq!(m.eta.as_deref(), Some("2026-12-07T21:00:00.500000"));
        assert_eq!(m.expires.as_deref(), Some("2026-12-07T20:00:10"));
        assert_eq!(m.expiration_ms, Some(10_000));

        let o = opts(json!({"exchange": "tex", "routing_key": "jobs.a", "queue": "q"})).unwrap();
        assert_eq!(
            o.route("celery"),
            Route {
                exchange: "tex".into(),
                routing_key: "jobs.a".into()
            }
        );
        let o = opts(json!({"routing_key": "k"})).unwrap();
        assert_eq!(o.route("celery"), Route::queue("celery"));
    }

    #[test]
    fn bad_options_are_named() {
        for (body, option) in [
            (json!({"eta": "tomorrow"}), "eta"),
            (json!({"countdown": "soon"}), "countdown"),
            (json!({"expires": [1]}), "expires"),
            (json!({"priority": 256}), "priority"),
            (json!({"retries": -1}), "retries"),
            (json!({"queue": ""}), "queue"),
            (json!({"exchange": "x"}), "exchange"),
            (json!({"link": "x"}), "link"),
        ] {
            let e = opts(body.clone()).unwrap_err();
            assert_eq!(e.option, option, "{body}: {e}");
            assert!(e.to_string().starts_with("Invalid option"), "{e}");
        }
    }
}
