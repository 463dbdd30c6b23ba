//! Contacts, conversations and their timelines, projected from the event log.
//!
//! [`projector`] is installed as the store's [`Projector`]: it runs on the
//! single writer thread, in the same savepoint as every newly stored event
//! (appended by mgmt or ingested from an appliance). Projections and events
//! therefore commit together, and creating a conversation is serialised: two
//! messages from one number that race still land in one conversation (the
//! second sees the first's row; the unique index `conversation_one_open`
//! would refuse a second open one anyway).
//!
//! Threading rule: an inbound message joins its contact's *open*
//! conversation, or opens a new one. A resolved conversation stays resolved;
//! the customer's next message starts a new conversation (an agent may reopen
//! the old one explicitly while the contact has no other open conversation).
//!
//! Ids are derived from the log (a contact's and a conversation's id are the
//! id of the event that created them) so a rebuild gives the same ids.
//!
//! The projector never fails on odd input (an unparseable number is kept as
//! received, an unknown command is ignored): an error would make the whole
//! batch fail and the appliance resend it for ever. Only SQL errors propagate.

mod calls;
mod contacts;
mod notes;
mod routing;
pub mod trust;

pub(crate) use contacts::{current_contact, merge_check, merges_into, unmerge_check};

use crate::services::channels::{Channels, Dispatch, Reply};
use crate::services::contacts::address::{Address, Region};
use crate::services::conversations::PREVIEW_CHARS;
use crossline_core::{
    Change, ChangeSet, Channel, ConversationId, DeliveryState, Direction, Event, EventBody, EventId,
};
use crossline_proto::{Command, VERSION};
use crossline_store::Projector;
use rusqlite::{OptionalExtension, Transaction, params};
/// The projector to install in [`crossline_store::StoreOptions::projector`],
/// with the channels of this build ([`Channels::standard`]).
pub fn projector(region: Region) -> Projector {
    projector_with(region, Channels::standard())
}

/// The projector, with the channel adapters `channels` (they say who wrote
/// an inbound message and how a reply leaves).
pub fn projector_with(region: Region, channels: Channels) -> Projector {
    Box::new(move |tx, events, changes| project_all(tx, events, region, &channels, changes))
}

/// Applies one newly stored event to the projections ([`project_all`] with
/// a batch of one, the standard channels), discarding the change set.
pub fn project(tx: &Transaction<'_>, ev: &Event, region: Region) -> rusqlite::Result<()> {
    project_all(
        tx,
        std::slice::from_ref(ev),
        region,
        &Channels::standard(),
        &mut ChangeSet::new(),
    )
}

/// Applies newly stored events, in order, to the projections.
///
/// Consecutive inbound messages are projected as one run ([`Inbound`]): each
/// gets its timeline row at once, but each conversation they touch is
/// updated once for the run and each line seen once, with the same result as
/// one event at a time. Any other event ends the run (what the run owes is
/// written first) and is applied on its own ([`project_other`]).
///
/// What it decides goes into `changes` (see [`crossline_core::change`]):
/// the conversation each inbound message joined (and whether that opened
/// it or created its contact), replies added and their delivery states,
/// resolves, reopens, notes and contact facts. The log's consumers (live
/// updates, routing) learn it from there, never by looking it up again.
pub fn project_all(
    tx: &Transaction<'_>,
    events: &[Event],
    region: Region,
    channels: &Channels,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    let mut run = Inbound::default();
    for (i, ev) in events.iter().enumerate() {
        match &ev.body {
            EventBody::MessageReceived {
                channel,
                line,
                from,
                text,
                sent_at,
                parts,
                incomplete,
                ..
            } => run.add(
                tx,
                (i, ev),
                (region, channels),
                changes,
                InboundMsg {
                    channel: *channel,
                    line,
                    from,
                    text,
                    sent_at: sent_at.as_deref(),
                    parts: *parts,
                    incomplete: *incomplete,
                },
            )?,
            _ => {
                run.flush(tx)?;
                project_other(tx, (i, ev), region, channels, changes)?;
            }
        }
    }
    run.flush(tx)
}

/// The fields of a `MessageReceived` the projection uses.
struct InboundMsg<'a> {
    channel: Channel,
    line: &'a str,
    from: &'a str,
    text: &'a str,
    sent_at: Option<&'a str>,
    parts: u16,
    incomplete: bool,
}

