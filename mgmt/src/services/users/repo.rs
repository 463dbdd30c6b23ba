//! What the users service needs from storage: accounts and their sessions
//! ([`UserRepo`]) and the audit log ([`AuditRepo`]). No SQL here; the SQLite
//! implementation is `crate::storage::sqlite::users`.

use super::audit::{Entry, NewEntry};
use super::auth::User;
use crate::services::RepoFuture;

/// An account as stored: the login already in its normalised form, the
/// defaults already applied (see `auth::insert_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub login: String,
    pub name: String,
    pub role: super::auth::Role,
    /// argon2id PHC string.
    pub password_hash: String,
    pub agent_id: String,
    pub sites: Vec<String>,
    pub teams: Vec<String>,
    pub locale: Option<String>,
    pub time_zone: String,
    pub created_ms: i64,
}

/// A new session: only the SHA-256 of its token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub token_hash: String,
    pub user: i64,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub user_agent: Option<String>,
}

/// Accounts (`web_user`) and sessions (`web_session`).
pub trait UserRepo: Send + Sync {
    /// Adds an account; its id. Fails if the login is taken.
    fn insert_user(&self, user: UserRow) -> RepoFuture<i64>;
    /// Every account, by login.
    fn users(&self) -> RepoFuture<Vec<User>>;
    /// An account and its password hash, by (normalised) login.
    fn user_by_login(&self, login: String) -> RepoFuture<Option<(User, String)>>;
    /// Which of `logins` are accounts (as stored, in the order given).
    fn known_logins(&self, logins: Vec<String>) -> RepoFuture<Vec<String>>;
    /// Sets a password and ends the account's sessions, in one transaction;
    /// false if there is no such login.
    fn set_password(&self, login: String, password_hash: String) -> RepoFuture<bool>;
    /// Sets (or clears) an account's UI language.
    fn set_locale(&self, user: i64, locale: Option<String>) -> RepoFuture<()>;
    /// Stores a session, removing sessions expired before its creation.
    fn create_session(&self, session: NewSession) -> RepoFuture<()>;
    /// The account of a session alive at `now_ms` (its account not disabled).
    fn session_user(&self, token_hash: String, now_ms: i64) -> RepoFuture<Option<User>>;
    /// Ends one session.
    fn end_session(&self, token_hash: String) -> RepoFuture<()>;
    /// Ends every session of an account; how many there were.
    fn end_all_sessions(&self, user: i64) -> RepoFuture<usize>;
}

/// The audit log (`audit_log`): append-only.
pub trait AuditRepo: Send + Sync {
    fn append(&self, entry: NewEntry) -> RepoFuture<()>;
    /// Newest first, before id `before` (paging), of `actor` only if given.
    fn recent_entries(
        &self,
        before: Option<i64>,
        actor: Option<String>,
        limit: usize,
    ) -> RepoFuture<Vec<Entry>>;
}
