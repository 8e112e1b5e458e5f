//! Reading a control request's parameters the way Flower (tornado's
//! `get_argument`) does: the last occurrence wins, bools use Flower's
//! `strtobool`. And [`Rejection`], why a request is refused before anything
//! is sent, with the texts clients see.

use std::str::FromStr;

use super::bulk::MAX_BULK_REVOKE;

/// A request's parameters, query string and form body in order.
pub type Pairs = [(String, String)];

/// Why a control request is refused before anything is sent. The HTTP
/// layer answers [`Rejection::status`] with the text as `error` (and the
/// parameter, when there is one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A parameter is missing or unreadable.
    #[error("{message}")]
    Param { parameter: String, message: String },
    /// The body as a whole cannot be read.
    #[error("{0}")]
    Body(String),
    /// Neither events nor inspect replies know this worker.
    #[error("Unknown worker '{0}'")]
    UnknownWorker(String),
    /// No worker is known to have this task (events, inspect `registered`).
    #[error("Unknown task '{0}'")]
    UnknownTask(String),
    /// Not one of [`api::control::Command`].
    #[error("Unknown or disallowed command '{0}'")]
    UnknownCommand(String),
    /// A bulk revoke selects more than [`MAX_BULK_REVOKE`] tasks.
    #[error(
        "{0} tasks match; at most {MAX_BULK_REVOKE} may be revoked at once: narrow the filter"
    )]
    TooMany(usize),
}

impl Rejection {
    pub fn param(parameter: &str, message: impl Into<String>) -> Rejection {
        Rejection::Param {
            parameter: parameter.to_string(),
            message: message.into(),
        }
    }

    /// The HTTP status it answers.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Param { .. } | Rejection::Body(_) => 400,
            Rejection::UnknownWorker(_)
            | Rejection::UnknownTask(_)
            | Rejection::UnknownCommand(_) => 404,
            Rejection::TooMany(_) => 422,
        }
    }

    /// The parameter at fault, if one is.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            Rejection::Param { parameter, .. } => Some(parameter),
            _ => None,
        }
    }
}

impl From<crate::query::ParamError> for Rejection {
    fn from(e: crate::query::ParamError) -> Rejection {
        Rejection::Param {
            parameter: e.parameter,
            message: e.message,
        }
    }
}

pub fn last<'a>(params: &'a Pairs, name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Flower's `strtobool`, case-insensitive like Python's.
pub fn strtobool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A bool parameter, false when absent; anything `strtobool` rejects is
/// refused with Flower's message.
pub fn flag(params: &Pairs, name: &str) -> Result<bool, Rejection> {
    match last(params, name) {
        None => Ok(false),
        Some(v) => strtobool(v).ok_or_else(|| {
            Rejection::param(name, format!("Invalid argument '{v}' of type 'bool'"))
        }),
    }
}

/// A parameter that must be there and not empty.
pub fn required<'a>(params: &'a Pairs, name: &str) -> Result<&'a str, Rejection> {
    last(params, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejection::param(name, format!("Missing argument {name}")))
}

/// A number, `None` when absent or blank.
pub fn number<T: FromStr>(params: &Pairs, name: &str) -> Result<Option<T>, Rejection> {
    match last(params, name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Rejection::param(name, format!("Invalid argument '{v}' for '{name}'"))),
    }
}

/// A number that must be there.
pub fn required_number<T: FromStr>(params: &Pairs, name: &str) -> Result<T, Rejection> {
    number(params, name)?.ok_or_else(|| Rejection::param(name, format!("Missing argument {name}")))
}

/// A text parameter, `default` when absent or empty (`signal`).
pub fn text_or(params: &Pairs, name: &str, default: &str) -> String {
    last(params, name)
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// Parameters as a request carries them, from literals.
#[cfg(test)]
pub(crate) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_parameter_with_flowers_texts() {
        let p = pairs(&[("n", "two"), ("terminate", "maybe"), ("queue", "")]);
        let e = number::<u32>(&p, "n").unwrap_err();
        assert_eq!(e.parameter(), Some("n"));
        assert_eq!(e.to_string(), "Invalid argument 'two' for 'n'");
        let e = flag(&p, "terminate").unwrap_err();
        assert_eq!(e.parameter(), Some("terminate"));
        assert_eq!(e.to_string(), "Invalid argument 'maybe' of type 'bool'");
        // Empty counts as missing.
        let e = required(&p, "queue").unwrap_err();
        assert_eq!(
            (e.parameter(), e.to_string().as_str(), e.status()),
            (Some("queue"), "Missing argument queue", 400)
        );
        let e = required_number::<u32>(&p, "max").unwrap_err();
        assert_eq!(e.to_string(), "Missing argument max");
    }

    #[test]
    fn the_last_occurrence_wins_and_blanks_are_absent() {
        let p = pairs(&[("n", "1"), ("n", " 3 "), ("soft", " "), ("signal", "")]);
        assert_eq!(number::<u32>(&p, "n"), Ok(Some(3)));
        assert_eq!(number::<f64>(&p, "soft"), Ok(None));
        assert_eq!(text_or(&p, "signal", "SIGTERM"), "SIGTERM");
        assert_eq!(flag(&p, "apply"), Ok(false));
    }

    #[test]
    fn statuses() {
        assert_eq!(Rejection::UnknownWorker("w".into()).status(), 404);
        assert_eq!(
            Rejection::UnknownWorker("w".into()).to_string(),
            "Unknown worker 'w'"
        );
        assert_eq!(Rejection::TooMany(10_001).status(), 422);
        assert_eq!(
            Rejection::TooMany(10_001).to_string(),
            "10001 tasks match; at most 10000 may be revoked at once: narrow the filter"
        );
    }
}
