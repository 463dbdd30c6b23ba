-- mgmt 4 (combined 6): fleet management at mgmt (see docs/FLEET.md): enrollment
-- queue, device metadata (name, site, group, tags), latest telemetry,
-- telemetry history (raw and 5-minute averages) and alerts.

-- One row per appliance that asked to enroll with the bootstrap token.
CREATE TABLE fleet_enrollment (
    id            TEXT    PRIMARY KEY,      -- enrollment id (32 hex, the appliance's MQTT client id)
    serial        TEXT,
    macs          TEXT    NOT NULL,         -- JSON array
    imeis         TEXT    NOT NULL,         -- JSON array
    hostname      TEXT,
    software      TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    device        TEXT,                     -- device id assigned on approval
    -- The issued secret in clear, only until the device first connects with
    -- it (then NULL): mgmt must be able to answer a repeated request.
    issued_secret TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    decided_ms    INTEGER
) WITHOUT ROWID;
CREATE INDEX fleet_enrollment_by_state ON fleet_enrollment (state, last_seen_ms);

-- What the admin knows about a device beyond its credential (table device).
CREATE TABLE fleet_device (
    id           TEXT    PRIMARY KEY,
    name         TEXT,
    site         TEXT,
    grp          TEXT,
    serial       TEXT,
    enrollment   TEXT,
    telemetry    TEXT,                     -- last sample (JSON)
    telemetry_ms INTEGER
) WITHOUT ROWID;

CREATE TABLE fleet_tag (
    device TEXT NOT NULL,
    tag    TEXT NOT NULL,
    PRIMARY KEY (device, tag)
) WITHOUT ROWID;
CREATE INDEX fleet_tag_by_tag ON fleet_tag (tag, device);

-- Telemetry history: raw samples for a day, 5-minute aggregates for 30 days.
-- series: cpu_temp_c, load1, mem_used_pct, disk_used_pct, signal_dbm:<line>.
CREATE TABLE fleet_metric_raw (
    device TEXT    NOT NULL,
    series TEXT    NOT NULL,
    at_ms  INTEGER NOT NULL,
    value  REAL    NOT NULL
);
CREATE INDEX fleet_metric_raw_by_series ON fleet_metric_raw (device, series, at_ms);
CREATE INDEX fleet_metric_raw_by_time ON fleet_metric_raw (at_ms);

CREATE TABLE fleet_metric_5m (
    device    TEXT    NOT NULL,
    series    TEXT    NOT NULL,
    bucket_ms INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    sum       REAL    NOT NULL,
    min       REAL    NOT NULL,
    max       REAL    NOT NULL,
    PRIMARY KEY (device, series, bucket_ms)
) WITHOUT ROWID;

-- Alerts: one open row per (device, kind, subject) at most.
CREATE TABLE fleet_alert (
    id         INTEGER PRIMARY KEY,
    device     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,            -- offline, signal_low, sim_missing, not_registered, disk_full, modem_restarts
    subject    TEXT    NOT NULL DEFAULT '', -- the line for per-modem alerts
    detail     TEXT    NOT NULL,
    raised_ms  INTEGER NOT NULL,
    cleared_ms INTEGER
);
CREATE UNIQUE INDEX fleet_alert_open ON fleet_alert (device, kind, subject) WHERE cleared_ms IS NULL;
CREATE INDEX fleet_alert_by_device ON fleet_alert (device, raised_ms);
