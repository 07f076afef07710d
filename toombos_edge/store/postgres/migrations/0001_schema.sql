-- The schema of SQLite's migrations 0001 to 0010, as PostgreSQL writes it, in one file.
-- SQLite's later files rebuild tables and rewrite rows of files made by older versions
-- (0005, 0006, 0008): no PostgreSQL database predates this one, so there is nothing to
-- convert, and the end state is written directly. From here on, a change of schema is a
-- numbered file in each folder. Ids are our text ids, times integer milliseconds (bigint),
-- JSON columns jsonb. The comments of the SQLite files say why each index exists; the
-- same queries rely on the same indexes here.

-- API keys: only the SHA-256 of each secret is kept; the secret is shown once.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    secret_hash  bytea NOT NULL UNIQUE,
    created_at   bigint NOT NULL,
    last_used_at bigint,
    revoked_at   bigint
);

-- Jobs (SQLite 0002, 0005, 0006, 0008, 0010). `waiting`: 0 in the queue, 1 due later,
-- 2 blocked on `depends_on` (jobs/store.py).
CREATE TABLE jobs (
    id               text PRIMARY KEY,
    kind             text NOT NULL,
    status           text NOT NULL CHECK (status IN
                     ('pending', 'in_progress', 'completed', 'partial', 'failed', 'cancelled')),
    priority         integer NOT NULL DEFAULT 0,
    urgent           boolean NOT NULL DEFAULT false,
    document_id      text,
    channels         jsonb NOT NULL DEFAULT '[]',
    params           jsonb NOT NULL DEFAULT '{}',
    progress_percent double precision NOT NULL DEFAULT 0,
    progress_message text NOT NULL DEFAULT '',
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    last_error       text,
    errors           jsonb NOT NULL DEFAULT '[]',
    results          jsonb NOT NULL DEFAULT '{}',
    output           jsonb NOT NULL DEFAULT '{}',
    idempotency_key  text,
    correlation_id   text,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    scheduled_for    bigint,
    due_at           bigint NOT NULL,  -- when it may run next: scheduled_for, backoff or now
    started_at       bigint,
    completed_at     bigint,
    lease_until      bigint,  -- in_progress only: until when its node holds it
    waiting          smallint NOT NULL DEFAULT 0 CHECK (waiting IN (0, 1, 2)),
    depends_on       text,
    fail_fast        boolean NOT NULL DEFAULT false
);

-- The queue: pending jobs that may run now, in the order workers take them (the claim's
-- ORDER BY, store/postgres/jobs_sql.py).
CREATE INDEX jobs_queue ON jobs (urgent DESC, priority DESC, due_at, id)
    WHERE status = 'pending' AND waiting = 0;
-- Waiting jobs by when they come due (the claim promotes them; the next wake-up).
CREATE INDEX jobs_due ON jobs (due_at) WHERE status = 'pending' AND waiting = 1;
-- Blocked jobs by the job they wait for (released by the statement that ends it).
CREATE INDEX jobs_dependents ON jobs (depends_on) WHERE status = 'pending' AND waiting = 2;
-- Running jobs by lease: any node rescues the expired ones.
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'in_progress';
-- Same key, same job.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The list's filters, each ending in id so that pages come out in order.
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_kind ON jobs (kind, status, id);
CREATE INDEX jobs_document ON jobs (document_id, id) WHERE document_id IS NOT NULL;
CREATE INDEX jobs_correlation ON jobs (correlation_id, id) WHERE correlation_id IS NOT NULL;

-- Exact counts per kind and status, kept by the statements that change jobs. Unlike
-- SQLite's single writer, several nodes change them at once: one row per (kind, status)
-- would be a lock every claim waits on. So each writer adds its deltas to its own `slot`
-- (jobs_sql.py) and a read sums the slots.
CREATE TABLE job_counts (
    kind   text NOT NULL,
    status text NOT NULL,
    slot   smallint NOT NULL DEFAULT 0,
    n      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, status, slot)
);

