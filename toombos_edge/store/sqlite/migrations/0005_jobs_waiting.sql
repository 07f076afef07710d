-- Jobs due later (scheduled by the client, or a retry's backoff) wait outside the queue:
-- the queue index holds only jobs that may run now, so a claim reads as many index entries
-- as it starts jobs, however many jobs are scheduled for later. A claim first moves the
-- waiting jobs that came due into the queue (waiting = 0), through jobs_due.
ALTER TABLE jobs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET waiting = 1
    WHERE status = 'pending' AND due_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
-- Engines before this one leased due jobs ahead of their start (still pending): a row left
-- so by a crash would never be claimed now, since a pending job has no lease any more.
UPDATE jobs SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL;

DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (urgent DESC, priority DESC, due_at, id)
    WHERE status = 'pending' AND waiting = 0;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (due_at) WHERE status = 'pending' AND waiting = 1;
