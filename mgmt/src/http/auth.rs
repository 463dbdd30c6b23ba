//! Sessions over HTTP: the session cookie, CSRF, and the [`CurrentUser`],
//! [`Lang`] and `Actor` extractors (the accounts, roles and sessions
//! themselves are the users service, `crate::services::users::auth`).
//!
//! * [`layer`] runs in front of every route: it resolves the session into a
//!   [`CurrentUser`] request extension, refuses cross-site state-changing
//!   requests (Origin / Sec-Fetch-Site), and guards `/api/`: a valid bearer
//!   token or the session of a user allowed to use the JSON API.
//! * Handlers take `user: CurrentUser` (401/redirect to the login page when
//!   nobody is logged in) and call [`CurrentUser::require`].

use crate::http::html::WebError;
use crate::http::i18n::Locale;
use crate::services::users::auth::{
    Actor, Denied, Role, SESSION_MS, User, api_allowed, require_role, session_user, token_hash,
};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crossline_store::SqliteStore;
use std::sync::Arc;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "crossline_session";

/// The logged-in user of a request. Extract it in a handler (any router
/// state); without a session the request is answered 401 (JSON under
/// `/api/`, htmx: `HX-Redirect`, else a redirect to `/login`).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    /// SHA-256 of this session's token (to log out this session).
    pub session: String,
    /// The UI language of this request.
    pub locale: Locale,
}

impl std::ops::Deref for CurrentUser {
    type Target = User;
    fn deref(&self) -> &User {
        &self.user
    }
}

impl From<Denied> for WebError {
    fn from(d: Denied) -> Self {
        WebError::Forbidden(d.0)
    }
}

impl From<Denied> for crate::http::error::ApiError {
    fn from(d: Denied) -> Self {
        crate::http::error::ApiError::new(StatusCode::FORBIDDEN, "forbidden", d.0)
    }
}

/// The actor of an authenticated request, put there by [`layer`] (the API
/// token, else the session's user). Without one: 401.
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = crate::http::error::ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Actor>().cloned().ok_or_else(|| {
            crate::http::error::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the API token as `Authorization: Bearer <token>`, or log in",
            )
        })
    }
}

impl CurrentUser {
    /// Refuses (403) a user whose role is below `role`.
    pub fn require(&self, role: Role) -> Result<(), WebError> {
        Ok(require_role(self.user.role, &self.user.login, role)?)
    }

    /// This user as the [`Actor`] of what they do.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user.clone())
    }

    /// Whether the user may see things of `site` (None: belongs to no site,
    /// visible only to unrestricted users).
    pub fn may_see_site(&self, site: Option<&str>) -> bool {
        self.user.unrestricted() || site.is_some_and(|s| self.user.sites.iter().any(|x| x == s))
    }

    /// Whether the user may see things of `team`.
    pub fn may_see_team(&self, team: Option<&str>) -> bool {
        self.user.unrestricted() || team.is_some_and(|t| self.user.teams.iter().any(|x| x == t))
    }

    /// Refuses (403) unless the user may see `site`.
    pub fn require_site(&self, site: Option<&str>) -> Result<(), WebError> {
        if self.may_see_site(site) {
            Ok(())
        } else {
            Err(WebError::Forbidden(format!(
                "{} may not see site {}",
                self.user.login,
                site.unwrap_or("(none)")
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or_else(|| WebError::Unauthenticated {
                htmx: parts.headers.contains_key("hx-request"),
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
            })
    }
}

/// The UI language of a request, for pages anyone may see (login).
#[derive(Debug, Clone, Copy)]
pub struct Lang(pub Locale);

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang(
            parts
                .extensions
                .get::<CurrentUser>()
                .map(|u| u.locale)
                .unwrap_or_else(|| Locale::from_headers(&parts.headers)),
        ))
    }
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

// ----- the middleware ------------------------------------------------------------

/// What [`layer`] needs.
pub struct AuthState {
    pub store: SqliteStore,
    pub api_token: String,
}

/// Whether a state-changing request comes from our own pages: the browser's
/// `Sec-Fetch-Site` is `same-origin` (or `none`: typed by the user), or,
/// from a browser that does not send it, `Origin` names this host. A
/// request with neither header is refused.
pub fn same_origin(h: &HeaderMap) -> bool {
    if let Some(s) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return s == "same-origin" || s == "none";
    }
    let (Some(origin), Some(host)) = (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

/// Resolves the session, checks CSRF and guards `/api/` (see the module doc).
pub async fn layer(State(st): State<Arc<AuthState>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let mut user = None;
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        let h = token_hash(token);
        match session_user(&st.store, &h).await {
            Ok(Some(u)) => {
                let locale = u
                    .locale
                    .as_deref()
                    .and_then(Locale::parse)
                    .unwrap_or_else(|| Locale::from_headers(headers));
                user = Some(CurrentUser {
                    user: u,
                    session: h,
                    locale,
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not look up a web session"),
        }
    }
    let changing = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req.uri().path().to_string();
    // Error pages in the user's language (or the browser's, before login).
    let locale = user
        .as_ref()
        .map(|u| u.locale)
        .unwrap_or_else(|| Locale::from_headers(headers));
    let token = bearer(headers);
    let bearer_ok = token
        .is_some_and(|t| crossline_broker::constant_time_eq(t.as_bytes(), st.api_token.as_bytes()));
    // The OpenAPI document is public: it describes, it grants nothing.
    let public = path == crate::http::OPENAPI_PATH && !changing;
    if path.starts_with("/api/") && !bearer_ok && !public {
        match &user {
            _ if token.is_some() => {
                return api_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "wrong API token: send `Authorization: Bearer <token>` (stored in <data_dir>/api.token)",
                );
            }
            None => {
                return api_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send the API token as `Authorization: Bearer <token>` (stored in <data_dir>/api.token on the mgmt server), or log in to the web UI as a supervisor or admin",
                );
            }
            Some(u) if !api_allowed(&u.user) => {
                return api_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the JSON API with a login is for supervisors and admins who see every site and team; agents work in the desk",
                );
            }
            Some(_) if changing && !same_origin(headers) => {
                return api_error(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "cross-site request refused (Origin / Sec-Fetch-Site is not this server)",
                );
            }
            Some(_) => {}
        }
    } else if changing && !bearer_ok && !same_origin(headers) {
        return crate::http::html::localize_error(WebError::Csrf.into_response(), locale);
    }
    let actor = if bearer_ok {
        Some(Actor::ApiToken)
    } else {
        user.as_ref().map(|u| Actor::User(u.user.clone()))
    };
    if let Some(a) = actor {
        req.extensions_mut().insert(a);
    }
    if let Some(u) = user {
        req.extensions_mut().insert(u);
    }
    let mut resp = crate::http::html::localize_error(next.run(req).await, locale);
    // Pages are per user: never cached by shared caches.
    if !path.starts_with("/assets/") && !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
