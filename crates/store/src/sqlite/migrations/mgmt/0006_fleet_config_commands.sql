-- mgmt 6 (combined 8): fleet configuration (desired vs reported, versioned) and
-- remote fleet commands with their results (docs/FLEET.md).

-- Every configuration pushed; the version is fleet-wide and only grows.
CREATE TABLE fleet_config (
    version     INTEGER PRIMARY KEY AUTOINCREMENT,
    target_kind TEXT    NOT NULL CHECK (target_kind IN ('device', 'group', 'tag')),
    target      TEXT    NOT NULL,
    settings    TEXT    NOT NULL,          -- ApplianceSettings (JSON)
    created_ms  INTEGER NOT NULL
);

-- Per device: what it should run, what it says it runs, what it refused.
CREATE TABLE fleet_device_config (
    device           TEXT    PRIMARY KEY,
    desired_version  INTEGER,
    applied_version  INTEGER,
    rejected_version INTEGER,
    error            TEXT,
    reported_ms      INTEGER,
    published_ms     INTEGER
) WITHOUT ROWID;

CREATE TABLE fleet_command (
    id         TEXT    PRIMARY KEY,        -- UUIDv7, the idempotency key
    device     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,           -- reboot, restart_modem, test_sms, ussd, collect_logs, rescan_modems
    payload    TEXT    NOT NULL,           -- the Command as published (JSON)
    created_ms INTEGER NOT NULL,
    sent_ms    INTEGER,
    result_ms  INTEGER,
    ok         INTEGER,
    output     TEXT
) WITHOUT ROWID;
CREATE INDEX fleet_command_by_device ON fleet_command (device, created_ms);
CREATE INDEX fleet_command_open ON fleet_command (device) WHERE result_ms IS NULL;