/// What a run of inbound messages still owes the `conversation` row of one
/// conversation.
struct ConversationDue<'a> {
    id: String,
    /// Its number (`conversation.n`, the timeline's key for it).
    key: i64,
    /// `id` as a conversation id (None only for an unreadable stored id).
    conversation: Option<ConversationId>,
    /// Its contact.
    contact: String,
    /// Messages of the run in this conversation.
    n: i64,
    /// The run's last message in it: device, line and preview come from it.
    last: &'a Event,
    last_line: &'a str,
    /// The channel the customer last wrote on (where a reply goes).
    last_channel: Channel,
    last_text: &'a str,
    /// Newest HLC stamp of the run's messages in it.
    newest: (i64, u32),
}

/// A line's `last_ms` while a run is projected: as stored before the run
/// and as the run's messages moved it.
struct LineDue {
    stored: Option<i64>,
    now: Option<i64>,
}

/// A run of consecutive inbound messages being projected.
///
/// Timeline rows are written as messages come; the conversation rows and
/// lines seen are written by [`Inbound::flush`]. Within a run only inbound
/// messages touch conversations and lines, and a conversation found or
/// opened for a sender stays that sender's open conversation until the run
/// ends, so the sender → conversation map needs no invalidation.
#[derive(Default)]
struct Inbound<'a> {
    /// (Channel, raw sender) → its open conversation (found or opened in
    /// this run), as an index into `due`.
    senders: std::collections::HashMap<(Channel, &'a str), usize>,
    /// Conversation id → its index in `due` (two senders may share one
    /// contact, after a merge).
    convs: std::collections::HashMap<String, usize>,
    /// Conversations touched, in order of first touch.
    due: Vec<ConversationDue<'a>>,
    /// (device, line) → its `last_ms`.
    lines: std::collections::HashMap<(&'a str, &'a str), LineDue>,
}

impl<'a> Inbound<'a> {
    fn add(
        &mut self,
        tx: &Transaction<'_>,
        (at, ev): (usize, &'a Event),
        (region, channels): (Region, &Channels),
        changes: &mut ChangeSet,
        m: InboundMsg<'a>,
    ) -> rusqlite::Result<()> {
        let stamp = (ms(ev), ev.at.c);
        let i = match self.senders.get(&(m.channel, m.from)) {
            Some(&i) => i,
            None => {
                let from = identity_cached(channels, m.channel, m.from, region);
                let found = inbound_conversation(tx, ev, &from, m.channel)?;
                if let Some(conversation) = conversation_id(&found.id) {
                    if found.contact_created {
                        changes.push(
                            at,
                            Change::ContactCreated {
                                contact: found.contact.clone(),
                            },
                        );
                    }
                    if found.opened {
                        changes.push(
                            at,
                            Change::ConversationOpened {
                                conversation,
                                contact: found.contact.clone(),
                                channel: m.channel,
                            },
                        );
                    }
                }
                let id = found.id;
                let i = match self.convs.get(&id) {
                    Some(&i) => i,
                    None => {
                        self.convs.insert(id.clone(), self.due.len());
                        self.due.push(ConversationDue {
                            key: found.key,
                            conversation: conversation_id(&id),
                            contact: found.contact,
                            id,
                            n: 0,
                            last: ev,
                            last_line: m.line,
                            last_channel: m.channel,
                            last_text: m.text,
                            newest: stamp,
                        });
                        self.due.len() - 1
                    }
                };
                self.senders.insert((m.channel, m.from), i);
                i
            }
        };
        let Some(due) = self.due.get_mut(i) else {
            return Ok(());
        };
        exec(
            tx,
            "INSERT INTO timeline_entry (event_id, conversation_id, conv, at_ms, at_c, kind,
                 device, line, address, text, parts, incomplete, sent_at)
             VALUES (?1, ?2, ?12, ?3, ?4, 'inbound', ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (event_id) DO NOTHING",
            params![
                ev.id.to_string(),
                due.id,
                stamp.0,
                stamp.1,
                ev.origin.as_str(),
                m.line,
                m.from,
                m.text,
                m.parts,
                m.incomplete,
                m.sent_at,
                due.key
            ],
        )?;
        if let Some(conversation) = due.conversation {
            changes.push(
                at,
                Change::MessageAdded {
                    conversation,
                    contact: due.contact.clone(),
                    event: ev.id,
                    direction: Direction::Inbound,
                    command: None,
                    author: None,
                },
            );
        }
        due.n += 1;
        due.last = ev;
        due.last_line = m.line;
        due.last_channel = m.channel;
        due.last_text = m.text;
        due.newest = due.newest.max(stamp);
        if !m.line.is_empty() && m.line.len() <= 64 {
            let key = (ev.origin.as_str(), m.line);
            let seen = match self.lines.entry(key) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let stored = line_seen_ms(tx, key.0, key.1)?;
                    v.insert(LineDue {
                        stored,
                        now: stored,
                    })
                }
            };
            seen.now = Some(match seen.now {
                Some(last) if stamp.0 <= last + LINE_SEEN_STEP_MS => last,
                _ => stamp.0,
            });
        }
        Ok(())
    }

    /// Writes what the run owes (one update per conversation and per line)
    /// and starts a new run.
    fn flush(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        self.senders.clear();
        self.convs.clear();
        for d in self.due.drain(..) {
            exec(
                tx,
                "UPDATE conversation SET device = ?2, line = ?3, channel = ?8,
                     unread = unread + ?7,
                     messages = messages + ?7, last_preview = ?4,
                     last_c = CASE WHEN last_ms < ?5 OR (last_ms = ?5 AND last_c < ?6)
                              THEN ?6 ELSE last_c END,
                     last_ms = max(last_ms, ?5)
                 WHERE id = ?1",
                params![
                    d.id,
                    d.last.origin.as_str(),
                    d.last_line,
                    preview(d.last_text),
                    d.newest.0,
                    d.newest.1,
                    d.n,
                    d.last_channel.as_str()
                ],
            )?;
        }
        for ((device, line), seen) in self.lines.drain() {
            if let Some(now) = seen.now
                && seen.stored != Some(now)
            {
                exec(
                    tx,
                    "INSERT INTO device_line (device, line, last_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (device, line) DO UPDATE SET last_ms = excluded.last_ms",
                    params![device, line, now],
                )?;
            }
        }
        Ok(())
    }
}

