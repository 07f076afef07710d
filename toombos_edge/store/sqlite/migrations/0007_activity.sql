-- The activity log: one row per audit line. `id` is the line's time: milliseconds since
-- the epoch times 1024 plus a sequence (activity/ids.py), so a time range is an id range on
-- the primary key and newest-first paging needs no index of its own. `line` is the JSON line
-- exactly as appended to logs/activity.jsonl; the columns beside it are what the filters
-- of GET /api/activity search on. `actor` is NULL for the server itself ("system").
CREATE TABLE activity (
    id      INTEGER PRIMARY KEY,
    type    TEXT NOT NULL,
    actor   TEXT,
    target  TEXT,
    line    TEXT NOT NULL
);
CREATE INDEX activity_type ON activity (type, id);
CREATE INDEX activity_actor ON activity (actor, id) WHERE actor IS NOT NULL;
CREATE INDEX activity_target ON activity (target, id) WHERE target IS NOT NULL;
