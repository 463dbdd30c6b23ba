//! Accounts, roles, sessions and who acts ([`Actor`]); the HTTP side
//! (cookie, CSRF, extractors, middleware) is `crate::http::auth`.
//!
//! * Users (`web_user`) have one [`Role`] and the sites and teams they may
//!   see (both empty: everything). Passwords are argon2id PHC strings.
//! * A session is a random 256-bit token in the `crossline_session` cookie
//!   (HttpOnly, SameSite=Lax, Secure when served over TLS); the server keeps
//!   only its SHA-256 in `web_session`, so "log out everywhere" deletes the
//!   user's rows and every browser is logged out at its next request.

use super::repo::{NewSession, UserRepo, UserRow};
use crate::clock::now_ms;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;

/// A session lasts this long after login (then log in again).
pub const SESSION_MS: u64 = 12 * 3600 * 1000;

/// What a user may do. Ordered: an admin may do everything a supervisor
/// may, a supervisor everything an agent may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works conversations in the desk.
    Agent,
    /// Also the queue board, reports and reassigning.
    Supervisor,
    /// Also users, the audit log and the fleet.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// Catalog key of the role's name.
    pub fn label_key(self) -> &'static str {
        match self {
            Role::Agent => "role.agent",
            Role::Supervisor => "role.supervisor",
            Role::Admin => "role.admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::parse(s).ok_or_else(|| format!("role {s:?} is not one of agent, supervisor, admin"))
    }
}

/// A user account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub role: Role,
    /// The routing agent this user works as.
    pub agent_id: String,
    /// Sites the user may see; with `teams`, both empty means every site and team.
    pub sites: Vec<String>,
    pub teams: Vec<String>,
    /// Chosen UI language, or None for the browser's.
    pub locale: Option<String>,
    /// IANA time zone for dates in the UI.
    pub time_zone: String,
    pub disabled: bool,
}

impl User {
    /// Sees every site and team.
    pub fn unrestricted(&self) -> bool {
        self.sites.is_empty() && self.teams.is_empty()
    }
}

/// Who does something: a signed-in user (a session cookie), a client with
/// the API token, or the local command line (whoever may open mgmt's data
/// directory). Every surface decides what it may do with the same
/// [`Actor::require`], and the audit log names it by [`Actor::name`].
#[derive(Debug, Clone)]
pub enum Actor {
    User(User),
    /// `Authorization: Bearer <api.token>`: acts as an admin.
    ApiToken,
    /// `crossline-mgmt <command>` on the server: acts as an admin.
    Cli,
}

/// A refused action: what it needs, and who asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

pub(crate) fn require_role(have: Role, who: &str, need: Role) -> Result<(), Denied> {
    if have >= need {
        Ok(())
    } else {
        Err(Denied(format!(
            "this needs the {} role; {who} is {}",
            need.as_str(),
            have.as_str()
        )))
    }
}

impl Actor {
    /// The role it acts with (the API token and the command line: admin).
    pub fn role(&self) -> Role {
        match self {
            Actor::User(u) => u.role,
            Actor::ApiToken | Actor::Cli => Role::Admin,
        }
    }

    /// Its name in the audit log: the login, `api-token` or `cli`.
    pub fn name(&self) -> &str {
        match self {
            Actor::User(u) => &u.login,
            Actor::ApiToken => "api-token",
            Actor::Cli => "cli",
        }
    }

    /// The login of a user (None for the API token and the command line).
    pub fn login(&self) -> Option<String> {
        match self {
            Actor::User(u) => Some(u.login.clone()),
            Actor::ApiToken | Actor::Cli => None,
        }
    }

    /// Refuses an actor whose role is below `role`.
    pub fn require(&self, role: Role) -> Result<(), Denied> {
        require_role(self.role(), self.name(), role)
    }
}

// ----- passwords -------------------------------------------------------------

/// An argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| anyhow::anyhow!("encoding a password salt: {e}"))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash verified when the login is unknown, so that answers take the same
/// time whether or not the login exists.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a password").unwrap_or_default())
}

// ----- users in the database ---------------------------------------------------

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub login: String,
    pub name: String,
    pub role: Role,
    /// Defaults to the login.
    pub agent_id: Option<String>,
    pub sites: Vec<String>,
    pub teams: Vec<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
}

