//! Contact facts' projections: notes, tags, merges and un-merges
//! (`contact_note`, `contact_tag`, `contact_merge`, `contact_merge_moved`),
//! and the merge rules' checks the use cases and the projector share.

use crate::services::contacts::facts::{MergeInto, MergeOutcome, UnmergeOutcome};
use crossline_core::{Event, EventBody};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Whether `c` is a contact that was not merged away.
fn alive(conn: &Connection, c: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM contact k WHERE id = ?1
         AND NOT EXISTS (SELECT 1 FROM contact_merge m WHERE m.merged = k.id)",
    )?
    .query_row(params![c], |_| Ok(()))
    .optional()
    .map(|o| o.is_some())
}

fn open_of(conn: &Connection, c: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT id FROM conversation WHERE contact_id = ?1 AND status = 'open'")?
        .query_row(params![c], |r| r.get(0))
        .optional()
}

fn count(conn: &Connection, sql: &str, c: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?
        .query_row(params![c], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
}

/// Whether `merged` may be merged into `survivor` now, and if so what would
/// move ([`MergeOutcome::Merged`] with the counts).
pub fn merge_check(
    conn: &Connection,
    survivor: &str,
    merged: &str,
) -> rusqlite::Result<MergeOutcome> {
    if survivor == merged {
        return Ok(MergeOutcome::Same);
    }
    for c in [survivor, merged] {
        if !alive(conn, c)? {
            return Ok(MergeOutcome::Unknown(c.to_string()));
        }
    }
    if let (Some(a), Some(b)) = (open_of(conn, survivor)?, open_of(conn, merged)?) {
        return Ok(MergeOutcome::BothOpen {
            survivor: a,
            merged: b,
        });
    }
    Ok(MergeOutcome::Merged {
        identities: count(
            conn,
            "SELECT count(*) FROM contact_identity WHERE contact_id = ?1",
            merged,
        )?,
        conversations: count(
            conn,
            "SELECT count(*) FROM conversation WHERE contact_id = ?1",
            merged,
        )?,
    })
}

/// Whether the merge of `merged` may be undone now.
pub fn unmerge_check(conn: &Connection, merged: &str) -> rusqlite::Result<UnmergeOutcome> {
    let survivor: Option<String> = conn
        .prepare_cached("SELECT survivor FROM contact_merge WHERE merged = ?1")?
        .query_row(params![merged], |r| r.get(0))
        .optional()?;
    let Some(survivor) = survivor else {
        return Ok(UnmergeOutcome::NotMerged);
    };
    let into: Option<String> = conn
        .prepare_cached("SELECT survivor FROM contact_merge WHERE merged = ?1")?
        .query_row(params![survivor], |r| r.get(0))
        .optional()?;
    Ok(match into {
        Some(into) => UnmergeOutcome::SurvivorMerged { survivor, into },
        None => UnmergeOutcome::Unmerged { survivor },
    })
}

/// The contact a merged contact's history is with now (itself when it was
/// not merged), following merges.
pub fn current_contact(conn: &Connection, contact: &str) -> rusqlite::Result<String> {
    let mut cur = contact.to_string();
    // A chain is at most as long as there are merges; bounded anyway.
    for _ in 0..1000 {
        let next: Option<String> = conn
            .prepare_cached("SELECT survivor FROM contact_merge WHERE merged = ?1")?
            .query_row(params![cur], |r| r.get(0))
            .optional()?;
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    Ok(cur)
}

/// Contacts merged into `survivor` (directly), oldest first.
pub fn merges_into(conn: &Connection, survivor: &str) -> rusqlite::Result<Vec<MergeInto>> {
    conn.prepare_cached(
        "SELECT m.merged, coalesce((SELECT group_concat(b, ', ') FROM
             (SELECT b FROM contact_merge_moved v WHERE v.merged = m.merged
              AND v.item = 'identity' ORDER BY a, b)), ''), m.at_ms, m.by
         FROM contact_merge m WHERE m.survivor = ?1 ORDER BY m.at_ms, m.merged",
    )?
    .query_map(params![survivor], |r| {
        Ok(MergeInto {
            merged: r.get(0)?,
            addresses: r.get(1)?,
            at_ms: r.get(2)?,
            by: r.get(3)?,
        })
    })?
    .collect()
}

fn exec(tx: &Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(p)
}

