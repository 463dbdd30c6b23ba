-- Appliance-side tables for the SMS loop (issue 4): persisted commands,
-- received-message dedup keys. Filled in by the appliance work.
SELECT 1;
