//! Every error answer is an [`ErrorBody`] (`api::contract`); the status
//! says who must act: 4xx the caller or the user, 502 the provider refused, 503 try again
//! later. Codes and remedies come from the engine's one table (`engine::error`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::contract::ErrorBody;
use crate::engine::{AccountName, EngineError, ErrorKind, Remedy};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub remedy: Option<Remedy>,
    pub account: Option<AccountName>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            remedy: None,
            account: None,
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            account: self.account,
            error: self.code.to_owned(),
            message: self.message,
            remedy: self.remedy,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let kind = e.kind();
        Self {
            status: status_of(kind),
            code: kind.code(),
            message: e.to_string(),
            remedy: e.remedy(),
            account: e.account().cloned(),
            // Whole seconds, rounded up: asking again after that is never too soon.
            retry_after: e
                .retry_after()
                .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        }
    }
}

/// The only thing the API decides about an engine error: its status code.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Config | ErrorKind::BadRequest | ErrorKind::ApiKey => StatusCode::BAD_REQUEST,
        ErrorKind::UnknownAccount => StatusCode::NOT_FOUND,
        ErrorKind::NotApproved => StatusCode::FORBIDDEN,
        ErrorKind::NotConnected
        | ErrorKind::NeedsReconnect
        | ErrorKind::Locked
        | ErrorKind::RejectedLoop => StatusCode::CONFLICT,
        ErrorKind::TooSoon | ErrorKind::QuotaNearlySpent => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::RefreshFailed => StatusCode::BAD_GATEWAY,
        ErrorKind::ProviderUnavailable
        | ErrorKind::KeychainUnavailable
        | ErrorKind::HistoryUnavailable
        | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}
