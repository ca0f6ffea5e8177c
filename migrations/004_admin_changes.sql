-- Admin choices take effect from their hour (METERING.md, issue 17).
--
-- Evaluation licences are a category like the others: excluded by default,
-- overridable. Keys whose edition is vSphere's evaluation ("eval") were
-- always excluded, whatever their category said; they become 'evaluation'
-- so that what is reported does not change.
ALTER TABLE licenses DROP CONSTRAINT licenses_category_check;
ALTER TABLE licenses ADD CONSTRAINT licenses_category_check CHECK (category IN ('rental', 'perpetual', 'demo', 'evaluation'));
UPDATE licenses SET category = 'evaluation' WHERE edition = 'eval';

-- Every admin change of a setting that decides billing, with the hour from
-- which it applies: a licence key's category (subject = the key), a
-- vCenter's VCF edition or Tanzu metric (subject = the product id). The
-- value of a setting in hour H is the new_value of the latest change with
-- from_hour <= H, else the old_value of the earliest change after H, else
-- the current value (licenses.category, products.options): hours before
-- a change keep what was in force then.
CREATE TABLE admin_changes (
    id         bigserial PRIMARY KEY,
    setting    text NOT NULL CHECK (setting IN ('license_category', 'vcf_edition', 'tanzu_metric')),
    subject    text NOT NULL,
    old_value  text NOT NULL,
    new_value  text NOT NULL,
    from_hour  timestamptz NOT NULL CHECK (date_trunc('hour', from_hour) = from_hour),
    made_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_changes_subject ON admin_changes (setting, subject, from_hour);

-- The version a product reported when it was added (vCenter about.version
-- and build, Cloud Director, NSX): the report's Product Version column.
ALTER TABLE products ADD COLUMN version text NOT NULL DEFAULT '';

-- Hours recorded with `collect --hour H --backfill`: the state collected
-- later, recorded as an hour nobody collected in time.
ALTER TABLE collection_runs ADD COLUMN backfilled boolean NOT NULL DEFAULT false;
