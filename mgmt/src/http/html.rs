//! HTML answers every HTML surface (desk, board, pages, fleet console)
//! shares: the page frame [`Layout`], [`render`], the error answer [`WebError`] and its page in the
//! user's language ([`localize_error`]), [`encode_component`] and
//! [`safe_next`].

use crate::http::assets;
use crate::http::auth::CurrentUser;
use crate::http::i18n::{self, Locale, Tr};
use crate::services::users::auth::{Role, User};
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

/// The page frame: language, user, navigation. Every page template
/// `{% extends "base.html" %}` and has a field `l: Layout`.
pub struct Layout {
    pub tr: Tr,
    pub user: Option<User>,
    /// Which nav entry is current (`inbox`, `board`, `reports`, `audit`, `users`, `fleet`).
    pub nav: &'static str,
    pub title: String,
    pub css: String,
    pub js: String,
    pub htmx: String,
    pub favicon: String,
}

impl Layout {
    /// The frame for a logged-in user's page.
    pub fn new(user: &CurrentUser, nav: &'static str, title_key: &str) -> Self {
        let tr = Tr::new(user.locale, &user.user.time_zone);
        let title = tr.t(title_key).to_string();
        Self {
            tr,
            user: Some(user.user.clone()),
            nav,
            title,
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            htmx: assets::url("vendor/htmx.min.js"),
            favicon: assets::url("favicon.svg"),
        }
    }

    /// The frame for a page anyone may see (login).
    pub fn anonymous(locale: Locale, title_key: &str) -> Self {
        let tr = Tr::new(locale, "UTC");
        let title = tr.t(title_key).to_string();
        Self {
            tr,
            user: None,
            nav: "",
            title,
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            htmx: assets::url("vendor/htmx.min.js"),
            favicon: assets::url("favicon.svg"),
        }
    }

    /// Catalog text (see [`i18n`]).
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        self.tr.t(key)
    }

    pub fn lang(&self) -> &'static str {
        self.tr.locale.code()
    }

    pub fn has_role(&self, role: &str) -> bool {
        let want = Role::parse(role).unwrap_or(Role::Admin);
        self.user.as_ref().is_some_and(|u| u.role >= want)
    }

    pub fn locales(&self) -> Vec<(&'static str, &'static str, bool)> {
        i18n::ALL
            .iter()
            .map(|l| (l.code(), l.native_name(), *l == self.tr.locale))
            .collect()
    }
}

/// Whether `next` is a path on this site to send the browser to (after
/// login, a language change, a presence change): it starts with one `/`,
/// and is printable ASCII without `\`. Browsers drop tabs and newlines
/// from URLs and read `\` as `/`, so `/<TAB>/evil.example` or `/\evil.example`
/// would lead to another site; a CR or LF would break the `Location` header.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// `next` if it is a path on this site ([`is_local_path`]), else `fallback`.
pub fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_string(),
        _ => fallback.to_string(),
    }
}
