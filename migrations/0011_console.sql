CREATE TABLE console_users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    restaurants TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);
-- The Orders page lists by (opened_at, order_guid) across restaurants (the
-- orders API's keyset order); without this index every page sorted the
-- whole table.
CREATE INDEX orders_opened_guid ON orders ((COALESCE(opened_at, '')), order_guid);
