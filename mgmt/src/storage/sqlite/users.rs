//! Accounts, sessions and the audit log in SQLite (`web_user`,
//! `web_session`, `audit_log`: mgmt migration 5).

use super::{read, write};
use crate::services::RepoFuture;
use crate::services::users::audit::{Entry, NewEntry};
use crate::services::users::auth::{Role, User};
use crate::services::users::repo::{AuditRepo, NewSession, UserRepo, UserRow};
use crossline_store::SqliteStore;
use rusqlite::{OptionalExtension, params};

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

const USER_COLS: &str = "u.id, u.login, u.name, u.role, u.agent_id, u.sites, u.teams, u.locale, u.time_zone, u.disabled";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        login: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Agent),
        agent_id: r.get(4)?,
        sites: split_list(&r.get::<_, String>(5)?),
        teams: split_list(&r.get::<_, String>(6)?),
        locale: r.get(7)?,
        time_zone: r.get(8)?,
        disabled: r.get(9)?,
    })
}

impl UserRepo for SqliteStore {
    fn known_logins(&self, logins: Vec<String>) -> RepoFuture<Vec<String>> {
        read(self, move |conn| {
            let mut st = conn.prepare_cached("SELECT login FROM web_user WHERE login = ?1")?;
            let mut out = Vec::new();
            for l in logins {
                if let Some(found) = st.query_row(params![l], |r| r.get(0)).optional()? {
                    out.push(found);
                }
            }
            Ok(out)
        })
    }

    fn insert_user(&self, u: UserRow) -> RepoFuture<i64> {
        write(self, move |tx| {
            tx.execute(
                "INSERT INTO web_user (login, name, role, password_hash, agent_id, sites, teams,
                     locale, time_zone, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    u.login,
                    u.name,
                    u.role.as_str(),
                    u.password_hash,
                    u.agent_id,
                    u.sites.join(","),
                    u.teams.join(","),
                    u.locale,
                    u.time_zone,
                    u.created_ms
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn users(&self) -> RepoFuture<Vec<User>> {
        read(self, |conn| {
            let mut st = conn.prepare(&format!(
                "SELECT {USER_COLS} FROM web_user u ORDER BY u.login"
            ))?;
            st.query_map([], user_row)?.collect()
        })
    }

    fn user_by_login(&self, login: String) -> RepoFuture<Option<(User, String)>> {
        read(self, move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLS}, u.password_hash FROM web_user u WHERE u.login = ?1"),
                params![login],
                |r| Ok((user_row(r)?, r.get(10)?)),
            )
            .optional()
        })
    }

    fn set_password(&self, login: String, password_hash: String) -> RepoFuture<bool> {
        write(self, move |tx| {
            let n = tx.execute(
                "UPDATE web_user SET password_hash = ?2 WHERE login = ?1",
                params![login, password_hash],
            )?;
            tx.execute(
                "DELETE FROM web_session WHERE user_id IN (SELECT id FROM web_user WHERE login = ?1)",
                params![login],
            )?;
            Ok(n > 0)
        })
    }

    fn set_locale(&self, user: i64, locale: Option<String>) -> RepoFuture<()> {
        write(self, move |tx| {
            tx.execute(
                "UPDATE web_user SET locale = ?2 WHERE id = ?1",
                params![user, locale],
            )
            .map(|_| ())
        })
    }

    fn create_session(&self, s: NewSession) -> RepoFuture<()> {
        write(self, move |tx| {
            tx.execute(
                "DELETE FROM web_session WHERE expires_ms < ?1",
                params![s.created_ms],
            )?;
            tx.execute(
                "INSERT INTO web_session (token_hash, user_id, created_ms, expires_ms, user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    s.token_hash,
                    s.user,
                    s.created_ms,
                    s.expires_ms,
                    s.user_agent
                ],
            )
            .map(|_| ())
        })
    }

    fn session_user(&self, token_hash: String, now_ms: i64) -> RepoFuture<Option<User>> {
        read(self, move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM web_session s JOIN web_user u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_ms > ?2 AND u.disabled = 0"
            ))?
            .query_row(params![token_hash, now_ms], user_row)
            .optional()
        })
    }

    fn end_session(&self, token_hash: String) -> RepoFuture<()> {
        write(self, move |tx| {
            tx.execute(
                "DELETE FROM web_session WHERE token_hash = ?1",
                params![token_hash],
            )
            .map(|_| ())
        })
    }

    fn end_all_sessions(&self, user: i64) -> RepoFuture<usize> {
        write(self, move |tx| {
            tx.execute("DELETE FROM web_session WHERE user_id = ?1", params![user])
        })
    }
}