/// Applies one event other than an inbound message to the projections.
fn project_other(
    tx: &Transaction<'_>,
    (at, ev): (usize, &Event),
    region: Region,
    channels: &Channels,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    match &ev.body {
        // Projected in runs by [`project_all`].
        EventBody::MessageReceived { .. } => {}
        EventBody::ReplyRequested {
            command,
            channel,
            device,
            line,
            to,
            text,
            author,
        } => {
            trust::record_command(tx, &command.to_string(), device.as_str())?;
            // The channel's adapter says how the reply leaves: a command
            // for the device (SMS: `send_sms`), or sent by the adapter
            // from mgmt. A channel this build has no adapter for sends
            // nothing (the API refuses such a reply before it is stored).
            let reply = Reply {
                command: *command,
                line: line.clone(),
                to: to.clone(),
                text: text.clone(),
            };
            if let Some(Dispatch::Device(kind)) = channels.get(*channel).map(|a| a.dispatch(&reply))
            {
                let payload = Command {
                    v: VERSION,
                    id: *command,
                    kind,
                };
                let payload =
                    String::from_utf8_lossy(&crossline_proto::encode(&payload)).into_owned();
                exec(
                    tx,
                    "INSERT INTO pending_command (id, device, payload, created_ms)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
                    params![command.to_string(), device.as_str(), payload, ms(ev)],
                )?;
            }
            let Some(conversation) = ev.conversation else {
                return Ok(());
            };
            let conv = conversation.to_string();
            let Some(contact) = contact_of_conversation(tx, &conv)? else {
                return Ok(());
            };
            let added = exec(
                tx,
                "INSERT INTO timeline_entry (event_id, conversation_id, conv, at_ms, at_c, kind,
                     device, line, address, text, author, command, state)
                 VALUES (?1, ?2, (SELECT n FROM conversation WHERE id = ?2), ?3, ?4, 'reply', ?5,
                     ?6, ?7, ?8, ?9, ?10, 'pending')
                 ON CONFLICT DO NOTHING",
                params![
                    ev.id.to_string(),
                    conv,
                    ms(ev),
                    ev.at.c,
                    device.as_str(),
                    line,
                    to,
                    text,
                    author,
                    command.to_string()
                ],
            )?;
            if added > 0 {
                changes.push(
                    at,
                    Change::MessageAdded {
                        conversation,
                        contact,
                        event: ev.id,
                        direction: Direction::Outbound,
                        command: Some(*command),
                        author: author.clone(),
                    },
                );
            }
            exec(
                tx,
                "UPDATE conversation SET unread = 0, messages = messages + 1 WHERE id = ?1",
                params![conv],
            )?;
            touch(tx, &conv, ev, text)?;
        }
        EventBody::MessageSent {
            line,
            to,
            text,
            command,
            refs,
            auto_reply,
            ..
        } => {
            let cmd = command.to_string();
            command_answered(tx, &cmd, ev)?;
            seen_line(tx, ev.origin.as_str(), line, ev)?;
            let known: Option<String> = tx
                .prepare_cached("SELECT conversation_id FROM timeline_entry WHERE command = ?1")?
                .query_row(params![cmd], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                // Not asked for by mgmt (the appliance's offline auto-reply):
                // shown in the customer's open (else newest) conversation.
                let addr = Address::normalised(to, region);
                let conv: Option<(String, String)> = tx
                    .query_row(
                        "SELECT c.id, c.contact_id FROM conversation c
                         JOIN contact_identity i ON i.contact_id = c.contact_id
                         WHERE i.kind = ?1 AND i.address = ?2
                         ORDER BY c.status = 'open' DESC, c.last_ms DESC LIMIT 1",
                        params![addr.kind.as_str(), addr.value],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((conv, contact)) = conv else {
                    return Ok(());
                };
                let author = if *auto_reply {
                    "auto-reply"
                } else {
                    "appliance"
                };
                let added = exec(
                    tx,
                    "INSERT INTO timeline_entry (event_id, conversation_id, conv, at_ms, at_c,
                         kind, device, line, address, text, author, command, state)
                     VALUES (?1, ?2, (SELECT n FROM conversation WHERE id = ?2), ?3, ?4, 'reply',
                         ?5, ?6, ?7, ?8, ?9, ?10, 'sent')
                     ON CONFLICT DO NOTHING",
                    params![
                        ev.id.to_string(),
                        conv,
                        ms(ev),
                        ev.at.c,
                        ev.origin.as_str(),
                        line,
                        to,
                        text,
                        author,
                        cmd
                    ],
                )?;
                if added > 0
                    && let Some(conversation) = conversation_id(&conv)
                {
                    changes.push(
                        at,
                        Change::MessageAdded {
                            conversation,
                            contact,
                            event: ev.id,
                            direction: Direction::Outbound,
                            command: Some(*command),
                            author: Some(author.to_string()),
                        },
                    );
                }
                exec(
                    tx,
                    "UPDATE conversation SET messages = messages + 1 WHERE id = ?1",
                    params![conv],
                )?;
                touch(tx, &conv, ev, text)?;
            }
            for (i, r) in refs.iter().enumerate() {
                exec(
                    tx,
                    "INSERT INTO reply_part (command, part, ref, state) VALUES (?1, ?2, ?3, 'sent')
                     ON CONFLICT (command, part) DO UPDATE SET ref = excluded.ref",
                    params![cmd, i + 1, r],
                )?;
            }
            exec(
                tx,
                "UPDATE timeline_entry SET parts = ?2, line = ?3 WHERE command = ?1",
                params![cmd, refs.len(), line],
            )?;
            recompute(tx, (at, *command), None, changes)?;
        }
        EventBody::DeliveryStatus {
            command,
            part,
            state,
            detail,
        } => {
            let cmd = command.to_string();
            command_answered(tx, &cmd, ev)?;
            let st = state_str(*state);
            match part {
                Some(p) if *p >= 1 => {
                    exec(tx,
                        "INSERT INTO reply_part (command, part, state, detail) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (command, part) DO UPDATE SET state = excluded.state,
                             detail = excluded.detail",
                        params![cmd, p, st, detail],
                    )?;
                    recompute(tx, (at, *command), None, changes)?;
                }
                _ => {
                    exec(
                        tx,
                        "UPDATE reply_part SET state = ?2, detail = ?3 WHERE command = ?1",
                        params![cmd, st, detail],
                    )?;
                    // The reason of the message as a whole (an unknown line,
                    // a restart mid-send), shown when no part says more.
                    exec(
                        tx,
                        "UPDATE timeline_entry SET reason = ?2 WHERE command = ?1",
                        params![cmd, detail],
                    )?;
                    recompute(tx, (at, *command), Some(st), changes)?;
                }
            }
        }
        EventBody::ConversationResolved { by } | EventBody::ConversationReopened { by } => {
            let Some(conversation) = ev.conversation else {
                return Ok(());
            };
            let conv = conversation.to_string();
            if !exists(tx, &conv)? {
                return Ok(());
            }
            let (status, kind) = match ev.body {
                EventBody::ConversationResolved { .. } => {
                    changes.push(at, Change::ConversationResolved { conversation });
                    ("resolved", "resolved")
                }
                _ => {
                    changes.push(at, Change::ConversationReopened { conversation });
                    ("open", "reopened")
                }
            };
            exec(
                tx,
                "INSERT INTO timeline_entry (event_id, conversation_id, conv, at_ms, at_c, kind,
                     author)
                 VALUES (?1, ?2, (SELECT n FROM conversation WHERE id = ?2), ?3, ?4, ?5, ?6)
                 ON CONFLICT DO NOTHING",
                params![ev.id.to_string(), conv, ms(ev), ev.at.c, kind, by],
            )?;
            exec(
                tx,
                "UPDATE conversation SET status = ?2,
                     unread = CASE WHEN ?2 = 'resolved' THEN 0 ELSE unread END
                 WHERE id = ?1",
                params![conv, status],
            )?;
            touch_time(tx, &conv, ev)?;
        }
        EventBody::DeviceTelemetry { modems, .. } => {
            for m in modems.iter().take(64) {
                seen_line(tx, ev.origin.as_str(), &m.line, ev)?;
            }
        }
        EventBody::NoteAdded { .. } => {
            notes::project(tx, ev)?;
            if let Some(conversation) = ev.conversation {
                changes.push(at, Change::ConversationChanged { conversation });
            }
        }
        EventBody::ContactNoteAdded { contact, .. }
        | EventBody::ContactTagged { contact, .. }
        | EventBody::ContactUntagged { contact, .. }
        | EventBody::ContactUnmerged {
            merged: contact, ..
        } => {
            contacts::project(tx, ev)?;
            changes.push(
                at,
                Change::ContactChanged {
                    contact: contact.to_string(),
                },
            );
        }
        EventBody::ContactsMerged {
            survivor, merged, ..
        } => {
            contacts::project(tx, ev)?;
            for contact in [survivor, merged] {
                changes.push(
                    at,
                    Change::ContactChanged {
                        contact: contact.to_string(),
                    },
                );
            }
        }
        EventBody::RoutingConfigured { .. } => routing::project(tx, ev)?,
        EventBody::CallRinging { .. }
        | EventBody::CallAnswered { .. }
        | EventBody::IvrChoice { .. }
        | EventBody::VoicemailRecorded { .. }
        | EventBody::CallbackRequested { .. }
        | EventBody::CallEnded { .. } => calls::project(tx, (at, ev), region, channels, changes)?,
        // A fact for reports; no table shows it.
        EventBody::CannedResponseUsed { .. } => {}
        EventBody::DeviceHeartbeat { .. }
        | EventBody::RoutingDecision { .. }
        // What mgmt kept of a device's refused event changes nothing.
        | EventBody::Refused { .. }
        // A kind this mgmt does not know (a newer appliance's) is kept
        // raw in the log and acknowledged, but means nothing here.
        | EventBody::Unknown(_) => {}
    }
    Ok(())
}

