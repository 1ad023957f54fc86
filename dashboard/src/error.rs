//! The dashboard's errors, and the JSON error answers of its API.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// What can go wrong in the dashboard.
#[derive(Debug, Error)]
pub enum DashboardError {
    /// The database failed.
    #[error("dashboard database {path}: {what}: {source}")]
    Db {
        /// The database file.
        path: String,
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: rusqlite::Error,
    },
    /// Serving HTTP failed.
    #[error("dashboard server: {0}")]
    Serve(#[source] std::io::Error),
    /// A database task could not finish.
    #[error("dashboard database task stopped: {0}")]
    Task(String),
}

/// An error answer: a status and one readable line, sent as `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500 for a failure of the dashboard itself.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<DashboardError> for ApiError {
    fn from(e: DashboardError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}
