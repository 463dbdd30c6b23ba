//! What a device may say: the gate mgmt's store runs on every event a
//! device publishes, before it is stored (docs/PROTOCOL.md, "Trust").
//!
//! The broker's ACL already confines a device to its own topics, and
//! ingestion refuses a batch whose events name another origin. The gate
//! checks the *content*, in the store's transaction, so what it reads is
//! exactly what the projector has written before this event:
//!
//! * the kind is one a device may originate ([`crossline_core::EventBody::originator`]:
//!   every kind declares it, exhaustively) and the event names no
//!   conversation ([`Event::check_from_device`]);
//! * an outcome (`message_sent`, `delivery_status`:
//!   [`crossline_core::EventBody::outcome_of`])
//!   is of a command addressed to this device: `command_device` (projected
//!   by [`crate::services::conversations`]) names the device mgmt addressed each
//!   command to. A command mgmt never issued is the device's own (its
//!   offline auto-reply); its first outcome records it as the device's, so
//!   no other device can report on it afterwards.
//!
//! A refused event is stored as [`crossline_core::EventBody::Refused`] in its slot (the
//! device's sequence stays whole); ingestion logs and counts it
//! ([`crate::ingest`]).

use crossline_core::{CallStep, Event, Refusal};
use crossline_store::Gate;
use rusqlite::{OptionalExtension, Transaction, params};

/// The gate to install in [`crossline_store::StoreOptions::gate`].
pub fn gate() -> Gate {
    Box::new(|tx, ev| Ok(check(tx, ev)?.map_err(|r| r.to_string())))
}

/// Whether `ev`, published by its origin (a device), may be stored as sent.
pub fn check(tx: &Transaction<'_>, ev: &Event) -> rusqlite::Result<Result<(), Refusal>> {
    if let Err(r) = ev.check_from_device() {
        return Ok(Err(r));
    }
    if let Some((call, step)) = ev.body.call_of() {
        let id = call.to_string();
        let rang_on = call_device(tx, &id)?;
        return Ok(match (step, rang_on) {
            (CallStep::Starts, None) => {
                record_call(tx, &id, ev.origin.as_str())?;
                Ok(())
            }
            (CallStep::Starts, Some(device)) => Err(Refusal::CallIdTaken { call, device }),
            (CallStep::Continues, Some(device)) if device == ev.origin.as_str() => Ok(()),
            (CallStep::Continues, Some(device)) => Err(Refusal::ForeignCall { call, device }),
            (CallStep::Continues, None) => Err(Refusal::UnknownCall { call }),
        });
    }
    let Some(command) = ev.body.outcome_of() else {
        return Ok(Ok(()));
    };
    let addressed_to = command_device(tx, &command.to_string())?;
    Ok(match addressed_to {
        Some(device) if device != ev.origin.as_str() => {
            Err(Refusal::ForeignCommand { command, device })
        }
        _ => Ok(()),
    })
}

/// The device command `id` is addressed to (or belongs to), if known.
pub fn command_device(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT device FROM command_device WHERE command = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()
}

/// Records that command `id` is `device`'s (kept if already known):
/// called by the projector for mgmt's `reply_requested` and for a device's
/// accepted outcomes.
pub fn record_command(tx: &Transaction<'_>, id: &str, device: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO command_device (command, device) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![id, device])
    .map(|_| ())
}

/// The device call `id` rang on, if it did.
pub fn call_device(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT device FROM call_device WHERE call = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()
}

/// Records that call `id` rang on `device` (kept if already known): by the
/// gate when it admits a `call_ringing`, and by the projector (so a rebuild
/// from the log writes it again).
pub fn record_call(tx: &Transaction<'_>, id: &str, device: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO call_device (call, device) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![id, device])
    .map(|_| ())
}
