-- 0001_base_schema.sql - the tables and enums projection-worker reads and writes,
-- created only where they are missing.
--
-- The Python app (Semantik) owns this schema through Alembic; these statements exist so
-- the worker can run against a fresh database (tests, standalone deployments) and must
-- change nothing on a database the app already manages.  Every object is therefore
-- created inside a check for its existence; a table's indexes are created only together
-- with the table, so an app database whose indexes carry other names gets no duplicates.
-- Shapes follow packages/shared/database/models.py and Alembic revision 202510211200.
-- Foreign keys to tables the worker never touches (users, chunking_configs) are left out.

DO $$
BEGIN
    IF to_regtype('collection_status') IS NULL THEN
        -- SQLAlchemy Enum(CollectionStatus) without values_callable stores member names.
        CREATE TYPE collection_status AS ENUM ('PENDING', 'READY', 'PROCESSING', 'ERROR', 'DEGRADED');
    END IF;
    IF to_regtype('operation_type') IS NULL THEN
        CREATE TYPE operation_type AS ENUM
            ('index', 'append', 'reindex', 'remove_source', 'delete', 'projection_build');
    END IF;
    IF to_regtype('operation_status') IS NULL THEN
        CREATE TYPE operation_status AS ENUM
            ('pending', 'processing', 'completed', 'failed', 'cancelled');
    END IF;
    IF to_regtype('projection_run_status') IS NULL THEN
        CREATE TYPE projection_run_status AS ENUM
            ('pending', 'running', 'completed', 'failed', 'cancelled');
    END IF;
END
$$;

-- As Alembic 202510211200 does; a no-op when the value is there.
ALTER TYPE operation_type ADD VALUE IF NOT EXISTS 'projection_build';

DO $$
BEGIN
    IF to_regclass('collections') IS NULL THEN
        CREATE TABLE collections (
            id character varying NOT NULL,
            name character varying NOT NULL,
            description text,
            owner_id integer NOT NULL,
            vector_store_name character varying NOT NULL,
            embedding_model character varying NOT NULL,
            quantization character varying NOT NULL DEFAULT 'float16',
            chunk_size integer NOT NULL DEFAULT 1000,
            chunk_overlap integer NOT NULL DEFAULT 200,
            chunking_strategy character varying,
            chunking_config json,
            is_public boolean NOT NULL DEFAULT false,
            created_at timestamp with time zone NOT NULL DEFAULT now(),
            updated_at timestamp with time zone NOT NULL DEFAULT now(),
            meta json,
            status collection_status NOT NULL DEFAULT 'PENDING',
            status_message text,
            qdrant_collections json,
            qdrant_staging json,
            document_count integer NOT NULL DEFAULT 0,
            vector_count integer NOT NULL DEFAULT 0,
            total_size_bytes integer NOT NULL DEFAULT 0,
            default_chunking_config_id integer,
            chunks_total_count integer NOT NULL DEFAULT 0,
            chunking_completed_at timestamp with time zone,
            CONSTRAINT collections_pkey PRIMARY KEY (id),
            CONSTRAINT collections_vector_store_name_key UNIQUE (vector_store_name)
        );
        CREATE UNIQUE INDEX ix_collections_name ON collections (name);
        CREATE INDEX ix_collections_owner_id ON collections (owner_id);
        CREATE INDEX ix_collections_is_public ON collections (is_public);
        CREATE INDEX ix_collections_status ON collections (status);
        CREATE INDEX ix_collections_default_chunking_config_id ON collections (default_chunking_config_id);
    END IF;

    IF to_regclass('operations') IS NULL THEN
        CREATE TABLE operations (
            id serial NOT NULL,
            uuid character varying NOT NULL,
            collection_id character varying NOT NULL,
            user_id integer NOT NULL,
            type operation_type NOT NULL,
            status operation_status NOT NULL DEFAULT 'pending',
            task_id character varying,
            config json NOT NULL,
            error_message text,
            created_at timestamp with time zone NOT NULL DEFAULT now(),
            started_at timestamp with time zone,
            completed_at timestamp with time zone,
            meta json,
            CONSTRAINT operations_pkey PRIMARY KEY (id),
            CONSTRAINT operations_uuid_key UNIQUE (uuid),
            CONSTRAINT operations_collection_id_fkey FOREIGN KEY (collection_id)
                REFERENCES collections (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_operations_collection_id ON operations (collection_id);
        CREATE INDEX ix_operations_user_id ON operations (user_id);
        CREATE INDEX ix_operations_type ON operations (type);
        CREATE INDEX ix_operations_status ON operations (status);
        CREATE INDEX ix_operations_created_at ON operations (created_at);
    END IF;

    IF to_regclass('projection_runs') IS NULL THEN
        CREATE TABLE projection_runs (
            id serial NOT NULL,
            uuid character varying NOT NULL,
            collection_id character varying NOT NULL,
            operation_uuid character varying,
            status projection_run_status NOT NULL DEFAULT 'pending',
            dimensionality integer NOT NULL,
            reducer character varying NOT NULL,
            storage_path character varying,
            point_count integer,
            config json,
            meta json,
            error_message text,
            created_at timestamp with time zone NOT NULL DEFAULT timezone('utc', now()),
            updated_at timestamp with time zone NOT NULL DEFAULT timezone('utc', now()),
            started_at timestamp with time zone,
            completed_at timestamp with time zone,
            CONSTRAINT projection_runs_pkey PRIMARY KEY (id),
            CONSTRAINT projection_runs_collection_id_fkey FOREIGN KEY (collection_id)
                REFERENCES collections (id) ON DELETE CASCADE,
            CONSTRAINT projection_runs_operation_uuid_fkey FOREIGN KEY (operation_uuid)
                REFERENCES operations (uuid) ON DELETE SET NULL,
            CONSTRAINT uq_projection_runs_uuid UNIQUE (uuid),
            CONSTRAINT uq_projection_runs_operation_uuid UNIQUE (operation_uuid),
            CONSTRAINT ck_projection_runs_dimensionality_positive CHECK (dimensionality > 0),
            CONSTRAINT ck_projection_runs_point_count_non_negative
                CHECK (point_count IS NULL OR point_count >= 0)
        );
        CREATE INDEX ix_projection_runs_collection_id ON projection_runs (collection_id);
        CREATE INDEX ix_projection_runs_status ON projection_runs (status);
        CREATE INDEX ix_projection_runs_created_at ON projection_runs (created_at);
    END IF;
END
$$;
