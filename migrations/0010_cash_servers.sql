CREATE TABLE rk7_cash_servers (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    user_name TEXT NOT NULL,
    password TEXT NOT NULL,
    rest_code TEXT,
    tls_fingerprint TEXT,
    insecure_tls BIGINT NOT NULL,
    added_at BIGINT NOT NULL
);
CREATE TABLE rk7_order_versions (
    order_guid TEXT PRIMARY KEY,
    rest_code TEXT,
    version BIGINT NOT NULL,
    last_offset BIGINT NOT NULL
);
CREATE TABLE rk7_backfill_jobs (
    id BIGINT PRIMARY KEY,
    cash_server TEXT NOT NULL,
    gap_id BIGINT,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    repaired BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE UNIQUE INDEX rk7_backfill_jobs_gap ON rk7_backfill_jobs (cash_server, gap_id);
CREATE TABLE rk7_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE log_backfills (
    log_offset BIGINT PRIMARY KEY,
    source TEXT NOT NULL,
    gap_id BIGINT,
    order_guid TEXT NOT NULL,
    order_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE log_gap_repairs (
    gap_id BIGINT PRIMARY KEY,
    repaired BIGINT NOT NULL,
    source TEXT NOT NULL,
    filled_at BIGINT NOT NULL
);
