//! What the conversations service and the surfaces read of the
//! projections (`ConversationRepo`), in SQLite.

use super::projection::{current_contact, merge_check, merges_into, unmerge_check};
use super::{read, write};
use crate::services::RepoFuture;
use crate::services::channels::repo::{CommandRepo, PendingCommand};
use crate::services::contacts::address::AddressKind;
use crate::services::contacts::facts::{MergeInto, MergeOutcome, UnmergeOutcome};
use crate::services::contacts::repo::ContactRepo;
use crate::services::conversations::calls::{CallStepView, CallView};
use crate::services::conversations::repo::{
    Changed, ConversationRepo, EntryKey, InboxFacets, OpenConversation, ReplyLine, Workspace,
    WorkspaceNote,
};
use crate::services::conversations::{
    ContactView, ConversationDetail, ConversationSummary, EntryKind, ListFilter, Page, PartView,
    Status, TimelineEntry,
};
use crossline_core::contact::ContactId;
use crossline_core::distinct::Distinct;
use crossline_core::{ConversationId, EventBody, EventId, NodeId};
use crossline_store::{NewEvent, SqliteStore};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{HashMap, HashSet};

impl ConversationRepo for SqliteStore {
    fn list(&self, filter: ListFilter) -> RepoFuture<Page> {
        read(self, move |c| list(c, &filter))
    }

    fn summary(&self, id: String) -> RepoFuture<Option<ConversationSummary>> {
        read(self, move |c| get(c, &id))
    }

