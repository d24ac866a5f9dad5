-- The tenant template: the one table defined in SQL. Provisioning copies it into each
-- tenant schema (CREATE TABLE ... (LIKE tenant_template.activity_log INCLUDING ALL)).
-- Statements are separated by ";" at the end of a line and sent one at a time.
CREATE SCHEMA IF NOT EXISTS tenant_template;

CREATE TABLE IF NOT EXISTS tenant_template.activity_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid,
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 200),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip_address inet,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS activity_log_user_id_idx ON tenant_template.activity_log (user_id);

CREATE INDEX IF NOT EXISTS activity_log_created_at_idx ON tenant_template.activity_log (created_at DESC);
