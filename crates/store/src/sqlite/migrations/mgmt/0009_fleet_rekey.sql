-- mgmt 9 (combined 11): re-key pushed to the appliance (docs/FLEET.md, "Re-key"): the
-- new secret waits here until the device has connected with it; until then
-- both the old secret (table device) and the new one are accepted.
CREATE TABLE fleet_rekey (
    device       TEXT    PRIMARY KEY,
    id           TEXT    NOT NULL,         -- this re-key (UUIDv7), in Rekey and Rekeyed
    secret       TEXT,                     -- the new secret in clear, until the device connects with it
    secret_hash  TEXT    NOT NULL,         -- its $7$ hash
    requested_ms INTEGER NOT NULL,
    sent_ms      INTEGER,
    stored_ms    INTEGER,                  -- the appliance stored it
    done_ms      INTEGER,                  -- it connected with it: the old secret is refused
    error        TEXT                      -- why the appliance could not store it
) WITHOUT ROWID;
