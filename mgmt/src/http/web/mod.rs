//! The web UI: server-rendered HTML (askama templates in `mgmt/templates`,
//! auto-escaped), htmx for partial updates, Server-Sent Events for live
//! changes, and one small ES module (`assets/app.js`). See docs/WEB.md.
//!
//! Building blocks other modules use (documented in docs/WEB.md):
//! * [`crate::http::auth::CurrentUser`] — extractor of the logged-in user, with
//!   `require(Role::…)`, `may_see_site`, `may_see_team`;
//! * [`crate::services::users::audit::record`] — append to the audit log;
//! * [`crate::http::html::Layout`] + `templates/base.html` — the page frame
//!   with navigation;
//! * [`crate::http::html::WebError`] — an HTML error answer (401 redirects to
//!   the login page).

pub mod board;
pub mod desk;
pub mod pages;
pub mod recordings;
pub mod scope;
pub mod stream;

use crate::http::assets;
use crate::services::routing::Routing;
use crate::services::users::auth::LoginLimiter;
use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use crossline_store::SqliteStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Shared state of the web handlers.
pub struct WebState {
    pub store: SqliteStore,
    /// Sends replies through their channel's adapter (the same use cases
    /// as the JSON API: `services::conversations::actions`).
    pub outbound: crate::services::channels::Outbound,
    /// The site's default region, for numbers an agent types.
    pub region: crate::services::contacts::address::Region,
    pub routing: Routing,
    pub limiter: LoginLimiter,
    /// Send cookies with `Secure` (mgmt is served over TLS, e.g. behind a proxy).
    pub secure_cookies: bool,
    /// Changes for the desk's live stream, already resolved to who may see them.
    pub changes: stream::Changes,
    /// Recordings served at `/recordings/{id}`.
    pub recordings: crate::services::recordings::Recordings,
    pub shutdown: CancellationToken,
}

/// The web routes, to merge into mgmt's router. Put [`crate::http::auth::layer`] in
/// front of the whole app (server.rs does).
pub fn router(st: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/logout/all", post(pages::logout_all))
        .route("/settings/language", post(pages::set_language))
        .route("/admin/audit", get(pages::audit_page))
        .route("/admin/users", get(pages::users_page))
        .route("/assets/{version}/{*name}", get(assets::serve))
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent(&assets::url("favicon.svg")) }),
        )
        .route("/desk", get(desk::inbox_page))
        .route("/desk/list", get(desk::inbox_list))
        .route("/desk/stream", get(stream::desk_stream))
        .route("/desk/presence", post(desk::set_presence))
        .route("/desk/c/{id}", get(desk::conversation_page))
        .route("/recordings/{id}", get(recordings::serve))
        .route("/desk/c/{id}/timeline", get(desk::timeline))
        .route("/desk/c/{id}/reply", post(desk::reply))
        .route("/desk/c/{id}/measure", get(desk::measure))
        .route("/desk/c/{id}/note", post(desk::note))
        .route("/desk/c/{id}/action", post(desk::action))
        .route("/desk/c/{id}/transfer", post(desk::transfer))
        .route("/desk/contact/{id}/tag", post(desk::add_tag))
        .route("/desk/contact/{id}/note", post(desk::contact_note))
        .route("/desk/contact/{id}/merge", post(desk::merge_contact))
        .route("/desk/contact/{id}/untag", post(desk::remove_tag))
        .route("/desk/contact/{id}/unmerge", post(desk::unmerge_contact))
        .route("/supervisor", get(board::board_page))
        .route("/supervisor/board", get(board::board_fragment))
        .route("/supervisor/reports", get(board::reports_page))
        .route("/supervisor/reports.csv", get(board::reports_csv))
        .with_state(st)
}
