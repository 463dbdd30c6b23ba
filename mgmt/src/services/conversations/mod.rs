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

pub mod actions;
pub mod calls;
pub mod canned;
pub mod notes;

use crate::services::channels::{Channels, Dispatch, Reply};
use crate::services::contacts::address::{Address, AddressKind, Region, normalise};
use crossline_core::{
    Change, ChangeSet, Channel, ConversationId, DeliveryState, Direction, Event, EventBody,
    EventId, NodeId,
};
use crossline_proto::{Command, VERSION};
use crossline_store::Projector;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

/// Longest `last_message_preview`, in characters.
pub const PREVIEW_CHARS: usize = 120;

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
    /// `id` as a conversation id (None only for an unreadable stored id).
    conversation: Option<ConversationId>,
    /// Its contact.
    contact: String,
    /// Messages of the run in this conversation.
    n: i64,
    /// The run's last message in it: device, line and preview come from it.
    last: &'a Event,
    last_line: &'a str,
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
                            conversation: conversation_id(&id),
                            contact: found.contact,
                            id,
                            n: 0,
                            last: ev,
                            last_line: m.line,
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
            "INSERT INTO timeline_entry (event_id, conversation_id, at_ms, at_c, kind, device,
                 line, address, text, parts, incomplete, sent_at)
             VALUES (?1, ?2, ?3, ?4, 'inbound', ?5, ?6, ?7, ?8, ?9, ?10, ?11)
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
                m.sent_at
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
                "UPDATE conversation SET device = ?2, line = ?3, unread = unread + ?7,
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
                    d.n
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
            crate::services::trust::record_command(tx, &command.to_string(), device.as_str())?;
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
                "INSERT INTO timeline_entry (event_id, conversation_id, at_ms, at_c, kind, device,
                     line, address, text, author, command, state)
                 VALUES (?1, ?2, ?3, ?4, 'reply', ?5, ?6, ?7, ?8, ?9, ?10, 'pending')
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
                let addr = normalise(to, region);
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
                    "INSERT INTO timeline_entry (event_id, conversation_id, at_ms, at_c, kind,
                         device, line, address, text, author, command, state)
                     VALUES (?1, ?2, ?3, ?4, 'reply', ?5, ?6, ?7, ?8, ?9, ?10, 'sent')
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
                "INSERT INTO timeline_entry (event_id, conversation_id, at_ms, at_c, kind, author)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
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
            crate::services::contacts::facts::project(tx, ev)?;
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
            crate::services::contacts::facts::project(tx, ev)?;
            for contact in [survivor, merged] {
                changes.push(
                    at,
                    Change::ContactChanged {
                        contact: contact.to_string(),
                    },
                );
            }
        }
        EventBody::RoutingConfigured { .. } => crate::services::routing::configured::project(tx, ev)?,
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
    let found: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "SELECT i.contact_id,
                 (SELECT c.id FROM conversation c
                  WHERE c.contact_id = i.contact_id AND c.status = 'open')
             FROM contact_identity i WHERE i.kind = ?1 AND i.address = ?2",
        )?
        .query_row(params![addr.kind.as_str(), addr.value], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let mut contact_created = false;
    let contact = match found {
        Some((contact, Some(open))) => {
            return Ok(Joined {
                id: open,
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
    exec(
        tx,
        "INSERT INTO conversation (id, contact_id, status, channel, created_ms, last_ms, last_c)
         VALUES (?1, ?2, 'open', ?3, ?4, ?4, ?5)",
        params![id, contact, channel.as_str(), ms(ev), ev.at.c],
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
        contact,
        opened: true,
        contact_created,
    })
}

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
            None => normalise(raw, region),
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
/// by the gate, [`crate::services::trust`]): the command is this device's
/// (an auto-reply's is recorded as its own here) and no longer pending.
fn command_answered(tx: &Transaction<'_>, cmd: &str, ev: &Event) -> rusqlite::Result<()> {
    crate::services::trust::record_command(tx, cmd, ev.origin.as_str())?;
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

// ---------------------------------------------------------------------------
// Read side
// ---------------------------------------------------------------------------

/// Conversation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved => "resolved",
        }
    }
    fn parse(s: &str) -> Self {
        if s == "resolved" {
            Status::Resolved
        } else {
            Status::Open
        }
    }
}

/// Who the conversation is with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ContactView {
    pub id: String,
    pub kind: AddressKind,
    /// E.164 for `phone`; as received otherwise.
    pub address: String,
}

