-- Runs once, when the postgres service starts on an empty volume (docker-entrypoint-initdb.d).
-- Two databases on one local server: `prefect` (POSTGRES_DB, the Prefect server's own) and `warehouse`.

\connect prefect
-- Prefect's database migrations create trigram indexes: without pg_trgm the server cannot start.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- What shipshape loads into and publishes from; its schemas and roles come from `make apply ENV=dev`
-- (or `python -m infra.warehouse`), exactly as on a real environment.
CREATE DATABASE warehouse;
