//! The routing configuration as a projection: each installed
//! configuration is an event (`routing_configured`, see
//! [`super::Service`]'s `set_config`); [`project`] writes its
//! `routing_config` row (the next version; replay from the event's own seq
//! when routing starts afresh) in the event's transaction, so a rebuild
//! from the log gives the same rows ([`crate::rebuild`]).

use crossline_core::{Event, EventBody};
use rusqlite::{Transaction, params};

/// Projects a `routing_configured` event (any other event: nothing).
pub fn project(tx: &Transaction<'_>, ev: &Event) -> rusqlite::Result<()> {
    let EventBody::RoutingConfigured {
        config,
        reset,
        replay_from_seq,
        ..
    } = &ev.body
    else {
        return Ok(());
    };
    let json = serde_json::to_string(config)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let own_seq = i64::try_from(ev.seq).unwrap_or(i64::MAX);
    let from = match replay_from_seq {
        Some(f) => Some(i64::try_from(*f).unwrap_or(i64::MAX)),
        None if *reset => Some(own_seq),
        None => None,
    };
    tx.prepare_cached(
        "INSERT INTO routing_config (config, replay_from_seq, created_ms)
         VALUES (?1, coalesce(?2, (SELECT replay_from_seq FROM routing_config
             ORDER BY version DESC LIMIT 1), 1), ?3)",
    )?
    .execute(params![
        json,
        from,
        i64::try_from(ev.at.ms).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}
