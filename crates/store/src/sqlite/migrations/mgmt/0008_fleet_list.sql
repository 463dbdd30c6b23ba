-- mgmt 8 (combined 10): the fleet console's list is paged, filtered and sorted in SQL
-- (docs/FLEET.md, "Console"): the lines of each device (operator, IMEI) as
-- rows, and indexes for the filters and sort orders.

-- Each device's modem lines as of its latest telemetry sample.
CREATE TABLE fleet_line (
    device   TEXT NOT NULL,
    line     TEXT NOT NULL,
    operator TEXT,
    imei     TEXT,
    PRIMARY KEY (device, line)
) WITHOUT ROWID;
CREATE INDEX fleet_line_by_operator ON fleet_line (operator, device);
CREATE INDEX fleet_line_by_imei ON fleet_line (imei, device);

INSERT OR IGNORE INTO fleet_line (device, line, operator, imei)
SELECT f.id, json_extract(m.value, '$.line'), json_extract(m.value, '$.operator'),
       json_extract(m.value, '$.imei')
FROM fleet_device f, json_each(f.telemetry, '$.modems') m
WHERE f.telemetry IS NOT NULL AND json_valid(f.telemetry)
  AND json_extract(m.value, '$.line') IS NOT NULL;

CREATE INDEX fleet_device_by_site ON fleet_device (site, id);
CREATE INDEX fleet_device_by_name ON fleet_device (name, id);
CREATE INDEX device_by_last_seen ON device (last_seen_ms, id);
