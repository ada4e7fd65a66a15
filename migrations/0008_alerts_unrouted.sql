-- Every alert is recorded, routed or not: an alert no chat receives is kept
-- with state 'unrouted' and no chat, so chat_id becomes nullable. SQLite
-- cannot drop a NOT NULL in place, so the table is rebuilt (same SQL on
-- PostgreSQL).
CREATE TABLE alerts_outbox_new (
    id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    rest_code TEXT,
    kind TEXT NOT NULL,
    chat_id BIGINT,
    payload_version BIGINT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    parts_sent BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
INSERT INTO alerts_outbox_new (id, created_at, rest_code, kind, chat_id, payload_version, payload, state, attempts, next_attempt_at, parts_sent, sent_at, last_error)
    SELECT id, created_at, rest_code, kind, chat_id, payload_version, payload, state, attempts, next_attempt_at, parts_sent, sent_at, last_error FROM alerts_outbox;
DROP TABLE alerts_outbox;
ALTER TABLE alerts_outbox_new RENAME TO alerts_outbox;
CREATE INDEX alerts_outbox_due ON alerts_outbox (state, next_attempt_at);
