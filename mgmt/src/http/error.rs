//! One error type for every HTTP handler: a status and a JSON body. Internal
//! errors are logged with detail and answered without it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The sentence for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The machine-readable code (`not_found`, `empty_text`, ...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A JSON body axum refused, as a clear error; `max_body` is the route's
    /// body limit, named when the body was too large.
    pub fn from_json_rejection(
        e: axum::extract::rejection::JsonRejection,
        max_body: usize,
    ) -> Self {
        let status = e.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "bad_request",
        };
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body larger than {max_body} bytes")
        } else {
            e.body_text()
        };
        Self::new(status, code, message)
    }
}

impl From<crossline_store::StoreError> for ApiError {
    fn from(e: crossline_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error in HTTP handler");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(Body {
                error: self.code,
                message: &self.message,
            }),
        )
            .into_response()
    }
}

impl From<crate::services::conversations::actions::ActionError> for ApiError {
    fn from(e: crate::services::conversations::actions::ActionError) -> Self {
        use crate::services::conversations::actions::ActionError as A;
        match e {
            A::Store(e) => ApiError::from(e),
            A::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.code(), e.to_string()),
            A::OtherOpen(_) => ApiError::new(StatusCode::CONFLICT, e.code(), e.to_string()),
            _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()),
        }
    }
}
