-- mgmt 13: a contact identity may be a `handle`: an account on a channel
-- that is not the phone network (a web chat visitor, a messenger user), as
-- that channel's adapter names it (crossline_mgmt::services::channels).
-- SQLite cannot change a CHECK in place: the table is rebuilt, rows kept.
-- Keeps readers: an older build reads a handle row as a short code it
-- cannot match, and writes only the kinds it knows.
CREATE TABLE contact_identity_new (
    kind       TEXT NOT NULL CHECK (kind IN ('phone', 'short', 'alphanumeric', 'handle')),
    address    TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contact (id),
    PRIMARY KEY (kind, address)
) WITHOUT ROWID;
INSERT INTO contact_identity_new (kind, address, contact_id)
    SELECT kind, address, contact_id FROM contact_identity;
DROP TABLE contact_identity;
ALTER TABLE contact_identity_new RENAME TO contact_identity;
CREATE INDEX contact_identity_contact ON contact_identity (contact_id);
