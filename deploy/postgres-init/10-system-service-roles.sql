-- The service's owner and runtime roles and its database, as docs/OPERATIONS.md ("Database
-- roles") sets them up on a managed PostgreSQL. compose.yaml mounts this folder on the postgres
-- image's /docker-entrypoint-initdb.d, whose psql runs it once, on an empty data directory.
-- The passwords come from the container's environment (\getenv: psql 15 and later).
\set owner system_service_owner
\set runtime system_service
\set database system_service
\getenv owner_password DATABASE_OWNER_PASSWORD
\getenv runtime_password DATABASE_PASSWORD

-- Runs migrations and provisioning and owns every schema; CREATEROLE: it makes each tenant's role.
CREATE ROLE :"owner" LOGIN CREATEROLE PASSWORD :'owner_password';
-- Answers requests; NOINHERIT: a tenant's role granted to it gives it nothing until it sets it.
CREATE ROLE :"runtime" LOGIN NOINHERIT PASSWORD :'runtime_password';
CREATE DATABASE :"database" OWNER :"owner";
