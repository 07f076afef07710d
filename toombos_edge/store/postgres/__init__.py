"""The PostgreSQL implementation of the store, for several nodes on one database.

Today: the schema (numbered migrations beside SQLite's), applying it safely from several
nodes at once, and the job claim the multi-node engine will run. The server itself runs on
PostgreSQL once the storage protocols (``store/<aggregate>.py``) have an implementation
here; until then ``toombos-edge migrate`` and ``check`` are what accept a PostgreSQL URL.
"""
