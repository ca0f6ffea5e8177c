-- Spans stored by object, their dims once (issue 19).
--
-- usage_spans repeated, in every span of every VM, its key and all its dims
-- (names, placement, the host's licence), about 1,100 bytes a span. Now:
--
--   span_objects  one row per (product, metric, object): the bigint id the
--                 spans refer to, and the object's latest span, extended in
--                 place every hour (a HOT update: no index covers its
--                 columns, and fillfactor leaves every page room for the
--                 next version of each row);
--   spans         the object's earlier spans, closed: written once when the
--                 object changes, never updated but by a late hour, packed
--                 (fillfactor 100) and indexed by a BRIN range of last_hour
--                 only (a month's report and retention read them by time;
--                 the merge reads an object's latest span from span_objects);
--   span_states   unit, edition and the dims of the object's host and
--                 product (host, cluster, datacenter, vCenter, the host's
--                 licence key, edition and name, ...): shared by every VM of
--                 a host, once each;
--   span_names    the other dims, the object's own (a VM's name, folder,
--                 resource pool, org): a row per object, shared by all its
--                 spans while they do not change.
--
-- Which dims keys are the host's is span_place_keys(); a key it does not
-- name is the object's own. Customer rules on an org, folder or resource
-- pool read span_names, the others span_states, which also says whether a
-- span is reportable (its licence): the order of precedence of customer
-- rules (store.CustomerObjectTypes) puts the first three first.
--
-- usage_spans becomes a view of the same rows with the same columns, which
-- accepts INSERT, UPDATE and DELETE (tests and tools write spans through
-- it; store.ImportSpans files many at once).

CREATE FUNCTION span_place_keys() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT ARRAY['host', 'cluster', 'datacenter', 'vcenter', 'vcenter_uuid', 'vcd',
	             'license_key', 'license_edition', 'license_name', 'not_reportable',
	             'nsx', 'nsx_license', 'srm', 'vcda', 'horizon', 'pod', 'farm', 'farm_type',
	             'desktop_pool', 'pool_type', 'daas', 'usage_model', 'rules_version']
$$;

-- The placement part and the own part of a span's dims (dims that are not
-- an object, such as a JSON null, are none).
CREATE FUNCTION span_place(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(d) = 'object' THEN d - ARRAY(SELECT jsonb_object_keys(d - span_place_keys())) ELSE '{}' END
$$;
CREATE FUNCTION span_own(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(d) = 'object' THEN d - span_place_keys() ELSE '{}' END
$$;

-- hash identifies a row by its content (jsonb text is canonical: keys
-- sorted, so equal dims give equal text).
CREATE TABLE span_states (
    id      serial PRIMARY KEY,
    hash    bytea NOT NULL UNIQUE,  -- sha256(unit NUL edition NUL dims)
    unit    text NOT NULL,
    edition text NOT NULL,
    dims    jsonb NOT NULL
);
CREATE TABLE span_names (
    id   serial PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,     -- sha256(dims)
    dims jsonb NOT NULL
);

CREATE FUNCTION span_state_hash(unit text, edition text, dims jsonb) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT sha256(convert_to(unit || chr(1) || edition || chr(1) || dims::text, 'UTF8'))
$$;
CREATE FUNCTION span_names_hash(dims jsonb) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT sha256(convert_to(dims::text, 'UTF8'))
$$;

CREATE TABLE span_objects (
    id         bigserial PRIMARY KEY,
    product_id bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    metric     text NOT NULL,
    object_key text NOT NULL,
    -- The latest span of the object.
    first_hour timestamptz NOT NULL,
    last_hour  timestamptz NOT NULL,
    quantity   double precision NOT NULL,
    state_id   integer NOT NULL REFERENCES span_states (id),
    names_id   integer NOT NULL REFERENCES span_names (id),
    hash       bytea,                -- store.StateHash of the latest span; NULL when unknown (compared by content then)
    UNIQUE (product_id, metric, object_key),
    CHECK (last_hour >= first_hour)
) WITH (fillfactor = 50);

CREATE TABLE spans (
    object_id  bigint NOT NULL,      -- span_objects (id); no foreign key: deleting objects deletes their spans by time (store.Retain)
    first_hour timestamptz NOT NULL,
    last_hour  timestamptz NOT NULL,
    quantity   double precision NOT NULL,
    state_id   integer NOT NULL,
    names_id   integer NOT NULL,
    CHECK (last_hour >= first_hour)
);
CREATE INDEX spans_last_hour ON spans USING brin (last_hour) WITH (pages_per_range = 32);

-- The data of usage_spans, in time order (BRIN).
INSERT INTO span_states (hash, unit, edition, dims)
SELECT DISTINCT ON (h) h, unit, edition, p
  FROM (SELECT unit, edition, span_place(dims) AS p, span_state_hash(unit, edition, span_place(dims)) AS h FROM usage_spans) x
 ORDER BY h;
INSERT INTO span_names (hash, dims)
SELECT DISTINCT ON (h) h, o
  FROM (SELECT span_own(dims) AS o, span_names_hash(span_own(dims)) AS h FROM usage_spans) x
 ORDER BY h;

CREATE TEMP TABLE old_spans ON COMMIT DROP AS
SELECT u.product_id, u.metric, u.object_key, u.first_hour, u.last_hour, u.quantity, st.id AS state_id, nm.id AS names_id,
       CASE WHEN length(u.dims_hash) = 32 THEN u.dims_hash END AS hash,
       row_number() OVER (PARTITION BY u.product_id, u.metric, u.object_key ORDER BY u.first_hour DESC) AS latest
  FROM usage_spans u
  JOIN span_states st ON st.hash = span_state_hash(u.unit, u.edition, span_place(u.dims))
  JOIN span_names nm ON nm.hash = span_names_hash(span_own(u.dims));

INSERT INTO span_objects (product_id, metric, object_key, first_hour, last_hour, quantity, state_id, names_id, hash)
SELECT product_id, metric, object_key, first_hour, last_hour, quantity, state_id, names_id, hash
  FROM old_spans WHERE latest = 1
 ORDER BY product_id, metric, object_key;

INSERT INTO spans (object_id, first_hour, last_hour, quantity, state_id, names_id)
SELECT o.id, s.first_hour, s.last_hour, s.quantity, s.state_id, s.names_id
  FROM old_spans s
  JOIN span_objects o USING (product_id, metric, object_key)
 WHERE s.latest > 1
 ORDER BY s.last_hour, o.id;

DROP TABLE usage_spans;

ALTER TABLE spans SET (fillfactor = 100);

CREATE VIEW usage_spans AS
SELECT o.product_id, o.metric, o.object_key, s.first_hour, s.last_hour, s.quantity, st.unit, st.edition,
       NULL::bytea AS dims_hash, nm.dims || st.dims AS dims
  FROM spans s
  JOIN span_objects o ON o.id = s.object_id
  JOIN span_states st ON st.id = s.state_id
  JOIN span_names nm ON nm.id = s.names_id
UNION ALL
SELECT o.product_id, o.metric, o.object_key, o.first_hour, o.last_hour, o.quantity, st.unit, st.edition,
       o.hash, nm.dims || st.dims
  FROM span_objects o
  JOIN span_states st ON st.id = o.state_id
  JOIN span_names nm ON nm.id = o.names_id;

-- Writing through the view: a span is filed under its object, as its
-- latest span when it starts after the latest one (which is closed), among
-- the earlier ones otherwise. Spans are not joined or checked for overlap:
-- what is inserted is what is stored, as before.
CREATE FUNCTION usage_spans_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	sid integer;
	nid integer;
	obj span_objects;
	h bytea := CASE WHEN length(NEW.dims_hash) = 32 THEN NEW.dims_hash END;
BEGIN
	INSERT INTO span_states (hash, unit, edition, dims)
	VALUES (span_state_hash(NEW.unit, coalesce(NEW.edition, ''), span_place(coalesce(NEW.dims, '{}'))), NEW.unit, coalesce(NEW.edition, ''), span_place(coalesce(NEW.dims, '{}')))
	ON CONFLICT (hash) DO NOTHING;
	SELECT id INTO sid FROM span_states WHERE hash = span_state_hash(NEW.unit, coalesce(NEW.edition, ''), span_place(coalesce(NEW.dims, '{}')));
	INSERT INTO span_names (hash, dims) VALUES (span_names_hash(span_own(coalesce(NEW.dims, '{}'))), span_own(coalesce(NEW.dims, '{}')))
	ON CONFLICT (hash) DO NOTHING;
	SELECT id INTO nid FROM span_names WHERE hash = span_names_hash(span_own(coalesce(NEW.dims, '{}')));

	SELECT * INTO obj FROM span_objects WHERE product_id = NEW.product_id AND metric = NEW.metric AND object_key = NEW.object_key FOR UPDATE;
	IF NOT FOUND THEN
		INSERT INTO span_objects (product_id, metric, object_key, first_hour, last_hour, quantity, state_id, names_id, hash)
		VALUES (NEW.product_id, NEW.metric, NEW.object_key, NEW.first_hour, NEW.last_hour, NEW.quantity, sid, nid, h);
	ELSIF NEW.first_hour > obj.first_hour THEN
		INSERT INTO spans (object_id, first_hour, last_hour, quantity, state_id, names_id)
		VALUES (obj.id, obj.first_hour, obj.last_hour, obj.quantity, obj.state_id, obj.names_id);
		UPDATE span_objects SET first_hour = NEW.first_hour, last_hour = NEW.last_hour, quantity = NEW.quantity,
		       state_id = sid, names_id = nid, hash = h
		 WHERE id = obj.id;
	ELSE
		INSERT INTO spans (object_id, first_hour, last_hour, quantity, state_id, names_id)
		VALUES (obj.id, NEW.first_hour, NEW.last_hour, NEW.quantity, sid, nid);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER usage_spans_insert INSTEAD OF INSERT ON usage_spans FOR EACH ROW EXECUTE FUNCTION usage_spans_insert();

-- Deleting the latest span of an object makes its latest earlier span the
-- latest, or deletes the object when it has none.
CREATE FUNCTION usage_spans_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	obj span_objects;
	prev spans;
BEGIN
	SELECT * INTO obj FROM span_objects WHERE product_id = OLD.product_id AND metric = OLD.metric AND object_key = OLD.object_key FOR UPDATE;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	DELETE FROM spans WHERE object_id = obj.id AND first_hour = OLD.first_hour;
	IF FOUND THEN
		RETURN OLD;
	END IF;
	IF obj.first_hour <> OLD.first_hour THEN
		RETURN NULL;
	END IF;
	DELETE FROM spans WHERE ctid = (SELECT ctid FROM spans WHERE object_id = obj.id ORDER BY first_hour DESC LIMIT 1)
	RETURNING * INTO prev;
	IF FOUND THEN
		UPDATE span_objects SET first_hour = prev.first_hour, last_hour = prev.last_hour, quantity = prev.quantity,
		       state_id = prev.state_id, names_id = prev.names_id, hash = NULL
		 WHERE id = obj.id;
	ELSE
		DELETE FROM span_objects WHERE id = obj.id;
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER usage_spans_delete INSTEAD OF DELETE ON usage_spans FOR EACH ROW EXECUTE FUNCTION usage_spans_delete();

-- Updating a span through the view changes its hours, quantity or dims in
-- place (its object stays); a latest span whose state changed loses its
-- hash (the merge then compares it by content).
CREATE FUNCTION usage_spans_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	sid integer;
	nid integer;
	oid bigint;
	d jsonb := coalesce(NEW.dims, '{}');
BEGIN
	IF (NEW.product_id, NEW.metric, NEW.object_key) IS DISTINCT FROM (OLD.product_id, OLD.metric, OLD.object_key) THEN
		RAISE EXCEPTION 'usage_spans: a span cannot move to another object';
	END IF;
	INSERT INTO span_states (hash, unit, edition, dims)
	VALUES (span_state_hash(NEW.unit, coalesce(NEW.edition, ''), span_place(d)), NEW.unit, coalesce(NEW.edition, ''), span_place(d))
	ON CONFLICT (hash) DO NOTHING;
	SELECT id INTO sid FROM span_states WHERE hash = span_state_hash(NEW.unit, coalesce(NEW.edition, ''), span_place(d));
	INSERT INTO span_names (hash, dims) VALUES (span_names_hash(span_own(d)), span_own(d)) ON CONFLICT (hash) DO NOTHING;
	SELECT id INTO nid FROM span_names WHERE hash = span_names_hash(span_own(d));
	SELECT id INTO oid FROM span_objects WHERE product_id = OLD.product_id AND metric = OLD.metric AND object_key = OLD.object_key;
	UPDATE spans SET first_hour = NEW.first_hour, last_hour = NEW.last_hour, quantity = NEW.quantity, state_id = sid, names_id = nid
	 WHERE object_id = oid AND first_hour = OLD.first_hour;
	IF NOT FOUND THEN
		UPDATE span_objects
		   SET first_hour = NEW.first_hour, last_hour = NEW.last_hour, quantity = NEW.quantity, state_id = sid, names_id = nid,
		       hash = CASE WHEN quantity = NEW.quantity AND state_id = sid AND names_id = nid THEN hash END
		 WHERE id = oid AND first_hour = OLD.first_hour;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER usage_spans_update INSTEAD OF UPDATE ON usage_spans FOR EACH ROW EXECUTE FUNCTION usage_spans_update();
