-- The log's consumers (docs/ARCHITECTURE.md, "Consumers follow the log"):
-- the change sets of mgmt's projection and the consumers' durable cursors.
-- Keeps readers: an older build ignores both tables. Events it stores
-- meanwhile have no change set, and it routes them itself (logging its
-- decisions), so routing, resuming from its cursor later, rightly finds
-- nothing to do for them.

-- What the projector decided about the events of one write request
-- (crossline_core::ChangeSet), written in the same transaction: a JSON array
-- of [pos, change] pairs for the events at positions first_pos..=last_pos.
-- Only requests whose projection changed something have a row.
CREATE TABLE change_set (
    last_pos  INTEGER PRIMARY KEY,
    first_pos INTEGER NOT NULL,
    changes   TEXT    NOT NULL
);

-- Per consumer of the log (routing, ...): the position of the last event it
-- has dealt with. Moves forward only.
CREATE TABLE feed_cursor (
    consumer TEXT    PRIMARY KEY,
    pos      INTEGER NOT NULL CHECK (pos >= 0)
) WITHOUT ROWID;
