-- Documents: text to generate content from, with the original upload kept as a
-- content-addressed blob (blobs/ab/cd/<blob_sha256>) that documents share.
-- `seq` is the explicit rowid: the FTS index refers to rows by rowid, and only an
-- INTEGER PRIMARY KEY keeps rowids stable across VACUUM.
CREATE TABLE documents (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    format       TEXT NOT NULL,
    sha256       TEXT NOT NULL,           -- of body as UTF-8: follows every text change
    size         INTEGER NOT NULL,        -- bytes of the original (blob, else body)
    source       TEXT NOT NULL CHECK (source IN ('upload', 'api')),
    blob_sha256  TEXT,                    -- the original upload; NULL for text-only documents
    filename     TEXT,
    content_type TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}',
    text_edited  INTEGER NOT NULL DEFAULT 0,  -- 1 once the text no longer is the blob's
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
-- An upload of bytes already stored gives the unedited document made from them; once its
-- text is edited, the same bytes make a new document sharing the blob.
CREATE INDEX documents_blob ON documents (blob_sha256, text_edited)
    WHERE blob_sha256 IS NOT NULL;
CREATE INDEX documents_sha256 ON documents (sha256);
CREATE INDEX documents_source_format ON documents (source, format, seq);

-- Full-text index over title and body; external content, kept in step by triggers so
-- that no write path can forget it.
CREATE VIRTUAL TABLE documents_fts USING fts5(
    title, body, content = 'documents', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
    INSERT INTO documents_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
END;
CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, body)
    VALUES ('delete', old.seq, old.title, old.body);
END;
CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, body ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, body)
    VALUES ('delete', old.seq, old.title, old.body);
    INSERT INTO documents_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
END;
