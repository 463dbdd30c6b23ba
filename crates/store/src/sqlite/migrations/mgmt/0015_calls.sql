-- mgmt 15: calls on branch lines (issue 14; docs/ARCHITECTURE.md, "Calls").
-- Projections of the call events (call_ringing, call_answered, ivr_choice,
-- voicemail_recorded, callback_requested, call_ended). Does not keep
-- readers: an older build would store call events raw and not project them.

-- The trust gate's memory (docs/PROTOCOL.md, "Trust"): the device each call
-- rang on. Written by the gate when it admits a call_ringing (so the call's
-- later events in the same batch find it) and by the projector (rebuilds).
CREATE TABLE call_device (
    call   TEXT PRIMARY KEY,
    device TEXT NOT NULL
) WITHOUT ROWID;

-- One row per call, in the conversation its caller's contact had open (or
-- one the call opened). Updated by the call's later events.
CREATE TABLE call (
    id              TEXT    PRIMARY KEY,
    -- the call_ringing event
    event_id        TEXT    NOT NULL UNIQUE,
    conversation_id TEXT    NOT NULL REFERENCES conversation (id),
    device          TEXT    NOT NULL,
    line            TEXT    NOT NULL,
    direction       TEXT    NOT NULL DEFAULT 'inbound',
    -- caller ID as received; NULL when withheld or not sent
    caller          TEXT,
    caller_name     TEXT,
    withheld        INTEGER NOT NULL DEFAULT 0,
    at_ms           INTEGER NOT NULL,
    at_c            INTEGER NOT NULL,
    answered_by     TEXT,
    answered_ms     INTEGER,
    ended_ms        INTEGER,
    duration_ms     INTEGER,
    ring_ms         INTEGER,
    cause           TEXT
) WITHOUT ROWID;
CREATE INDEX call_conversation ON call (conversation_id, at_ms, at_c);

-- What happened during a call, in order: IVR choices, voicemails, callback
-- requests.
CREATE TABLE call_step (
    event_id    TEXT    PRIMARY KEY,
    call_id     TEXT    NOT NULL REFERENCES call (id),
    at_ms       INTEGER NOT NULL,
    at_c        INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('ivr_choice', 'voicemail', 'callback')),
    menu        TEXT,
    digit       TEXT,
    action      TEXT,
    recording   TEXT,
    duration_ms INTEGER,
    bytes       INTEGER,
    sha256      TEXT,
    number      TEXT
) WITHOUT ROWID;
CREATE INDEX call_step_call ON call_step (call_id, at_ms, at_c);
