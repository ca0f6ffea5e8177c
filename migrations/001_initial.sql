-- usagemeter schema, version 1. See DESIGN.md ("Storage: spans, not hourly rows").

CREATE TABLE appliance (
    id           uuid PRIMARY KEY,
    created      timestamptz NOT NULL DEFAULT now(),
    singleton    boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton),
    key_check    bytea,            -- a known value sealed with the credentials key: detects a wrong key file
    contract_id  text,
    program      text CHECK (program IN ('rental', 'sovereign-cloud')),
    registered_at timestamptz
);

CREATE TABLE products (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL,
    endpoint       text NOT NULL,
    username       text NOT NULL DEFAULT '',
    credentials    bytea,                       -- AES-256-GCM sealed; never clear text
    thumbprint     text NOT NULL DEFAULT '',    -- accepted SHA-256 certificate thumbprint
    instance_id    text NOT NULL DEFAULT '',    -- identity the product reports (vCenter instanceUuid)
    paired_id      bigint REFERENCES products (id),
    options        jsonb NOT NULL DEFAULT '{}',
    active         boolean NOT NULL DEFAULT true,
    deactivated_at timestamptz,                 -- set when deactivated after failing too long; retried daily
    removed_at     timestamptz,                 -- removed by the admin; kept for its billed history
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, endpoint)
);
-- The same product added twice under two addresses is one product.
CREATE UNIQUE INDEX products_identity ON products (kind, instance_id) WHERE instance_id <> '';

-- Journal and lock of collections: one row per (product, hour).
CREATE TABLE collection_runs (
    product_id  bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    hour        timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    lease_until timestamptz,
    owner       text,
    started_at  timestamptz,
    finished_at timestamptz,
    error       text,
    objects     integer,
    PRIMARY KEY (product_id, hour),
    CHECK (date_trunc('hour', hour) = hour)
);
CREATE INDEX collection_runs_state ON collection_runs (state, hour);

-- One row per run of consecutive hours in which an object's quantity, unit,
-- edition and dims stayed the same (state_hash covers all four).
CREATE TABLE usage_spans (
    id         bigserial PRIMARY KEY,
    product_id bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    metric     text NOT NULL,
    object_key text NOT NULL,
    first_hour timestamptz NOT NULL,
    last_hour  timestamptz NOT NULL,
    quantity   double precision NOT NULL,
    unit       text NOT NULL,
    edition    text NOT NULL DEFAULT '',
    dims_hash  bytea NOT NULL,
    dims       jsonb NOT NULL DEFAULT '{}',
    CHECK (last_hour >= first_hour)
);
-- Extending a span only changes last_hour, which no index covers: the hourly
-- extension of every unchanged object is then a HOT update (no index writes),
-- and fillfactor leaves room on each page for the new row versions.
ALTER TABLE usage_spans SET (fillfactor = 70);
-- The merge finds an object's latest span starting at or before H-1.
CREATE INDEX usage_spans_object ON usage_spans (product_id, metric, object_key, first_hour);
-- A late hour joins spans starting at H+1.
CREATE INDEX usage_spans_first ON usage_spans (product_id, first_hour);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,                 -- alert, report, ...
    recipients   text[] NOT NULL CHECK (cardinality(recipients) > 0),
    subject      text NOT NULL,
    body_text    text NOT NULL,
    body_html    text NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt) WHERE state IN ('queued', 'sending');

CREATE TABLE outbox_attachments (
    outbox_id    bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    data         bytea NOT NULL,
    PRIMARY KEY (outbox_id, position)
);

-- Alerts, deduplicated by key: at most one open alert per key.
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    key              text NOT NULL,
    kind             text NOT NULL,
    product_id       bigint REFERENCES products (id) ON DELETE SET NULL,
    opened_at        timestamptz NOT NULL,
    last_notified_at timestamptz,
    resolved_at      timestamptz,
    last_error       text NOT NULL DEFAULT '',
    failures         integer NOT NULL DEFAULT 0,
    details          jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX alerts_open_key ON alerts (key) WHERE resolved_at IS NULL;

CREATE TABLE reports (
    id            bigserial PRIMARY KEY,
    month         date NOT NULL CHECK (extract(day FROM month) = 1),
    version       integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rules_version text NOT NULL,
    figures_sha256 text NOT NULL,     -- over the figures: unchanged data gives the same version
    bundle_sha256 text NOT NULL,
    path          text NOT NULL,
    channels      jsonb NOT NULL DEFAULT '{}',   -- delivery status per channel
    UNIQUE (month, version)
);

CREATE TABLE customer_rules (
    id          bigserial PRIMARY KEY,
    label       text NOT NULL,
    object_type text NOT NULL CHECK (object_type IN ('vcenter', 'datacenter', 'cluster', 'host', 'resource-pool', 'folder', 'vcd', 'vcd-org')),
    object_name text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (object_type, object_name)
);

-- The local reverse map of anonymised names. It never leaves the appliance.
CREATE TABLE anon_map (
    hash       text PRIMARY KEY,
    kind       text NOT NULL,
    value      text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);

-- Licence keys seen on products, with the category the admin sets.
CREATE TABLE licenses (
    license_key text PRIMARY KEY,
    edition     text NOT NULL DEFAULT '',
    category    text NOT NULL DEFAULT 'rental' CHECK (category IN ('rental', 'perpetual', 'demo')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
