CREATE TABLE alerts_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO alerts_meta (key, value) VALUES ('outbox_id', 0);
INSERT INTO alerts_meta (key, value) VALUES ('gap_cursor', 0);
INSERT INTO alerts_meta (key, value) VALUES ('tg_update_offset', 0);
CREATE TABLE alerts_outbox (
    id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    rest_code TEXT,
    kind TEXT NOT NULL,
    chat_id BIGINT NOT NULL,
    payload_version BIGINT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    parts_sent BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX alerts_outbox_due ON alerts_outbox (state, next_attempt_at);
CREATE TABLE alerts_orders (
    order_guid TEXT PRIMARY KEY,
    memory TEXT NOT NULL
);
CREATE TABLE alerts_stations (
    station_key TEXT PRIMARY KEY,
    rest_code TEXT,
    name TEXT NOT NULL,
    started BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    last_event_time TEXT,
    silent_alerted BIGINT NOT NULL
);
CREATE TABLE alerts_rests (
    rest_code TEXT PRIMARY KEY,
    shift_num BIGINT,
    last_seen BIGINT NOT NULL,
    last_event_time TEXT,
    last_offset BIGINT NOT NULL,
    silent_alerted BIGINT NOT NULL,
    reported_shift BIGINT
);
CREATE TABLE alerts_chats (
    old_chat BIGINT PRIMARY KEY,
    new_chat BIGINT NOT NULL
);
CREATE TABLE alerts_mutes (
    chat_id BIGINT PRIMARY KEY,
    until_ms BIGINT NOT NULL
)
