//! Scalar values of the rule file that are checked while they are read, so a
//! bad one is reported at its own line: durations, thresholds and globs.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as `30s`, `5m`, `1h30m` (humantime syntax), in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Secs(pub f64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `30s`, `5m` or `1h`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Secs, E> {
                parse_duration(s).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secs, E> {
                // A bare `0` is unambiguous; any other bare number is not.
                if v == 0 {
                    Ok(Secs(0.0))
                } else {
                    Err(E::custom(format!(
                        "bad duration `{v}`: give a unit, e.g. `{v}s` or `{v}m`"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_duration(s: &str) -> Result<Secs, String> {
    humantime::parse_duration(s.trim())
        .map(|d| Secs(d.as_secs_f64()))
        .map_err(|_| {
            format!(
                "bad duration `{s}`: use a number and a unit (ms, s, m, h, d), e.g. `30s` or `5m`"
            )
        })
}

/// A threshold: a number, a percentage (`10%` is 0.1) or a duration (`5m` is
/// 300, for kinds whose value is in seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold(pub f64);

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Threshold;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a percentage (`10%`) or a duration (`5m`)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Threshold, E> {
                if v.is_finite() {
                    Ok(Threshold(v))
                } else {
                    Err(E::custom("the threshold must be a finite number"))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Threshold, E> {
                Ok(Threshold(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Threshold, E> {
                Ok(Threshold(v as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Threshold, E> {
                let t = s.trim();
                if let Some(p) = t.strip_suffix('%') {
                    return p
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .map(|v| Threshold(v / 100.0))
                        .ok_or_else(|| E::custom(format!("bad percentage `{s}`")));
                }
                if let Ok(v) = t.parse::<f64>() {
                    return self.visit_f64(v);
                }
                parse_duration(t)
                    .map(|d| Threshold(d.0))
                    .map_err(|_| E::custom(format!("bad threshold `{s}`: {}", self_expect())))
            }
        }
        fn self_expect() -> &'static str {
            "expected a number, a percentage (`10%`) or a duration (`5m`)"
        }
        d.deserialize_any(V)
    }
}

/// A shell-style glob over a queue, task or worker name (`default*`,
/// `proj.tasks.*`, `w?@host`); `*` matches any characters, dots included.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub text: String,
    fast: Fast,
}

/// The common shapes, matched without the glob engine: evaluation runs
/// every pattern against every name on each tick.
#[derive(Clone, Debug)]
enum Fast {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(globset::GlobMatcher),
}

fn is_literal(s: &str) -> bool {
    !s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("bad glob `{text}`: {}", e.kind()))?;
        let fast = if text == "*" {
            Fast::Any
        } else if is_literal(text) {
            Fast::Exact(text.to_owned())
        } else if let Some(p) = text.strip_suffix('*').filter(|p| is_literal(p)) {
            Fast::Prefix(p.to_owned())
        } else if let Some(p) = text.strip_prefix('*').filter(|p| is_literal(p)) {
            Fast::Suffix(p.to_owned())
        } else {
            Fast::Glob(glob.compile_matcher())
        };
        Ok(Pattern {
            text: text.to_owned(),
            fast,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.fast {
            Fast::Any => true,
            Fast::Exact(s) => name == s,
            Fast::Prefix(p) => name.starts_with(p.as_str()),
            Fast::Suffix(p) => name.ends_with(p.as_str()),
            Fast::Glob(g) => g.is_match(name),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(de::Error::custom)
    }
}

/// Whether an optional pattern lets `name` through (no pattern: everything).
pub fn allows(p: &Option<Pattern>, name: &str) -> bool {
    p.as_ref().is_none_or(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_known_unit() {
        assert_eq!(parse_duration("5m").unwrap(), Secs(300.0));
        assert_eq!(parse_duration("1h30m").unwrap(), Secs(5400.0));
        assert_eq!(parse_duration("250ms").unwrap(), Secs(0.25));
        let e = parse_duration("5x").unwrap_err();
        assert!(e.contains("bad duration `5x`"), "{e}");
    }

    #[test]
    fn thresholds_take_numbers_percentages_and_durations() {
        let t = |s: &str| serde_yaml_ng::from_str::<Threshold>(s).map(|t| t.0);
        assert_eq!(t("1000").unwrap(), 1000.0);
        assert_eq!(t("0.5").unwrap(), 0.5);
        assert_eq!(t("'10%'").unwrap(), 0.1);
        assert_eq!(t("2m").unwrap(), 120.0);
        assert!(t("lots").is_err());
    }

    #[test]
    fn globs_match_whole_names_across_dots() {
        let p = Pattern::new("proj.*").unwrap();
        assert!(p.matches("proj.tasks.add"));
        assert!(!p.matches("other.proj.add"));
        let p = Pattern::new("w?@host").unwrap();
        assert!(p.matches("w1@host"));
        assert!(!p.matches("w12@host"));
        assert!(Pattern::new("[").is_err());
        // The fast paths agree with the glob engine.
        for (pat, name, want) in [
            ("*", "anything.at.all", true),
            ("celery", "celery", true),
            ("celery", "celery2", false),
            ("default*", "default.high", true),
            ("default*", "xdefault", false),
            ("*@host", "w1@host", true),
            ("*@host", "w1@host2", false),
            ("q{1,2}", "q2", true),
            ("q[0-9]*", "q7x", true),
        ] {
            assert_eq!(
                Pattern::new(pat).unwrap().matches(name),
                want,
                "{pat} vs {name}"
            );
        }
    }
}
