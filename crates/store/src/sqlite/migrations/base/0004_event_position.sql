-- A local position for every stored event (docs/ARCHITECTURE.md,
-- "Consumers follow the log"). Keeps readers: an older build inserts
-- without naming `pos`, and SQLite gives the row max(pos) + 1 all the same.
--
-- `pos` is this database's own order of stored events (appended or ingested,
-- every origin), increasing with every commit: the writer is the only one
-- inserting, and a row gets max(pos) + 1. It is the INTEGER PRIMARY KEY, so
-- the rowid itself (no extra index, and a VACUUM cannot renumber it, as it may
-- an implicit rowid). The table is rebuilt once to declare it; existing rows
-- keep their insertion order (their rowid).
CREATE TABLE event_new (
    pos          INTEGER PRIMARY KEY,
    origin       TEXT    NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    id           BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    at_ms        INTEGER NOT NULL CHECK (at_ms >= 0),
    at_c         INTEGER NOT NULL CHECK (at_c >= 0),
    conversation BLOB    CHECK (conversation IS NULL OR length(conversation) = 16),
    kind         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    claimed_ms   INTEGER,
    claimed_c    INTEGER,
    UNIQUE (origin, seq)
);
INSERT INTO event_new (pos, origin, seq, id, at_ms, at_c, conversation, kind, body,
                       claimed_ms, claimed_c)
    SELECT rowid, origin, seq, id, at_ms, at_c, conversation, kind, body, claimed_ms, claimed_c
    FROM event ORDER BY rowid;
DROP TABLE event;
ALTER TABLE event_new RENAME TO event;
CREATE INDEX event_at ON event (at_ms, at_c);
CREATE INDEX event_conversation ON event (conversation, at_ms, at_c)
    WHERE conversation IS NOT NULL;
CREATE TRIGGER event_no_update BEFORE UPDATE ON event
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: UPDATE of the event table is refused');
END;
CREATE TRIGGER event_no_delete BEFORE DELETE ON event
WHEN NOT EXISTS (SELECT 1 FROM event_prune p WHERE p.origin = OLD.origin AND OLD.seq <= p.upto)
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: DELETE from the event table is refused');
END;