/// Runs a cached statement (the projector runs for every stored event).
fn exec(tx: &Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(p)
}

/// Queries one row with a cached statement.
fn one<T>(
    tx: &Transaction<'_>,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql)?.query_row(p, f)
}

fn ms(ev: &Event) -> i64 {
    i64::try_from(ev.at.ms).unwrap_or(i64::MAX)
}

fn state_str(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Sent => "sent",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Unknown => "unknown",
        DeliveryState::NoReport => "no_report",
    }
}

fn exists(tx: &Transaction<'_>, conv: &str) -> rusqlite::Result<bool> {
    one(
        tx,
        "SELECT 1 FROM conversation WHERE id = ?1",
        params![conv],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// Where an inbound message goes, and what finding it created.
struct Joined {
    /// The conversation.
    id: String,
    /// Its number (`conversation.n`).
    key: i64,
    contact: String,
    /// The conversation was opened for this message.
    opened: bool,
    /// So was the contact.
    contact_created: bool,
}

/// The contact's open conversation for an inbound message, created (with
/// the contact) when there is none.
fn inbound_conversation(
    tx: &Transaction<'_>,
    ev: &Event,
    addr: &Address,
    channel: Channel,
) -> rusqlite::Result<Joined> {
    let id = ev.id.to_string();
    // The contact and its open conversation, in one lookup.
    let found: Option<(String, Option<(String, i64)>)> = tx
        .prepare_cached(
            "SELECT i.contact_id, c.id, c.n
             FROM contact_identity i
             LEFT JOIN conversation c ON c.contact_id = i.contact_id AND c.status = 'open'
             WHERE i.kind = ?1 AND i.address = ?2",
        )?
        .query_row(params![addr.kind.as_str(), addr.value], |r| {
            let open: Option<String> = r.get(1)?;
            let key: Option<i64> = r.get(2)?;
            Ok((r.get(0)?, open.zip(key)))
        })
        .optional()?;
    let mut contact_created = false;
    let contact = match found {
        Some((contact, Some((open, key)))) => {
            return Ok(Joined {
                id: open,
                key,
                contact,
                opened: false,
                contact_created,
            });
        }
        Some((c, None)) => c,
        None => {
            contact_created = true;
            exec(
                tx,
                "INSERT INTO contact (id, created_ms) VALUES (?1, ?2)",
                params![id, ms(ev)],
            )?;
            exec(
                tx,
                "INSERT INTO contact_identity (kind, address, contact_id) VALUES (?1, ?2, ?3)",
                params![addr.kind.as_str(), addr.value, id],
            )?;
            id.clone()
        }
    };
    let key: i64 = tx
        .prepare_cached(&format!(
            "INSERT INTO conversation (id, contact_id, status, channel, created_ms, last_ms,
                 last_c, n)
             VALUES (?1, ?2, 'open', ?3, ?4, ?4, ?5, {NEXT_CONVERSATION_N}) RETURNING n"
        ))?
        .query_row(
            params![id, contact, channel.as_str(), ms(ev), ev.at.c],
            |r| r.get(0),
        )?;
    if contact != id {
        // A merged contact has several identities: this conversation is with
        // the one that wrote.
        exec(
            tx,
            "INSERT INTO conversation_identity (conversation_id, kind, address)
             SELECT ?1, ?2, ?3 WHERE (SELECT count(*) FROM contact_identity WHERE contact_id = ?4) > 1
             ON CONFLICT DO NOTHING",
            params![id, addr.kind.as_str(), addr.value, contact],
        )?;
    }
    Ok(Joined {
        id,
        key,
        contact,
        opened: true,
        contact_created,
    })
}

/// A new conversation's number (`conversation.n`): the largest plus one, so
/// numbers follow the order of creation (and a rebuild gives the same).
pub(crate) const NEXT_CONVERSATION_N: &str = "(SELECT coalesce(max(n), 0) + 1 FROM conversation)";

/// Senders normalised so far on this thread (the projector runs on the
/// store's one writer thread). Parsing a number with `phonenumber` costs about
/// as much as storing the event; a customer writes many times.
const ADDRESS_CACHE: usize = 65_536;

thread_local! {
    static ADDRESSES: std::cell::RefCell<std::collections::HashMap<String, (Channel, Region, Address)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Who wrote, as the channel's adapter normalises the raw sender
/// ([`crate::services::channels::ChannelAdapter::identity`]; read as a phone
/// number or sender name on a channel without an adapter), remembered per
/// raw sender (at most [`ADDRESS_CACHE`] of them).
fn identity_cached(channels: &Channels, channel: Channel, raw: &str, region: Region) -> Address {
    ADDRESSES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((c, r, a)) = cache.get(raw)
            && *c == channel
            && *r == region
        {
            return a.clone();
        }
        let a = match channels.get(channel) {
            Some(adapter) => adapter.identity(raw, region),
            None => Address::normalised(raw, region),
        };
        if cache.len() >= ADDRESS_CACHE {
            cache.clear();
        }
        cache.insert(raw.to_string(), (channel, region, a.clone()));
        a
    })
}

