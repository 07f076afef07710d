-- Content made from documents, one row per channel; body is JSON (subject/html/text/posts…).
CREATE TABLE content (
    id            TEXT PRIMARY KEY,
    job_id        TEXT,
    document_id   TEXT,
    channel       TEXT NOT NULL,
    style         TEXT NOT NULL,
    tone          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    slug          TEXT,
    body          TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    status        TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    published_url TEXT,
    published_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX content_by_job ON content (job_id, channel);
CREATE INDEX content_by_document ON content (document_id);
CREATE INDEX content_by_slug ON content (slug, status, published_at);

-- Every prior version of a content item, kept on each update (rollback reads them).
CREATE TABLE content_versions (
    content_id  TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    replaced_at INTEGER NOT NULL,
    PRIMARY KEY (content_id, version)
);

-- Views of pages served at /site/{slug}, per slug and UTC day.
CREATE TABLE site_views (
    slug  TEXT NOT NULL,
    day   TEXT NOT NULL,
    views INTEGER NOT NULL,
    PRIMARY KEY (slug, day)
);

-- Cache invalidations and clears (the cache itself is derived data and may be rebuilt).
CREATE TABLE cache_invalidations (
    id          TEXT PRIMARY KEY,
    ts          INTEGER NOT NULL,
    actor       TEXT,
    invalidated INTEGER NOT NULL,
    keys        TEXT NOT NULL,
    pattern     TEXT,
    tags        TEXT NOT NULL,
    cleared     INTEGER NOT NULL
);
CREATE INDEX cache_invalidations_by_ts ON cache_invalidations (ts);
