//! Login and logout, the language setting, and the admin pages (audit log,
//! users).

use super::WebState;
use crate::http::auth::{CurrentUser, Lang};
use crate::http::html::{Layout, safe_next};
use crate::http::html::{WebError, render};
use crate::services::users::audit;
use crate::services::users::auth::{self, Role, User};
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// `/`: the user's start page.
pub async fn home(user: CurrentUser) -> Redirect {
    let _ = &user;
    Redirect::to("/desk")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    next: String,
    login: String,
    error: String,
    notice: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    out: Option<String>,
}

pub async fn login_page(Lang(locale): Lang, Query(q): Query<LoginQuery>) -> Response {
    let l = Layout::anonymous(locale, "login.title");
    let notice = if q.out.as_deref() == Some("all") {
        l.t("login.logged_out_all").to_string()
    } else {
        String::new()
    };
    render(&LoginPage {
        l,
        next: safe_next(q.next.as_deref(), "/"),
        login: String::new(),
        error: String::new(),
        notice,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    login: String,
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(st): State<Arc<WebState>>,
    Lang(locale): Lang,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let addr = peer.ip().to_string();
    match auth::check_login(&st.store, &st.limiter, &f.login, &f.password, &addr).await {
        Ok(user) => {
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(200).collect());
            let token = match auth::create_session(&st.store, user.id, ua).await {
                Ok(t) => t,
                Err(e) => return WebError::from(e).into_response(),
            };
            audit::record(&st.store, &user.login, "login", &user.login, &addr).await;
            let mut r = Redirect::to(&safe_next(f.next.as_deref(), "/")).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&crate::http::auth::session_cookie(
                &token,
                st.secure_cookies,
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(wait) => {
            let l = Layout::anonymous(locale, "login.title");
            let (status, error) = match wait {
                Some(ms) => {
                    let login = auth::normalize_login(&f.login);
                    audit::record(&st.store, &login, "login.rate_limited", &login, &addr).await;
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        l.tr.f(
                            "login.too_many",
                            &[("minutes", &ms.div_ceil(60_000).max(1).to_string())],
                        ),
                    )
                }
                None => (StatusCode::UNAUTHORIZED, l.t("login.failed").to_string()),
            };
            let mut r = render(&LoginPage {
                l,
                next: safe_next(f.next.as_deref(), "/"),
                login: f.login.chars().take(64).collect(),
                error,
                notice: String::new(),
            });
            *r.status_mut() = status;
            if let Some(ms) = wait
                && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string())
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

fn logged_out(to: &str, secure: bool) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&crate::http::auth::clear_cookie(secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn logout(State(st): State<Arc<WebState>>, user: CurrentUser) -> Response {
    if let Err(e) = auth::end_session(&st.store, user.session.clone()).await {
        return WebError::from(e).into_response();
    }
    audit::record(&st.store, &user.login, "logout", &user.login, "").await;
    logged_out("/login", st.secure_cookies)
}

pub async fn logout_all(State(st): State<Arc<WebState>>, user: CurrentUser) -> Response {
    match auth::end_all_sessions(&st.store, user.id).await {
        Ok(n) => {
            audit::record(
                &st.store,
                &user.login,
                "logout.everywhere",
                &user.login,
                &format!("{n} sessions"),
            )
            .await;
            logged_out("/login?out=all", st.secure_cookies)
        }
        Err(e) => WebError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct LanguageForm {
    /// A locale code, or empty for the browser's.
    locale: String,
    next: Option<String>,
}

pub async fn set_language(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Form(f): Form<LanguageForm>,
) -> Result<Response, WebError> {
    let locale = crate::http::i18n::Locale::parse(&f.locale).map(|l| l.code());
    let id = user.id;
    auth::set_locale(&st.store, id, locale).await?;
    let mut r = Redirect::to(&safe_next(f.next.as_deref(), "/")).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    Ok(r)
}

// ----- admin pages ------------------------------------------------------------------

pub struct AuditRow {
    pub at: String,
    pub entry: audit::Entry,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    rows: Vec<AuditRow>,
    actor: String,
    older: Option<i64>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
    actor: Option<String>,
}

pub async fn audit_page(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    user.require(Role::Admin)?;
    let actor = q.actor.filter(|a| !a.is_empty());
    let entries = audit::recent(&st.store, q.before, actor.as_deref(), 200).await?;
    let l = Layout::new(&user, "audit", "audit.title");
    let older = (entries.len() == 200)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let rows = entries
        .into_iter()
        .map(|e| AuditRow {
            at: l.tr.datetime(e.at_ms),
            entry: e,
        })
        .collect();
    Ok(render(&AuditPage {
        l,
        rows,
        actor: actor.unwrap_or_default(),
        older,
    }))
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    l: Layout,
    users: Vec<User>,
}

pub async fn users_page(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    user.require(Role::Admin)?;
    let users = auth::list_users(&st.store).await?;
    Ok(render(&UsersPage {
        l: Layout::new(&user, "users", "users.title"),
        users,
    }))
}