/// Moves the conversation's last activity to `ev` (if newer) with a preview.
fn touch(tx: &Transaction<'_>, conv: &str, ev: &Event, text: &str) -> rusqlite::Result<()> {
    exec(
        tx,
        "UPDATE conversation SET last_preview = ?2 WHERE id = ?1",
        params![conv, preview(text)],
    )?;
    touch_time(tx, conv, ev)
}

fn preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

fn touch_time(tx: &Transaction<'_>, conv: &str, ev: &Event) -> rusqlite::Result<()> {
    exec(
        tx,
        "UPDATE conversation SET last_ms = ?2, last_c = ?3
         WHERE id = ?1 AND (last_ms < ?2 OR (last_ms = ?2 AND last_c < ?3))",
        params![conv, ms(ev), ev.at.c],
    )?;
    Ok(())
}

/// A line's `last_seen` moves only when it is this much newer (a busy line
/// is not rewritten for every message).
const LINE_SEEN_STEP_MS: i64 = 60_000;

/// A device answered command `cmd` (MessageSent or DeliveryStatus, accepted
/// by the gate, [`trust`]): the command is this device's
/// (an auto-reply's is recorded as its own here) and no longer pending.
fn command_answered(tx: &Transaction<'_>, cmd: &str, ev: &Event) -> rusqlite::Result<()> {
    trust::record_command(tx, cmd, ev.origin.as_str())?;
    exec(
        tx,
        "DELETE FROM pending_command WHERE id = ?1",
        params![cmd],
    )?;
    Ok(())
}

