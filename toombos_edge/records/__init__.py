"""The records the services and the store speak: jobs, documents, projects, as values.

Below both: a record module imports nothing of the services or of ``store/``, so a storage
implementation (``store/sqlite/``, later PostgreSQL) imports them without pulling a service in.
"""
