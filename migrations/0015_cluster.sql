CREATE TABLE log_head (
    id BIGINT PRIMARY KEY,
    last_offset BIGINT NOT NULL,
    last_gap_id BIGINT NOT NULL,
    last_quarantine_id BIGINT NOT NULL
);
INSERT INTO log_head (id, last_offset, last_gap_id, last_quarantine_id)
SELECT 1,
    COALESCE((SELECT MAX(log_offset) FROM events), 0),
    COALESCE((SELECT MAX(id) FROM gaps), 0),
    COALESCE((SELECT MAX(id) FROM quarantine), 0);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
)
