-- Base 3 (combined 14, its event-log half): what a receiver keeps of a
-- replicated stamp it did not trust (docs/PROTOCOL.md, "Trust").

-- The stamp an origin gave an event when it was further ahead of this node's
-- clock than the allowed skew, so the event was stored with this node's time
-- (at_ms, at_c) instead. NULL: stored with the origin's own stamp.
ALTER TABLE event ADD COLUMN claimed_ms INTEGER;
ALTER TABLE event ADD COLUMN claimed_c INTEGER;
