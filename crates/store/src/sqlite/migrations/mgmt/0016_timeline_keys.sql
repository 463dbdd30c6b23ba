-- mgmt 16: integer keys for the timeline (issue 13, the ingest's write cost).
-- Every inbound message adds one entry to the index of its conversation's
-- timeline, at a random place (customers write in any order), so each group
-- commit rewrites, and the WAL checkpoint copies back, about one page of that
-- index per message. Its entries were (conversation id, stamp, event id): two
-- 36-character texts; now they are (conversation number, stamp, row number),
-- about a quarter of the size, so a page holds four times as many and a
-- group touches a quarter of the pages. Does not keep readers: an older
-- build would insert timeline entries without `conv`.

-- A conversation's number: its order of creation (ids are UUIDv7 texts of
-- the creating event, so they sort by creation), assigned by the projection
-- as the largest number plus one.
ALTER TABLE conversation ADD COLUMN n INTEGER;
UPDATE conversation SET n = o.k
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS k FROM conversation) AS o
    WHERE o.id = conversation.id;
CREATE UNIQUE INDEX conversation_n ON conversation (n);

-- The timeline as a table with row numbers (entries are appended in the
-- log's order), its conversation also by number.
CREATE TABLE timeline_entry_new (
    n               INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    conversation_id TEXT    NOT NULL REFERENCES conversation (id),
    -- conversation.n of conversation_id
    conv            INTEGER NOT NULL,
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
    command         TEXT,
    state           TEXT,
    reason          TEXT
);
INSERT INTO timeline_entry_new (event_id, conversation_id, conv, at_ms, at_c, kind, device,
                                line, address, text, parts, incomplete, sent_at, author,
                                command, state, reason)
    SELECT t.event_id, t.conversation_id, c.n, t.at_ms, t.at_c, t.kind, t.device, t.line,
           t.address, t.text, t.parts, t.incomplete, t.sent_at, t.author, t.command, t.state,
           t.reason
    FROM timeline_entry t JOIN conversation c ON c.id = t.conversation_id
    ORDER BY t.event_id;
DROP TABLE timeline_entry;
ALTER TABLE timeline_entry_new RENAME TO timeline_entry;
CREATE UNIQUE INDEX timeline_command ON timeline_entry (command) WHERE command IS NOT NULL;
CREATE INDEX timeline_conversation ON timeline_entry (conv, at_ms, at_c);