    fn summaries(&self, ids: Vec<String>) -> RepoFuture<Vec<ConversationSummary>> {
        read(self, move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(s) = get(c, &id)? {
                    out.push(s);
                }
            }
            Ok(out)
        })
    }

    fn detail(&self, id: String) -> RepoFuture<Option<ConversationDetail>> {
        read(self, move |c| detail(c, &id))
    }

    fn workspace(&self, id: ConversationId) -> RepoFuture<Option<Workspace>> {
        read(self, move |c| workspace(c, &id))
    }

    fn last_inbound_ms(&self, id: String) -> RepoFuture<Option<i64>> {
        read(self, move |c| last_inbound_ms(c, &id))
    }

    fn first_inbound_text(&self, id: String) -> RepoFuture<Option<String>> {
        read(self, move |c| first_inbound_text(c, &id))
    }

    fn changed(&self, keys: Vec<EntryKey>) -> RepoFuture<Changed> {
        read(self, move |c| {
            let mut entries = Vec::new();
            let mut convs = Distinct::default();
            for k in keys {
                let found = match &k {
                    EntryKey::Event(id) => entry_by_event(c, id)?,
                    EntryKey::Command(id) => entry_by_command(c, id)?,
                    EntryKey::Conversation(id) => {
                        convs.add(id.clone());
                        None
                    }
                };
                if let Some((conv, entry)) = found {
                    convs.add(conv.clone());
                    entries.push((conv, entry));
                }
            }
            let mut sums = Vec::with_capacity(convs.len());
            for id in convs.into_vec() {
                if let Some(s) = get(c, &id)? {
                    sums.push(s);
                }
            }
            Ok(Changed {
                entries,
                conversations: sums,
            })
        })
    }

    fn reply_line(&self, device: String, line: String) -> RepoFuture<ReplyLine> {
        read(self, move |c| {
            Ok(if line_known(c, &device, &line)? {
                ReplyLine::Known
            } else {
                ReplyLine::Unknown(lines(c, &device)?)
            })
        })
    }

    fn other_open(&self, contact: String, except: String) -> RepoFuture<Option<String>> {
        read(self, move |c| other_open(c, &contact, &except))
    }

    fn open_conversations(&self) -> RepoFuture<Vec<OpenConversation>> {
        read(self, |c| {
            let mut st = c.prepare(
                "SELECT c.id, c.contact_id, c.line,
                        (SELECT t.text FROM timeline_entry t
                          WHERE t.conv = c.n AND t.kind = 'inbound'
                          ORDER BY t.at_ms, t.at_c LIMIT 1),
                        c.channel
                 FROM conversation c WHERE c.status = 'open'
                 ORDER BY c.created_ms, c.id",
            )?;
            st.query_map([], |r| {
                Ok(OpenConversation {
                    id: r.get(0)?,
                    contact: r.get(1)?,
                    line: r.get(2)?,
                    first_text: r.get(3)?,
                    channel: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    fn calls(&self, conversation: String) -> RepoFuture<Vec<CallView>> {
        read(self, move |c| of_conversation(c, &conversation))
    }

    fn inbox_facets(&self, tag: Option<String>, login: String) -> RepoFuture<InboxFacets> {
        read(self, move |c| {
            let tagged = match tag {
                Some(t) => Some(
                    c.prepare_cached("SELECT contact_id FROM contact_tag WHERE tag = ?1")?
                        .query_map(params![t], |r| r.get(0))?
                        .collect::<rusqlite::Result<HashSet<String>>>()?,
                ),
                None => None,
            };
            let tags = c
                .prepare_cached("SELECT DISTINCT tag FROM contact_tag ORDER BY tag LIMIT 200")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let mentioned = c
                .prepare_cached(
                    "SELECT DISTINCT conversation_id FROM conversation_note
                     WHERE ',' || mentions || ',' LIKE '%,' || ?1 || ',%'",
                )?
                .query_map(params![login], |r| r.get(0))?
                .collect::<rusqlite::Result<HashSet<String>>>()?;
            Ok(InboxFacets {
                tagged,
                tags,
                mentioned,
            })
        })
    }

    fn canned_used(
        &self,
        conversation: ConversationId,
        titles: Vec<String>,
        by: String,
    ) -> RepoFuture<Vec<String>> {
        let store = self.clone();
        Box::pin(async move {
            let (recorded, _) = store
                .append_with(move |tx| {
                    let mut recorded = Vec::new();
                    for t in titles {
                        let known = tx
                            .prepare_cached("SELECT 1 FROM canned_response WHERE title = ?1")?
                            .query_row(params![t], |_| Ok(()))
                            .optional()?;
                        if known.is_some() {
                            recorded.push(t);
                        }
                    }
                    let events = recorded
                        .iter()
                        .map(|title| NewEvent {
                            conversation: Some(conversation),
                            body: EventBody::CannedResponseUsed {
                                title: title.clone(),
                                by: by.clone(),
                            },
                        })
                        .collect();
                    Ok((recorded, events))
                })
                .await?;
            Ok(recorded)
        })
    }
}

impl CommandRepo for SqliteStore {
    fn pending_commands(
        &self,
        device: Option<String>,
        sent_before_ms: Option<i64>,
    ) -> RepoFuture<Vec<PendingCommand>> {
        read(self, move |c| pending(c, device.as_deref(), sent_before_ms))
    }

    fn mark_sent(&self, ids: Vec<EventId>, at_ms: i64) -> RepoFuture<()> {
        write(self, move |tx| mark_sent(tx, &ids, at_ms))
    }
}

impl ContactRepo for SqliteStore {
    fn tags_of(&self, contacts: Vec<String>) -> RepoFuture<HashMap<String, Vec<String>>> {
        read(self, move |c| {
            contacts
                .into_iter()
                .map(|k| contact_tags(c, &k).map(|t| (k, t)))
                .collect()
        })
    }

    fn find_contact(
        &self,
        id: String,
        kind: AddressKind,
        address: String,
    ) -> RepoFuture<Option<String>> {
        read(self, move |c| {
            let by_id = c
                .query_row("SELECT id FROM contact WHERE id = ?1", params![id], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?;
            match by_id {
                Some(id) => Ok(Some(id)),
                None => contact_of(c, kind, &address),
            }
        })
    }

    fn holder_of_merged(&self, merged: String) -> RepoFuture<Option<String>> {
        read(self, move |c| match unmerge_check(c, &merged)? {
            UnmergeOutcome::NotMerged => Ok(None),
            UnmergeOutcome::Unmerged { survivor }
            | UnmergeOutcome::SurvivorMerged { survivor, .. } => {
                current_contact(c, &survivor).map(Some)
            }
        })
    }

    fn merges_into(&self, survivor: String) -> RepoFuture<Vec<MergeInto>> {
        read(self, move |c| merges_into(c, &survivor))
    }

    fn merge(
        &self,
        survivor: ContactId,
        merged: ContactId,
        by: String,
    ) -> RepoFuture<MergeOutcome> {
        let store = self.clone();
        Box::pin(async move {
            let (outcome, _) = store
                .append_with(move |tx| {
                    let (s, m) = (survivor.to_string(), merged.to_string());
                    let outcome = merge_check(tx, &s, &m)?;
                    let events = match outcome {
                        MergeOutcome::Merged { .. } => vec![NewEvent {
                            conversation: None,
                            body: EventBody::ContactsMerged {
                                survivor,
                                merged,
                                by,
                            },
                        }],
                        _ => Vec::new(),
                    };
                    Ok((outcome, events))
                })
                .await?;
            Ok(outcome)
        })
    }

    fn unmerge(&self, merged: ContactId, by: String) -> RepoFuture<UnmergeOutcome> {
        let store = self.clone();
        Box::pin(async move {
            let (outcome, _) = store
                .append_with(move |tx| {
                    let outcome = unmerge_check(tx, &merged.to_string())?;
                    let events = match outcome {
                        UnmergeOutcome::Unmerged { .. } => vec![NewEvent {
                            conversation: None,
                            body: EventBody::ContactUnmerged { merged, by },
                        }],
                        _ => Vec::new(),
                    };
                    Ok((outcome, events))
                })
                .await?;
            Ok(outcome)
        })
    }
}

/// The first message the customer wrote in a conversation.
fn first_inbound_text(conn: &Connection, conversation: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT text FROM timeline_entry
         WHERE conv = (SELECT n FROM conversation WHERE id = ?1) AND kind = 'inbound'
         ORDER BY at_ms, at_c LIMIT 1",
    )?
    .query_row([conversation], |r| r.get(0))
    .optional()
}

/// Routing decisions of one conversation, oldest first.
fn conversation_decisions(
    conn: &Connection,
    cid: &ConversationId,
) -> rusqlite::Result<Vec<crossline_core::routing::Record>> {
    let mut st = conn.prepare_cached(
        "SELECT body FROM event WHERE conversation = ?1 AND kind = 'routing_decision'
         ORDER BY at_ms, at_c LIMIT 2000",
    )?;
    let rows = st.query_map(params![cid.0.as_bytes().to_vec()], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for b in rows {
        if let Ok(EventBody::RoutingDecision { record }) = serde_json::from_str::<EventBody>(&b?) {
            out.push(record);
        }
    }
    Ok(out)
}

fn workspace(conn: &Connection, cid: &ConversationId) -> rusqlite::Result<Option<Workspace>> {
    let id = cid.to_string();
    let Some(detail) = detail(conn, &id)? else {
        return Ok(None);
    };
    let decisions = conversation_decisions(conn, cid)?;
    let notes = conn
        .prepare_cached(
            "SELECT at_ms, author, text, mentions FROM conversation_note
             WHERE conversation_id = ?1 ORDER BY at_ms",
        )?
        .query_map(params![id], |r| {
            Ok(WorkspaceNote {
                at_ms: r.get(0)?,
                author: r.get(1)?,
                text: r.get(2)?,
                mentions: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let lines = match &detail.summary.device {
        Some(d) => lines(conn, d)?,
        None => Vec::new(),
    };
    let canned = canned_list(conn)?;
    let contact = detail.summary.contact.id.clone();
    let identities = conn
        .prepare_cached("SELECT kind, address FROM contact_identity WHERE contact_id = ?1")?
        .query_map(params![contact], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let previous = list(
        conn,
        &ListFilter {
            contact: Some(contact.clone()),
            limit: 20,
            ..Default::default()
        },
    )?
    .conversations
    .into_iter()
    .filter(|c| c.id != id)
    .collect();
    let tags = contact_tags(conn, &contact)?;
    let contact_notes = conn
        .prepare_cached(
            "SELECT at_ms, author, text FROM contact_note WHERE contact_id = ?1
             ORDER BY at_ms DESC LIMIT 50",
        )?
        .query_map(params![contact], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let merged = merges_into(conn, &contact)?;
    Ok(Some(Workspace {
        detail,
        decisions,
        notes,
        lines,
        canned,
        identities,
        previous,
        tags,
        contact_notes,
        merged,
    }))
}

/// States of a reply that need a reason.
fn needs_reason(state: &str) -> bool {
    matches!(state, "failed" | "unknown" | "no_report")
}

/// Loads a reply entry's parts and its reason: the first failed, unknown or
/// no-report part's detail, else the whole message's.
fn fill_parts(conn: &Connection, e: &mut TimelineEntry) -> rusqlite::Result<()> {
    let Some(cmd) = &e.command else {
        return Ok(());
    };
    let mut parts = conn.prepare_cached(
        "SELECT part, state, ref, detail FROM reply_part WHERE command = ?1 ORDER BY part",
    )?;
    e.part_states = parts
        .query_map(params![cmd], |r| {
            Ok(PartView {
                part: r.get(0)?,
                state: r.get(1)?,
                reference: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let part_reason = e
        .part_states
        .iter()
        .find(|p| needs_reason(&p.state) && p.detail.is_some())
        .and_then(|p| p.detail.clone());
    let whole = e.reason.take();
    e.reason = if e.state.as_deref().is_some_and(needs_reason) {
        part_reason.or(whole)
    } else {
        None
    };
    Ok(())
}

const SUMMARY_COLS: &str = "c.id, c.status, c.channel, c.contact_id, coalesce(ci.kind, i.kind),
    coalesce(ci.address, i.address), c.device,
    c.line, c.created_ms, c.last_ms, c.last_preview, c.unread, c.messages, c.last_c";

// One row per conversation: a contact has several identities after a merge
// ([`crate::services::contacts::facts::merge`]); the conversation's own (`conversation_identity`, set
// when its contact had several) wins, else the contact's first.
const SUMMARY_FROM: &str = "FROM conversation c JOIN contact_identity i
    ON (i.kind, i.address) = (SELECT kind, address FROM contact_identity
        WHERE contact_id = c.contact_id ORDER BY kind, address LIMIT 1)
    LEFT JOIN conversation_identity ci ON ci.conversation_id = c.id";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ConversationSummary, i64)> {
    let kind: String = r.get(4)?;
    Ok((
        ConversationSummary {
            id: r.get(0)?,
            status: Status::parse(&r.get::<_, String>(1)?),
            channel: r.get(2)?,
            contact: ContactView {
                id: r.get(3)?,
                kind: AddressKind::parse(&kind).unwrap_or(AddressKind::Short),
                address: r.get(5)?,
            },
            device: r.get(6)?,
            line: r.get(7)?,
            created_ms: r.get(8)?,
            last_activity_ms: r.get(9)?,
            last_message_preview: r.get(10)?,
            unread: r.get(11)?,
            messages: r.get(12)?,
        },
        r.get(13)?,
    ))
}

/// Conversations, newest activity first.
pub fn list(conn: &Connection, f: &ListFilter) -> rusqlite::Result<Page> {
    use rusqlite::types::Value;
    let mut sql = format!("SELECT {SUMMARY_COLS} {SUMMARY_FROM} WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(s) = f.status {
        args.push(Value::Text(s.as_str().into()));
        sql += &format!(" AND c.status = ?{}", args.len());
    }
    if let Some(d) = &f.device {
        args.push(Value::Text(d.clone()));
        sql += &format!(" AND c.device = ?{}", args.len());
    }
    if let Some(c) = &f.contact {
        args.push(Value::Text(c.clone()));
        sql += &format!(" AND c.contact_id = ?{}", args.len());
    }
    if let Some((k, a)) = &f.address {
        args.push(Value::Text(k.as_str().into()));
        args.push(Value::Text(a.clone()));
        sql += &format!(
            " AND c.contact_id IN (SELECT contact_id FROM contact_identity WHERE kind = ?{} AND address = ?{})",
            args.len() - 1,
            args.len()
        );
    }
    if let Some((ms, c, id)) = &f.after {
        args.push(Value::Integer(*ms));
        args.push(Value::Integer(*c));
        args.push(Value::Text(id.clone()));
        let n = args.len();
        sql += &format!(
            " AND (c.last_ms < ?{a} OR (c.last_ms = ?{a} AND (c.last_c < ?{b} OR (c.last_c = ?{b} AND c.id < ?{n}))))",
            a = n - 2,
            b = n - 1
        );
    }
    let limit = f.limit.clamp(1, 500);
    sql += &format!(
        " ORDER BY c.last_ms DESC, c.last_c DESC, c.id DESC LIMIT {}",
        limit + 1
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st
        .query_map(rusqlite::params_from_iter(args), summary_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last()
            .map(|(s, c)| format!("{}.{}.{}", s.last_activity_ms, c, s.id))
    } else {
        None
    };
    Ok(Page {
        conversations: rows.into_iter().map(|(s, _)| s).collect(),
        next_cursor,
    })
}

/// One conversation's summary.
/// HLC milliseconds of the customer's newest message in conversation `id`
/// (a channel's reply window runs from it).
pub fn last_inbound_ms(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT max(at_ms) FROM timeline_entry
         WHERE conv = (SELECT n FROM conversation WHERE id = ?1) AND kind = 'inbound'",
    )?
    .query_row(params![id], |r| r.get(0))
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<ConversationSummary>> {
    conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} {SUMMARY_FROM} WHERE c.id = ?1"
    ))?
    .query_row(params![id], summary_row)
    .optional()
    .map(|o| o.map(|(s, _)| s))
}

/// One conversation with its timeline.
pub fn detail(conn: &Connection, id: &str) -> rusqlite::Result<Option<ConversationDetail>> {
    let Some(summary) = get(conn, id)? else {
        return Ok(None);
    };
    let mut st = conn.prepare_cached(
        "SELECT event_id, kind, at_ms, device, line, address, text, parts, incomplete, sent_at,
             author, command, state, reason
         FROM timeline_entry WHERE conv = (SELECT n FROM conversation WHERE id = ?1)
         ORDER BY at_ms, at_c, event_id",
    )?;
    let mut timeline = st
        .query_map(params![id], entry_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for e in &mut timeline {
        fill_parts(conn, e)?;
    }
    let calls = of_conversation(conn, id)?;
    Ok(Some(ConversationDetail {
        summary,
        timeline,
        calls,
    }))
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimelineEntry> {
    let kind = match r.get::<_, String>(1)?.as_str() {
        "inbound" => EntryKind::Inbound,
        "reply" => EntryKind::Reply,
        "resolved" => EntryKind::Resolved,
        _ => EntryKind::Reopened,
    };
    Ok(TimelineEntry {
        id: r.get(0)?,
        kind,
        at_ms: r.get(2)?,
        device: r.get(3)?,
        line: r.get(4)?,
        address: r.get(5)?,
        text: r.get(6)?,
        parts: r.get(7)?,
        incomplete: r.get(8)?,
        sent_at: r.get(9)?,
        author: r.get(10)?,
        command: r.get(11)?,
        state: r.get(12)?,
        reason: r.get(13)?,
        part_states: Vec::new(),
    })
}

/// One timeline entry by event id, with the conversation it belongs to.
pub fn entry_by_event(
    conn: &Connection,
    event: &str,
) -> rusqlite::Result<Option<(String, TimelineEntry)>> {
    entry_where(conn, "event_id = ?1", event)
}

/// The timeline entry of a reply (by command id), with its conversation.
pub fn entry_by_command(
    conn: &Connection,
    command: &str,
) -> rusqlite::Result<Option<(String, TimelineEntry)>> {
    entry_where(conn, "command = ?1", command)
}

fn entry_where(
    conn: &Connection,
    cond: &str,
    arg: &str,
) -> rusqlite::Result<Option<(String, TimelineEntry)>> {
    // Cached: the live fan-out looks up every ingested message.
    let e = conn
        .prepare_cached(&format!(
            "SELECT event_id, kind, at_ms, device, line, address, text, parts, incomplete,
                 sent_at, author, command, state, reason, conversation_id
             FROM timeline_entry WHERE {cond}"
        ))?
        .query_row(params![arg], |r| {
            Ok((r.get::<_, String>(14)?, entry_row(r)?))
        })
        .optional()?;
    let Some((conv, mut e)) = e else {
        return Ok(None);
    };
    fill_parts(conn, &mut e)?;
    Ok(Some((conv, e)))
}

/// Whether `device` has used `line` (inbound, outbound or in telemetry).
/// The tags agents gave a contact.
pub fn contact_tags(conn: &Connection, contact: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT tag FROM contact_tag WHERE contact_id = ?1 ORDER BY tag")?
        .query_map([contact], |r| r.get(0))?
        .collect()
}

pub fn line_known(conn: &Connection, device: &str, line: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM device_line WHERE device = ?1 AND line = ?2",
        params![device, line],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// Lines `device` has used, by name.
pub fn lines(conn: &Connection, device: &str) -> rusqlite::Result<Vec<String>> {
    let mut st =
        conn.prepare_cached("SELECT line FROM device_line WHERE device = ?1 ORDER BY line")?;
    st.query_map(params![device], |r| r.get(0))?.collect()
}

/// The open conversation of a contact other than `except`, if any.
pub fn other_open(
    conn: &Connection,
    contact: &str,
    except: &str,
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT id FROM conversation WHERE contact_id = ?1 AND status = 'open' AND id <> ?2",
        params![contact, except],
        |r| r.get(0),
    )
    .optional()
}

/// Pending commands: of one device, or all; only those last sent before
/// `sent_before_ms` (never sent counts as due).
pub fn pending(
    conn: &Connection,
    device: Option<&str>,
    sent_before_ms: Option<i64>,
) -> rusqlite::Result<Vec<PendingCommand>> {
    let mut st = conn.prepare_cached(
        "SELECT id, device, payload, created_ms, last_sent_ms FROM pending_command
         WHERE (?1 IS NULL OR device = ?1)
           AND (?2 IS NULL OR last_sent_ms IS NULL OR last_sent_ms < ?2)
         ORDER BY created_ms, id LIMIT 10000",
    )?;
    let rows = st
        .query_map(params![device, sent_before_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // A row that does not parse (hand-edited database) is skipped, not fatal.
    Ok(rows
        .into_iter()
        .filter_map(|(id, dev, payload, created_ms, last_sent_ms)| {
            Some(PendingCommand {
                id: id.parse().ok()?,
                device: NodeId::new(dev).ok()?,
                payload,
                created_ms,
                last_sent_ms,
            })
        })
        .collect())
}

/// Records that pending commands were published at `at_ms`.
pub fn mark_sent(tx: &Transaction<'_>, ids: &[EventId], at_ms: i64) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached("UPDATE pending_command SET last_sent_ms = ?2 WHERE id = ?1")?;
    for id in ids {
        st.execute(params![id.to_string(), at_ms])?;
    }
    Ok(())
}

/// The contact an identity belongs to.
pub fn contact_of(
    conn: &Connection,
    kind: AddressKind,
    address: &str,
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT contact_id FROM contact_identity WHERE kind = ?1 AND address = ?2",
        params![kind.as_str(), address],
        |r| r.get(0),
    )
    .optional()
}

/// The calls of a conversation, oldest first, each with its steps.
pub fn of_conversation(conn: &Connection, conversation: &str) -> rusqlite::Result<Vec<CallView>> {
    let mut calls = conn
        .prepare_cached(
            "SELECT id, event_id, direction, device, line, caller, caller_name, withheld, at_ms,
                 answered_by, ended_ms, duration_ms, ring_ms, cause
             FROM call WHERE conversation_id = ?1 ORDER BY at_ms, at_c, id",
        )?
        .query_map(params![conversation], |r| {
            Ok(CallView {
                id: r.get(0)?,
                event_id: r.get(1)?,
                direction: r.get(2)?,
                device: r.get(3)?,
                line: r.get(4)?,
                caller: r.get(5)?,
                caller_name: r.get(6)?,
                withheld: r.get(7)?,
                at_ms: r.get(8)?,
                answered_by: r.get(9)?,
                ended_ms: r.get(10)?,
                duration_ms: r.get(11)?,
                ring_ms: r.get(12)?,
                cause: r.get(13)?,
                steps: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut st = conn.prepare_cached(
        "SELECT kind, at_ms, menu, digit, action, recording, duration_ms, bytes, sha256, number
         FROM call_step WHERE call_id = ?1 ORDER BY at_ms, at_c, event_id",
    )?;
    for c in &mut calls {
        c.steps = st
            .query_map(params![c.id], |r| {
                Ok(CallStepView {
                    kind: r.get(0)?,
                    at_ms: r.get(1)?,
                    menu: r.get(2)?,
                    digit: r.get(3)?,
                    action: r.get(4)?,
                    recording: r.get(5)?,
                    duration_ms: r.get(6)?,
                    bytes: r.get(7)?,
                    sha256: r.get(8)?,
                    number: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
    }
    Ok(calls)
}

/// The canned responses an agent may pick: (title, text), by title.
pub fn canned_list(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached("SELECT title, text FROM canned_response ORDER BY title LIMIT 100")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}
