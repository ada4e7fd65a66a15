ALTER TABLE sms_outbox ADD COLUMN noticed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sms_outbox_rest_created ON sms_outbox (rest_code, created_at);