impl AuditRepo for SqliteStore {
    fn append(&self, e: NewEntry) -> RepoFuture<()> {
        write(self, move |tx| {
            tx.execute(
                "INSERT INTO audit_log (at_ms, actor, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.at_ms, e.actor, e.action, e.target, e.detail],
            )
            .map(|_| ())
        })
    }

    fn recent_entries(
        &self,
        before: Option<i64>,
        actor: Option<String>,
        limit: usize,
    ) -> RepoFuture<Vec<Entry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        read(self, move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT id, at_ms, actor, action, target, detail FROM audit_log
                 WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR actor = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )?;
            st.query_map(params![before, actor, limit], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::services::users::auth::{self, NewUser, Role};
    use crate::services::users::{audit, repo::UserRepo};
    use crossline_store::SqliteStore;

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        crate::storage::sqlite::test_store(dir)
    }

    fn ana() -> NewUser {
        NewUser {
            login: " Ana ".into(),
            name: "Ana".into(),
            role: Role::Supervisor,
            agent_id: None,
            sites: vec!["kyiv".into(), "lviv".into()],
            teams: vec![],
            locale: Some("uk".into()),
            time_zone: None,
        }
    }

    #[tokio::test]
    async fn accounts_and_sessions_round_trip_through_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let id = auth::insert_user(&store, &ana(), "$argon2id$one")
            .await
            .unwrap();
        // The same login in another case is taken.
        assert!(
            auth::insert_user(
                &store,
                &NewUser {
                    login: "ANA".into(),
                    ..ana()
                },
                "$h"
            )
            .await
            .is_err()
        );
        let (u, hash) = auth::user_by_login(&store, "ANA ").await.unwrap().unwrap();
        assert_eq!(
            (u.id, u.login.as_str(), hash.as_str()),
            (id, "ana", "$argon2id$one")
        );
        assert_eq!((u.agent_id.as_str(), u.time_zone.as_str()), ("ana", "UTC"));
        assert_eq!(u.sites, ["kyiv", "lviv"]);
        assert_eq!(u.role, Role::Supervisor);

        let token = auth::create_session(&store, id, Some("test".into()))
            .await
            .unwrap();
        let h = auth::token_hash(&token);
        assert_eq!(
            auth::session_user(&store, &h).await.unwrap().map(|u| u.id),
            Some(id)
        );
        // A session past its end is not anyone's.
        assert!(
            store
                .session_user(h.clone(), i64::MAX)
                .await
                .unwrap()
                .is_none()
        );

        auth::set_locale(&store, id, None).await.unwrap();
        assert_eq!(auth::list_users(&store).await.unwrap()[0].locale, None);
        // A new password ends every session.
        assert!(
            auth::set_password(&store, "ana", "$argon2id$two")
                .await
                .unwrap()
        );
        assert!(auth::session_user(&store, &h).await.unwrap().is_none());
        assert!(!auth::set_password(&store, "nobody", "$h").await.unwrap());
        let t2 = auth::create_session(&store, id, None).await.unwrap();
        auth::create_session(&store, id, None).await.unwrap();
        assert_eq!(auth::end_all_sessions(&store, id).await.unwrap(), 2);
        let h2 = auth::token_hash(&t2);
        assert!(auth::session_user(&store, &h2).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_audit_log_pages_newest_first_and_filters_by_actor() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        for i in 0..5 {
            let who = if i % 2 == 0 { "ana" } else { "ivan" };
            audit::record(&store, who, "login", who, &"x".repeat(3000)).await;
        }
        let all = audit::recent(&store, None, None, 3).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id));
        assert_eq!(all[0].detail.chars().count(), 2000);
        let older = audit::recent(&store, Some(all[2].id), None, 10)
            .await
            .unwrap();
        assert_eq!(older.len(), 2);
        let ana = audit::recent(&store, None, Some("ana"), 10).await.unwrap();
        assert_eq!(ana.len(), 3);
        assert!(ana.iter().all(|e| e.actor == "ana"));
    }
}
