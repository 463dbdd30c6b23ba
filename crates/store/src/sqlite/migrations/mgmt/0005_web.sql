-- mgmt 5 (combined 7): mgmt's web UI: user accounts, server-side sessions, the audit log, and
-- the desk's own records (private notes, contact tags and notes, canned
-- responses). None of these are projections of events.

CREATE TABLE web_user (
    id            INTEGER PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    -- argon2id PHC string
    password_hash TEXT NOT NULL,
    -- routing agent id this user works as (the engine's AgentId)
    agent_id      TEXT NOT NULL,
    -- comma-separated sites and teams the user may see; both empty: all
    sites         TEXT NOT NULL DEFAULT '',
    teams         TEXT NOT NULL DEFAULT '',
    -- en, ru, uk, ro; NULL: from the browser's Accept-Language
    locale        TEXT,
    time_zone     TEXT NOT NULL DEFAULT 'UTC',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL
);

CREATE TABLE web_session (
    -- SHA-256 (hex) of the cookie's random token; the token itself is never stored
    token_hash   TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES web_user (id) ON DELETE CASCADE,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    user_agent   TEXT
);
CREATE INDEX web_session_user ON web_session (user_id);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    -- a user's login, `api-token`, or `system`
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at_ms);

CREATE TABLE conversation_note (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    at_ms           INTEGER NOT NULL,
    author          TEXT NOT NULL,
    text            TEXT NOT NULL,
    -- comma-separated logins mentioned with @login
    mentions        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX conversation_note_conv ON conversation_note (conversation_id, at_ms);

CREATE TABLE contact_tag (
    contact_id TEXT NOT NULL,
    tag        TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tag_tag ON contact_tag (tag);

CREATE TABLE contact_note (
    id         INTEGER PRIMARY KEY,
    contact_id TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    author     TEXT NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX contact_note_contact ON contact_note (contact_id, at_ms);

CREATE TABLE canned_response (
    id    INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    text  TEXT NOT NULL
);
