-- 0002_metadata_hash.sql - projection_runs.metadata_hash and its lookup index
-- (shared/contracts/METADATA_HASH.md): the worker finds a reusable completed run by
-- (collection_id, metadata_hash).  If the app's own migration already made an index
-- that leads with those two columns, under whatever name, no second one is built.

ALTER TABLE projection_runs ADD COLUMN IF NOT EXISTS metadata_hash text;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_attribute a0 ON a0.attrelid = i.indrelid AND a0.attnum = i.indkey[0]
        JOIN pg_attribute a1 ON a1.attrelid = i.indrelid AND a1.attnum = i.indkey[1]
        WHERE i.indrelid = 'projection_runs'::regclass
          AND a0.attname = 'collection_id'
          AND a1.attname = 'metadata_hash'
    ) THEN
        CREATE INDEX IF NOT EXISTS ix_projection_runs_collection_id_metadata_hash
            ON projection_runs (collection_id, metadata_hash);
    END IF;
END
$$;
