//! A JSON body extractor whose rejections are API errors (400 with a JSON body).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};

use super::error::ApiError;

/// Like `axum::Json`, but a malformed body becomes `400 bad_request` in our error format.
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::bad_request(format!("malformed request body: {}", e.body_text()))),
        }
    }
}

/// Parses an id from a path segment; the error names the kind of id.
pub(crate) fn parse_id<T: std::str::FromStr<Err = hindsight_api::BadId>>(s: &str) -> Result<T, ApiError> {
    s.parse().map_err(|e: hindsight_api::BadId| ApiError::bad_request(e.to_string()))
}
