-- mgmt version 12: every fact an agent or admin creates is an event in mgmt's log
-- (issue 13). Conversation notes, contact notes, contact tags, contact
-- merges and the routing configuration were tables written directly; they
-- are now projections of mgmt's events (note_added, contact_note_added,
-- contact_tagged, contact_untagged, contacts_merged, contact_unmerged,
-- routing_configured), written by mgmt's projector, so a rebuild from the
-- log gives them back.

-- What each standing merge moved from the merged contact (contact_merge.merged)
-- to its survivor, so that un-merging moves exactly that back: identities
-- (a = kind, b = address), conversations (a = id), contact notes (a = id)
-- and tags (a = tag, b = '1' when the survivor has the tag on its own too).
CREATE TABLE contact_merge_moved (
    merged TEXT NOT NULL,
    item   TEXT NOT NULL CHECK (item IN ('identity', 'conversation', 'note', 'tag')),
    a      TEXT NOT NULL,
    b      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (merged, item, a, b)
) WITHOUT ROWID;

-- The rows written before this version, waiting to enter the log: mgmt
-- appends one event per row at its next start (and deletes the row in the
-- same transaction); its projector then writes the desk tables again. Empty
-- on an appliance and on a new database.
CREATE TABLE legacy_fact (
    n            INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('note', 'contact_note', 'tag', 'merge', 'routing_config')),
    -- note: the conversation; contact_note, tag: the contact; merge: the survivor
    subject      TEXT    NOT NULL,
    -- merge: the merged contact; routing_config: replay_from_seq
    other        TEXT,
    at_ms        INTEGER NOT NULL,
    author       TEXT    NOT NULL DEFAULT '',
    -- note/contact_note: the text; tag: the tag; routing_config: the JSON
    text         TEXT    NOT NULL DEFAULT '',
    mentions     TEXT    NOT NULL DEFAULT ''
);

INSERT INTO legacy_fact (kind, subject, other, at_ms, author, text)
    SELECT 'routing_config', '', CAST(replay_from_seq AS TEXT), created_ms, 'upgrade', config
    FROM routing_config ORDER BY version;
INSERT INTO legacy_fact (kind, subject, other, at_ms, author)
    SELECT 'merge', survivor, merged, at_ms, by FROM contact_merge ORDER BY at_ms, merged;
INSERT INTO legacy_fact (kind, subject, at_ms, author, text)
    SELECT 'tag', contact_id, 0, 'upgrade', tag FROM contact_tag ORDER BY contact_id, tag;
INSERT INTO legacy_fact (kind, subject, at_ms, author, text)
    SELECT 'contact_note', contact_id, at_ms, author, text FROM contact_note ORDER BY at_ms, id;
INSERT INTO legacy_fact (kind, subject, at_ms, author, text, mentions)
    SELECT 'note', conversation_id, at_ms, author, text, mentions
    FROM conversation_note ORDER BY at_ms, id;

DELETE FROM routing_config;
DELETE FROM contact_merge;
DELETE FROM contact_tag;
DELETE FROM contact_note;
DELETE FROM conversation_note;
