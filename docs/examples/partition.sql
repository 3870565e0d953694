-- Partition trakkr_webhook_deliveries (by created_at) and trakkr_webhook_attempts (by
-- started_at) by month, with PostgreSQL declarative partitioning (PostgreSQL 12 or later).
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 --single-transaction -f partition.sql
--
-- Run it with the workers stopped (it copies the rows: plan about 1 minute per 5 million
-- deliveries), after `flask webhooks db upgrade`. It creates a partition per month from the
-- oldest row to three months ahead, a DEFAULT partition for anything outside, and the function
-- trakkr_webhooks_add_partitions(months_ahead) to run monthly (cron, pg_cron) so that each new
-- month has its partition before its first row arrives.
--
-- What changes: a partitioned table's primary key must hold the partition key, so the primary
-- keys become (id, created_at) and (id, started_at), and the unique (delivery_id, number)
-- of the attempts becomes (delivery_id, number, started_at). PostgreSQL cannot point a foreign
-- key at a column that is not unique on its own, so attempts.delivery_id no longer has one
-- (the extension writes an attempt only for a delivery it holds, and retention removes the
-- attempts of a delivery with it). Queries by id alone still use each partition's primary key.

-- 1. Deliveries.
ALTER TABLE trakkr_webhook_attempts DROP CONSTRAINT IF EXISTS trakkr_webhook_attempts_delivery_id_fkey;
ALTER TABLE trakkr_webhook_deliveries RENAME TO trakkr_webhook_deliveries_old;
CREATE TABLE trakkr_webhook_deliveries (
    LIKE trakkr_webhook_deliveries_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
) PARTITION BY RANGE (created_at);

-- 2. Attempts.
ALTER TABLE trakkr_webhook_attempts RENAME TO trakkr_webhook_attempts_old;
CREATE TABLE trakkr_webhook_attempts (
    LIKE trakkr_webhook_attempts_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
) PARTITION BY RANGE (started_at);

-- 3. Monthly partitions: trakkr_webhook_deliveries_y2026m12 holds December 2026.
CREATE OR REPLACE FUNCTION trakkr_webhooks_add_partitions(first_month date, months_ahead integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month date;
    made integer := 0;
    parent text;
    name text;
BEGIN
    FOR month IN
        SELECT generate_series(date_trunc('month', first_month),
                               date_trunc('month', now()) + make_interval(months => months_ahead),
                               interval '1 month')::date
    LOOP
        FOREACH parent IN ARRAY ARRAY['trakkr_webhook_deliveries', 'trakkr_webhook_attempts'] LOOP
            name := parent || to_char(month, '"_y"YYYY"m"MM');
            IF to_regclass(name) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               name, parent, month, (month + interval '1 month')::date);
                made := made + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN made;
END $$;

-- Monthly from now on (e.g. from cron: psql -c "SELECT trakkr_webhooks_add_partitions(3)").
CREATE OR REPLACE FUNCTION trakkr_webhooks_add_partitions(months_ahead integer)
RETURNS integer LANGUAGE sql AS $$
    SELECT trakkr_webhooks_add_partitions(now()::date, months_ahead)
$$;

SELECT trakkr_webhooks_add_partitions(
    LEAST(COALESCE((SELECT min(created_at) FROM trakkr_webhook_deliveries_old), now()),
          COALESCE((SELECT min(started_at) FROM trakkr_webhook_attempts_old), now()))::date,
    3);
CREATE TABLE trakkr_webhook_deliveries_default PARTITION OF trakkr_webhook_deliveries DEFAULT;
CREATE TABLE trakkr_webhook_attempts_default PARTITION OF trakkr_webhook_attempts DEFAULT;

-- 4. The rows, then the old tables (with their indexes, whose names the new ones take).
INSERT INTO trakkr_webhook_deliveries SELECT * FROM trakkr_webhook_deliveries_old;
INSERT INTO trakkr_webhook_attempts SELECT * FROM trakkr_webhook_attempts_old;
DROP TABLE trakkr_webhook_attempts_old;
DROP TABLE trakkr_webhook_deliveries_old;

-- 5. Keys and the extension's indexes, on the parents (each partition gets its own).
ALTER TABLE trakkr_webhook_deliveries ADD PRIMARY KEY (id, created_at);
ALTER TABLE trakkr_webhook_deliveries
    ADD FOREIGN KEY (event_id) REFERENCES trakkr_webhook_events (id),
    ADD FOREIGN KEY (webhook_id) REFERENCES trakkr_webhooks (id);
CREATE INDEX ix_trakkr_webhook_deliveries_event_id ON trakkr_webhook_deliveries (event_id);
CREATE INDEX ix_trakkr_webhook_deliveries_webhook_created ON trakkr_webhook_deliveries (webhook_id, created_at);
CREATE INDEX ix_trakkr_webhook_deliveries_status_next ON trakkr_webhook_deliveries (status, next_attempt_at);
CREATE INDEX ix_trakkr_webhook_deliveries_completed ON trakkr_webhook_deliveries (completed_at, id);

ALTER TABLE trakkr_webhook_attempts ADD PRIMARY KEY (id, started_at);
ALTER TABLE trakkr_webhook_attempts
    ADD CONSTRAINT uq_trakkr_webhook_attempts_number UNIQUE (delivery_id, number, started_at);
CREATE INDEX ix_trakkr_webhook_attempts_bodies ON trakkr_webhook_attempts (started_at, id)
    WHERE response_body IS NOT NULL OR response_headers IS NOT NULL;

ANALYZE trakkr_webhook_deliveries;
ANALYZE trakkr_webhook_attempts;
