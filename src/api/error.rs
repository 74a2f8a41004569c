//! RFC 9457 problem+json errors with a stable `type` per failure (`ledger-spec/api.md` §2).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::rules::Rejection;
use crate::store::{StoreError, SubmitError};

/// Prefix of every problem `type` URI; the suffix is the stable snake_case code.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:points-ledger:problem:";

/// Request-level problem codes (the rules' codes are in [`Rejection::ALL_CODES`]).
pub const REQUEST_CODES: &[&str] = &[
    "malformed_op",
    "malformed_body",
    "unsupported_media_type",
    "body_too_large",
    "batch_too_large",
    "invalid_query",
    "invalid_path",
    "not_found",
    "unauthorized",
    "forbidden",
    "timeout",
    "unavailable",
    "internal",
];

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:points-ledger:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// The stable code (the suffix of `type`), for clients that switch on it.
    pub code: String,
}

impl Problem {
    /// Builds a problem from a status, a code and a detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// The HTTP status a rule rejection is answered with.
    pub fn status_for(rejection: &Rejection) -> StatusCode {
        match rejection {
            Rejection::NotAuthorized | Rejection::MerchantSuspended => StatusCode::FORBIDDEN,
            Rejection::DuplicateOpId
            | Rejection::MerchantExists
            | Rejection::AuditorExists
            | Rejection::RoleConflict
            | Rejection::InsufficientFunds
            | Rejection::AlreadyInitialized => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl From<Rejection> for Problem {
    fn from(r: Rejection) -> Problem {
        Problem::new(Problem::status_for(&r), r.code(), r.to_string())
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        tracing::error!(error = %e, "store error while serving a request");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the operator has been told",
        )
    }
}

impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}
