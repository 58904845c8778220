//! Every error answer is JSON `{"error": code, "message": text}`; the status says who must
//! act: 4xx the caller or the user, 502 the provider refused, 503 try again later.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::provider::RefreshError;
use crate::engine::EngineError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            EngineError::UnknownAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
            EngineError::Refresh(RefreshError::NotConnected { .. }) => {
                (StatusCode::CONFLICT, "not_connected")
            }
            EngineError::Refresh(RefreshError::MissingSecret { .. }) => {
                (StatusCode::CONFLICT, "needs_reconnect")
            }
            EngineError::Refresh(r) if r.is_transient() => {
                (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable")
            }
            EngineError::Refresh(_) => (StatusCode::BAD_GATEWAY, "refresh_failed"),
            EngineError::NotValid { status, .. } => match status.as_str() {
                "not_connected" => (StatusCode::CONFLICT, "not_connected"),
                "needs_reconnect" => (StatusCode::CONFLICT, "needs_reconnect"),
                _ => (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable"),
            },
            EngineError::Usage { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            EngineError::Lock(_) => (StatusCode::CONFLICT, "locked"),
            EngineError::Keychain(_) => (StatusCode::SERVICE_UNAVAILABLE, "keychain_unavailable"),
            EngineError::History(_) => (StatusCode::SERVICE_UNAVAILABLE, "history_unavailable"),
            EngineError::Config(_) | EngineError::ApiKey(_) | EngineError::Io(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        Self {
            status,
            code,
            message,
        }
    }
}
