-- Appliance 3 (combined 15): a sent part is marked superseded when a newer part on its line
-- takes the same TP-MR to the same number, in the transaction that logs the
-- newer MessageSent (appliance/src/sms/db.rs). Deciding it later, by looking
-- for the newer row, lost the older part's `no_report` whenever the newer
-- part's report came (and removed its row) first. Parts waiting at the
-- upgrade are not marked: they end by their line's report window.
ALTER TABLE appl_sms_sent_part ADD COLUMN superseded_by TEXT;
