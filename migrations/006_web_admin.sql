-- The web console and REST API (issue 15): local admin accounts, their
-- sessions, API tokens for scripts, and the audit log of every change.
--
-- Secrets are never stored: a password is an argon2id hash (PHC string),
-- a session or token is the SHA-256 of the random value the client holds.

CREATE TABLE admin_users (
    id                  bigserial PRIMARY KEY,
    username            text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash       text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    -- Login throttling: failures since the last success, and the lock-out
    -- they caused.
    failed_logins       integer NOT NULL DEFAULT 0,
    last_failed_at      timestamptz,
    locked_until        timestamptz,
    last_login_at       timestamptz
);

CREATE TABLE admin_sessions (
    token_hash   bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL, -- absolute expiry
    remote       text NOT NULL DEFAULT ''
);
CREATE INDEX admin_sessions_user ON admin_sessions (user_id);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL, -- the first characters, to recognise a token
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Who changed what, when: written in the same code path as the change
-- (console, API and the admin command). Never updated; retention keeps it.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,  -- an admin's username, or "cli:<os user>"
    action  text NOT NULL,  -- e.g. product.add, report.generate, login.failed
    target  text NOT NULL DEFAULT '',
    detail  text NOT NULL DEFAULT '',
    remote  text NOT NULL DEFAULT '', -- client address for web requests
    ok      boolean NOT NULL DEFAULT true
);
CREATE INDEX audit_log_at ON audit_log (at DESC);

-- The collection journal's pages, newest hour first across products, or
-- of one state (failed runs): walked backwards, never sorted.
CREATE INDEX collection_runs_hour ON collection_runs (hour, product_id);
DROP INDEX collection_runs_state;
CREATE INDEX collection_runs_state ON collection_runs (state, hour, product_id);