-- Jobs per hour of creation and channel, and how they ended (SQLite 0008).
CREATE TABLE job_hours (
    channel text NOT NULL,
    status  text NOT NULL,
    hour    bigint NOT NULL,  -- created_at / 3600000 (UTC)
    n       bigint NOT NULL DEFAULT 0,
    run_ms  bigint NOT NULL DEFAULT 0,
    runs    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, status, hour)
);

-- Projects (SQLite 0009), before the documents that name them.
CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL
);

-- Documents (SQLite 0003, 0009). `seq` orders the lists as SQLite's rowid does.
-- Full text: a generated tsvector (title weighted above body) under a GIN index, in the
-- 'simple' configuration: lower-cased words, no stemming, as SQLite's unicode61 tokenizer
-- (which also folds diacritics; 'simple' does not). A tsvector holds at most 1 MiB, so the
-- body is indexed up to its first million characters (a longer text is still stored whole).
CREATE TABLE documents (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    title        text NOT NULL DEFAULT '',
    body         text NOT NULL DEFAULT '',
    format       text NOT NULL,
    sha256       text NOT NULL,
    size         bigint NOT NULL,
    source       text NOT NULL CHECK (source IN ('upload', 'api')),
    blob_sha256  text,
    filename     text,
    content_type text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    text_edited  boolean NOT NULL DEFAULT false,
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    project_id   text REFERENCES projects (id),
    search       tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('simple'::regconfig, title), 'A')
                     || setweight(to_tsvector('simple'::regconfig, left(body, 1000000)), 'B')
                 ) STORED
);
CREATE INDEX documents_blob ON documents (blob_sha256, text_edited)
    WHERE blob_sha256 IS NOT NULL;
CREATE INDEX documents_sha256 ON documents (sha256);
CREATE INDEX documents_source_format ON documents (source, format, seq);
CREATE INDEX documents_project ON documents (project_id, seq) WHERE project_id IS NOT NULL;
CREATE INDEX documents_search ON documents USING gin (search);

-- Content made from documents, one row per channel (SQLite 0004).
CREATE TABLE content (
    id            text PRIMARY KEY,
    job_id        text,
    document_id   text,
    channel       text NOT NULL,
    style         text NOT NULL,
    tone          text NOT NULL,
    content_type  text NOT NULL,
    slug          text,
    body          jsonb NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    published_url text,
    published_at  bigint,
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL
);
CREATE INDEX content_by_job ON content (job_id, channel);
CREATE INDEX content_by_document ON content (document_id);
CREATE INDEX content_by_slug ON content (slug, status, published_at);

CREATE TABLE content_versions (
    content_id  text NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    body        jsonb NOT NULL,
    created_at  bigint NOT NULL,
    replaced_at bigint NOT NULL,
    PRIMARY KEY (content_id, version)
);

CREATE TABLE site_views (
    slug  text NOT NULL,
    day   text NOT NULL,
    views bigint NOT NULL,
    PRIMARY KEY (slug, day)
);

CREATE TABLE cache_invalidations (
    id          text PRIMARY KEY,
    ts          bigint NOT NULL,
    actor       text,
    invalidated bigint NOT NULL,
    keys        jsonb NOT NULL,
    pattern     text,
    tags        jsonb NOT NULL,
    cleared     boolean NOT NULL
);
CREATE INDEX cache_invalidations_by_ts ON cache_invalidations (ts);

-- The activity log (SQLite 0007). `line` stays text: it is the JSON line exactly as
-- appended to logs/activity.jsonl (jsonb would reorder its keys).
CREATE TABLE activity (
    id      bigint PRIMARY KEY,
    type    text NOT NULL,
    actor   text,
    target  text,
    line    text NOT NULL
);
CREATE INDEX activity_type ON activity (type, id);
CREATE INDEX activity_actor ON activity (actor, id) WHERE actor IS NOT NULL;
CREATE INDEX activity_target ON activity (target, id) WHERE target IS NOT NULL;
