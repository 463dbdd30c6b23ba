-- Base 2 (combined 12): retention of acknowledged local events (the appliance's log,
-- docs/APPLIANCE.md "Retention"). Events stay immutable; the only DELETE the
-- trigger lets through is of a local event at or below the mark the store's
-- prune operation sets in the same transaction (never above what every peer
-- acknowledged). mgmt never prunes.
CREATE TABLE event_prune (
    origin TEXT    PRIMARY KEY,
    upto   INTEGER NOT NULL CHECK (upto >= 0)
) WITHOUT ROWID;

DROP TRIGGER event_no_delete;
CREATE TRIGGER event_no_delete BEFORE DELETE ON event
WHEN NOT EXISTS (SELECT 1 FROM event_prune p WHERE p.origin = OLD.origin AND OLD.seq <= p.upto)
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: DELETE from the event table is refused');
END;
