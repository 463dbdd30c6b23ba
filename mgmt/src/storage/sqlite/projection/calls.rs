//! Calls on branch lines, projected into the caller's conversation
//! (docs/ARCHITECTURE.md, "Calls").
//!
//! A call is a conversation event like a message: its `call_ringing` joins
//! the caller's contact by the caller ID read as a phone number (E.164 in
//! the site's region, the same identity an SMS from that number has), so a
//! call and the SMS from one number share one conversation. It follows the
//! threading rule of every inbound message: the contact's open conversation,
//! else a new one (channel `voice`). A withheld caller has no number: the
//! call opens a conversation with a new contact of its own (identity the
//! handle `withheld:<call id>`), which an agent may merge later.
//!
//! `call` holds one row per call (who, which line, answered, ended, how
//! long, why); `call_step` what happened during it (IVR choices, voicemails,
//! callback requests). Both are written by [`project`] in the event's
//! transaction and rebuilt from the log like every projection.

use super::{exec, identity_cached, inbound_conversation, ms, one, touch_time};
use crate::services::channels::Channels;
use crate::services::contacts::address::Region;
use crossline_core::{Change, ChangeSet, Channel, Event, EventBody};
use rusqlite::{OptionalExtension, Transaction, params};

/// Applies one call event to the projections (any other event: nothing).
pub(super) fn project(
    tx: &Transaction<'_>,
    (at, ev): (usize, &Event),
    region: Region,
    channels: &Channels,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    let id = ev.id.to_string();
    match &ev.body {
        EventBody::CallRinging {
            call,
            line,
            from,
            name,
            withheld,
            ..
        } => {
            let call = call.to_string();
            super::trust::record_call(tx, &call, ev.origin.as_str())?;
            let caller = from.as_deref().map(str::trim).filter(|f| !f.is_empty());
            let joined = match caller {
                Some(from) => {
                    let addr = identity_cached(channels, Channel::Voice, from, region);
                    inbound_conversation(tx, ev, &addr, Channel::Voice)?
                }
                None => anonymous_conversation(tx, ev, &call)?,
            };
            let Some(conversation) = super::conversation_id(&joined.id) else {
                return Ok(());
            };
            if joined.contact_created {
                changes.push(
                    at,
                    Change::ContactCreated {
                        contact: joined.contact.clone(),
                    },
                );
            }
            if joined.opened {
                changes.push(
                    at,
                    Change::ConversationOpened {
                        conversation,
                        contact: joined.contact.clone(),
                        channel: Channel::Voice,
                    },
                );
            }
            let added = exec(
                tx,
                "INSERT INTO call (id, event_id, conversation_id, device, line, caller,
                     caller_name, withheld, at_ms, at_c)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                params![
                    call,
                    id,
                    joined.id,
                    ev.origin.as_str(),
                    line,
                    caller,
                    name,
                    withheld,
                    ms(ev),
                    ev.at.c
                ],
            )?;
            if added > 0 {
                // Where a written reply goes stays where the customer last
                // wrote (a call on an analog line cannot carry an SMS); a
                // conversation a call opened gets the call's line.
                exec(
                    tx,
                    "UPDATE conversation SET device = coalesce(device, ?2),
                         line = coalesce(line, ?3), unread = unread + 1
                     WHERE id = ?1",
                    params![joined.id, ev.origin.as_str(), line],
                )?;
                touch_time(tx, &joined.id, ev)?;
                changes.push(at, Change::ConversationChanged { conversation });
            }
            super::seen_line(tx, ev.origin.as_str(), line, ev)?;
        }
        EventBody::CallAnswered { call, by } => {
            update(
                tx,
                (at, ev),
                &call.to_string(),
                "UPDATE call SET answered_by = ?2, answered_ms = ?3 WHERE id = ?1
                 RETURNING conversation_id",
                params![call.to_string(), by, ms(ev)],
                changes,
            )?;
        }
        EventBody::CallEnded {
            call,
            duration_ms,
            ring_ms,
            cause,
        } => {
            update(
                tx,
                (at, ev),
                &call.to_string(),
                "UPDATE call SET ended_ms = ?2, duration_ms = ?3, ring_ms = ?4, cause = ?5
                 WHERE id = ?1 RETURNING conversation_id",
                params![
                    call.to_string(),
                    ms(ev),
                    clamp(*duration_ms),
                    clamp(*ring_ms),
                    cause.as_str()
                ],
                changes,
            )?;
        }
        EventBody::IvrChoice {
            call,
            menu,
            digit,
            action,
        } => step(
            tx,
            (at, ev),
            &call.to_string(),
            Step {
                kind: "ivr_choice",
                menu: Some(menu),
                digit: Some(digit),
                action: Some(action),
                ..Step::default()
            },
            changes,
        )?,
        EventBody::VoicemailRecorded {
            call,
            recording,
            duration_ms,
            bytes,
            sha256,
        } => step(
            tx,
            (at, ev),
            &call.to_string(),
            Step {
                kind: "voicemail",
                recording: Some(recording.to_string()),
                duration_ms: Some(clamp(*duration_ms)),
                bytes: Some(clamp(*bytes)),
                sha256: Some(sha256),
                ..Step::default()
            },
            changes,
        )?,
        EventBody::CallbackRequested { call, number } => step(
            tx,
            (at, ev),
            &call.to_string(),
            Step {
                kind: "callback",
                number: Some(number),
                ..Step::default()
            },
            changes,
        )?,
        _ => {}
    }
    Ok(())
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A conversation with a new contact for a caller who withheld the number
/// (or whose network sent none). Its identity is a handle no other message
/// or call has (`withheld:<call id>`), so nothing ever joins it but an
/// agent's merge. Its ids are the event's, like any contact and
/// conversation an event creates.
fn anonymous_conversation(
    tx: &Transaction<'_>,
    ev: &Event,
    call: &str,
) -> rusqlite::Result<super::Joined> {
    let id = ev.id.to_string();
    exec(
        tx,
        "INSERT INTO contact (id, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![id, ms(ev)],
    )?;
    exec(
        tx,
        "INSERT INTO contact_identity (kind, address, contact_id) VALUES ('handle', ?1, ?2)
         ON CONFLICT DO NOTHING",
        params![format!("withheld:{call}"), id],
    )?;
    exec(
        tx,
        &format!(
            "INSERT INTO conversation (id, contact_id, status, channel, created_ms, last_ms,
                 last_c, n)
             VALUES (?1, ?1, 'open', ?2, ?3, ?3, ?4, {}) ON CONFLICT DO NOTHING",
            super::NEXT_CONVERSATION_N
        ),
        params![id, Channel::Voice.as_str(), ms(ev), ev.at.c],
    )?;
    let key: i64 = tx
        .prepare_cached("SELECT n FROM conversation WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))?;
    Ok(super::Joined {
        key,
        contact: id.clone(),
        id,
        opened: true,
        contact_created: true,
    })
}

