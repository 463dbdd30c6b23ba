//! Read-only connections and the decoding of stored rows.

use super::ops::to_i64;
use crate::{DeviceRecord, FeedEntry, Result, StoreError};
use crossline_core::{Change, ConversationId, Event, EventBody, EventId, Hlc, NodeId};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Default wait on a lock held by another connection before failing with
/// SQLITE_BUSY (the writer's checkpoints, another process).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a read-only connection on an existing WAL database.
pub(crate) fn open_reader(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_prepared_statement_cache_capacity(super::STATEMENT_CACHE);
    Ok(conn)
}

/// A fixed set of read-only connections. A caller takes one, runs its
/// queries and gives it back; when all are taken it waits for one.
pub(crate) struct ReadPool {
    conns: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl ReadPool {
    pub fn new(conns: Vec<Connection>) -> Self {
        Self {
            conns: Mutex::new(conns),
            returned: Condvar::new(),
        }
    }

    /// Runs `f` on a pooled connection (blocking: call from a blocking
    /// context or for a query known to be quick).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let conn = {
            let mut free = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(c) = free.pop() {
                    break c;
                }
                free = self
                    .returned
                    .wait(free)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Give the connection back even if `f` panics, then let the panic go on.
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&conn)));
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        self.returned.notify_one();
        match r {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

/// Decodes a row of `origin, seq, id, at_ms, at_c, conversation, body`. Anything unreadable is
/// [`StoreError::Corrupt`], naming the row.
pub(crate) fn decode_event(row: &Row<'_>, path: &str) -> Result<Event> {
    let raw_origin = match row.get_ref(0) {
        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("<{e}>"),
    };
    let raw_seq = match row.get_ref(1) {
        Ok(ValueRef::Integer(i)) => Some(i),
        _ => None,
    };
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_string(),
        origin: raw_origin.clone(),
        seq: raw_seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        detail,
    };
    let origin = NodeId::new(raw_origin.clone()).map_err(|e| corrupt(format!("origin: {e}")))?;
    let seq = raw_seq
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s >= 1)
        .ok_or_else(|| corrupt("seq is not a positive integer".into()))?;
    let id = uuid_at(row, 2)
        .map_err(|d| corrupt(format!("id: {d}")))?
        .ok_or_else(|| corrupt("id is NULL".into()))?;
    let ms = uint_at(row, 3).map_err(|d| corrupt(format!("at_ms: {d}")))?;
    let c = uint_at(row, 4)
        .and_then(|c| u32::try_from(c).map_err(|_| format!("{c} exceeds u32")))
        .map_err(|d| corrupt(format!("at_c: {d}")))?;
    let conversation = uuid_at(row, 5).map_err(|d| corrupt(format!("conversation: {d}")))?;
    let body: EventBody = match row.get_ref(6) {
        Ok(ValueRef::Text(t)) => {
            serde_json::from_slice(t).map_err(|e| corrupt(format!("body: {e}")))?
        }
        Ok(other) => {
            return Err(corrupt(format!(
                "body is {:?}, not JSON text",
                other.data_type()
            )));
        }
        Err(e) => return Err(corrupt(format!("body: {e}"))),
    };
    Ok(Event {
        id: EventId(id),
        origin,
        seq,
        at: Hlc { ms, c },
        conversation: conversation.map(ConversationId),
        body,
    })
}

fn uuid_at(row: &Row<'_>, i: usize) -> std::result::Result<Option<uuid::Uuid>, String> {
    match row.get_ref(i) {
        Ok(ValueRef::Null) => Ok(None),
        Ok(ValueRef::Blob(b)) => uuid::Uuid::from_slice(b)
            .map(Some)
            .map_err(|_| format!("{} bytes, expected 16", b.len())),
        Ok(other) => Err(format!("{:?}, expected a 16-byte blob", other.data_type())),
        Err(e) => Err(e.to_string()),
    }
}

fn uint_at(row: &Row<'_>, i: usize) -> std::result::Result<u64, String> {
    match row.get_ref(i) {
        Ok(ValueRef::Integer(v)) => u64::try_from(v).map_err(|_| format!("{v} is negative")),
        Ok(other) => Err(format!("{:?}, expected an integer", other.data_type())),
        Err(e) => Err(e.to_string()),
    }
}

fn sql(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    }
}

