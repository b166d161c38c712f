//! API errors: a status, a stable code and a one-line message, sent as JSON.
//! The one place where the domain's error kinds become HTTP statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::catalog::CatalogError;
use crate::error::{AgentError, ErrorKind};
use crate::model::{ErrorBody, ErrorDetail};

/// An error answered by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// One line for humans.
    pub message: String,
    /// The same request may succeed later, unchanged.
    pub temporary: bool,
}

impl ApiError {
    /// 400: the request is malformed or a value is out of range.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into(), temporary: false }
    }

    /// 404: no such object.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into(), temporary: false }
    }

    /// 409: conflicts with the current state.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::CONFLICT, code: "conflict", message: message.into(), temporary: false }
    }

    /// 422: the destination test failed.
    pub(crate) fn validation_failed(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: message.into(),
            temporary: false,
        }
    }

    /// 500: the agent failed.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
            temporary: false,
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let answer = match e.kind {
            ErrorKind::NotFound => ApiError::not_found(e.message),
            ErrorKind::Conflict => ApiError::conflict(e.message),
            ErrorKind::Invalid => ApiError::bad_request(e.message),
            ErrorKind::Unreachable => ApiError::validation_failed(e.message),
            ErrorKind::Internal => ApiError::internal(e.message),
        };
        ApiError { temporary: e.temporary, ..answer }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        AgentError::from(e).into()
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("task failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("API error: {}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.into(), message: self.message, temporary: self.temporary },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_status_and_the_temporary_flag_reaches_the_answer() {
        let cases = [
            (AgentError::not_found("x"), StatusCode::NOT_FOUND, "not_found"),
            (AgentError::conflict("x"), StatusCode::CONFLICT, "conflict"),
            (AgentError::invalid("x"), StatusCode::BAD_REQUEST, "bad_request"),
            (AgentError::unreachable("x"), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (AgentError::internal("x"), StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e);
            assert_eq!((a.status, a.code, a.temporary), (status, code, false));
        }
        let a = ApiError::from(AgentError::unreachable("timed out").temporary_if(true));
        assert!(a.temporary);
        let body = serde_json::to_value(ErrorBody {
            error: ErrorDetail { code: a.code.into(), message: a.message, temporary: a.temporary },
        })
        .unwrap_or_default();
        assert_eq!(body["error"]["temporary"], true);
    }
}
