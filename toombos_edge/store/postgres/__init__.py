"""The PostgreSQL implementation of the store, for several nodes on one database.

Today: the schema (numbered migrations beside SQLite's), applying it safely from several
nodes at once, the pool the stores share (``database.PgDatabase``), the job store (``jobs``:
claims with ``FOR UPDATE SKIP LOCKED``), the stores of documents, projects and content
items, and those of keys, the activity log, the cache's invalidation history, analytics,
health and retention (``keys``, ``activity``, ``cache``, ``analytics``, ``health``,
``retention``), and documents' originals and waiting uploads in chunks (``blobs``, for
nodes that share no directory). Every storage protocol (``store/<aggregate>.py``) but
backups has its implementation here; the server runs on them once the composition root
(``app.py``) builds them, and until then ``toombos-edge migrate`` and ``check`` are what
accept a PostgreSQL URL.

Backups (``store/backup.py``'s ``DatabaseCopies``) stay SQLite's: they copy the database
file next to the data dir. On PostgreSQL the database is not a file of the node's, and
backing it up is ``pg_dump`` (or the server's own base backups and WAL archiving), run by
the database's operator, not by one of the nodes.
"""
