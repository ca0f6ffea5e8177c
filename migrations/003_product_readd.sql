-- A removed product keeps its row (its billed history) but no longer holds
-- its address or its identity: the same address can be registered again
-- (the same instance resumes its row, see store.AddProduct; another
-- instance at that address is a new product).
ALTER TABLE products DROP CONSTRAINT products_kind_endpoint_key;
CREATE UNIQUE INDEX products_endpoint ON products (kind, endpoint) WHERE removed_at IS NULL;
DROP INDEX products_identity;
CREATE UNIQUE INDEX products_identity ON products (kind, instance_id) WHERE instance_id <> '' AND removed_at IS NULL;