/// Runs an event query and decodes every row.
fn query_events(
    conn: &Connection,
    path: &str,
    q: &str,
    args: impl rusqlite::Params,
    cap: usize,
) -> Result<Vec<Event>> {
    let mut st = conn.prepare_cached(q).map_err(sql(path))?;
    let mut rows = st.query(args).map_err(sql(path))?;
    let mut out = Vec::with_capacity(cap.min(1024));
    while let Some(row) = rows.next().map_err(sql(path))? {
        out.push(decode_event(row, path)?);
    }
    Ok(out)
}

/// Up to `limit` events stored after local position `after` (SQLite's
/// rowid: the order this node stored them in), with the position of the
/// last one.
pub(crate) fn stored_after(
    conn: &Connection,
    path: &str,
    after: i64,
    limit: usize,
) -> Result<(Vec<Event>, i64)> {
    let mut st = conn
        .prepare_cached(
            "SELECT origin, seq, id, at_ms, at_c, conversation, body, rowid FROM event
             WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )
        .map_err(sql(path))?;
    let mut rows = st
        .query(params![after, limit_i64(limit)])
        .map_err(sql(path))?;
    let mut out = Vec::with_capacity(limit.min(4096));
    let mut last = after;
    while let Some(row) = rows.next().map_err(sql(path))? {
        out.push(decode_event(row, path)?);
        last = row.get(7).map_err(sql(path))?;
    }
    Ok((out, last))
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn read_from(
    conn: &Connection,
    path: &str,
    origin: &NodeId,
    from: u64,
    limit: usize,
) -> Result<Vec<Event>> {
    let from = to_i64(from, "seq").unwrap_or(i64::MAX);
    query_events(
        conn,
        path,
        "SELECT origin, seq, id, at_ms, at_c, conversation, body FROM event
         WHERE origin = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
        params![origin.as_str(), from, limit_i64(limit)],
        limit,
    )
}

pub(crate) fn recent(
    conn: &Connection,
    path: &str,
    origin: Option<&NodeId>,
    limit: usize,
) -> Result<Vec<Event>> {
    match origin {
        Some(o) => query_events(
            conn,
            path,
            "SELECT origin, seq, id, at_ms, at_c, conversation, body FROM event
             WHERE origin = ?1 ORDER BY seq DESC LIMIT ?2",
            params![o.as_str(), limit_i64(limit)],
            limit,
        ),
        None => query_events(
            conn,
            path,
            "SELECT origin, seq, id, at_ms, at_c, conversation, body FROM event
             ORDER BY at_ms DESC, at_c DESC, origin DESC, seq DESC LIMIT ?1",
            params![limit_i64(limit)],
            limit,
        ),
    }
}

pub(crate) fn counts(conn: &Connection, path: &str) -> Result<Vec<(NodeId, u64)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT origin, contiguous FROM replica WHERE contiguous > 0 ORDER BY origin",
        )
        .map_err(sql(path))?;
    let mut rows = st.query([]).map_err(sql(path))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql(path))? {
        let origin: String = row.get(0).map_err(sql(path))?;
        let n: i64 = row.get(1).map_err(sql(path))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_string(),
            origin: origin.clone(),
            seq: 0,
            detail,
        };
        let id =
            NodeId::new(origin.clone()).map_err(|e| corrupt(format!("replica origin: {e}")))?;
        let n =
            u64::try_from(n).map_err(|_| corrupt(format!("replica contiguous {n} is negative")))?;
        out.push((id, n));
    }
    Ok(out)
}

pub(crate) fn acked(conn: &Connection, path: &str, peer: &str) -> Result<u64> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT acked FROM outbox_cursor WHERE peer = ?1")
        .and_then(|mut st| st.query_row([peer], |r| r.get(0)).optional())
        .map_err(sql(path))?;
    Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
}

