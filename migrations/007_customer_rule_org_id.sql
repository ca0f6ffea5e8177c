-- Customer rules on a Cloud Director organisation match it by identity
-- (issue 17): the org's id, which a rename in Cloud Director keeps, with
-- the name for display and for spans collected before the vcd collector
-- recorded the id (dims "org_id").
--
-- object_id is the org's id (its UUID, lower case), '' when unknown: such
-- a rule matches by name only. store.AddCustomerRule fills it from the
-- collected spans when the rule is added, the daemon daily for rules added
-- before the org was collected.
ALTER TABLE customer_rules ADD COLUMN object_id text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX customer_rules_object_id ON customer_rules (object_type, object_id) WHERE object_id <> '';
