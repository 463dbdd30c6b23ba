-- Appliance 2 (combined 13): delivery reports when TP-MR is reused (issue 12).
--
-- TP-MR is one octet: it wraps after 256 submits and many modems restart it
-- at 0 after a reset, so (line, mr) names several sent parts over time. Each
-- sent part now waits for its report in its own row: a report goes to the
-- newest part with its (line, mr) and recipient (`seq` of the MessageSent);
-- older parts it supersedes, and parts past the line's report window, are
-- logged as DeliveryStatus 'no_report' by the SMS loop (appliance/src/sms).
CREATE TABLE appl_sms_sent_part (
    command   TEXT    NOT NULL,
    part      INTEGER NOT NULL CHECK (part >= 1),
    line      TEXT    NOT NULL,
    mr        INTEGER NOT NULL CHECK (mr BETWEEN 0 AND 255),
    -- the destination as sent (compared by its last digits)
    recipient TEXT    NOT NULL,
    -- seq of the MessageSent: a higher seq is a newer send
    seq       INTEGER NOT NULL,
    -- when it was sent (the MessageSent's HLC milliseconds)
    sent_ms   INTEGER NOT NULL,
    PRIMARY KEY (command, part)
) WITHOUT ROWID;
CREATE INDEX appl_sms_sent_part_mr ON appl_sms_sent_part (line, mr, seq);
CREATE INDEX appl_sms_sent_part_age ON appl_sms_sent_part (sent_ms);

-- Parts waiting at the upgrade keep waiting, from now on.
INSERT INTO appl_sms_sent_part (command, part, line, mr, recipient, seq, sent_ms)
    SELECT command, part, line, mr, '', 0, CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM appl_sms_part;
DROP TABLE appl_sms_part;
