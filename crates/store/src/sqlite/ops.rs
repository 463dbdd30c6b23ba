//! What the writer does inside its transaction for each kind of request.

use super::writer::Ctx;
use crate::{Amendment, IngestOutcome, NewEvent, Result, StoreError};
use crossline_core::{Change, ChangeSet, Event, EventId, Hlc, NodeId};
use rusqlite::{OptionalExtension, Transaction, params};

/// A u64 from the API as an SQLite integer, or a clear error.
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        StoreError::Invalid(format!(
            "{what} {v} does not fit the database (largest allowed {})",
            i64::MAX
        ))
    })
}

/// Highest contiguous seq stored for `origin` (0 if none).
pub(crate) fn contiguous(conn: &rusqlite::Connection, origin: &NodeId) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT contiguous FROM replica WHERE origin = ?1")?
        .query_row([origin.as_str()], |r| r.get(0))
        .optional()?;
    Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
}

fn set_contiguous(tx: &Transaction<'_>, origin: &NodeId, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO replica (origin, contiguous) VALUES (?1, ?2)
         ON CONFLICT (origin) DO UPDATE SET contiguous = excluded.contiguous",
    )?
    .execute(params![origin.as_str(), seq])?;
    Ok(())
}

const INSERT_EVENT: &str =
    "INSERT INTO event (origin, seq, id, at_ms, at_c, conversation, kind, body, claimed_ms, claimed_c)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Inserts one event with `st` (a prepared [`INSERT_EVENT`], kept across a
/// batch so it is looked up once, not once per event). `claimed`: the
/// origin's own stamp when `ev.at` replaced it (clock skew). Returns the
/// event's local position (`pos`, the rowid: max + 1).
fn insert_event(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    st: &mut rusqlite::Statement<'_>,
    ev: &Event,
    claimed: Option<Hlc>,
) -> Result<i64> {
    let seq = to_i64(ev.seq, "seq")?;
    let at_ms = to_i64(ev.at.ms, "HLC milliseconds")?;
    let body = serde_json::to_string(&ev.body).map_err(|e| {
        StoreError::Invalid(format!(
            "event {}/{}: body cannot be encoded as JSON: {e}",
            ev.origin, ev.seq
        ))
    })?;
    let conversation = ev.conversation.map(|c| c.0.into_bytes());
    st.execute(params![
        ev.origin.as_str(),
        seq,
        &ev.id.0.as_bytes()[..],
        at_ms,
        ev.at.c,
        conversation.as_ref().map(|b| &b[..]),
        ev.body.kind(),
        body,
        // A claimed stamp beyond 63 bits is kept as the largest that fits.
        claimed.map(|h| i64::try_from(h.ms).unwrap_or(i64::MAX)),
        claimed.map(|h| h.c),
    ])
    .map_err(|e| ctx.sql(e))?;
    Ok(tx.last_insert_rowid())
}

/// Runs the projector (if any) once on the events a request stored (at
/// positions `pos`, one per event) and keeps what it decided with them.
fn project(ctx: &Ctx, tx: &Transaction<'_>, stored: &[Event], pos: &[i64]) -> Result<()> {
    let Some(project) = &ctx.projector else {
        return Ok(());
    };
    if stored.is_empty() {
        return Ok(());
    }
    let mut changes = ChangeSet::new();
    project(tx, stored, &mut changes).map_err(|e| ctx.sql(e))?;
    if changes.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(i64, Change)> = Vec::with_capacity(changes.len());
    for (i, c) in changes.into_inner() {
        let Some(&p) = pos.get(i) else {
            return Err(StoreError::Invalid(format!(
                "database {}: the projector reported a change for event #{i} of a batch of {}",
                ctx.path,
                stored.len()
            )));
        };
        rows.push((p, c));
    }
    let first = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let last = rows.iter().map(|r| r.0).max().unwrap_or(0);
    let json = serde_json::to_string(&rows).map_err(|e| {
        StoreError::Invalid(format!(
            "database {}: a change set cannot be encoded as JSON: {e}",
            ctx.path
        ))
    })?;
    tx.prepare_cached("INSERT INTO change_set (last_pos, first_pos, changes) VALUES (?1, ?2, ?3)")
        .and_then(|mut st| st.execute(params![last, first, json]))
        .map_err(|e| ctx.sql(e))?;
    Ok(())
}

