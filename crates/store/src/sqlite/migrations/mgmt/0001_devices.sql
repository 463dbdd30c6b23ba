-- mgmt 1 (combined 2): mgmt's registry of devices and their credentials.
CREATE TABLE device (
    id           TEXT    PRIMARY KEY,
    secret_hash  TEXT    NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    online       INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    last_seen_ms INTEGER,
    created_ms   INTEGER NOT NULL
) WITHOUT ROWID;
