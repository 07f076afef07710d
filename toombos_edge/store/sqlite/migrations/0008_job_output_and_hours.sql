-- 1. A job's own output beside its channel results. The public dashboard reads every entry
-- of `results` as a channel result ({status, …}); an ingest job kept its document id, hash,
-- sizes and flags there as loose values, which broke its pages. Those values (and any other
-- entry that is not an object with a string status, whichever kind wrote it) move to
-- `output`; an ingest job that made a document reports it as one channel-shaped entry.
ALTER TABLE jobs ADD COLUMN output TEXT NOT NULL DEFAULT '{}';

UPDATE jobs SET
    output = (
        SELECT json_group_object(key, CASE
            WHEN type IN ('object', 'array') THEN json(value)
            WHEN type = 'true' THEN json('true')
            WHEN type = 'false' THEN json('false')
            ELSE value END)
        FROM json_each(jobs.results)
        WHERE (CASE WHEN type = 'object' THEN json_type(value, '$.status') END) IS NOT 'text'
    ),
    results = (
        SELECT json_group_object(key, json(value))
        FROM json_each(jobs.results)
        WHERE (CASE WHEN type = 'object' THEN json_type(value, '$.status') END) IS 'text'
    )
    WHERE results <> '{}' AND EXISTS (
        SELECT 1 FROM json_each(jobs.results)
        WHERE (CASE WHEN type = 'object' THEN json_type(value, '$.status') END) IS NOT 'text'
    );

UPDATE jobs SET results = json_object('document', json_object(
        'status', 'success', 'document_id', document_id,
        'duplicate', json(CASE WHEN json_extract(output, '$.duplicate') THEN 'true' ELSE 'false' END),
        'timestamp', strftime('%Y-%m-%dT%H:%M:%S', coalesce(completed_at, updated_at) / 1000,
                              'unixepoch')
                     || printf('.%03dZ', coalesce(completed_at, updated_at) % 1000)))
    WHERE kind = 'ingest' AND status = 'completed' AND document_id IS NOT NULL
      AND results = '{}';

-- 2. Jobs per hour of creation and channel, and how many of them ended how (jobs/rollup.py
-- keeps it, analytics reads it): 30 days are 720 hours of a few rows, whatever the number
-- of jobs. Status '' counts the jobs created; an end status (completed, partial, failed,
-- cancelled) counts those in it now. Pending and running jobs are not kept here (a claim
-- costs nothing): analytics derives them.
CREATE TABLE job_hours (
    channel TEXT NOT NULL,     -- '' for the jobs themselves, else the jobs naming it
    status  TEXT NOT NULL,     -- '' for every job created, else an end status
    hour    INTEGER NOT NULL,  -- created_at / 3600000 (UTC)
    n       INTEGER NOT NULL DEFAULT 0,
    run_ms  INTEGER NOT NULL DEFAULT 0,  -- summed completed_at - started_at of `runs` jobs
    runs    INTEGER NOT NULL DEFAULT 0,  -- those that ran to an end (completed/partial/failed)
    -- (channel, status, hour): a window is one range of hours per status, summed in key
    -- order with no sort (store/sqlite/analytics.py names the statuses).
    PRIMARY KEY (channel, status, hour)
) WITHOUT ROWID;

-- The same statement as jobs/rollup.py's rebuild().
INSERT INTO job_hours (channel, status, hour, n, run_ms, runs)
    SELECT '', '', created_at / 3600000, count(*), 0, 0 FROM jobs GROUP BY 3
    UNION ALL
    SELECT '', status, created_at / 3600000, count(*),
           sum(CASE WHEN status IN ('completed', 'partial', 'failed') AND started_at IS NOT NULL
                    AND completed_at IS NOT NULL THEN completed_at - started_at ELSE 0 END),
           sum(status IN ('completed', 'partial', 'failed') AND started_at IS NOT NULL
               AND completed_at IS NOT NULL)
    FROM jobs WHERE status IN ('completed', 'partial', 'failed', 'cancelled') GROUP BY 2, 3
    UNION ALL
    SELECT c.value, '', created_at / 3600000, count(*), 0, 0
    FROM jobs, json_each(jobs.channels) AS c WHERE jobs.channels <> '[]' GROUP BY 1, 3
    UNION ALL
    SELECT c.value, status, created_at / 3600000, count(*),
           sum(CASE WHEN status IN ('completed', 'partial', 'failed') AND started_at IS NOT NULL
                    AND completed_at IS NOT NULL THEN completed_at - started_at ELSE 0 END),
           sum(status IN ('completed', 'partial', 'failed') AND started_at IS NOT NULL
               AND completed_at IS NOT NULL)
    FROM jobs, json_each(jobs.channels) AS c
    WHERE jobs.channels <> '[]' AND status IN ('completed', 'partial', 'failed', 'cancelled')
    GROUP BY 1, 2, 3;
