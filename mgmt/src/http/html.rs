//! HTML answers every HTML surface (desk, board, pages, fleet console)
//! shares: [`render`], the error answer [`WebError`] and its page in the
//! user's language ([`localize_error`]), and [`encode_component`].

use crate::http::i18n::{Locale, Tr};
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

/// Percent-encodes a URL query component.
pub fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Renders a template as an HTML response (500 if rendering fails).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            WebError::Internal.into_response()
        }
    }
}

/// An error answer of a web handler (HTML; English text from the catalog,
/// the page's own language is not known here).
#[derive(Debug)]
pub enum WebError {
    /// Nobody is logged in: redirect to the login page (htmx: `HX-Redirect`).
    Unauthenticated {
        next: String,
        htmx: bool,
    },
    Forbidden(String),
    NotFound,
    BadRequest(String),
    Conflict(String),
    Csrf,
    Internal,
}

impl From<crossline_store::StoreError> for WebError {
    fn from(e: crossline_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error in a web handler");
        WebError::Internal
    }
}

impl From<crate::services::routing::RoutingServiceError> for WebError {
    fn from(e: crate::services::routing::RoutingServiceError) -> Self {
        use crate::services::routing::RoutingServiceError as E;
        match e {
            E::Routing(r) => WebError::Conflict(r.to_string()),
            E::Off => WebError::Conflict(e.to_string()),
            other => {
                tracing::error!(error = %other, "routing error in a web handler");
                WebError::Internal
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let tr = Tr::new(Locale::En, "UTC");
        let (status, key, detail) = match &self {
            WebError::Unauthenticated { next, htmx } => {
                let target = format!("/login?next={}", encode_component(next));
                let mut r = Redirect::to(&target).into_response();
                *r.status_mut() = if *htmx {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::SEE_OTHER
                };
                if let Ok(v) = HeaderValue::from_str(&target) {
                    r.headers_mut().insert("hx-redirect", v);
                }
                return r;
            }
            WebError::Forbidden(d) => (StatusCode::FORBIDDEN, "err.forbidden", d.clone()),
            WebError::NotFound => (StatusCode::NOT_FOUND, "err.not_found", String::new()),
            WebError::BadRequest(d) => (StatusCode::BAD_REQUEST, "err.bad_request", d.clone()),
            WebError::Conflict(d) => (StatusCode::CONFLICT, "err.conflict", d.clone()),
            WebError::Csrf => (StatusCode::FORBIDDEN, "err.csrf", String::new()),
            WebError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "err.internal",
                String::new(),
            ),
        };
        let mut r = render_error(status, key, &detail, &tr);
        // The language of the request is known only to the auth layer
        // ([`crate::http::auth::layer`]): it renders the page again in it.
        r.extensions_mut().insert(ErrorPageParts { key, detail });
        r
    }
}

/// What an error page says, kept on its response so that [`localize_error`]
/// can render it again in the user's language.
#[derive(Clone)]
struct ErrorPageParts {
    key: &'static str,
    detail: String,
}

fn render_error(status: StatusCode, key: &str, detail: &str, tr: &Tr) -> Response {
    let page = ErrorPage {
        lang: tr.locale.code(),
        title: tr.t("err.title"),
        message: tr.t(key),
        detail,
    };
    let body = page.render().unwrap_or_default();
    let mut r = (status, Html(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error page from [`WebError`] in `locale` (they are rendered in English
/// where the request's language is not known).
pub fn localize_error(resp: Response, locale: Locale) -> Response {
    if locale == Locale::En {
        return resp;
    }
    let Some(parts) = resp.extensions().get::<ErrorPageParts>().cloned() else {
        return resp;
    };
    let (mut head, _) = resp.into_parts();
    head.headers.remove(header::CONTENT_LENGTH);
    let (_, body) = render_error(
        head.status,
        parts.key,
        &parts.detail,
        &Tr::new(locale, "UTC"),
    )
    .into_parts();
    Response::from_parts(head, body)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: &'a str,
    title: &'a str,
    message: &'a str,
    detail: &'a str,
}
