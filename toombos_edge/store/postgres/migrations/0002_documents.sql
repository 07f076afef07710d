-- Full text without diacritics, as SQLite's index (unicode61 with remove_diacritics 2):
-- "cafe" finds "Café" and "café" finds "cafe". A text search configuration of our own is
-- 'simple' (lower-cased words, no stemming) after the unaccent dictionary; the generated
-- column and the queries (store/postgres/documents.py) both name it. unaccent ships with
-- PostgreSQL (contrib) and is a trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION documents_text (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION documents_text
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH unaccent, simple;

-- The column and its index, again over the new configuration (no PostgreSQL database
-- holds documents yet: the server runs on it from this version). Between the title and
-- the text, a lexeme no query can name (a space: queries are split on spaces) takes one
-- position, so that a phrase does not match the title's last word and the text's first
-- word side by side (FTS5 indexes them as two columns).
ALTER TABLE documents DROP COLUMN search;
ALTER TABLE documents ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('documents_text'::regconfig, title), 'A')
    || $$' ':1$$::tsvector
    || setweight(to_tsvector('documents_text'::regconfig, left(body, 1000000)), 'B')
) STORED;
CREATE INDEX documents_search ON documents USING gin (search);
