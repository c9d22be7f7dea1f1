-- migrate:up
-- 0001: the schema Lethe owns, and the record of applied migrations.
--
-- Plain SQL: `lethe migrate`, psql, dbmate or Flyway can apply it. Every file in this
-- directory runs inside one transaction and must not contain BEGIN/COMMIT itself.

CREATE SCHEMA IF NOT EXISTS lethe;
COMMENT ON SCHEMA lethe IS 'Lethe: per-tenant data retention, archiving and garbage collection';

CREATE TABLE IF NOT EXISTS lethe.schema_migrations (
    version      integer     PRIMARY KEY,
    name         text        NOT NULL,
    checksum     text        NOT NULL,   -- SHA-256 (hex) of the file as applied
    applied_at   timestamptz NOT NULL DEFAULT now(),
    applied_by   text        NOT NULL DEFAULT current_user,
    execution_ms integer     NOT NULL DEFAULT 0
);
COMMENT ON TABLE lethe.schema_migrations IS
    'One row per migrations/NNNN_name.sql applied by `lethe migrate`, with the checksum it had';
