-- mgmt 7 (combined 9): contact merges done from the desk (mgmt's web UI): contact `merged` was
-- folded into `survivor` by `by`. The merge itself moves the merged
-- contact's identities, conversations, tags and notes to the survivor in
-- the same transaction (crossline_mgmt::conversations::merge_contacts);
-- this table is the durable record of who did it and when.
CREATE TABLE contact_merge (
    merged   TEXT    PRIMARY KEY,
    survivor TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    by       TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX contact_merge_survivor ON contact_merge (survivor);

-- The identity a conversation is with, when its contact has several (after
-- a merge): replies go there. Conversations without a row use their
-- contact's only identity.
CREATE TABLE conversation_identity (
    conversation_id TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    address         TEXT NOT NULL
) WITHOUT ROWID;
