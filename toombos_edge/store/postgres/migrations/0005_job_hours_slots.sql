-- job_hours in one row per writer (`slot`), as job_counts: every new job adds to its hour's
-- '' row and every ended job to its status's, so with one row per key every transaction
-- writing jobs (several nodes, or one node's batches in flight at once) waited for the
-- commit of the one before it on that row. A write adds to the row of its connection's
-- slot (store/postgres/job_write.py); every read sums the slots (store/postgres/analytics.py).
-- The key keeps (channel, status, hour) first, so the analytics' ranges read it as before.
ALTER TABLE job_hours ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE job_hours DROP CONSTRAINT job_hours_pkey,
    ADD PRIMARY KEY (channel, status, hour, slot);
