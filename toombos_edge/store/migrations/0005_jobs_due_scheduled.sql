-- The wake-up timer only needs jobs due later, and every such job has a scheduled_for (set
-- by the client, or by a retry's backoff); jobs due at once stay out of this index, which
-- saves an index entry written at submit and removed at start for nearly every job.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (due_at)
    WHERE status = 'pending' AND lease_until IS NULL AND scheduled_for IS NOT NULL;