/// The highest stamp stored in the log, over every origin.
pub(crate) fn max_hlc(conn: &Connection, path: &str) -> Result<Hlc> {
    let v: Option<(i64, i64)> = conn
        .query_row(
            "SELECT at_ms, at_c FROM event ORDER BY at_ms DESC, at_c DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql(path))?;
    Ok(v.map_or(Hlc::ZERO, |(ms, c)| Hlc {
        ms: u64::try_from(ms).unwrap_or(0),
        c: u32::try_from(c).unwrap_or(u32::MAX),
    }))
}

const DEVICE_COLUMNS: &str = "id, secret_hash, revoked, online, last_seen_ms, created_ms";

fn decode_device(row: &Row<'_>, path: &str) -> Result<DeviceRecord> {
    let id: String = row.get(0).map_err(sql(path))?;
    let bad =
        |detail: String| StoreError::Invalid(format!("database {path}: device {id:?}: {detail}"));
    let node = NodeId::new(id.clone()).map_err(|e| bad(e.to_string()))?;
    let last_seen: Option<i64> = row.get(4).map_err(sql(path))?;
    let created: i64 = row.get(5).map_err(sql(path))?;
    Ok(DeviceRecord {
        id: node,
        secret_hash: row.get(1).map_err(sql(path))?,
        revoked: row.get(2).map_err(sql(path))?,
        online: row.get(3).map_err(sql(path))?,
        last_seen_ms: last_seen.map(|v| u64::try_from(v).unwrap_or(0)),
        created_ms: u64::try_from(created).unwrap_or(0),
    })
}

pub(crate) fn device(conn: &Connection, path: &str, id: &NodeId) -> Result<Option<DeviceRecord>> {
    let q = format!("SELECT {DEVICE_COLUMNS} FROM device WHERE id = ?1");
    let mut st = conn.prepare_cached(&q).map_err(sql(path))?;
    let mut rows = st.query([id.as_str()]).map_err(sql(path))?;
    match rows.next().map_err(sql(path))? {
        Some(row) => decode_device(row, path).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn devices(conn: &Connection, path: &str) -> Result<Vec<DeviceRecord>> {
    let q = format!("SELECT {DEVICE_COLUMNS} FROM device ORDER BY id");
    let mut st = conn.prepare_cached(&q).map_err(sql(path))?;
    let mut rows = st.query([]).map_err(sql(path))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql(path))? {
        out.push(decode_device(row, path)?);
    }
    Ok(out)
}

/// The feed after position `after`: at most `limit` events in position
/// order, each with the changes its projection recorded.
pub(crate) fn read_feed(
    conn: &Connection,
    path: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<FeedEntry>> {
    let after = to_i64(after, "position").unwrap_or(i64::MAX);
    let mut st = conn
        .prepare_cached(
            "SELECT origin, seq, id, at_ms, at_c, conversation, body, pos FROM event
             WHERE pos > ?1 ORDER BY pos LIMIT ?2",
        )
        .map_err(sql(path))?;
    let mut rows = st
        .query(params![after, limit_i64(limit)])
        .map_err(sql(path))?;
    let mut out: Vec<FeedEntry> = Vec::with_capacity(limit.min(1024));
    while let Some(row) = rows.next().map_err(sql(path))? {
        let event = decode_event(row, path)?;
        let pos: i64 = row.get(7).map_err(sql(path))?;
        out.push(FeedEntry {
            pos: u64::try_from(pos).unwrap_or(0),
            event,
            changes: Vec::new(),
        });
    }
    let Some(upto) = out.last().map(|e| e.pos) else {
        return Ok(out);
    };
    let upto = to_i64(upto, "position").unwrap_or(i64::MAX);
    let mut st = conn
        .prepare_cached(
            "SELECT last_pos, changes FROM change_set
             WHERE last_pos > ?1 AND first_pos <= ?2 ORDER BY last_pos",
        )
        .map_err(sql(path))?;
    let mut rows = st.query(params![after, upto]).map_err(sql(path))?;
    while let Some(row) = rows.next().map_err(sql(path))? {
        let last: i64 = row.get(0).map_err(sql(path))?;
        let json: String = row.get(1).map_err(sql(path))?;
        let changes: Vec<(u64, Change)> =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                path: path.to_string(),
                origin: "(change set)".into(),
                seq: u64::try_from(last).unwrap_or(0),
                detail: format!("the change set ending at position {last} is unreadable: {e}"),
            })?;
        for (pos, change) in changes {
            // Entries are in position order: find the one it belongs to.
            if let Ok(i) = out.binary_search_by_key(&pos, |e| e.pos)
                && let Some(e) = out.get_mut(i)
            {
                e.changes.push(change);
            }
        }
    }
    Ok(out)
}

/// A consumer's stored cursor (None: it never stored one).
pub(crate) fn cursor(conn: &Connection, path: &str, consumer: &str) -> Result<Option<u64>> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT pos FROM feed_cursor WHERE consumer = ?1")
        .and_then(|mut st| st.query_row([consumer], |r| r.get(0)).optional())
        .map_err(sql(path))?;
    Ok(v.map(|v| u64::try_from(v).unwrap_or(0)))
}
