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
    "method_not_allowed",
    "unauthorized",
    "forbidden",
    "timeout",
    "unavailable",
    "internal",
];

/// Every problem code: the request-level ones, then the rules' rejections.
pub fn all_codes() -> impl Iterator<Item = &'static str> {
    REQUEST_CODES
        .iter()
        .chain(Rejection::ALL_CODES.iter())
        .copied()
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:points-ledger:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(pattern = "^urn:points-ledger:problem:[a-z_]+$")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// The stable code (the suffix of `type`), for clients that switch on it.
    #[schema(schema_with = code_schema)]
    pub code: String,
}

fn code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(all_codes()))
        .description(Some(
            "The stable code (the suffix of `type`), for clients that switch on it.",
        ))
        .build()
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
        if let StoreError::NoSpace { .. } | StoreError::Failed(_) = e {
            // The disk is full or the store refuses writes: the request may succeed later.
            tracing::warn!(error = %e, "write refused while serving a request");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the ledger cannot accept writes right now; retry later",
            );
        }
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
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Unavailable and timeout are transient: tell clients when to try again.
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme that would be accepted.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(super::auth::SCHEME),
            );
        }
        resp
    }
}
