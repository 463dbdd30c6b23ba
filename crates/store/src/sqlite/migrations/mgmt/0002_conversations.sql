-- mgmt 2 (combined 4): mgmt-side projections for the SMS loop (issue 4): contacts and
-- their identities, conversations, the timeline, reply parts, lines seen per
-- device, and the commands still to be confirmed by an appliance.
--
-- Everything here except `pending_command.last_sent_ms` is a projection of the
-- event log, written by mgmt's projector in the same transaction as the event
-- (crossline_mgmt::conversations). Ids are taken from the event that created
-- the row (a contact's and a conversation's id are the id of the first
-- message), so rebuilding from the log gives the same ids.

CREATE TABLE contact (
    id         TEXT    PRIMARY KEY,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- How a contact is reached: kind 'phone' (E.164, normalised), 'short' (a
-- short code or number that is not valid E.164, kept as received) or
-- 'alphanumeric' (a sender name, kept as received; cannot be replied to).
CREATE TABLE contact_identity (
    kind       TEXT NOT NULL CHECK (kind IN ('phone', 'short', 'alphanumeric')),
    address    TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contact (id),
    PRIMARY KEY (kind, address)
) WITHOUT ROWID;
CREATE INDEX contact_identity_contact ON contact_identity (contact_id);

CREATE TABLE conversation (
    id               TEXT    PRIMARY KEY,
    contact_id       TEXT    NOT NULL REFERENCES contact (id),
    status           TEXT    NOT NULL CHECK (status IN ('open', 'resolved')),
    channel          TEXT    NOT NULL,
    -- where the customer last wrote from: replies go back there by default
    device           TEXT,
    line             TEXT,
    created_ms       INTEGER NOT NULL,
    -- HLC of the newest timeline entry (sort key of the conversation list)
    last_ms          INTEGER NOT NULL,
    last_c           INTEGER NOT NULL,
    last_preview     TEXT    NOT NULL DEFAULT '',
    -- inbound messages since the last reply or resolve
    unread           INTEGER NOT NULL DEFAULT 0,
    messages         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- At most one open conversation per contact: the projector runs on the one
-- writer, and this index makes a second open conversation impossible anyway.
CREATE UNIQUE INDEX conversation_one_open ON conversation (contact_id) WHERE status = 'open';
CREATE INDEX conversation_activity ON conversation (last_ms DESC, last_c DESC, id DESC);
CREATE INDEX conversation_contact ON conversation (contact_id);

-- One row per timeline entry (the event that made it).
CREATE TABLE timeline_entry (
    event_id        TEXT    PRIMARY KEY,
    conversation_id TEXT    NOT NULL REFERENCES conversation (id),
    at_ms           INTEGER NOT NULL,
    at_c            INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('inbound', 'reply', 'resolved', 'reopened')),
    device          TEXT,
    line            TEXT,
    -- inbound: the sender as received; reply: the destination
    address         TEXT,
    text            TEXT,
    parts           INTEGER,
    incomplete      INTEGER NOT NULL DEFAULT 0,
    sent_at         TEXT,
    author          TEXT,
    -- replies: the command id and the overall delivery state
    command         TEXT    UNIQUE,
    state           TEXT
) WITHOUT ROWID;
CREATE INDEX timeline_conversation ON timeline_entry (conversation_id, at_ms, at_c);

-- Delivery state of each part of a reply (from MessageSent and DeliveryStatus).
CREATE TABLE reply_part (
    command TEXT    NOT NULL,
    part    INTEGER NOT NULL CHECK (part >= 1),
    ref     INTEGER,
    state   TEXT    NOT NULL,
    detail  TEXT,
    PRIMARY KEY (command, part)
) WITHOUT ROWID;

-- Lines each device has used (inbound or outbound): a reply may only name one.
CREATE TABLE device_line (
    device     TEXT    NOT NULL,
    line       TEXT    NOT NULL,
    last_ms    INTEGER NOT NULL,
    PRIMARY KEY (device, line)
) WITHOUT ROWID;

-- Commands not yet confirmed by their appliance (no MessageSent or
-- DeliveryStatus for them ingested). Re-published on the device's Hello and
-- periodically; the appliance acts on a command id once.
CREATE TABLE pending_command (
    id           TEXT    PRIMARY KEY,
    device       TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_sent_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX pending_command_device ON pending_command (device);
