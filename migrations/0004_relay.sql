CREATE TABLE relay_destinations (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    paused BIGINT NOT NULL,
    paused_reason TEXT,
    paused_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE relay_log (
    destination TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    at BIGINT NOT NULL,
    log_offset BIGINT,
    kind TEXT NOT NULL,
    status BIGINT,
    line TEXT NOT NULL,
    PRIMARY KEY (destination, line_no)
);
CREATE TABLE relay_dead_letters (
    destination TEXT NOT NULL,
    log_offset BIGINT NOT NULL,
    status BIGINT,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (destination, log_offset)
)