fn seen_line(tx: &Transaction<'_>, device: &str, line: &str, ev: &Event) -> rusqlite::Result<()> {
    if line.is_empty() || line.len() > 64 {
        return Ok(());
    }
    exec(
        tx,
        "INSERT INTO device_line (device, line, last_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (device, line) DO UPDATE SET last_ms = excluded.last_ms
             WHERE excluded.last_ms > last_ms + ?4",
        params![device, line, ms(ev), LINE_SEEN_STEP_MS],
    )?;
    Ok(())
}

fn line_seen_ms(tx: &Transaction<'_>, device: &str, line: &str) -> rusqlite::Result<Option<i64>> {
    one(
        tx,
        "SELECT last_ms FROM device_line WHERE device = ?1 AND line = ?2",
        params![device, line],
        |r| r.get(0),
    )
    .optional()
}

/// Recomputes a reply's overall state from its parts (`whole`: a status for
/// the whole message, used when no part is known).
fn recompute(
    tx: &Transaction<'_>,
    (at, command): (usize, EventId),
    whole: Option<&str>,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    let cmd = command.to_string();
    let cmd = cmd.as_str();
    let mut st = tx.prepare_cached("SELECT state FROM reply_part WHERE command = ?1")?;
    let states = st
        .query_map(params![cmd], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let overall = if states.is_empty() {
        match whole {
            Some(w) => w,
            None => return Ok(()),
        }
    } else if states.iter().any(|s| s == "failed") {
        "failed"
    } else if states.iter().any(|s| s == "unknown") {
        "unknown"
    } else if states.iter().all(|s| s == "delivered") {
        "delivered"
    } else if states.iter().all(|s| s == "delivered" || s == "no_report") {
        // every part final, some without a report: sent, fate unknown
        "no_report"
    } else {
        "sent"
    };
    // The reply's entry (none for a command no conversation shows).
    let conv: Option<String> = tx
        .prepare_cached(
            "UPDATE timeline_entry SET state = ?2 WHERE command = ?1 RETURNING conversation_id",
        )?
        .query_row(params![cmd, overall], |r| r.get(0))
        .optional()?;
    if let Some(conversation) = conv.as_deref().and_then(conversation_id)
        && let Some(state) = parse_state(overall)
    {
        changes.push(
            at,
            Change::ReplyState {
                conversation,
                command,
                state,
            },
        );
    }
    Ok(())
}

fn parse_state(s: &str) -> Option<DeliveryState> {
    Some(match s {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "failed" => DeliveryState::Failed,
        "unknown" => DeliveryState::Unknown,
        "no_report" => DeliveryState::NoReport,
        _ => return None,
    })
}

/// A conversation id as the projection stores it (the text of a UUID).
fn conversation_id(s: &str) -> Option<ConversationId> {
    s.parse().ok()
}

/// The contact of a conversation (None: no such conversation).
fn contact_of_conversation(tx: &Transaction<'_>, conv: &str) -> rusqlite::Result<Option<String>> {
    one(
        tx,
        "SELECT contact_id FROM conversation WHERE id = ?1",
        params![conv],
        |r| r.get(0),
    )
    .optional()
}
