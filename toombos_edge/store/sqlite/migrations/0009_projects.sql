-- Projects (seed 002): a name, a description and metadata that documents may belong to.
-- Ids are time-sortable, so newest-first paging walks the primary key backwards.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- A document belongs to at most one project. The foreign key (checked: the connections
-- turn foreign_keys on) keeps a document from naming a project that does not exist and a
-- project with documents from being deleted unless they are detached or deleted first;
-- the service checks both itself to answer 422 or 409, this is the backstop.
ALTER TABLE documents ADD COLUMN project_id TEXT REFERENCES projects (id);
-- The documents of a project, newest first (the list's filter, the project's count, the
-- foreign key's check on delete); documents without a project take no room in it.
CREATE INDEX documents_project ON documents (project_id, seq) WHERE project_id IS NOT NULL;
