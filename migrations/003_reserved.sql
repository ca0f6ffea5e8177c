-- Placeholder: migration 003 is the storage rework (another branch). This
-- file only keeps the numbering contiguous for tern on the billing branch;
-- it is dropped when the storage branch's 003 is merged.
SELECT 1;
