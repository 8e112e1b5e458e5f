//! Query-string parameters the way Flower (tornado's `get_argument`) reads
//! them: the last occurrence wins, and bools use Flower's `strtobool`.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

use super::errors::HttpError;
pub use crate::control::form::last;

pub type Params = Vec<(String, String)>;

/// Unwraps the query extractor, turning an undecodable query string into
/// our JSON 400 instead of axum's text answer.
pub fn from_query(q: Result<Query<Params>, QueryRejection>) -> Result<Params, HttpError> {
    match q {
        Ok(Query(params)) => Ok(params),
        Err(e) => Err(HttpError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("Invalid query string: {}", e.body_text()),
        )),
    }
}

/// A bool parameter, false when absent; anything `strtobool` rejects is a
/// 400 naming the parameter, with Flower's message.
pub fn bool_param(params: &[(String, String)], name: &str) -> Result<bool, HttpError> {
    Ok(crate::control::form::flag(params, name)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::form::strtobool;

    #[test]
    fn strtobool_matches_flower() {
        for v in ["y", "yes", "t", "true", "on", "1", "TRUE", "Yes"] {
            assert_eq!(strtobool(v), Some(true), "{v}");
        }
        for v in ["n", "no", "f", "false", "off", "0", "FALSE"] {
            assert_eq!(strtobool(v), Some(false), "{v}");
        }
        for v in ["", "2", "maybe", "truee"] {
            assert_eq!(strtobool(v), None, "{v}");
        }
    }

    #[test]
    fn last_occurrence_wins() {
        let p: Params = vec![
            ("status".into(), "false".into()),
            ("status".into(), "true".into()),
        ];
        assert_eq!(bool_param(&p, "status"), Ok(true));
        assert_eq!(bool_param(&p, "refresh"), Ok(false));
        let bad: Params = vec![("refresh".into(), "maybe".into())];
        let e = bool_param(&bad, "refresh").unwrap_err();
        assert_eq!(e.body.parameter.as_deref(), Some("refresh"));
        assert_eq!(e.body.error, "Invalid argument 'maybe' of type 'bool'");
    }
}
