-- Settings changed at run time (console, operator API) that must survive a
-- restart and reach every instance on one database: a key/value table and
-- one version counter, bumped in the same transaction as every change, so
-- an instance notices a change by reading one row.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE settings_version (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO settings_version (id, version) VALUES (1, 0);
