-- Jobs. Ids are time-sortable, so "newest first" is the primary key read backwards and a
-- created_at range is an id range: every list filter is an index on (column, id).
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                     ('pending', 'in_progress', 'completed', 'partial', 'failed', 'cancelled')),
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
    lease_until      INTEGER  -- pending: claimed into an engine's memory; in_progress: running
);

-- The queue: only pending rows no engine has claimed, in the order workers take them.
CREATE INDEX jobs_queue ON jobs (urgent DESC, priority DESC, due_at, id)
    WHERE status = 'pending' AND lease_until IS NULL;
-- The next scheduled wake-up.
CREATE INDEX jobs_due ON jobs (due_at) WHERE status = 'pending' AND lease_until IS NULL;
-- Same key, same job (jobs without a key cost this index nothing).
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The list's filters, each ending in id so that pages come out in order.
CREATE INDEX jobs_status ON jobs (status, id);
-- kind with or without statuses: one ordered range per (kind, status), merged.
CREATE INDEX jobs_kind ON jobs (kind, status, id);
CREATE INDEX jobs_document ON jobs (document_id, id) WHERE document_id IS NOT NULL;
CREATE INDEX jobs_correlation ON jobs (correlation_id, id) WHERE correlation_id IS NOT NULL;

-- Exact counts per kind and status, kept by triggers: a list's total for any status and
-- kind filter is a sum over a handful of rows, never a count over a million.
CREATE TABLE job_counts (
    kind   TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, status)
) WITHOUT ROWID;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (kind, status, n) VALUES (NEW.kind, NEW.status, 1)
        ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status <> NEW.status BEGIN
    UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND status = OLD.status;
    INSERT INTO job_counts (kind, status, n) VALUES (NEW.kind, NEW.status, 1)
        ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND status = OLD.status;
END;