/// Events projected per call of the projector during a rebuild.
const REBUILD_BATCH: usize = 4096;

/// Empties the projections (`clear`) and runs the projector over every
/// stored event again, in the order this node stored them, in batches.
/// Returns how many events were projected.
pub(crate) fn rebuild(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    clear: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<()>,
) -> Result<u64> {
    let Some(project) = &ctx.projector else {
        return Err(StoreError::Invalid(format!(
            "database {}: no projector is installed, so there is nothing to rebuild \
             (open the store with StoreOptions::projector)",
            ctx.path
        )));
    };
    clear(tx).map_err(|e| ctx.sql(e))?;
    let mut after = 0;
    let mut n = 0u64;
    loop {
        let (events, last) = super::read::stored_after(tx, &ctx.path, after, REBUILD_BATCH)?;
        if events.is_empty() {
            return Ok(n);
        }
        // The change sets stay as first recorded: the log's consumers have
        // dealt with these events already (and a rebuild decides the same).
        project(tx, &events, &mut ChangeSet::new()).map_err(|e| ctx.sql(e))?;
        n += events.len() as u64;
        after = last;
    }
}

/// Sequences, stamps and stores local events.
pub(crate) fn append(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    new: Vec<NewEvent>,
) -> Result<Vec<Event>> {
    let last = contiguous(tx, &ctx.local).map_err(|e| ctx.sql(e))?;
    let mut out = Vec::with_capacity(new.len());
    let mut pos = Vec::with_capacity(new.len());
    let mut seq = last;
    let mut st = tx.prepare_cached(INSERT_EVENT).map_err(|e| ctx.sql(e))?;
    for ne in new {
        seq += 1;
        let ev = Event {
            id: EventId::new(),
            origin: ctx.local.clone(),
            seq,
            at: ctx.clock.now(),
            conversation: ne.conversation,
            body: ne.body,
        };
        pos.push(insert_event(ctx, tx, &mut st, &ev, None)?);
        out.push(ev);
    }
    drop(st);
    project(ctx, tx, &out, &pos)?;
    if seq != last {
        set_contiguous(tx, &ctx.local, to_i64(seq, "seq")?).map_err(|e| ctx.sql(e))?;
    }
    Ok(out)
}

/// Stores replicated events of `origin` (already validated: all of that
/// origin, seq >= 1, not the local node).
pub(crate) fn ingest(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    origin: &NodeId,
    mut events: Vec<Event>,
) -> Result<IngestOutcome> {
    events.sort_by_key(|e| e.seq);
    let mut c = contiguous(tx, origin).map_err(|e| ctx.sql(e))?;
    let start = c;
    let mut out = IngestOutcome::default();
    let mut newest: Option<Hlc> = None;
    let mut st = tx.prepare_cached(INSERT_EVENT).map_err(|e| ctx.sql(e))?;
    let mut stored = Vec::with_capacity(events.len());
    let mut pos = Vec::with_capacity(events.len());
    // Stamps up to here are believable; beyond, the origin's clock is wrong.
    let bound = ctx
        .wall
        .now_ms()
        .saturating_add(ctx.max_skew_ms)
        .min(i64::MAX as u64);
    for ev in events {
        if ev.seq <= c {
            check_same_event(ctx, tx, &ev)?;
            out.duplicates += 1;
            continue;
        }
        if ev.seq > c + 1 {
            out.missing_from = Some(c + 1);
            break;
        }
        let (ev, claimed) = admit(ctx, tx, ev, bound, &mut out.amended)?;
        pos.push(insert_event(ctx, tx, &mut st, &ev, claimed)?);
        c = ev.seq;
        if claimed.is_none() {
            newest = newest.max(Some(ev.at));
        }
        stored.push(ev);
    }
    drop(st);
    out.stored = stored.len();
    project(ctx, tx, &stored, &pos)?;
    if c != start {
        set_contiguous(tx, origin, to_i64(c, "seq")?).map_err(|e| ctx.sql(e))?;
    }
    // Causality: whatever this node stamps from now on comes after what it
    // has received.
    if let Some(at) = newest {
        ctx.clock.observe(at);
    }
    out.contiguous = c;
    Ok(out)
}

