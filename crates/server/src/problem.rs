//! Errors as RFC 9457 problem details (`application/problem+json`): a
//! stable `type` per kind of problem, the HTTP `status`, a `title`, a
//! `detail` that says what failed and what to do, and the `field` at fault
//! when there is one. A client's mistake is never a 500, and a refused
//! request changed nothing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use capstan::{RuntimeError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem detail.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// What kind of problem, as a URN (`urn:capstan:problem:stale-lease`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong here, and what to do.
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before trying again (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:capstan:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Name the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into()).filter(|f: &String| !f.is_empty() && f != ".");
        self
    }

    /// 400: the body is not JSON.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The body is not valid JSON",
            detail,
        )
    }

    /// 400: a field is missing, unknown or of the wrong type.
    pub fn bad_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-field",
            "A field is missing or has the wrong type",
            detail,
        )
        .with_field(field)
    }

    /// 400: a query parameter or path segment is not what it should be.
    pub fn bad_parameter(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-parameter",
            "A parameter is not valid",
            detail,
        )
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid bearer token is needed",
            detail,
        )
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This token may not do this",
            detail,
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not take this method: see /openapi.json",
        )
    }

    /// 409: the caller's lease is no longer the job's.
    pub fn stale_lease(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "stale-lease",
            "The lease is no longer current",
            detail,
        )
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The body is too large",
            detail,
        )
    }

    /// 415.
    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "The body must be JSON",
            detail,
        )
    }

    /// 422: well-formed, but not something Capstan can do.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "The request is not valid",
            detail,
        )
        .with_field(field)
    }

    /// 503: the database does not answer; retry later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The database is unavailable",
            detail,
        );
        p.retry_after = Some(1);
        p
    }

    /// 503: the request ran past `server.request_timeout`.
    pub fn timed_out(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "The request took too long",
            detail,
        );
        p.retry_after = Some(1);
        p
    }

    /// 500: Capstan's own failure.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = self.status, detail = %self.detail, "request failed");
        }
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        let detail = e.to_string();
        match e {
            StoreError::Fenced { .. } => Problem::stale_lease(detail),
            StoreError::NotFound { .. } => Problem::not_found(detail),
            StoreError::InvalidTransition { .. } => Problem::new(
                StatusCode::CONFLICT,
                "invalid-transition",
                "The job's state does not allow this",
                detail,
            ),
            StoreError::Invalid(v) => Problem::invalid(v.field(), detail),
            StoreError::Refused { .. } => Problem::invalid("", detail),
            e if e.is_transient() => Problem::unavailable(detail),
            StoreError::SchemaOutdated { .. } => Problem::unavailable(detail),
            _ => Problem::internal(detail),
        }
    }
}

impl From<RuntimeError> for Problem {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Store(e) => e.into(),
            RuntimeError::Invalid { field, .. } => Problem::invalid(field, e.to_string()),
            RuntimeError::WorkerNameInUse { .. } => Problem::new(
                StatusCode::CONFLICT,
                "worker-name-in-use",
                "The worker name is in use",
                e.to_string(),
            )
            .with_field("worker"),
            e => Problem::internal(e.to_string()),
        }
    }
}