/// Applies one event of the kinds this module owns; false for any other
/// kind (the caller projects it). Never fails on odd input (a contact that
/// is gone, a merge that is no longer possible): such an event changes
/// nothing. Only SQL errors propagate.
pub fn project(tx: &Transaction<'_>, ev: &Event) -> rusqlite::Result<bool> {
    match &ev.body {
        EventBody::ContactNoteAdded {
            contact,
            author,
            text,
        } => {
            let c = contact.to_string();
            if alive(tx, &c)? {
                exec(
                    tx,
                    "INSERT INTO contact_note (contact_id, at_ms, author, text) VALUES (?1, ?2, ?3, ?4)",
                    params![c, ms(ev), author, text],
                )?;
            }
        }
        EventBody::ContactTagged { contact, tag, .. } => {
            let c = contact.to_string();
            if alive(tx, &c)? {
                exec(
                    tx,
                    "INSERT INTO contact_tag (contact_id, tag) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![c, tag],
                )?;
                // Tagged by an agent now: the tag is the survivor's own,
                // it stays when a merge that brought it too is undone.
                exec(
                    tx,
                    "UPDATE contact_merge_moved SET b = '1' WHERE item = 'tag' AND a = ?2
                     AND merged IN (SELECT merged FROM contact_merge WHERE survivor = ?1)",
                    params![c, tag],
                )?;
            }
        }
        EventBody::ContactUntagged { contact, tag, .. } => {
            exec(
                tx,
                "DELETE FROM contact_tag WHERE contact_id = ?1 AND tag = ?2",
                params![contact.to_string(), tag],
            )?;
        }
        EventBody::ContactsMerged {
            survivor,
            merged,
            by,
        } => {
            let (s, m) = (survivor.to_string(), merged.to_string());
            if let MergeOutcome::Merged { .. } = merge_check(tx, &s, &m)? {
                apply_merge(tx, &s, &m, by, ms(ev))?;
            }
        }
        EventBody::ContactUnmerged { merged, .. } => {
            let m = merged.to_string();
            if let UnmergeOutcome::Unmerged { survivor } = unmerge_check(tx, &m)? {
                apply_unmerge(tx, &survivor, &m)?;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Folds `merged` into `survivor` (checked by the caller) and records what
/// moved.
fn apply_merge(
    tx: &Transaction<'_>,
    survivor: &str,
    merged: &str,
    by: &str,
    at_ms: i64,
) -> rusqlite::Result<()> {
    for sql in [
        "INSERT INTO contact_merge_moved (merged, item, a, b)
         SELECT ?1, 'identity', kind, address FROM contact_identity WHERE contact_id = ?1",
        "INSERT INTO contact_merge_moved (merged, item, a)
         SELECT ?1, 'conversation', id FROM conversation WHERE contact_id = ?1",
        "INSERT INTO contact_merge_moved (merged, item, a)
         SELECT ?1, 'note', CAST(id AS TEXT) FROM contact_note WHERE contact_id = ?1",
    ] {
        exec(tx, sql, params![merged])?;
    }
    exec(
        tx,
        "INSERT INTO contact_merge_moved (merged, item, a, b)
         SELECT ?1, 'tag', t.tag, CASE WHEN EXISTS (SELECT 1 FROM contact_tag s
             WHERE s.contact_id = ?2 AND s.tag = t.tag) THEN '1' ELSE '0' END
         FROM contact_tag t WHERE t.contact_id = ?1",
        params![merged, survivor],
    )?;
    // Pin every conversation of both to the identity it shows now.
    exec(
        tx,
        "INSERT INTO conversation_identity (conversation_id, kind, address)
         SELECT c.id, i.kind, i.address FROM conversation c JOIN contact_identity i
             ON (i.kind, i.address) = (SELECT kind, address FROM contact_identity
                 WHERE contact_id = c.contact_id ORDER BY kind, address LIMIT 1)
         WHERE c.contact_id IN (?1, ?2)
         ON CONFLICT DO NOTHING",
        params![survivor, merged],
    )?;
    for sql in [
        "UPDATE contact_identity SET contact_id = ?1 WHERE contact_id = ?2",
        "UPDATE conversation SET contact_id = ?1 WHERE contact_id = ?2",
        "INSERT INTO contact_tag (contact_id, tag) SELECT ?1, tag FROM contact_tag
         WHERE contact_id = ?2 ON CONFLICT DO NOTHING",
        "UPDATE contact_note SET contact_id = ?1 WHERE contact_id = ?2",
    ] {
        exec(tx, sql, params![survivor, merged])?;
    }
    exec(
        tx,
        "DELETE FROM contact_tag WHERE contact_id = ?1",
        params![merged],
    )?;
    exec(
        tx,
        "INSERT INTO contact_merge (merged, survivor, at_ms, by) VALUES (?1, ?2, ?3, ?4)",
        params![merged, survivor, at_ms, by],
    )?;
    Ok(())
}

/// Moves back what the merge of `merged` into `survivor` moved (checked by
/// the caller).
fn apply_unmerge(tx: &Transaction<'_>, survivor: &str, merged: &str) -> rusqlite::Result<()> {
    for sql in [
        "UPDATE contact_identity SET contact_id = ?2 WHERE contact_id = ?1 AND (kind, address) IN
             (SELECT a, b FROM contact_merge_moved WHERE merged = ?2 AND item = 'identity')",
        "UPDATE conversation SET contact_id = ?2 WHERE contact_id = ?1 AND id IN
             (SELECT a FROM contact_merge_moved WHERE merged = ?2 AND item = 'conversation')",
        "UPDATE contact_note SET contact_id = ?2 WHERE contact_id = ?1 AND CAST(id AS TEXT) IN
             (SELECT a FROM contact_merge_moved WHERE merged = ?2 AND item = 'note')",
        "INSERT INTO contact_tag (contact_id, tag)
             SELECT ?2, a FROM contact_merge_moved WHERE merged = ?2 AND item = 'tag'
             ON CONFLICT DO NOTHING",
        "DELETE FROM contact_tag WHERE contact_id = ?1 AND tag IN
             (SELECT a FROM contact_merge_moved WHERE merged = ?2 AND item = 'tag' AND b = '0')",
    ] {
        exec(tx, sql, params![survivor, merged])?;
    }
    exec(
        tx,
        "DELETE FROM contact_merge_moved WHERE merged = ?1",
        params![merged],
    )?;
    exec(
        tx,
        "DELETE FROM contact_merge WHERE merged = ?1",
        params![merged],
    )?;
    Ok(())
}

fn ms(ev: &Event) -> i64 {
    i64::try_from(ev.at.ms).unwrap_or(i64::MAX)
}
