-- Appliance 1 (combined 3): appliance-side tables for the SMS loop (issue 4). Written by
-- crossline-appliance (appliance/src/sms/db.rs), partly by its projector in the
-- same transaction as the events they describe. See docs/APPLIANCE.md.

-- Received messages by the modem driver's dedup key: a key recorded here has
-- its MessageReceived event at `seq` and is never appended again.
CREATE TABLE appl_sms_in (
    line TEXT    NOT NULL,
    key  TEXT    NOT NULL,
    seq  INTEGER NOT NULL CHECK (seq >= 1),
    PRIMARY KEY (line, key)
) WITHOUT ROWID;

-- Commands from mgmt (and the appliance's own offline auto-replies),
-- persisted before acting. The id is the idempotency key. `state` is
-- 'sending' from the moment the appliance may act on it until its outcome
-- event is appended ('sent', 'failed' or 'unknown'); a 'sending' row found at
-- start-up is a crash mid-send and becomes 'unknown', never sent again.
-- 'queued': the appliance stopped before the modem took any of it (nothing
-- was sent); it is sent after the next start.
CREATE TABLE appl_command (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('sending', 'queued', 'sent', 'failed', 'unknown')),
    auto_reply  INTEGER NOT NULL DEFAULT 0 CHECK (auto_reply IN (0, 1)),
    received_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX appl_command_state ON appl_command (state);

-- Parts of sent messages waiting for their delivery report, by the network's
-- message reference (TP-MR, which wraps at 256: the newest send wins).
CREATE TABLE appl_sms_part (
    line    TEXT    NOT NULL,
    mr      INTEGER NOT NULL CHECK (mr BETWEEN 0 AND 255),
    command TEXT    NOT NULL,
    part    INTEGER NOT NULL CHECK (part >= 1),
    PRIMARY KEY (line, mr)
) WITHOUT ROWID;

-- Offline auto-replies: when each customer last got one (one per window).
CREATE TABLE appl_auto_reply (
    customer TEXT    PRIMARY KEY,
    at_ms    INTEGER NOT NULL
) WITHOUT ROWID;
