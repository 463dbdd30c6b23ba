//! Routing's own tables in SQLite: `routing_config` (a projection of
//! `routing_configured` events, mgmt migration 3) and its logged decisions
//! (`routing_decision` events in the log).

use super::read;
use crate::services::RepoFuture;
use crate::services::routing::repo::{DecisionRow, RoutingRepo, StoredConfig};
use crossline_core::ConversationId;
use crossline_store::SqliteStore;
use rusqlite::{OptionalExtension, params};

impl RoutingRepo for SqliteStore {
    fn latest_config(&self) -> RepoFuture<Option<StoredConfig>> {
        read(self, |conn| {
            conn.query_row(
                "SELECT version, config, replay_from_seq, created_ms FROM routing_config
                 ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    Ok(StoredConfig {
                        version: r.get(0)?,
                        config: r.get(1)?,
                        replay_from_seq: r.get(2)?,
                        created_ms: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    fn decision_rows(
        &self,
        origin: String,
        after: u64,
        conversation: Option<ConversationId>,
        limit: usize,
    ) -> RepoFuture<Vec<DecisionRow>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        read(self, move |conn| {
            let conv = conversation.map(|c| c.0.as_bytes().to_vec());
            let mut st = conn.prepare_cached(
                "SELECT seq, id, body FROM event
                 WHERE origin = ?1 AND kind = 'routing_decision' AND seq > ?2
                   AND (?3 IS NULL OR conversation = ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = st.query_map(params![origin, after, conv, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect()
        })
    }

    fn decision_bodies_since(&self, from_ms: u64) -> RepoFuture<Vec<String>> {
        let from_ms = i64::try_from(from_ms).unwrap_or(i64::MAX);
        read(self, move |conn| {
            let mut q = conn.prepare_cached(
                "SELECT body FROM event WHERE at_ms >= ?1 AND kind = 'routing_decision'
                 ORDER BY at_ms, at_c",
            )?;
            q.query_map(params![from_ms], |r| r.get(0))?.collect()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_newest_config_and_decisions_in_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::sqlite::test_store(&dir);
        let repo: &dyn RoutingRepo = &store;
        assert_eq!(repo.latest_config().await.unwrap(), None);
        let conv = ConversationId::new();
        let other = ConversationId::new();
        let c = conv.0.as_bytes().to_vec();
        let o = other.0.as_bytes().to_vec();
        store
            .write(move |tx| {
                for (json, from) in [("{\"a\":1}", 1), ("{\"a\":2}", 7)] {
                    tx.execute(
                        "INSERT INTO routing_config (config, replay_from_seq, created_ms)
                         VALUES (?1, ?2, 5)",
                        params![json, from],
                    )?;
                }
                for seq in 1..=4i64 {
                    let (kind, conv) = match seq {
                        2 => ("note_added", &c),
                        3 => ("routing_decision", &o),
                        _ => ("routing_decision", &c),
                    };
                    tx.execute(
                        "INSERT INTO event (origin, seq, id, at_ms, at_c, conversation, kind, body)
                         VALUES ('mgmt', ?1, randomblob(16), ?1, 0, ?2, ?3, ?4)",
                        params![seq, conv, kind, format!("{{\"seq\":{seq}}}")],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let cfg = repo.latest_config().await.unwrap().unwrap();
        assert_eq!(
            (cfg.version, cfg.config.as_str(), cfg.replay_from_seq),
            (2, "{\"a\":2}", 7)
        );
        let seqs = |rows: Vec<DecisionRow>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
        let all = repo
            .decision_rows("mgmt".into(), 0, None, 10)
            .await
            .unwrap();
        assert_eq!(seqs(all), [1, 3, 4]);
        let of_conv = repo
            .decision_rows("mgmt".into(), 1, Some(conv), 10)
            .await
            .unwrap();
        assert_eq!(seqs(of_conv), [4]);
        let first = repo.decision_rows("mgmt".into(), 0, None, 1).await.unwrap();
        assert_eq!(seqs(first), [1]);
        assert!(
            repo.decision_rows("other".into(), 0, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // By log time, every origin, decisions only (seq 2 is a note).
        assert_eq!(
            repo.decision_bodies_since(2).await.unwrap(),
            ["{\"seq\":3}", "{\"seq\":4}"]
        );
    }
}