/// The one form of a login name used everywhere a login is read (sign-in,
/// the sign-in rate limit, `user add`, `user passwd`): surrounding
/// whitespace removed, lower case. `Ana ` and `ana` are the same account and
/// share one failed-login counter.
pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// Checks a login name: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_login(login: &str) -> bool {
    (1..=64).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Adds a user with an already hashed password (the login stored in its
/// [`normalize_login`] form; agent id defaults to the login, time zone to
/// UTC); Err(..) if the login is taken.
pub async fn insert_user(
    repo: &dyn UserRepo,
    u: &NewUser,
    password_hash: &str,
) -> crossline_store::Result<i64> {
    let login = normalize_login(&u.login);
    repo.insert_user(UserRow {
        agent_id: u.agent_id.clone().unwrap_or_else(|| login.clone()),
        login,
        name: u.name.clone(),
        role: u.role,
        password_hash: password_hash.to_string(),
        sites: u.sites.clone(),
        teams: u.teams.clone(),
        locale: u.locale.clone(),
        time_zone: u.time_zone.clone().unwrap_or_else(|| "UTC".into()),
        created_ms: now_ms() as i64,
    })
    .await
}

/// Every user, by login.
pub async fn list_users(repo: &dyn UserRepo) -> crossline_store::Result<Vec<User>> {
    repo.users().await
}

/// A user and their password hash, by login (in any case, with stray
/// whitespace: see [`normalize_login`]).
pub async fn user_by_login(
    repo: &dyn UserRepo,
    login: &str,
) -> crossline_store::Result<Option<(User, String)>> {
    repo.user_by_login(normalize_login(login)).await
}

/// Sets a password and ends the user's sessions; false if no such login.
pub async fn set_password(
    repo: &dyn UserRepo,
    login: &str,
    password_hash: &str,
) -> crossline_store::Result<bool> {
    repo.set_password(normalize_login(login), password_hash.to_string())
        .await
}

/// Sets (or clears) the user's UI language.
pub async fn set_locale(
    repo: &dyn UserRepo,
    user: i64,
    locale: Option<&str>,
) -> crossline_store::Result<()> {
    repo.set_locale(user, locale.map(str::to_string)).await
}

// ----- sessions --------------------------------------------------------------------

/// SHA-256 (hex) of a session token: all the store keeps of it.
pub(crate) fn token_hash(token: &str) -> String {
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a session for `user`; returns the cookie token (shown once).
pub async fn create_session(
    repo: &dyn UserRepo,
    user: i64,
    user_agent: Option<String>,
) -> crossline_store::Result<String> {
    let raw: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let now = now_ms() as i64;
    repo.create_session(NewSession {
        token_hash: token_hash(&token),
        user,
        created_ms: now,
        expires_ms: now + SESSION_MS as i64,
        user_agent,
    })
    .await?;
    Ok(token)
}

/// The user of a live session (not expired, user not disabled).
pub async fn session_user(
    repo: &dyn UserRepo,
    token_hash: &str,
) -> crossline_store::Result<Option<User>> {
    repo.session_user(token_hash.to_string(), now_ms() as i64)
        .await
}

/// Ends one session.
pub async fn end_session(repo: &dyn UserRepo, token_hash: String) -> crossline_store::Result<()> {
    repo.end_session(token_hash).await
}

/// Ends every session of a user ("log out everywhere"); returns how many.
pub async fn end_all_sessions(repo: &dyn UserRepo, user: i64) -> crossline_store::Result<usize> {
    repo.end_all_sessions(user).await
}

// ----- login rate limit --------------------------------------------------------

/// Failed logins allowed per login name in [`LIMIT_WINDOW_MS`].
pub const LIMIT_PER_LOGIN: usize = 5;
/// Failed logins allowed per client address in [`LIMIT_WINDOW_MS`].
pub const LIMIT_PER_ADDR: usize = 20;
pub const LIMIT_WINDOW_MS: u64 = 15 * 60 * 1000;

/// Counts failed logins per login name and per client address.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<u64>>>,
}

impl LoginLimiter {
    /// None if a login attempt may go ahead, else how long to wait (ms).
    pub fn blocked(&self, login: &str, addr: &str) -> Option<u64> {
        let now = now_ms();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = None;
        for (key, limit) in [
            (format!("l:{}", normalize_login(login)), LIMIT_PER_LOGIN),
            (format!("a:{addr}"), LIMIT_PER_ADDR),
        ] {
            if let Some(v) = f.get_mut(&key) {
                v.retain(|&t| t + LIMIT_WINDOW_MS > now);
                if v.len() >= limit
                    && let Some(&oldest) = v.first()
                {
                    let w = (oldest + LIMIT_WINDOW_MS).saturating_sub(now);
                    wait = Some(wait.map_or(w, |x: u64| x.max(w)));
                }
            }
        }
        wait
    }

    pub fn failed(&self, login: &str, addr: &str) {
        let now = now_ms();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() > 100_000 {
            f.retain(|_, v| v.last().is_some_and(|&t| t + LIMIT_WINDOW_MS > now));
        }
        for key in [format!("l:{}", normalize_login(login)), format!("a:{addr}")] {
            f.entry(key).or_default().push(now);
        }
    }

    pub fn succeeded(&self, login: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(&format!("l:{}", normalize_login(login)));
    }
}

/// Checks a login; Ok(user) or Err(None) for wrong credentials, Err(Some(ms))
/// when rate limited.
pub async fn check_login(
    repo: &dyn UserRepo,
    limiter: &LoginLimiter,
    login: &str,
    password: &str,
    addr: &str,
) -> Result<User, Option<u64>> {
    let login = normalize_login(login);
    let login = login.as_str();
    if let Some(wait) = limiter.blocked(login, addr) {
        return Err(Some(wait));
    }
    let found = user_by_login(repo, login).await.ok().flatten();
    let pw = password.to_string();
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_string()),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(u) if ok && !u.disabled => {
            limiter.succeeded(login);
            Ok(u)
        }
        _ => {
            limiter.failed(login, addr);
            Err(None)
        }
    }
}

/// Who may use the JSON API with a session cookie: supervisors and admins
/// who see every site and team (the API is not scoped; agents use the desk).
pub fn api_allowed(u: &User) -> bool {
    u.role >= Role::Supervisor && u.unrestricted()
}