/// One conversation in the list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub status: Status,
    pub channel: String,
    pub contact: ContactView,
    /// Device and line the customer last wrote to (where replies go by default).
    pub device: Option<String>,
    pub line: Option<String>,
    pub created_ms: i64,
    /// HLC milliseconds of the newest timeline entry.
    pub last_activity_ms: i64,
    pub last_message_preview: String,
    /// Inbound messages since the last reply or resolve.
    pub unread: i64,
    pub messages: i64,
}

/// A conversation with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    /// Oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The calls in the conversation, oldest first (each with its IVR
    /// choices, voicemails and callback requests).
    pub calls: Vec<calls::CallView>,
}

/// Kind of a timeline entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A customer's message.
    Inbound,
    /// An outgoing message (agent reply, or the appliance's auto-reply).
    Reply,
    Resolved,
    Reopened,
}

/// Delivery state of one part of a reply.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PartView {
    /// 1-based.
    pub part: i64,
    /// `sent`, `delivered`, `failed`, `unknown` or `no_report` (sent, but no
    /// delivery report came within the line's report window, or its message
    /// reference was reused first).
    pub state: String,
    /// Network message reference (TP-MR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<i64>,
    /// Why, in words people read: the modem's or the network's reason for
    /// `failed` (e.g. "the network is congested (+CMS ERROR 42: congestion)"),
    /// what is known for `unknown` and `no_report`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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

/// One entry of a conversation's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// Id of the event behind the entry.
    pub id: String,
    pub kind: EntryKind,
    /// HLC milliseconds of the event.
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Inbound: the sender as received; reply: the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<i64>,
    /// Inbound: some parts never arrived; the text is partial.
    pub incomplete: bool,
    /// Inbound: the service-centre time stamp (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Reply: the command id (also the reply id returned by POST .../replies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Reply: `pending` (not yet confirmed by the appliance), `sent`,
    /// `delivered` (every part), `failed` (some part), `unknown`, or
    /// `no_report` (every part final, some without a delivery report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Reply: why it is `failed`, `unknown` or `no_report`, in words people
    /// read (the first such part's detail, or the whole message's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Reply: state per part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub part_states: Vec<PartView>,
}

/// Filters of the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub device: Option<String>,
    pub contact: Option<String>,
    /// A normalised address (kind, value).
    pub address: Option<(AddressKind, String)>,
    pub limit: usize,
    /// Keyset cursor: (last_ms, last_c, id) of the last row of the previous page.
    pub after: Option<(i64, i64, String)>,
}

/// A page of conversations.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Page {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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

/// Parses a cursor made by [`list`].
pub fn parse_cursor(s: &str) -> Option<(i64, i64, String)> {
    let mut it = s.splitn(3, '.');
    let ms = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    let id = it.next()?;
    uuid::Uuid::parse_str(id).ok()?;
    Some((ms, c, id.to_string()))
}

/// One conversation's summary.
/// HLC milliseconds of the customer's newest message in conversation `id`
/// (a channel's reply window runs from it).
pub fn last_inbound_ms(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT max(at_ms) FROM timeline_entry WHERE conversation_id = ?1 AND kind = 'inbound'",
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
         FROM timeline_entry WHERE conversation_id = ?1 ORDER BY at_ms, at_c, event_id",
    )?;
    let mut timeline = st
        .query_map(params![id], entry_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for e in &mut timeline {
        fill_parts(conn, e)?;
    }
    let calls = calls::of_conversation(conn, id)?;
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

/// A command waiting for its appliance's confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommand {
    pub id: EventId,
    pub device: NodeId,
    /// The encoded [`Command`], ready to publish.
    pub payload: String,
    pub created_ms: i64,
    pub last_sent_ms: Option<i64>,
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
