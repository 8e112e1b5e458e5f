//! The one error type of the HTTP layer. Every 4xx/5xx answer of the API is
//! JSON `api::ApiError`, so clients parse one shape; Flower answers most
//! errors as text/plain, but its one JSON error (`/api/tasks` search) has
//! this shape, and a JSON body can name the offending parameter.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: api::ApiError,
}

impl HttpError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> HttpError {
        HttpError {
            status,
            body: api::ApiError {
                error: error.into(),
                parameter: None,
            },
        }
    }

    /// 400 caused by one query parameter.
    pub fn bad_param(parameter: impl Into<String>, error: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            body: api::ApiError {
                error: error.into(),
                parameter: Some(parameter.into()),
            },
        }
    }

    pub fn not_found(error: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, error)
    }

    pub fn internal(error: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, error)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<crate::query::ParamError> for HttpError {
    fn from(e: crate::query::ParamError) -> HttpError {
        HttpError::bad_param(e.parameter, e.message)
    }
}

impl From<crate::control::form::Rejection> for HttpError {
    fn from(e: crate::control::form::Rejection) -> HttpError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        HttpError {
            status,
            body: api::ApiError {
                parameter: e.parameter().map(str::to_owned),
                error: e.to_string(),
            },
        }
    }
}
