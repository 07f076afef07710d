-- Two costs of every job write, removed (each measured with callgrind on the engine's
-- no-op path; together about a sixth of the instructions per job):
--
-- * The status CHECK was `status IN (…six values…)`. SQLite evaluates an IN list of
--   constants by building a temporary b-tree, once per statement execution: that is once
--   per inserted job and once per status change. The same rule written with OR costs a few
--   comparisons. SQLite cannot alter a CHECK in place, so the table is rebuilt (a one-time
--   copy at upgrade; about 20 s per million jobs, measured).
-- * The counts per kind and status were kept by row triggers, a trigger program per row.
--   They are now kept by the statements that change jobs (jobs/store.py), one upsert per
--   write of many jobs. The triggers go with the old table; the counts are rebuilt once.

CREATE TABLE jobs_rebuilt (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status = 'pending' OR status = 'in_progress'
                     OR status = 'completed' OR status = 'partial' OR status = 'failed'
                     OR status = 'cancelled'),
    priority         INTEGER NOT NULL DEFAULT 0,
    urgent           INTEGER NOT NULL DEFAULT 0,
    document_id      TEXT,
    channels         TEXT NOT NULL DEFAULT '[]',
    params           TEXT NOT NULL DEFAULT '{}',
    progress_percent REAL NOT NULL DEFAULT 0,
    progress_message TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    last_error       TEXT,
    errors           TEXT NOT NULL DEFAULT '[]',
    results          TEXT NOT NULL DEFAULT '{}',
    idempotency_key  TEXT,
    correlation_id   TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    scheduled_for    INTEGER,
    due_at           INTEGER NOT NULL,  -- when it may run next: scheduled_for, backoff or now
    started_at       INTEGER,
    completed_at     INTEGER,
    lease_until      INTEGER,  -- in_progress only: until when its engine holds it
    waiting          INTEGER NOT NULL DEFAULT 0  -- pending and due later: not in the queue
);
INSERT INTO jobs_rebuilt SELECT * FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;

-- The indexes as they were (see 0002 and 0005 for why each exists).
CREATE INDEX jobs_queue ON jobs (urgent DESC, priority DESC, due_at, id)
    WHERE status = 'pending' AND waiting = 0;
CREATE INDEX jobs_due ON jobs (due_at) WHERE status = 'pending' AND waiting = 1;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_kind ON jobs (kind, status, id);
CREATE INDEX jobs_document ON jobs (document_id, id) WHERE document_id IS NOT NULL;
CREATE INDEX jobs_correlation ON jobs (correlation_id, id) WHERE correlation_id IS NOT NULL;

DELETE FROM job_counts;
INSERT INTO job_counts (kind, status, n)
    SELECT kind, status, count(*) FROM jobs INDEXED BY jobs_kind GROUP BY kind, status;
