CREATE TABLE sms_settings (
    rest_code TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE sms_contacts (
    order_guid TEXT PRIMARY KEY,
    phone TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    consent_at BIGINT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sms_contacts_created ON sms_contacts (created_at);
CREATE TABLE sms_outbox (
    id BIGINT PRIMARY KEY,
    order_guid TEXT NOT NULL,
    kind TEXT NOT NULL,
    rest_code TEXT NOT NULL,
    step BIGINT NOT NULL,
    phone TEXT,
    phone_masked TEXT,
    body TEXT NOT NULL,
    provider TEXT NOT NULL,
    sender TEXT,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    provider_id TEXT,
    error_code BIGINT,
    error_text TEXT,
    delivery TEXT,
    polled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX sms_outbox_order_kind ON sms_outbox (order_guid, kind);
CREATE INDEX sms_outbox_due ON sms_outbox (state, next_attempt_at);
CREATE TABLE sms_stops (
    provider TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    stopped_at BIGINT NOT NULL
)