/// Updates the call's row; its conversation changed (nothing when the call
/// is unknown: the gate admits only calls that rang, but the projector never
/// fails on odd input).
fn update(
    tx: &Transaction<'_>,
    (at, ev): (usize, &Event),
    call: &str,
    sql: &str,
    p: impl rusqlite::Params,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    let conv: Option<String> = tx
        .prepare_cached(sql)?
        .query_row(p, |r| r.get(0))
        .optional()?;
    changed(tx, (at, ev), conv, changes)?;
    tracing::trace!(call, "call updated");
    Ok(())
}

fn changed(
    tx: &Transaction<'_>,
    (at, ev): (usize, &Event),
    conv: Option<String>,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    if let Some(conv) = conv {
        touch_time(tx, &conv, ev)?;
        if let Some(conversation) = super::conversation_id(&conv) {
            changes.push(at, Change::ConversationChanged { conversation });
        }
    }
    Ok(())
}

/// The columns of one `call_step` row.
#[derive(Default)]
struct Step<'a> {
    kind: &'static str,
    menu: Option<&'a str>,
    digit: Option<&'a str>,
    action: Option<&'a str>,
    recording: Option<String>,
    duration_ms: Option<i64>,
    bytes: Option<i64>,
    sha256: Option<&'a str>,
    number: Option<&'a str>,
}

fn step(
    tx: &Transaction<'_>,
    (at, ev): (usize, &Event),
    call: &str,
    s: Step<'_>,
    changes: &mut ChangeSet,
) -> rusqlite::Result<()> {
    let conv: Option<String> = one(
        tx,
        "SELECT conversation_id FROM call WHERE id = ?1",
        params![call],
        |r| r.get(0),
    )
    .optional()?;
    if conv.is_none() {
        return Ok(());
    }
    exec(
        tx,
        "INSERT INTO call_step (event_id, call_id, at_ms, at_c, kind, menu, digit, action,
             recording, duration_ms, bytes, sha256, number)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
        params![
            ev.id.to_string(),
            call,
            ms(ev),
            ev.at.c,
            s.kind,
            s.menu,
            s.digit,
            s.action,
            s.recording,
            s.duration_ms,
            s.bytes,
            s.sha256,
            s.number
        ],
    )?;
    changed(tx, (at, ev), conv, changes)
}
