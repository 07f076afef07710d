-- Documents' originals and the uploads waiting for their ingest job, for nodes that share
-- no directory (store/postgres/blobs.py): any node may run an upload's job or serve a
-- document's original. Bytes are kept in chunks of at most 1 MiB, so that no statement
-- carries a whole large file; a chunk goes with its blob or upload (ON DELETE CASCADE).
-- Most originals are compressed already (PDF, office files, images): EXTERNAL storage
-- keeps the chunks out of line without trying to compress them again.
CREATE TABLE blobs (
    sha256    text PRIMARY KEY,
    size      bigint NOT NULL,
    stored_at bigint NOT NULL
);
CREATE INDEX blobs_stored_at ON blobs (stored_at);

CREATE TABLE blob_chunks (
    sha256 text NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    seq    integer NOT NULL,
    data   bytea NOT NULL,
    PRIMARY KEY (sha256, seq)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE uploads (
    name      text PRIMARY KEY,
    sha256    text NOT NULL,
    size      bigint NOT NULL,
    stored_at bigint NOT NULL
);

CREATE TABLE upload_chunks (
    name text NOT NULL REFERENCES uploads (name) ON DELETE CASCADE,
    seq  integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (name, seq)
);
ALTER TABLE upload_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
