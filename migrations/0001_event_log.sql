CREATE TABLE events (
    log_offset BIGINT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    stream_guid TEXT NOT NULL,
    seqnumber BIGINT NOT NULL,
    situation BIGINT NOT NULL,
    rest_code TEXT,
    event_time TEXT,
    shift_num BIGINT,
    order_guid TEXT,
    body {blob} NOT NULL
);
CREATE UNIQUE INDEX events_stream_seq ON events (stream_guid, seqnumber);
CREATE INDEX events_received ON events (received_at);
CREATE TABLE streams (
    stream_guid TEXT PRIMARY KEY,
    rest_code TEXT,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    events BIGINT NOT NULL
);
CREATE TABLE gaps (
    id BIGINT PRIMARY KEY,
    stream_guid TEXT NOT NULL,
    rest_code TEXT,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    detected_at BIGINT NOT NULL,
    before_offset BIGINT NOT NULL
);
CREATE TABLE quarantine (
    id BIGINT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    remote TEXT,
    body {blob} NOT NULL
);
CREATE TABLE consumer_cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)
