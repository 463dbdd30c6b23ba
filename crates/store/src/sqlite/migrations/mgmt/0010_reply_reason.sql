-- mgmt 10 (combined 13, its mgmt half): why a reply failed.
--
-- mgmt: the reason a reply as a whole failed or is unknown, when no part
-- is named (an unknown line, a restart mid-send); per-part reasons are in
-- reply_part.detail.
ALTER TABLE timeline_entry ADD COLUMN reason TEXT;
