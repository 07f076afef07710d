-- Jobs that wait for another job to end (the items of an ordered batch after the first).
-- `depends_on` names that job; `fail_fast` 1 means: cancel this one if that one ends
-- failed or cancelled (else it runs after any end). Such a job is stored pending with
-- waiting = 2: in neither the queue index (waiting = 0) nor jobs_due (waiting = 1), so a
-- claim never reads it and no worker waits for it. When a job ends, the statement that ends
-- it also releases its dependents through jobs_dependents (jobs/store.py, settle()), in
-- the same transaction: a restart finds them waiting or released, never lost.
ALTER TABLE jobs ADD COLUMN depends_on TEXT;
ALTER TABLE jobs ADD COLUMN fail_fast INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_dependents ON jobs (depends_on) WHERE status = 'pending' AND waiting = 2;
