-- Base 1 (combined 1): the append-only event log, per-origin replication state and the
-- appliance outbox cursor.

-- One immutable fact per row. (origin, seq) is gapless per origin: the writer
-- only ever stores seq = contiguous(origin) + 1.
CREATE TABLE event (
    origin       TEXT    NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    -- UUIDv7, 16 bytes big-endian
    id           BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    -- hybrid logical clock: wall milliseconds and logical counter
    at_ms        INTEGER NOT NULL CHECK (at_ms >= 0),
    at_c         INTEGER NOT NULL CHECK (at_c >= 0),
    conversation BLOB    CHECK (conversation IS NULL OR length(conversation) = 16),
    -- EventBody::kind(), for SQL filters without parsing JSON
    kind         TEXT    NOT NULL,
    -- EventBody as JSON
    body         TEXT    NOT NULL,
    UNIQUE (origin, seq)
);
CREATE INDEX event_at ON event (at_ms, at_c);
CREATE INDEX event_conversation ON event (conversation, at_ms, at_c)
    WHERE conversation IS NOT NULL;

-- Events are facts: nothing may change or remove one.
CREATE TRIGGER event_no_update BEFORE UPDATE ON event
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: UPDATE of the event table is refused');
END;
CREATE TRIGGER event_no_delete BEFORE DELETE ON event
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: DELETE from the event table is refused');
END;

-- Highest contiguous seq stored per origin (the local node included), updated
-- in the same transaction as the events.
CREATE TABLE replica (
    origin     TEXT    PRIMARY KEY,
    contiguous INTEGER NOT NULL CHECK (contiguous >= 0)
) WITHOUT ROWID;

-- The outbox: per peer, the highest local seq it acknowledged. The unacked
-- suffix of the local log is what is still to send. Never moves backwards.
CREATE TABLE outbox_cursor (
    peer  TEXT    PRIMARY KEY,
    acked INTEGER NOT NULL CHECK (acked >= 0)
) WITHOUT ROWID;
