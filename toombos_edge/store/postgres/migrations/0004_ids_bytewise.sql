-- Ids compare as bytes, whatever the database's collation: the job list's `q` (a prefix
-- of the id, the document id or the correlation id) is then a range of their indexes, as
-- on SQLite, and pages by id follow creation order under any locale. The indexes on these
-- columns are rebuilt with them.
ALTER TABLE jobs
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN document_id TYPE text COLLATE "C",
    ALTER COLUMN correlation_id TYPE text COLLATE "C",
    ALTER COLUMN depends_on TYPE text COLLATE "C";
