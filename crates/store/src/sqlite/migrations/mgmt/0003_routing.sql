-- mgmt 3 (combined 5): mgmt's routing configuration (issue 5). Not a projection: each
-- PUT /api/v1/routing/config adds a row; the newest row is in force.
-- Routing decisions themselves are events (kind 'routing_decision', origin
-- mgmt); at start mgmt replays those with seq >= replay_from_seq under the
-- newest config (crossline_mgmt::routing). replay_from_seq moves forward
-- only when a config is installed with ?reset=true (routing starts afresh;
-- older decisions stay in the log for audit and metrics).
CREATE TABLE routing_config (
    version         INTEGER PRIMARY KEY,
    -- RoutingConfig as JSON
    config          TEXT    NOT NULL,
    replay_from_seq INTEGER NOT NULL CHECK (replay_from_seq >= 1),
    created_ms      INTEGER NOT NULL
);
