"""The SQLite implementation of the store: the one file, its writer, readers and migrations."""