/// What a new replicated event is stored as: restamped with this node's
/// time when its stamp is beyond `bound` (returning the origin's stamp),
/// and turned into a refusal when the gate refuses it. Each change is
/// recorded in `amended`.
fn admit(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    mut ev: Event,
    bound: u64,
    amended: &mut Vec<Amendment>,
) -> Result<(Event, Option<Hlc>)> {
    let mut claimed = None;
    if ev.at.ms > bound {
        claimed = Some(ev.at);
        let stored = ctx.clock.now();
        amended.push(Amendment::Restamped {
            seq: ev.seq,
            claimed: ev.at,
            stored,
        });
        ev.at = stored;
    }
    if let Some(gate) = &ctx.gate
        && let Err(reason) = gate(tx, &ev).map_err(|e| ctx.sql(e))?
    {
        let refused = Amendment::Refused {
            seq: ev.seq,
            kind: ev.body.kind(),
            reason,
        };
        refused.apply(&mut ev);
        amended.push(refused);
    }
    Ok((ev, claimed))
}

/// A resent event must be the one already stored under its (origin, seq);
/// anything else means the origin's log diverged from ours.
fn check_same_event(ctx: &Ctx, tx: &Transaction<'_>, ev: &Event) -> Result<()> {
    let seq = to_i64(ev.seq, "seq")?;
    let stored: Option<Vec<u8>> = tx
        .prepare_cached("SELECT id FROM event WHERE origin = ?1 AND seq = ?2")
        .and_then(|mut st| {
            st.query_row(params![ev.origin.as_str(), seq], |r| r.get(0))
                .optional()
        })
        .map_err(|e| ctx.sql(e))?;
    match stored {
        Some(id) if id[..] == ev.id.0.as_bytes()[..] => Ok(()),
        Some(id) => Err(StoreError::Invalid(format!(
            "ingest from {origin}: seq {seq} arrived with id {new} but this database stored id {old} \
             under that seq; the origin's log has diverged from ours (was its database reset or \
             restored from an old backup?). The batch was refused; resolve the origin's state first",
            origin = ev.origin,
            seq = ev.seq,
            new = ev.id,
            old = uuid::Uuid::from_slice(&id)
                .map_or_else(|_| "<unreadable>".into(), |u| u.to_string()),
        ))),
        // Below contiguous but absent: a stored hole, which the invariants rule
        // out; report rather than paper over it.
        None => Err(StoreError::Corrupt {
            path: ctx.path.clone(),
            origin: ev.origin.to_string(),
            seq: ev.seq,
            detail: "event is missing although the replica table says it is stored".into(),
        }),
    }
}

/// Moves `consumer`'s cursor to `pos` (never back; at most the head).
pub(crate) fn set_cursor(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    consumer: &str,
    pos: u64,
) -> Result<()> {
    let head = super::writer::read_head(tx).map_err(|e| ctx.sql(e))?;
    if pos > head {
        return Err(StoreError::Invalid(format!(
            "database {}: consumer {consumer:?} would move its cursor to position {pos}, beyond \
             the newest stored event ({head}); the cursor was not moved",
            ctx.path
        )));
    }
    let pos = to_i64(pos, "position")?;
    tx.prepare_cached(
        "INSERT INTO feed_cursor (consumer, pos) VALUES (?1, ?2)
         ON CONFLICT (consumer) DO UPDATE SET pos = max(pos, excluded.pos)",
    )
    .and_then(|mut st| st.execute(params![consumer, pos]).map(|_| ()))
    .map_err(|e| ctx.sql(e))
}

/// Moves `peer`'s acknowledgement forward (never back).
pub(crate) fn set_acked(ctx: &mut Ctx, tx: &Transaction<'_>, peer: &str, seq: u64) -> Result<()> {
    let local = contiguous(tx, &ctx.local).map_err(|e| ctx.sql(e))?;
    if seq > local {
        return Err(StoreError::Invalid(format!(
            "peer {peer:?} acknowledged seq {seq} of {node}, but this node's log ends at {local}: \
             the peer holds events this database does not (was the database reset or restored from \
             an old backup?). The acknowledgement was not recorded",
            node = ctx.local
        )));
    }
    let seq = to_i64(seq, "seq")?;
    tx.prepare_cached(
        "INSERT INTO outbox_cursor (peer, acked) VALUES (?1, ?2)
         ON CONFLICT (peer) DO UPDATE SET acked = max(acked, excluded.acked)",
    )
    .and_then(|mut st| st.execute(params![peer, seq]).map(|_| ()))
    .map_err(|e| ctx.sql(e))
}

