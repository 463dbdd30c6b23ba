-- mgmt-side projections for the SMS loop (issue 4): contacts, identities,
-- conversations, timeline, pending commands. Filled in by the mgmt work.
SELECT 1;
