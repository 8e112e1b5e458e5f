//! Histogram bucket bounds given on the command line (`--buckets
//! 0.1,0.5,1,5` as celery-exporter's, `--queue-wait-buckets`).

use std::fmt;
use std::sync::Arc;

use crate::state::{QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS};

/// Upper bounds of a histogram: non-empty, finite, positive, strictly
/// ascending (`+Inf` is implicit).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(Arc<[f64]>);

impl Buckets {
    /// celery-exporter's `celery_task_runtime` buckets (`--buckets`).
    pub fn runtime_default() -> Buckets {
        Buckets(RUNTIME_BUCKETS.into())
    }

    /// celery-exporter's `celery_task_queue_wait_time` buckets.
    pub fn queue_wait_default() -> Buckets {
        Buckets(QUEUE_WAIT_BUCKETS.into())
    }

    pub fn bounds(&self) -> &Arc<[f64]> {
        &self.0
    }
}

impl fmt::Display for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

/// Parses `a,b,c`; the error says which value is wrong and why (clap adds
/// the flag's name).
pub fn parse_buckets(s: &str) -> Result<Buckets, String> {
    let mut bounds: Vec<f64> = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err("empty bucket bound (expected e.g. 0.1,0.5,1,5)".into());
        }
        let v: f64 = part
            .parse()
            .map_err(|_| format!("bucket bound {part:?} is not a number"))?;
        if !v.is_finite() || v <= 0.0 {
            return Err(format!(
                "bucket bound {part:?} must be finite and positive (+Inf is implicit)"
            ));
        }
        if let Some(&prev) = bounds.last() {
            if v <= prev {
                return Err(format!("bucket bounds must ascend: {part} after {prev}"));
            }
        }
        bounds.push(v);
    }
    Ok(Buckets(bounds.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ascending_positive_bounds_and_round_trips_the_default() {
        let b = parse_buckets("0.1, 0.5,1,5").unwrap();
        assert_eq!(&**b.bounds(), &[0.1, 0.5, 1.0, 5.0]);
        for d in [Buckets::queue_wait_default(), Buckets::runtime_default()] {
            assert_eq!(parse_buckets(&d.to_string()).unwrap(), d);
        }
    }

    #[test]
    fn rejects_what_prometheus_would_not_take() {
        for (bad, says) in [
            ("", "empty"),
            ("0.1,,1", "empty"),
            ("0.1,x", "\"x\" is not a number"),
            ("0,1", "positive"),
            ("-1,1", "positive"),
            ("1,inf", "finite"),
            ("1,NaN", "finite"),
            ("1,0.5", "ascend"),
            ("1,1", "ascend"),
        ] {
            let e = parse_buckets(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