/// Deletes acknowledged local events: those `peer` acknowledged, except
/// the newest local event (the clock resumes from the log), that are older
/// than `before_ms` or fall outside the newest `keep_bytes` of the local
/// log. Returns how many were deleted.
pub(crate) fn prune_acked(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    peer: &str,
    before_ms: u64,
    keep_bytes: u64,
) -> Result<u64> {
    let local = ctx.local.clone();
    let head = contiguous(tx, &local).map_err(|e| ctx.sql(e))?;
    let acked: i64 = tx
        .prepare_cached("SELECT coalesce((SELECT acked FROM outbox_cursor WHERE peer = ?1), 0)")
        .and_then(|mut st| st.query_row([peer], |r| r.get(0)))
        .map_err(|e| ctx.sql(e))?;
    let limit = acked.min(to_i64(head, "seq")? - 1);
    if limit < 1 {
        return Ok(0);
    }
    let before = to_i64(before_ms, "time")?;
    let keep = to_i64(keep_bytes, "size")?;
    // Highest seq to delete: old enough, or beyond the newest `keep` bytes.
    let upto: Option<i64> = tx
        .prepare_cached(
            "SELECT max(seq) FROM (
                 SELECT seq, at_ms,
                     sum(length(body) + 64) OVER (ORDER BY seq DESC) AS newer
                 FROM event WHERE origin = ?1)
             WHERE seq <= ?2 AND (at_ms < ?3 OR newer > ?4)",
        )
        .and_then(|mut st| st.query_row(params![local.as_str(), limit, before, keep], |r| r.get(0)))
        .map_err(|e| ctx.sql(e))?;
    let Some(upto) = upto else { return Ok(0) };
    let run = || -> rusqlite::Result<usize> {
        tx.prepare_cached(
            "INSERT INTO event_prune (origin, upto) VALUES (?1, ?2)
             ON CONFLICT (origin) DO UPDATE SET upto = excluded.upto",
        )?
        .execute(params![local.as_str(), upto])?;
        let n = tx
            .prepare_cached("DELETE FROM event WHERE origin = ?1 AND seq <= ?2")?
            .execute(params![local.as_str(), upto])?;
        tx.prepare_cached("DELETE FROM event_prune WHERE origin = ?1")?
            .execute([local.as_str()])?;
        Ok(n)
    };
    run().map(|n| n as u64).map_err(|e| ctx.sql(e))
}

pub(crate) fn put_device(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    id: &NodeId,
    secret_hash: &str,
) -> Result<()> {
    let now = to_i64(ctx.wall.now_ms(), "time")?;
    tx.prepare_cached(
        "INSERT INTO device (id, secret_hash, revoked, online, last_seen_ms, created_ms)
         VALUES (?1, ?2, 0, 0, NULL, ?3)
         ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, revoked = 0",
    )
    .and_then(|mut st| st.execute(params![id.as_str(), secret_hash, now]))
    .map_err(|e| ctx.sql(e))?;
    Ok(())
}

pub(crate) fn revoke_device(ctx: &mut Ctx, tx: &Transaction<'_>, id: &NodeId) -> Result<bool> {
    let n = tx
        .prepare_cached("UPDATE device SET revoked = 1 WHERE id = ?1")
        .and_then(|mut st| st.execute([id.as_str()]))
        .map_err(|e| ctx.sql(e))?;
    Ok(n > 0)
}

/// Presence reports may arrive out of order: one older than the last seen
/// time does not change `online`, and `last_seen_ms` never moves back.
pub(crate) fn set_presence(
    ctx: &mut Ctx,
    tx: &Transaction<'_>,
    id: &NodeId,
    online: bool,
    at_ms: u64,
) -> Result<()> {
    let at = to_i64(at_ms, "time")?;
    tx.prepare_cached(
        "UPDATE device SET
             online = CASE WHEN ?2 >= coalesce(last_seen_ms, 0) THEN ?3 ELSE online END,
             last_seen_ms = max(coalesce(last_seen_ms, 0), ?2)
         WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![id.as_str(), at, online]))
    .map_err(|e| ctx.sql(e))?;
    Ok(())
}
