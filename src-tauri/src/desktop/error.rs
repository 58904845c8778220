//! What `invoke` rejects with: the engine's error code and remedy, so the window words the
//! same failure as the API and the CLI do.

use serde::Serialize;

use crate::engine::{EngineError, Remedy};

#[derive(Debug, Serialize)]
pub struct UiError {
    pub code: &'static str,
    pub message: String,
    pub remedy: Option<Remedy>,
}

impl UiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            remedy: None,
        }
    }
}

impl From<EngineError> for UiError {
    fn from(e: EngineError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            remedy: e.remedy(),
        }
    }
}

impl From<crate::engine::ConfigError> for UiError {
    fn from(e: crate::engine::ConfigError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<crate::engine::ApiKeyError> for UiError {
    fn from(e: crate::engine::ApiKeyError) -> Self {
        EngineError::from(e).into()
    }
}
