-- The receiver's own tables (docs/RECEIVER.md). The receiver's database
-- also carries the appliance schema (migrations/), for its mail outbox and
-- alerts; this set has its own version table, receiver_schema_version.

-- One row: the receiver's identity and the fleet key every enrolled
-- appliance receives (keyed fingerprints of product instances).
CREATE TABLE receiver_identity (
    id         text PRIMARY KEY,
    fleet_key  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    singleton  boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);

-- One-time enrolment tokens, by the SHA-256 of their secret.
CREATE TABLE receiver_tokens (
    id           bigserial PRIMARY KEY,
    secret_sha256 text NOT NULL UNIQUE,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    used_by      text
);

-- Enrolled appliances.
CREATE TABLE receiver_appliances (
    id             bigserial PRIMARY KEY,
    appliance_id   text NOT NULL UNIQUE,
    upload_key     bytea NOT NULL,      -- Ed25519 public key
    report_key     text NOT NULL,       -- armored OpenPGP public key (signs the bundles)
    version        text NOT NULL DEFAULT '',
    enrolled_at    timestamptz NOT NULL,
    revoked_at     timestamptz,
    last_heartbeat timestamptz,
    heartbeat      jsonb                -- the last heartbeat's body
);

-- Nonces of accepted signed requests (replay guard), kept past MaxSkew.
CREATE TABLE receiver_nonces (
    appliance bigint NOT NULL REFERENCES receiver_appliances (id) ON DELETE CASCADE,
    nonce     text NOT NULL,
    seen_at   timestamptz NOT NULL,
    PRIMARY KEY (appliance, nonce)
);

-- Every bundle version received. state: verified | failed. A verified
-- version replaces the earlier versions of its appliance and month
-- (replaced_by, with a receiver_audit row).
CREATE TABLE receiver_bundles (
    id            bigserial PRIMARY KEY,
    appliance     bigint NOT NULL REFERENCES receiver_appliances (id),
    month         text NOT NULL,
    version       int NOT NULL,
    contract      text NOT NULL DEFAULT '',  -- the manifest's contract_id
    sha256        text NOT NULL,
    size          bigint NOT NULL,
    received_at   timestamptz NOT NULL,
    state         text NOT NULL,
    error         text NOT NULL DEFAULT '',
    manifest      jsonb,
    data          bytea NOT NULL,     -- the encrypted bundle as received
    replaced_by   bigint REFERENCES receiver_bundles (id),
    merged_at     timestamptz,
    UNIQUE (appliance, month, version)
);
CREATE INDEX receiver_bundles_month ON receiver_bundles (month, appliance);

-- The Monthly_Usage.tsv lines of each verified bundle. identity is the
-- fleet fingerprint(s) of the line's Product Host, or "host:" and the
-- Product Host when the manifest names none.
CREATE TABLE receiver_lines (
    bundle          bigint NOT NULL REFERENCES receiver_bundles (id) ON DELETE CASCADE,
    product         text NOT NULL,
    edition         text NOT NULL,
    metric          text NOT NULL,
    unit            text NOT NULL,
    quantity        numeric NOT NULL,
    product_host    text NOT NULL,
    product_version text NOT NULL,
    customer        text NOT NULL,
    identity        text NOT NULL
);
CREATE INDEX receiver_lines_bundle ON receiver_lines (bundle);

-- What happened: enrolments, refusals, replacements, revocations.
CREATE TABLE receiver_audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    appliance text NOT NULL DEFAULT '',
    month     text NOT NULL DEFAULT '',
    event     text NOT NULL,
    detail    text NOT NULL DEFAULT ''
);
